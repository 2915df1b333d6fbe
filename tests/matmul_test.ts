import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { matmul, matmulNaive, type MatmulOptions } from "../src/gpu/matmul.ts";
import { createTensor, poison, readTensor, writeTensor } from "../src/gpu/tensor.ts";
import { ShapeError } from "../src/errors.ts";
import { matmulRef } from "../src/reference/matmul.ts";
import { assertClose, freshSeed, randn, rng } from "./_util.ts";

const TOL = 1e-5;

/** Runs one GPU matmul on fresh random inputs and compares it with the float64 twin. */
async function check(opts: MatmulOptions, label: string, seed = freshSeed()): Promise<void> {
  const gpu = await getGpu();
  const r = rng(seed);
  const { M, N, K } = opts;
  const batch = opts.batch ?? 1;
  const sA = opts.strideA ?? M * K, sB = opts.strideB ?? K * N, sO = opts.strideOut ?? M * N;
  const lenA = Math.max(1, (batch - 1) * sA + M * K), lenB = Math.max(1, (batch - 1) * sB + K * N);
  const lenO = Math.max(1, (batch - 1) * sO + M * N);
  const a = randn(r, lenA), b = randn(r, lenB);
  const ta = createTensor(gpu, [lenA], { name: "A", data: a });
  const tb = createTensor(gpu, [lenB], { name: "B", data: b });
  const out = createTensor(gpu, [lenO], { name: "out" });
  let init: Float32Array | undefined;
  if (opts.accumulate) {
    init = randn(r, lenO);
    writeTensor(out, init);
  } else poison(out);
  let biasData: Float32Array | undefined;
  let bias = opts.bias;
  if (bias) {
    biasData = randn(r, N);
    bias = createTensor(gpu, [N], { name: "bias", data: biasData });
  }
  await matmul(gpu, ta, tb, out, { ...opts, bias });
  const got = await readTensor(out);
  const want = matmulRef(a, b, { ...opts, bias: biasData, out: init ?? new Float32Array(lenO) });
  // Gaps between strided output batches are never written; compare only the written blocks.
  const g: number[] = [], w: number[] = [];
  for (let z = 0; z < batch; z++) {
    for (let i = 0; i < M * N; i++) (g.push(got[z * sO + i]), w.push(want[z * sO + i]));
  }
  assertClose(g, w, TOL, label, seed);
  ta.destroy();
  tb.destroy();
  out.destroy();
  bias?.destroy();
}

const SHAPES: Array<[number, number, number]> = [
  [1, 1, 1],
  [3, 5, 7],
  [17, 33, 65],
  [16, 24, 32], // every dimension a multiple of 4: all vec4 paths
  [5, 8, 12], // N, K aligned, M not
  [12, 7, 9], // M aligned, N, K not
  [9, 4, 3], // K < 4: tail loop only
];

Deno.test("matmul: all transpose combinations on odd and aligned shapes", async () => {
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      for (const [M, N, K] of SHAPES) {
        await check({ M, N, K, transA, transB }, `M=${M} N=${N} K=${K} tA=${transA} tB=${transB}`);
      }
    }
  }
});

Deno.test("matmul: bias, alpha and accumulate", async () => {
  const dummy = createTensor(await getGpu(), [1]);
  for (const [M, N, K] of [[3, 5, 7], [8, 12, 16], [17, 33, 65]] as const) {
    for (const transB of [false, true]) {
      await check({ M, N, K, transB, bias: dummy }, `bias ${M}x${N}x${K} tB=${transB}`);
      await check({ M, N, K, transB, alpha: -0.37 }, `alpha ${M}x${N}x${K} tB=${transB}`);
      await check({ M, N, K, transB, accumulate: true }, `accumulate ${M}x${N}x${K} tB=${transB}`);
      await check(
        { M, N, K, transA: true, transB, bias: dummy, alpha: 2.5, accumulate: true },
        `all ${M}x${N}x${K} tB=${transB}`,
      );
    }
  }
  // K = 0: the product is empty, so out = bias.
  await check({ M: 3, N: 5, K: 0, bias: dummy }, "K=0 gives bias");
});

Deno.test("matmul: batches, strides and broadcast B (strideB = 0)", async () => {
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      const t = `tA=${transA} tB=${transB}`;
      await check({ M: 5, N: 7, K: 9, batch: 3, transA, transB }, `dense batch ${t}`);
      await check({ M: 8, N: 12, K: 16, batch: 3, transA, transB }, `aligned batch ${t}`);
      await check({ M: 5, N: 7, K: 9, batch: 4, strideB: 0, transA, transB }, `broadcast B ${t}`);
      await check({ M: 8, N: 8, K: 8, batch: 3, strideB: 0, transA, transB }, `aligned broadcast B ${t}`);
      // Aligned sizes but odd batch strides: the vec4 path must be refused.
      await check(
        { M: 8, N: 8, K: 8, batch: 3, strideA: 67, strideB: 65, strideOut: 70, transA, transB },
        `odd strides ${t}`,
      );
    }
  }
  // More batches than one dispatch dimension allows (65535).
  await check({ M: 1, N: 1, K: 1, batch: 70000 }, "batch over the workgroup limit");
});

Deno.test("matmul: tall-vocab lm-head shapes (transB, large odd N)", async () => {
  await check({ M: 2, N: 1031, K: 13, transB: true }, "M=2 N=1031 K=13");
  await check({ M: 1, N: 1031, K: 64, transB: true }, "M=1 N=1031 K=64");
  await check({ M: 6, N: 2053, K: 8, transB: true }, "M=6 N=2053 K=8");
  await check({ M: 3, N: 1031, K: 13, transB: false }, "M=3 N=1031 K=13 no transpose");
});

Deno.test("matmul: wrong sizes throw ShapeError naming the tensor", async () => {
  const gpu = await getGpu();
  const a = createTensor(gpu, [4, 6], { name: "x" });
  const b = createTensor(gpu, [6, 5], { name: "w" });
  const out = createTensor(gpu, [4, 5], { name: "y" });
  const bias = createTensor(gpu, [4], { name: "b" });
  const cases: Array<[MatmulOptions, string]> = [
    [{ M: 4, N: 5, K: 7 }, "x"],
    [{ M: 4, N: 6, K: 6 }, "w"],
    [{ M: 4, N: 5, K: 6, batch: 2, strideA: 0, strideB: 0 }, "y"],
    [{ M: 4, N: 5, K: 6, bias }, "b"],
    [{ M: 4, N: 5, K: 6, batch: 2, strideB: 0 }, "x"],
    [{ M: 4.5, N: 5, K: 6 }, "M"],
  ];
  for (const [opts, field] of cases) {
    await assert.rejects(() => matmul(gpu, a, b, out, opts), (e: unknown) => {
      assert.ok(e instanceof ShapeError, `expected ShapeError for ${JSON.stringify(opts)}, got ${e}`);
      assert.equal(e.field, field);
      return true;
    });
  }
  await assert.rejects(() => matmulNaive(gpu, a, b, out, { M: 5, N: 5, K: 6 }), ShapeError);
  for (const t of [a, b, out, bias]) t.destroy();
});

Deno.test("matmulNaive (shared-memory baseline) matches the twin", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  for (const [M, N, K] of [[1, 1, 1], [3, 5, 7], [17, 33, 65], [32, 48, 16]]) {
    const a = randn(r, M * K), b = randn(r, K * N);
    const ta = createTensor(gpu, [M, K], { data: a }), tb = createTensor(gpu, [K, N], { data: b });
    const out = createTensor(gpu, [M, N]);
    poison(out);
    await matmulNaive(gpu, ta, tb, out, { M, N, K });
    assertClose(await readTensor(out), matmulRef(a, b, { M, N, K }), TOL, `naive ${M}x${N}x${K}`, seed);
    for (const t of [ta, tb, out]) t.destroy();
  }
});

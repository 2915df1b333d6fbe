import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { matmul, MATMUL_VARIANTS, type MatmulOptions, matmulVariant } from "../src/gpu/matmul.ts";
import { autotuneMatmul } from "../src/gpu/matmul_tune.ts";
import { createTensor, poison, readTensor, writeTensor } from "../src/gpu/tensor.ts";
import { ShapeError } from "../src/errors.ts";
import { matmulRef } from "../src/reference/matmul.ts";
import { assertClose, freshSeed, randn, rng } from "./_util.ts";

const TOL = 1e-5;

/** One product with variant `v` on fresh random inputs against the float64 twin. */
async function check(v: string, opts: MatmulOptions, label: string, seed = freshSeed()): Promise<void> {
  const gpu = await getGpu();
  const r = rng(seed);
  const { M, N, K } = opts;
  const batch = opts.batch ?? 1;
  const sA = opts.strideA ?? M * K, sB = opts.strideB ?? K * N, sO = opts.strideOut ?? M * N;
  const lenA = Math.max(1, (batch - 1) * sA + M * K), lenB = Math.max(1, (batch - 1) * sB + K * N);
  const lenO = Math.max(1, (batch - 1) * sO + M * N);
  const a = randn(r, lenA), b = randn(r, lenB);
  const ta = createTensor(gpu, [lenA], { data: a }), tb = createTensor(gpu, [lenB], { data: b });
  const out = createTensor(gpu, [lenO]);
  let init: Float32Array | undefined;
  if (opts.accumulate) writeTensor(out, init = randn(r, lenO));
  else poison(out);
  const biasData = opts.bias ? randn(r, N) : undefined;
  const bias = biasData ? createTensor(gpu, [N], { data: biasData }) : undefined;
  await matmul(gpu, ta, tb, out, { ...opts, bias, variant: v });
  const got = await readTensor(out);
  const want = matmulRef(a, b, { ...opts, bias: biasData, out: init ?? new Float32Array(lenO) });
  const g: number[] = [], w: number[] = [];
  for (let z = 0; z < batch; z++) {
    for (let i = 0; i < M * N; i++) (g.push(got[z * sO + i]), w.push(want[z * sO + i]));
  }
  assertClose(g, w, TOL, `${v} ${label}`, seed);
  for (const t of [ta, tb, out, bias]) t?.destroy();
}

// Odd shapes (the wide variants fall back to the 4x4 kernel there), aligned ones that use every
// variant's own path with partial edge tiles, and exact multiples of the tiles.
// An odd shape (the wide variants fall back to the 4x4 kernel there), aligned ones with partial edge
// tiles of every variant's own path, and an exact multiple of the tiles.
const SHAPES: Array<[number, number, number]> = [[3, 5, 7], [20, 36, 12], [12, 8, 4], [16, 32, 8]];

// Pipelines are compiled per variant and flag set (seconds each for the widest tiles on llvmpipe), so
// each variant gets every transpose on plain products, and the flags on two of the combinations.
Deno.test("matmul variants: every transpose combination on odd and aligned shapes", async () => {
  const gpu = await getGpu();
  const dummy = createTensor(gpu, [1]);
  for (const { name } of MATMUL_VARIANTS) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const t = `tA=${transA} tB=${transB}`;
        for (const [M, N, K] of SHAPES) await check(name, { M, N, K, transA, transB }, `${M}x${N}x${K} ${t}`);
        await check(name, { M: 8, N: 8, K: 8, batch: 3, strideB: 0, transA, transB }, `broadcast B ${t}`);
      }
    }
    for (const [transA, transB] of [[false, true], [true, false]]) {
      const t = `tA=${transA} tB=${transB}`;
      const all = { transA, transB, bias: dummy, alpha: -0.7, accumulate: true };
      await check(name, { M: 20, N: 36, K: 12, ...all }, `all ${t}`);
      await check(
        name,
        { M: 20, N: 36, K: 12, batch: 2, strideA: 724, strideB: 436, strideOut: 724, ...all },
        `strided batches ${t}`,
      );
    }
  }
  dummy.destroy();
});

Deno.test("matmul variants: the STRIDED split path (operands over the binding limit)", async () => {
  const gpu = await getGpu();
  gpu.setBindingLimit(2048);
  try {
    for (const { name } of MATMUL_VARIANTS) {
      for (const [transA, transB] of [[false, false], [true, true]]) {
        await check(name, { M: 24, N: 40, K: 32, transA, transB }, `split tA=${transA} tB=${transB}`);
      }
    }
    // Odd blocks fall back to the 4x4 kernel whatever the variant.
    await check("wide8x8", { M: 19, N: 23, K: 29, transB: true }, "split odd");
    // Only B over the limit, A's pack within it: the uniform-window variant still leaves it to the
    // split path's storage kernels (it binds whole operands).
    gpu.setBindingLimit(512 * 1024);
    await check("ubo8x16", { M: 40, N: 2400, K: 64, transB: true }, "split, B alone over the limit");
  } finally {
    gpu.setBindingLimit(undefined);
  }
});

Deno.test("matmul through uniform windows: several K tiles, edge tiles, B packed in chunks, shared and strided batches", async () => {
  const gpu = await getGpu();
  const dummy = createTensor(gpu, [1]);
  // M, N past one 128-tile with edges, K = 300: three K tiles, one dispatch (three K windows).
  for (const [transA, transB] of [[false, false], [true, true], [false, true]]) {
    const t = `tA=${transA} tB=${transB}`;
    await check("ubo8x16", { M: 130, N: 203, K: 300, transA, transB }, `K tiles ${t}`);
    await check("ubo8x16", {
      M: 130,
      N: 203,
      K: 300,
      transA,
      transB,
      bias: dummy,
      alpha: 0.6,
      accumulate: true,
    }, `K tiles, flags ${t}`);
  }
  // K = 450 and 620: four and five K tiles, so a second dispatch (one K window, then two) adds into the
  // block after the first group of three windows.
  for (const K of [450, 620]) {
    await check("ubo8x16", { M: 130, N: 203, K }, `K groups, K=${K}`);
    await check(
      "ubo8x16",
      { M: 41, N: 140, K, transA: true, bias: dummy, alpha: -0.7, accumulate: true },
      `K groups, flags, K=${K}`,
    );
  }
  // Sizes between the tile classes (33 rows: a 64-row tile; 96 columns; K 40: a K tile of 64).
  await check("ubo8x16", { M: 33, N: 96, K: 40, bias: dummy }, "middle tiles");
  await check(
    "ubo8x16",
    { M: 40, N: 72, K: 160, batch: 3, strideB: 0, accumulate: true },
    "shared B over 3 K tiles",
  );
  await check(
    "ubo8x16",
    { M: 36, N: 68, K: 44, batch: 2, strideA: 1601, strideB: 3017, strideOut: 2453 },
    "odd strides",
  );
  // A binding limit of 512 KiB holds two column tiles of three K tiles: B is packed and multiplied in
  // two chunks (two column tiles, then one).
  gpu.setBindingLimit(512 * 1024);
  try {
    await check("ubo8x16", { M: 130, N: 300, K: 300, bias: dummy }, "B in chunks");
    await check(
      "ubo8x16",
      { M: 70, N: 300, K: 300, batch: 2, strideB: 0, transB: true },
      "B in chunks, shared",
    );
    // Three row tiles of three K tiles: A in two chunks too (B repacked for each).
    await check("ubo8x16", { M: 300, N: 300, K: 300, bias: dummy, accumulate: true }, "A and B in chunks");
  } finally {
    gpu.setBindingLimit(undefined);
  }
  dummy.destroy();
});

Deno.test("matmul: a row's result does not depend on the rows batched with it (every variant, and the tuned choice)", async () => {
  const gpu = await getGpu();
  const seed = freshSeed(), r = rng(seed);
  const [N, K] = [96, 200];
  const a = randn(r, 300 * K), b = randn(r, K * N);
  const ta = createTensor(gpu, [a.length], { data: a }), tb = createTensor(gpu, [b.length], { data: b });
  const out = createTensor(gpu, [300 * N]);
  try {
    for (const variant of [...MATMUL_VARIANTS.map((v) => v.name), undefined]) {
      const rows: Float32Array[] = [];
      // 5 rows (a decode step, one prompt) and 300 (a batch): the first 5 rows' results bit for bit.
      for (const M of [5, 300]) {
        poison(out);
        await matmul(gpu, ta, tb, out, { M, N, K, variant });
        rows.push((await readTensor(out)).slice(0, 5 * N));
      }
      assert.ok(
        rows[0].every((x, i) => Object.is(x, rows[1][i])),
        `${variant ?? "tuned"}: rows differ (seed ${seed})`,
      );
    }
  } finally {
    for (const t of [ta, tb, out]) t.destroy();
  }
});

Deno.test("matmul variants: an unknown name is a ShapeError naming the field", () => {
  assert.throws(
    () => matmulVariant("nope"),
    (e: unknown) => e instanceof ShapeError && e.field === "variant",
  );
});

Deno.test("autotune: runs every variant once per transpose combination, each checked against the twin", async () => {
  const gpu = await getGpu();
  const r = await autotuneMatmul(gpu, { cacheFile: null, shape: [20, 44, 28], rounds: 1 });
  assert.deepEqual(r.entries.map((e) => e.key), ["nn", "nt", "tn", "tt"]);
  for (const e of r.entries) {
    assert.deepEqual(e.timings.map((t) => t.variant), MATMUL_VARIANTS.map((v) => v.name));
    for (const t of e.timings) {
      assert.ok(t.ok && t.error < 1e-5, `${e.key} ${t.variant}: error ${t.error}`);
      assert.ok(Number.isFinite(t.ms) && t.ms > 0, `${e.key} ${t.variant}: ${t.ms} ms`);
    }
    const fastest = Math.min(...e.timings.map((t) => t.ms));
    assert.equal(e.timings.find((t) => t.variant === e.chosen)!.ms, fastest);
  }
  // Products without a variant now use the chosen ones and still match the twin.
  await check(r.entries[0].chosen, { M: 20, N: 36, K: 12 }, "chosen nn");
});

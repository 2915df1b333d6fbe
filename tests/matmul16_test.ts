import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { embedding } from "../src/gpu/embedding.ts";
import { decode16 } from "../src/gpu/half.ts";
import { matmul, MATMUL_VARIANTS, type MatmulOptions } from "../src/gpu/matmul.ts";
import {
  copyTensor,
  createTensor,
  poison,
  readRange,
  readTensor,
  readTensorBits16,
  writeTensor,
} from "../src/gpu/tensor.ts";
import { GpuError, ShapeError } from "../src/errors.ts";
import { encodeFloats, f16ToF32Bits } from "../src/io/safetensors.ts";
import { decode16Ref } from "../src/reference/half.ts";
import { matmulRef } from "../src/reference/matmul.ts";
import { embeddingRef } from "../src/reference/embedding.ts";
import { launch } from "../src/gpu/pipeline.ts";
import { assertClose, freshSeed, randn, rng } from "./_util.ts";

const TOL = 1e-5;
type D16 = "bf16" | "f16";

/** Random weights rounded to `dtype`: the 16-bit patterns. */
function bits16(r: () => number, n: number, dtype: D16, scale = 1): Uint16Array {
  const b = encodeFloats(randn(r, n, scale), dtype === "bf16" ? "BF16" : "F16");
  return new Uint16Array(b.buffer, b.byteOffset, n);
}

/**
 * One product with B stored as packed 16-bit `dtype` on fresh random inputs (output poisoned) against
 * the float64 product of the decoded B; returns the relative error.
 */
async function check(
  dtype: D16,
  opts: MatmulOptions & { withBias?: boolean },
  label: string,
  seed = freshSeed(),
): Promise<number> {
  const gpu = await getGpu();
  const r = rng(seed);
  const { M, N, K } = opts;
  const batch = opts.batch ?? 1;
  const sA = opts.strideA ?? M * K, sB = opts.strideB ?? K * N, sO = opts.strideOut ?? M * N;
  const lenA = Math.max(1, (batch - 1) * sA + M * K), lenB = Math.max(1, (batch - 1) * sB + K * N);
  const lenO = Math.max(1, (batch - 1) * sO + M * N);
  const a = randn(r, lenA), bb = bits16(r, lenB, dtype);
  const ta = createTensor(gpu, [lenA], { data: a }), tb = createTensor(gpu, [lenB], { dtype, data: bb });
  const out = createTensor(gpu, [lenO]);
  let init: Float32Array | undefined;
  if (opts.accumulate) writeTensor(out, init = randn(r, lenO));
  else poison(out);
  const biasData = opts.withBias ? randn(r, N) : undefined;
  const bias = biasData ? createTensor(gpu, [N], { data: biasData }) : undefined;
  await matmul(gpu, ta, tb, out, { ...opts, bias });
  const got = await readTensor(out);
  const want = matmulRef(a, decode16Ref(bb, dtype), {
    ...opts,
    bias: biasData,
    out: init ?? new Float32Array(lenO),
  });
  const g: number[] = [], w: number[] = [];
  for (let z = 0; z < batch; z++) {
    for (let i = 0; i < M * N; i++) (g.push(got[z * sO + i]), w.push(want[z * sO + i]));
  }
  const e = assertClose(g, w, TOL, `${dtype} ${opts.variant ?? "default"} ${label}`, seed);
  for (const t of [ta, tb, out, bias]) t?.destroy();
  return e;
}

Deno.test("16-bit tensors: odd lengths round-trip; reads of ranges decode; guards", async () => {
  const gpu = await getGpu();
  const r = rng(freshSeed());
  for (const dtype of ["bf16", "f16"] as const) {
    for (const n of [1, 3, 7, 8, 13, 33]) {
      const b = bits16(r, n, dtype);
      const t = createTensor(gpu, [n], { dtype, data: b });
      assert.equal(t.byteLength, 2 * n);
      assert.equal(t.buffer.size, Math.ceil((Math.ceil(n / 2) * 4) / 16) * 16);
      assert.deepEqual(await readTensorBits16(t), b);
      const want = decode16Ref(b, dtype);
      assert.deepEqual(Array.from(await readTensor(t)), Array.from(want));
      if (n > 2) assert.deepEqual(Array.from(await readRange(t, 1, n - 2)), Array.from(want.slice(1, n - 1)));
      const c = createTensor(gpu, [n], { dtype });
      copyTensor(t, c);
      assert.deepEqual(await readTensorBits16(c), b);
      assert.throws(() => writeTensor(t, new Float32Array(n)), ShapeError);
      if (n > 1) assert.throws(() => copyTensor(t, c, 1), ShapeError);
      t.destroy();
      c.destroy();
    }
  }
  // A kernel that reads f32 refuses a 16-bit tensor instead of reading its words as floats.
  const w = createTensor(gpu, [8], { dtype: "bf16", data: new Uint16Array(8) });
  const o = createTensor(gpu, [8]);
  await assert.rejects(() => launch(gpu, "gelu", "main", [w, o], [1]), GpuError);
  await assert.rejects(
    () => matmul(gpu, w, o, createTensor(gpu, [64]), { M: 8, N: 8, K: 1 }),
    ShapeError,
  );
  w.destroy();
  o.destroy();
});

Deno.test("host f16 decode equals the file decoder and the float64 twin on all 65536 patterns", () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const f = decode16(all, "f16"), ref = decode16Ref(all, "f16");
  const bits = new Uint32Array(f.buffer);
  for (let i = 0; i < 65536; i++) {
    assert.equal(bits[i], f16ToF32Bits(i) >>> 0, `f16 ${i}`);
    if (!Number.isNaN(ref[i])) assert.equal(f[i], ref[i], `f16 ${i}`);
  }
  const b = decode16(all, "bf16"), bref = decode16Ref(all, "bf16");
  for (let i = 0; i < 65536; i++) if (!Number.isNaN(bref[i])) assert.equal(b[i], bref[i], `bf16 ${i}`);
});

Deno.test("kernels decode every finite 16-bit pattern exactly (subnormals included)", async () => {
  // B = all patterns as a [1, 65536] row, A = [[1]]: out = the decoded values, computed on the GPU.
  const gpu = await getGpu();
  for (const dtype of ["bf16", "f16"] as const) {
    const all = new Uint16Array(65536).map((_, i) => i);
    const ref = decode16Ref(all, dtype);
    for (let i = 0; i < 65536; i++) if (!Number.isFinite(ref[i])) all[i] = 0x3c00;
    const want = decode16Ref(all, dtype);
    const a = createTensor(gpu, [1], { data: new Float32Array([1]) });
    const b = createTensor(gpu, [65536], { dtype, data: all });
    const out = createTensor(gpu, [65536]);
    poison(out);
    await matmul(gpu, a, b, out, { M: 1, N: 65536, K: 1, variant: "blocked4x4" });
    const got = await readTensor(out);
    let bad = 0;
    for (let i = 0; i < 65536; i++) if (got[i] !== want[i]) bad++;
    assert.equal(bad, 0, `${dtype}: ${bad} patterns decoded differently`);
    for (const t of [a, b, out]) t.destroy();
  }
});

// Forward (y = x Wᵀ + b, W [out, in] stored, transB) and input gradient (dX = dY W, W not transposed),
// on odd shapes (odd element counts of W; the wide variants fall back to the 4x4 kernel there) and an
// aligned one (vec4 and wide paths). Pipelines compile per variant and flag set (seconds each on
// llvmpipe): the three kernels and the uniform-window one get both products on both shapes and dtypes, the other wide variants the
// aligned products.
const SHAPES: Array<[number, number, number]> = [[5, 9, 3], [20, 36, 12]];
const KERNELS = ["blocked4x4", "wide8x8", "lanes32r8c2"];

Deno.test("matmul with a 16-bit B: every variant, forward and input-gradient products vs float64", async () => {
  const worst: Record<string, number> = {};
  const note = (dtype: string, e: number) => (worst[dtype] = Math.max(worst[dtype] ?? 0, e));
  for (const dtype of ["bf16", "f16"] as const) {
    for (const v of MATMUL_VARIANTS) {
      // The uniform-window variant decodes in its pack, aligned (vec4 reads) or not: both shapes, both dtypes.
      const all = KERNELS.includes(v.name) || v.kernel === "matmul_ubo";
      const shapes = all ? SHAPES : dtype === "bf16" ? [SHAPES[1]] : [];
      for (const [M, N, K] of shapes) {
        note(
          dtype,
          await check(
            dtype,
            { M, N, K, transB: true, variant: v.name, withBias: true },
            `fwd ${M}x${N}x${K}`,
          ),
        );
        note(dtype, await check(dtype, { M, N, K, variant: v.name }, `dX ${M}x${N}x${K}`));
      }
    }
  }
  console.log("worst relative error vs float64:", worst);
});

Deno.test("matmul with a 16-bit B: batch with shared B, accumulate, alpha, and the split path", async () => {
  const gpu = await getGpu();
  for (const dtype of ["bf16", "f16"] as const) {
    await check(dtype, { M: 5, N: 7, K: 9, batch: 3, strideB: 0, alpha: 0.5 }, "batched shared B");
    await check(dtype, { M: 4, N: 8, K: 12, batch: 2, transB: true, accumulate: true }, "accumulate");
    gpu.setBindingLimit(1024);
    try {
      await check(dtype, { M: 19, N: 53, K: 37, transB: true, withBias: true }, "split fwd");
      await check(dtype, { M: 19, N: 37, K: 53 }, "split dX");
      await check(dtype, { M: 8, N: 64, K: 32, transB: true }, "split aligned");
    } finally {
      gpu.setBindingLimit(undefined);
    }
  }
});

Deno.test("embedding gather from a 16-bit table (odd width; split into row windows) vs float64", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  for (const dtype of ["bf16", "f16"] as const) {
    for (const [V, C, limit] of [[37, 13, undefined], [97, 13, 1024], [20, 8, undefined]] as const) {
      const T = 11;
      const wb = bits16(r, V * C, dtype);
      const wte = createTensor(gpu, [V, C], { dtype, data: wb });
      const wpeD = randn(r, 16 * C);
      const wpe = createTensor(gpu, [16, C], { data: wpeD });
      const ids = Array.from({ length: T }, (_, i) => (i * 7 + 3) % V);
      ids[0] = V - 1;
      const out = createTensor(gpu, [T, C]);
      const table = Float32Array.from(decode16Ref(wb, dtype));
      if (limit) gpu.setBindingLimit(limit);
      try {
        for (const withPos of [false, true]) {
          poison(out);
          await embedding(gpu, ids, wte, withPos ? wpe : null, out, { T, C, positionOffset: 2 });
          const got = await readTensor(out);
          const want = embeddingRef(ids, table, withPos ? wpeD : null, C, { positionOffset: 2 });
          assertClose(got, want, 1e-6, `${dtype} embedding V ${V} C ${C} pos ${withPos}`, seed);
        }
      } finally {
        gpu.setBindingLimit(undefined);
      }
      for (const t of [wte, wpe, out]) t.destroy();
    }
  }
});

// The shader-f16 variant of the weight-reading kernels (kernels/lib/unpack16_f16.wgsl: F16 weights bound
// as array<f16> / array<vec4<f16>>, computed in f32) against the float64 twin, and against the packed path
// (unpack2x16float) on the same device.
//
// The variant tests run only where the device has the `shader-f16` feature. Mesa's llvmpipe under OpenGL
// (the default adapter here) lacks it; lavapipe (Mesa's Vulkan driver, Debian mesa-vulkan-drivers) offers
// it:
//   DENO_WEBGPU_BACKEND=vulkan npx -y deno@2 test -P tests/matmul_f16native_test.ts
// Elsewhere they are reported as ignored, with a line saying why. The guard and source tests run everywhere.
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { embedding } from "../src/gpu/embedding.ts";
import { matmul, MATMUL_VARIANTS, type MatmulOptions } from "../src/gpu/matmul.ts";
import { createTensor, poison, readTensor, w16For, writeTensor } from "../src/gpu/tensor.ts";
import { GpuError } from "../src/errors.ts";
import { encodeFloats } from "../src/io/safetensors.ts";
import { decode16Ref } from "../src/reference/half.ts";
import { matmulRef } from "../src/reference/matmul.ts";
import { embeddingRef } from "../src/reference/embedding.ts";
import { expandKernelF16, launch, W16_NATIVE_F16 } from "../src/gpu/pipeline.ts";
import { assertClose, freshSeed, randn, rng } from "./_util.ts";

const gpu0 = await getGpu();
const HAS_F16 = gpu0.device.features.has("shader-f16");
if (!HAS_F16) {
  console.log(
    `matmul_f16native_test: the shader-f16 tests are SKIPPED: the device (${gpu0.adapter.info.description}) ` +
      "has no shader-f16 feature; run with DENO_WEBGPU_BACKEND=vulkan on lavapipe to run them",
  );
}
const TOL = 1e-5;

/** Random weights rounded to F16: the 16-bit patterns. */
function bitsF16(r: () => number, n: number): Uint16Array {
  const b = encodeFloats(randn(r, n), "F16");
  return new Uint16Array(b.buffer, b.byteOffset, n);
}

/** Runs `f` with the shader-f16 variant on (`true`) or the packed path (`false`), then restores. */
async function withF16<T>(on: boolean, f: () => Promise<T>): Promise<T> {
  const gpu = await getGpu();
  gpu.setShaderF16(on);
  try {
    return await f();
  } finally {
    gpu.setShaderF16(undefined);
  }
}

/**
 * One product with an F16 B (output poisoned) through the shader-f16 variant and through the packed path:
 * each against the float64 product of the decoded B; returns the relative error of the variant and the
 * largest |variant - packed|.
 */
async function check(opts: MatmulOptions & { withBias?: boolean }, label: string): Promise<[number, number]> {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const { M, N, K } = opts;
  const batch = opts.batch ?? 1;
  const sA = opts.strideA ?? M * K, sB = opts.strideB ?? K * N, sO = opts.strideOut ?? M * N;
  const lenA = Math.max(1, (batch - 1) * sA + M * K), lenB = Math.max(1, (batch - 1) * sB + K * N);
  const lenO = Math.max(1, (batch - 1) * sO + M * N);
  const a = randn(r, lenA), bb = bitsF16(r, lenB);
  const ta = createTensor(gpu, [lenA], { data: a }),
    tb = createTensor(gpu, [lenB], { dtype: "f16", data: bb });
  const out = createTensor(gpu, [lenO]);
  const init = opts.accumulate ? randn(r, lenO) : undefined;
  const biasData = opts.withBias ? randn(r, N) : undefined;
  const bias = biasData ? createTensor(gpu, [N], { data: biasData }) : undefined;
  const run = async () => {
    if (init) writeTensor(out, init);
    else poison(out);
    await matmul(gpu, ta, tb, out, { ...opts, bias });
    return await readTensor(out);
  };
  const native = await withF16(true, run);
  const packed = await withF16(false, run);
  const want = matmulRef(a, decode16Ref(bb, "f16"), {
    ...opts,
    bias: biasData,
    out: init ?? new Float32Array(lenO),
  });
  const g: number[] = [], w: number[] = [];
  let diff = 0;
  for (let z = 0; z < batch; z++) {
    for (let i = 0; i < M * N; i++) {
      const j = z * sO + i;
      g.push(native[j]), w.push(want[j]);
      diff = Math.max(diff, Math.abs(native[j] - packed[j]));
    }
  }
  const e = assertClose(g, w, TOL, `shader-f16 ${opts.variant ?? "default"} ${label}`, seed);
  for (const t of [ta, tb, out, bias]) t?.destroy();
  return [e, diff];
}

Deno.test("shader-f16 variant source: the swapped include, `enable f16;` first; only weight kernels", () => {
  for (const k of ["matmul", "matmul_wide", "matmul_lanes", "embedding"]) {
    const { code, lines } = expandKernelF16(k);
    assert.ok(code.startsWith("enable f16;\n"), k);
    assert.ok(lines.some((l) => l.file === "kernels/lib/unpack16_f16.wgsl"), k);
    assert.ok(!lines.some((l) => l.file === "kernels/lib/unpack16.wgsl"), k);
    assert.match(code, /alias W16Vec = vec4<f16>;/);
    assert.equal(code.split("\n").length, lines.length, k);
  }
  assert.throws(() => expandKernelF16("softmax"), GpuError);
});

Deno.test("shader-f16 guards: refused on a device without it; a BF16 tensor is never read as f16", async () => {
  const gpu = await getGpu();
  const a = createTensor(gpu, [4], { data: new Float32Array([1, 2, 3, 4]) });
  const bf = createTensor(gpu, [4], { dtype: "bf16", data: new Uint16Array([0x3f80, 0, 0, 0]) });
  const out = createTensor(gpu, [4]);
  try {
    // BF16 stays packed whatever the switch says.
    assert.equal(w16For(gpu, "bf16"), 1);
    assert.equal(w16For(gpu, "f32"), 0);
    assert.equal(w16For(gpu, "f16"), HAS_F16 ? W16_NATIVE_F16 : 2);
    await assert.rejects(
      launch(gpu, "embedding", "embedding", [{ uniform: new Uint32Array(4) }, a, bf, a, out], [1], {
        W16: W16_NATIVE_F16,
      }),
      (e: Error) => e instanceof GpuError && /reads f16, but tensor .* is stored as bf16/.test(e.message),
    );
    if (!HAS_F16) {
      assert.throws(() => gpu.setShaderF16(true), GpuError);
      assert.equal(gpu.shaderF16, false);
      const f = createTensor(gpu, [4], { dtype: "f16", data: new Uint16Array([0x3c00, 0, 0, 0]) });
      await assert.rejects(
        launch(gpu, "embedding", "embedding", [{ uniform: new Uint32Array(4) }, a, f, a, out], [1], {
          W16: W16_NATIVE_F16,
        }),
        (e: Error) => e instanceof GpuError && /needs a device with the shader-f16 feature/.test(e.message),
      );
      f.destroy();
    } else {
      assert.equal(gpu.shaderF16, true);
      gpu.setShaderF16(false);
      assert.equal(gpu.shaderF16, false);
      assert.equal(w16For(gpu, "f16"), 2);
      gpu.setShaderF16(undefined);
      assert.equal(gpu.shaderF16, true);
    }
  } finally {
    for (const t of [a, bf, out]) t.destroy();
  }
});

Deno.test({
  name: "shader-f16: every finite F16 pattern is read exactly (subnormals included)",
  ignore: !HAS_F16,
  fn: async () => {
    const gpu = await getGpu();
    const all = new Uint16Array(65536).map((_, i) => i);
    const ref = decode16Ref(all, "f16");
    for (let i = 0; i < 65536; i++) if (!Number.isFinite(ref[i])) all[i] = 0x3c00;
    const want = decode16Ref(all, "f16");
    const a = createTensor(gpu, [1], { data: new Float32Array([1]) });
    const b = createTensor(gpu, [65536], { dtype: "f16", data: all });
    const out = createTensor(gpu, [65536]);
    // Scalar (array<f16>: lanes) and vec4 (array<vec4<f16>>: blocked) reads.
    for (const variant of ["blocked4x4", "lanes32r8c2"]) {
      poison(out);
      await withF16(true, () => matmul(gpu, a, b, out, { M: 1, N: 65536, K: 1, variant }));
      const got = await readTensor(out);
      let bad = 0;
      for (let i = 0; i < 65536; i++) if (got[i] !== want[i]) bad++;
      assert.equal(bad, 0, `${variant}: ${bad} patterns read differently`);
    }
    for (const t of [a, b, out]) t.destroy();
  },
});

// Forward (y = x Wᵀ + b, transB) and input gradient (dX = dY W) on an odd shape and an aligned one (vec4
// and wide paths), every variant.
const SHAPES: Array<[number, number, number]> = [[5, 9, 3], [20, 36, 12]];

Deno.test({
  name: "shader-f16 matmul: every variant, forward and input gradient vs float64 and vs the packed path",
  ignore: !HAS_F16,
  fn: async () => {
    let worst = 0, diff = 0;
    for (const v of MATMUL_VARIANTS) {
      for (const [M, N, K] of SHAPES) {
        for (
          const [o, l] of [
            [{ M, N, K, transB: true, variant: v.name, withBias: true }, `fwd ${M}x${N}x${K}`],
            [{ M, N, K, variant: v.name }, `dX ${M}x${N}x${K}`],
          ] as const
        ) {
          const [e, d] = await check(o, l);
          worst = Math.max(worst, e), diff = Math.max(diff, d);
        }
      }
    }
    console.log(
      `shader-f16: worst relative error vs float64 ${worst.toExponential(2)}; max |f16 - packed| ${diff}`,
    );
    assert.equal(diff, 0, "the shader-f16 and packed paths read the same values and compute the same way");
  },
});

Deno.test({
  name: "shader-f16 matmul: batch with shared B, accumulate, alpha, and the split path",
  ignore: !HAS_F16,
  fn: async () => {
    const gpu = await getGpu();
    await check({ M: 5, N: 7, K: 9, batch: 3, strideB: 0, alpha: 0.5 }, "batched shared B");
    await check({ M: 4, N: 8, K: 12, batch: 2, transB: true, accumulate: true }, "accumulate");
    gpu.setBindingLimit(1024);
    try {
      await check({ M: 19, N: 53, K: 37, transB: true, withBias: true }, "split fwd");
      await check({ M: 19, N: 37, K: 53 }, "split dX");
      await check({ M: 8, N: 64, K: 32, transB: true }, "split aligned");
    } finally {
      gpu.setBindingLimit(undefined);
    }
  },
});

Deno.test({
  name: "shader-f16 embedding gather (odd width; split into row windows) vs float64",
  ignore: !HAS_F16,
  fn: async () => {
    const gpu = await getGpu();
    const seed = freshSeed();
    const r = rng(seed);
    for (const [V, C, limit] of [[37, 13, undefined], [97, 13, 1024]] as const) {
      const T = 11;
      const wb = bitsF16(r, V * C);
      const wte = createTensor(gpu, [V, C], { dtype: "f16", data: wb });
      const wpeD = randn(r, 16 * C);
      const wpe = createTensor(gpu, [16, C], { data: wpeD });
      const ids = Array.from({ length: T }, (_, i) => (i * 7 + 3) % V);
      ids[0] = V - 1;
      const out = createTensor(gpu, [T, C]);
      const table = Float32Array.from(decode16Ref(wb, "f16"));
      if (limit) gpu.setBindingLimit(limit);
      try {
        for (const withPos of [false, true]) {
          poison(out);
          await withF16(
            true,
            () => embedding(gpu, ids, wte, withPos ? wpe : null, out, { T, C, positionOffset: 2 }),
          );
          const got = await readTensor(out);
          const want = embeddingRef(ids, table, withPos ? wpeD : null, C, { positionOffset: 2 });
          assertClose(got, want, 1e-6, `shader-f16 embedding V ${V} C ${C} pos ${withPos}`, seed);
        }
      } finally {
        gpu.setBindingLimit(undefined);
      }
      for (const t of [wte, wpe, out]) t.destroy();
    }
  },
});

/**
 * The box-constraint kernel (kernels/box_clamp.wgsl, FT-L's norm constraint) against its float64 twin
 * (src/reference/box_clamp.ts, float64 bounds): bitwise equal on odd sizes, with elements exactly at, one
 * float32 step inside and outside each bound, NaN and ±Inf; bad shapes are typed errors.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { boxBounds, boxClamp } from "../src/gpu/box_clamp.ts";
import { createTensor, readTensor } from "../src/gpu/tensor.ts";
import { refBoxClamp } from "../src/reference/box_clamp.ts";
import { ShapeError } from "../src/errors.ts";
import { freshSeed, rng } from "./_util.ts";

/** The float32 next to `v` towards +Inf (dir 1) or −Inf (dir −1). */
function step32(v: number, dir: 1 | -1): number {
  const f = new Float32Array([v]);
  const u = new Uint32Array(f.buffer);
  if (f[0] === 0) return dir * 1e-45;
  u[0] += (f[0] > 0) === (dir > 0) ? 1 : -1;
  return f[0];
}

Deno.test("box_clamp kernel equals the float64 clamp bitwise (bounds, one step either side, NaN, Inf)", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  let clamped = 0;
  for (const n of [1, 7, 257, 4099]) {
    for (const eps of [5e-4, 1e-3, 0.37, 1e-9]) {
      const center = Float32Array.from({ length: n }, () => (r() - 0.5) * 4);
      const x = Float32Array.from(center, (c, i) => {
        const lo = Math.fround(c - eps), hi = Math.fround(c + eps);
        switch (i % 9) {
          case 0:
            return lo;
          case 1:
            return hi;
          case 2:
            return step32(lo, -1);
          case 3:
            return step32(lo, 1);
          case 4:
            return step32(hi, -1);
          case 5:
            return step32(hi, 1);
          case 6:
            return i % 2 ? NaN : (i % 4 ? Infinity : -Infinity);
          default:
            return c + (r() - 0.5) * 4 * eps;
        }
      });
      const want = refBoxClamp(x, center, eps);
      const xt = createTensor(gpu, [n], { data: x });
      const [lo, hi] = boxBounds(gpu, center, eps, "w");
      try {
        await boxClamp(gpu, xt, lo, hi);
        const got = await readTensor(xt);
        for (let i = 0; i < n; i++) {
          if (want[i] !== x[i]) clamped++;
          assert.ok(
            Object.is(got[i], want[i]),
            `n ${n} eps ${eps} i ${i}: x ${x[i]} center ${center[i]} -> ${got[i]}, float64 clamp ${
              want[i]
            } (seed ${seed})`,
          );
        }
      } finally {
        xt.destroy();
        lo.destroy();
        hi.destroy();
      }
    }
  }
  assert.ok(clamped > 100, `elements the clamp moved: ${clamped}`);
});

Deno.test("box_clamp: f32 tensors of one size, bounds not aliasing x", async () => {
  const gpu = await getGpu();
  const a = createTensor(gpu, [5], { data: new Float32Array(5).fill(1) });
  const b = createTensor(gpu, [4]);
  try {
    await assert.rejects(() => boxClamp(gpu, a, b, b), ShapeError);
    await assert.rejects(() => boxClamp(gpu, a, a, a), ShapeError);
  } finally {
    a.destroy();
    b.destroy();
  }
});

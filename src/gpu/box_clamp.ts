/**
 * In-place box constraint on the GPU (`kernels/box_clamp.wgsl`): each element is clamped to its own
 * [lo, hi]. FT-L's norm constraint runs it after every step instead of a readback, a host clamp and a
 * write (float64 twin: src/reference/box_clamp.ts). Tensors larger than one storage binding are
 * processed in windows.
 */
import { ShapeError } from "../errors.ts";
import { forElementBlocks } from "./blocks.ts";
import type { Gpu } from "./device.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import { createTensor, type GpuTensor, type TensorWindow } from "./tensor.ts";

/** x = min(max(x, lo), hi) elementwise as kernels/box_clamp.wgsl (NaN kept); all three f32 of equal size. */
export async function boxClamp(gpu: Gpu, x: GpuTensor, lo: GpuTensor, hi: GpuTensor): Promise<void> {
  for (const [t, role] of [[x, "x"], [lo, "lo"], [hi, "hi"]] as const) {
    if (t.dtype !== "f32") {
      throw new ShapeError(`boxClamp ${role} must be f32, got ${t.dtype}`, { field: t.name });
    }
    if (t.numel !== x.numel) {
      throw new ShapeError(`boxClamp: ${role} has ${t.numel} elements, x has ${x.numel}`, { field: t.name });
    }
  }
  if (lo.buffer === x.buffer || hi.buffer === x.buffer) {
    throw new ShapeError("boxClamp: the bounds must not alias x", { field: x.name });
  }
  const run = (
    v: GpuTensor | TensorWindow,
    l: GpuTensor | TensorWindow,
    h: GpuTensor | TensorWindow,
    n: number,
  ) =>
    launch(gpu, "box_clamp", "box_clamp", [{ uniform: uniforms(n) }, v, l, h], grid(gpu, Math.ceil(n / 256)));
  const n = x.numel;
  if (n === 0) return;
  if (n * 4 <= gpu.bindingLimit) return await run(x, lo, hi, n);
  await forElementBlocks(gpu, n, [x, lo, hi], ([v, l, h], count) => run(v, l, h, count));
}

/**
 * The bounds [center − eps, center + eps] of {@link boxClamp} as GPU tensors: each computed in float64
 * and rounded to float32 once (what the host clamp stores when a bound is chosen).
 */
export function boxBounds(gpu: Gpu, center: Float32Array, eps: number, name: string): [GpuTensor, GpuTensor] {
  return [
    createTensor(gpu, [center.length], {
      name: `${name}.lo`,
      data: Float32Array.from(center, (c) => c - eps),
    }),
    createTensor(gpu, [center.length], {
      name: `${name}.hi`,
      data: Float32Array.from(center, (c) => c + eps),
    }),
  ];
}

/**
 * Kahan-compensated running sums of whole tensors on the GPU (`kernels/kahan_accumulate.wgsl`): after
 * any number of {@link kahanAccumulate} calls, `sum − comp` is the total to within a few f32 roundings,
 * where a plain f32 running sum drifts by about n·eps. Tensors larger than one storage binding are
 * processed in windows.
 */
import { ShapeError } from "../errors.ts";
import { forElements } from "./blocks.ts";
import type { Gpu } from "./device.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import type { GpuTensor } from "./tensor.ts";

/** (sum, comp) += x elementwise with Kahan compensation; all three f32 of equal size. */
export async function kahanAccumulate(
  gpu: Gpu,
  sum: GpuTensor,
  comp: GpuTensor,
  x: GpuTensor,
): Promise<void> {
  for (const [t, role] of [[sum, "sum"], [comp, "comp"], [x, "x"]] as const) {
    if (t.dtype !== "f32") {
      throw new ShapeError(`kahanAccumulate ${role} must be f32, got ${t.dtype}`, { field: t.name });
    }
    if (t.numel !== sum.numel) {
      throw new ShapeError(`kahanAccumulate: ${role} has ${t.numel} elements, sum has ${sum.numel}`, {
        field: t.name,
      });
    }
  }
  await forElements(gpu, sum.numel, [sum, comp, x], ([s, c, v], n) =>
    launch(
      gpu,
      "kahan_accumulate",
      "kahan_accumulate",
      [{ uniform: uniforms(n, { f: 1 }) }, s, c, v],
      grid(gpu, Math.ceil(n / 256)),
    ));
}

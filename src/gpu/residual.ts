/** Launchers for the residual-add kernels (`kernels/residual.wgsl`, `kernels/residual_inplace.wgsl`). */
import { ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { forElements } from "./blocks.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import type { GpuTensor } from "./tensor.ts";

function sameSize(a: GpuTensor, b: GpuTensor): void {
  if (a.numel !== b.numel) {
    throw new ShapeError(`residual add of [${a.shape}] and [${b.shape}]: sizes differ`, { field: b.name });
  }
}

/** out = a + b, elementwise; all three of equal size. */
export async function residualAdd(gpu: Gpu, a: GpuTensor, b: GpuTensor, out: GpuTensor): Promise<void> {
  sameSize(a, b);
  sameSize(a, out);
  await forElements(
    gpu,
    a.numel,
    [a, b, out],
    (w, n) => launch(gpu, "residual", "add", [{ uniform: uniforms(n) }, ...w], grid(gpu, Math.ceil(n / 256))),
  );
}

/** acc += b, elementwise, in place. */
export async function residualAddInPlace(gpu: Gpu, acc: GpuTensor, b: GpuTensor): Promise<void> {
  sameSize(acc, b);
  await forElements(
    gpu,
    acc.numel,
    [acc, b],
    (w, n) =>
      launch(
        gpu,
        "residual_inplace",
        "add_inplace",
        [{ uniform: uniforms(n) }, ...w],
        grid(gpu, Math.ceil(n / 256)),
      ),
  );
}

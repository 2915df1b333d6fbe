/** Launcher for the GELU activation kernel (`kernels/gelu.wgsl`). */
import { ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import type { GpuTensor } from "./tensor.ts";

/**
 * GELU with GPT-2's tanh approximation (HF `gelu_new`), elementwise in f32:
 * `out = 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))`. Finite for every finite input
 * (no NaN for large |x|).
 *
 * - `x`, `out`: f32 tensors of equal element count (any shape, e.g. [B*T, 4C]); `out` must not alias `x`.
 *
 * Records the dispatch; nothing runs until the next {@link Gpu.flush} (or a read). Throws
 * {@link ShapeError} naming the offending tensor on a size or dtype mismatch.
 */
export async function gelu(gpu: Gpu, x: GpuTensor, out: GpuTensor): Promise<void> {
  for (const t of [x, out]) {
    if (t.dtype !== "f32") {
      throw new ShapeError(`gelu tensors must be f32, got ${t.dtype}`, { field: t.name });
    }
  }
  if (out.numel !== x.numel) {
    throw new ShapeError(`gelu output has shape [${out.shape}], input [${x.shape}]: sizes differ`, {
      field: out.name,
    });
  }
  if (out.buffer === x.buffer) {
    throw new ShapeError("gelu output must not alias its input", { field: out.name });
  }
  await launch(
    gpu,
    "gelu",
    "gelu",
    [{ uniform: uniforms(x.numel) }, x, out],
    grid(gpu, Math.ceil(x.numel / 256)),
  );
}

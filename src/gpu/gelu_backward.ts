/** Launcher for the GELU backward kernel (`kernels/gelu_backward.wgsl`). */
import { ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { type GeluApproximate, geluConstants } from "./gelu.ts";
import { forElements } from "./blocks.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import type { GpuTensor } from "./tensor.ts";

/** Options of {@link geluBackward}. */
export interface GeluBackwardOptions {
  /** When true, the gradient is added to `dx` (`+=`); when false (default) it overwrites it (`=`). */
  accumulate?: boolean;
  /** The GELU form of the forward: `"tanh"` (default, GPT-2's) or `"none"` (exact erf form). */
  approximate?: GeluApproximate;
}

/**
 * Backward pass of {@link gelu}, elementwise in f32: `dx (+)= dout * gelu'(x)`. For the default tanh
 * form (GPT-2's `gelu_new`) `gelu'(x) = s + 2 x s (1 - s) sqrt(2/pi) (1 + 3 * 0.044715 x^2)`,
 * `s = sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3))`; for `opts.approximate = "none"` (exact GELU
 * x Phi(x)) `gelu'(x) = Phi(x) + x exp(-x^2 / 2) / sqrt(2 pi)`. Finite for every finite input (1 for
 * large positive x, 0 for large negative x).
 *
 * - `x`: the forward's PRE-activation input; `dout`: gradient of the gelu output; `dx`: gradient of x.
 *   All f32 of equal element count (any shape); `dx` must alias neither `x` nor `dout`.
 * - `opts.accumulate`: `+=` instead of `=`; `opts.approximate`: the forward's GELU form.
 *
 * Records the dispatch; nothing runs until the next {@link Gpu.flush} (or a read). Throws
 * {@link ShapeError} naming the offending tensor on a size, dtype or aliasing mismatch.
 */
export async function geluBackward(
  gpu: Gpu,
  x: GpuTensor,
  dout: GpuTensor,
  dx: GpuTensor,
  opts: GeluBackwardOptions = {},
): Promise<void> {
  const constants = geluConstants(opts.approximate, "geluBackward");
  for (const t of [x, dout, dx]) {
    if (t.dtype !== "f32") {
      throw new ShapeError(`geluBackward tensors must be f32, got ${t.dtype}`, { field: t.name });
    }
  }
  for (const t of [dout, dx]) {
    if (t.numel !== x.numel) {
      throw new ShapeError(`geluBackward tensor has shape [${t.shape}], input x [${x.shape}]: sizes differ`, {
        field: t.name,
      });
    }
  }
  for (const t of [x, dout]) {
    if (dx.buffer === t.buffer) {
      throw new ShapeError(`geluBackward dx must not alias '${t.name}'`, { field: dx.name });
    }
  }
  // Past the binding limit: aligned element windows of all three.
  // Whole vec4s (n % 4 == 0) take the vec4 entry: a quarter of the load / store instructions, the same bits.
  await forElements(gpu, x.numel, [x, dout, dx], (b, n) =>
    launch(
      gpu,
      "gelu_backward",
      n % 4 === 0 ? "gelu_backward4" : "gelu_backward",
      [{ uniform: uniforms(n, opts.accumulate ? 1 : 0) }, ...b],
      grid(gpu, Math.ceil(n / (n % 4 === 0 ? 1024 : 256))),
      constants,
    ));
}

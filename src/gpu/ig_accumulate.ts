/** Launcher for the integrated-gradients accumulation kernel (`kernels/ig_accumulate.wgsl`). */
import { ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import type { GpuTensor } from "./tensor.ts";
import type { IgLayout } from "../reference/ig_accumulate.ts";

const WG = 256;

/** Options of {@link igAccumulate}: the gradient layout plus the Riemann-sum scale. */
export interface IgAccumulateOptions extends IgLayout {
  /** Factor of the whole sum, 1/m for IG. */
  scale: number;
  /** Add to `out` instead of overwriting it (default false). */
  accumulate?: boolean;
}

/**
 * `out[i] (+)= scale * act[i] * sum_k weights[k] * grads[offset + k*rowStride + i]`, i < n, the sum over
 * steps k in index order (deterministic). All tensors f32; `out` must not alias an input. Throws
 * {@link ShapeError} naming a tensor that is too small for the layout. Records one dispatch.
 */
export async function igAccumulate(
  gpu: Gpu,
  grads: GpuTensor,
  weights: GpuTensor,
  act: GpuTensor,
  out: GpuTensor,
  opts: IgAccumulateOptions,
): Promise<void> {
  const { n, steps, rowStride, offset, scale } = opts;
  for (const [k, v] of Object.entries({ n, steps, rowStride, offset })) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
      throw new ShapeError(`igAccumulate ${k} = ${v} is not a valid size`, { field: k });
    }
  }
  if (!Number.isFinite(scale)) {
    throw new ShapeError(`igAccumulate scale = ${scale} is not finite`, { field: "scale" });
  }
  for (const t of [grads, weights, act, out]) {
    if (t.dtype !== "f32") {
      throw new ShapeError(`igAccumulate tensors must be f32, got ${t.dtype}`, { field: t.name });
    }
  }
  const need = steps === 0 || n === 0 ? 0 : offset + (steps - 1) * rowStride + n;
  if (grads.numel < need) {
    throw new ShapeError(
      `igAccumulate grads '${grads.name}' has ${grads.numel} elements, the layout needs ${need}`,
      { field: grads.name },
    );
  }
  if (weights.numel < steps) {
    throw new ShapeError(`igAccumulate weights has ${weights.numel} < ${steps} elements`, {
      field: weights.name,
    });
  }
  if (act.numel < n) {
    throw new ShapeError(`igAccumulate act has ${act.numel} < ${n} elements`, { field: act.name });
  }
  if (out.numel < n) {
    throw new ShapeError(`igAccumulate out has ${out.numel} < ${n} elements`, { field: out.name });
  }
  if ([grads, weights, act].some((t) => t.buffer === out.buffer)) {
    throw new ShapeError("igAccumulate out must not alias an input", { field: out.name });
  }
  if (n === 0) return;
  await launch(
    gpu,
    "ig_accumulate",
    "ig_accumulate",
    [
      { uniform: uniforms(n, steps, rowStride, offset, { f: scale }, opts.accumulate ? 1 : 0) },
      grads,
      weights,
      act,
      out,
    ],
    grid(gpu, Math.ceil(n / WG)),
  );
}

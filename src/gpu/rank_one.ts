/** Launcher for `kernels/rank_one.wgsl`: W += alpha * u vᵀ in place. */
import { ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import type { GpuTensor } from "./tensor.ts";

/**
 * In-place rank-one update of a row-major [M, N] matrix: w[i, j] += alpha * u[i] * v[j].
 * Throws {@link ShapeError} naming the tensor whose size does not fit.
 */
export async function rankOneUpdate(
  gpu: Gpu,
  w: GpuTensor,
  u: GpuTensor,
  v: GpuTensor,
  opts: { M: number; N: number; alpha?: number },
): Promise<void> {
  const { M, N } = opts;
  if (!Number.isInteger(M) || !Number.isInteger(N) || M < 0 || N < 0) {
    throw new ShapeError(`rank-one update: bad sizes M=${M}, N=${N}`, { field: w.name });
  }
  if (w.numel !== M * N) {
    throw new ShapeError(`rank-one update: W is [${w.shape}], expected ${M}x${N}`, { field: w.name });
  }
  if (u.numel !== M) {
    throw new ShapeError(`rank-one update: u has ${u.numel} values, expected ${M}`, { field: u.name });
  }
  if (v.numel !== N) {
    throw new ShapeError(`rank-one update: v has ${v.numel} values, expected ${N}`, { field: v.name });
  }
  if (M * N === 0) return;
  await launch(
    gpu,
    "rank_one",
    "rank_one",
    [{ uniform: uniforms(M, N, { f: opts.alpha ?? 1 }) }, w, u, v],
    grid(gpu, Math.ceil((M * N) / 256)),
  );
}

/** Launcher for the GPT-2 layer norm forward kernel (`kernels/layernorm.wgsl`). */
import { ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { type BlockTensor, fitsBinding, forBlocks, type StorageBinding } from "./blocks.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import { rowWorkgroupConstants } from "./row_workgroup.ts";
import type { GpuTensor } from "./tensor.ts";

/** Options of {@link layerNorm}. */
export interface LayerNormOptions {
  /** Number of rows normalised independently (e.g. B*T tokens). */
  rows: number;
  /** Row length, the normalised dimension (model width C). */
  cols: number;
  /** Added to the biased variance inside the square root (GPT-2's layer_norm_epsilon); default 1e-5. */
  eps?: number;
  /**
   * Optional output [rows, 2] (any shape with 2*rows elements): per row the mean and the reciprocal
   * standard deviation rstd = 1 / sqrt(var + eps), as the backward pass needs them.
   */
  stats?: GpuTensor;
}

function checkSize(t: GpuTensor, want: number, what: string, dims: string): void {
  if (t.dtype !== "f32") throw new ShapeError(`${what} must be f32, got ${t.dtype}`, { field: t.name });
  if (t.numel !== want) {
    throw new ShapeError(`${what} has shape [${t.shape}] (${t.numel} elements), expected ${dims} = ${want}`, {
      field: t.name,
    });
  }
}

/**
 * Layer norm over the last dimension, GPT-2 semantics (biased variance, eps inside the square root):
 * `out[r, c] = (x[r, c] - mean_r) / sqrt(var_r + eps) * gamma[c] + beta[c]`, computed in f32 with a
 * two-pass (mean, then squared deviations) reduction.
 *
 * - `x` [rows, cols], `out` [rows, cols] (any shapes with rows*cols elements; `out` must not alias `x`).
 * - `gamma`, `beta` [cols]: the scale and shift (HF `ln_*.weight`, `ln_*.bias`).
 * - `opts.stats` [rows, 2], optional: (mean, rstd) per row.
 *
 * Records the dispatch; nothing runs until the next {@link Gpu.flush} (or a read). Throws
 * {@link ShapeError} naming the offending tensor on any size mismatch.
 */
export async function layerNorm(
  gpu: Gpu,
  x: GpuTensor,
  gamma: GpuTensor,
  beta: GpuTensor,
  out: GpuTensor,
  opts: LayerNormOptions,
): Promise<void> {
  const { rows, cols, stats } = opts;
  const eps = opts.eps ?? 1e-5;
  for (const [k, v] of Object.entries({ rows, cols })) {
    if (!Number.isInteger(v) || v < 1) {
      throw new ShapeError(`layerNorm: ${k} = ${v} must be a positive integer`, { field: k });
    }
  }
  if (!(eps >= 0) || !Number.isFinite(eps)) {
    throw new ShapeError(`layerNorm: eps = ${eps} must be a finite non-negative number`, { field: "eps" });
  }
  checkSize(x, rows * cols, "layerNorm input x", "rows*cols");
  checkSize(gamma, cols, "layerNorm gamma", "cols");
  checkSize(beta, cols, "layerNorm beta", "cols");
  checkSize(out, rows * cols, "layerNorm output", "rows*cols");
  if (out.buffer === x.buffer) {
    throw new ShapeError("layerNorm output must not alias its input x", { field: out.name });
  }
  if (stats) {
    checkSize(stats, rows * 2, "layerNorm stats", "rows*2");
    if (stats.buffer === x.buffer || stats.buffer === out.buffer) {
      throw new ShapeError("layerNorm stats must not alias x or out", { field: stats.name });
    }
  }
  const wg = rowWorkgroupConstants(gpu, "norm");
  const dispatch = async ([xb, ob, sb]: StorageBinding[], n: number) => {
    const params = { uniform: uniforms(n, cols, { f: eps }) };
    if (sb) {
      await launch(gpu, "layernorm", "layernorm_stats", [params, xb, gamma, beta, ob, sb], grid(gpu, n), wg);
    } else await launch(gpu, "layernorm", "layernorm", [params, xb, gamma, beta, ob], grid(gpu, n), wg);
  };
  const rowed = stats ? [x, out, stats] : [x, out];
  if (fitsBinding(gpu, ...rowed)) return await dispatch(rowed, rows);
  // Past the binding limit (many tokens): row blocks; the normalisation is row-local.
  const parts: BlockTensor[] = [
    { t: x, cols, role: "in" },
    { t: out, cols, role: "out" },
    ...(stats ? [{ t: stats, cols: 2, role: "out" as const }] : []),
  ];
  await forBlocks(gpu, "layerNorm", rows, parts, (b, _first, n) => dispatch(b, n));
}

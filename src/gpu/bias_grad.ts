/** Launcher for the bias-gradient column sum (`kernels/bias_grad.wgsl`). */
import { ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import { rowWorkgroupConstants } from "./row_workgroup.ts";
import { fitsBinding, forRowBlocks, type StorageBinding } from "./blocks.ts";
import type { GpuTensor } from "./tensor.ts";

/** Options of {@link biasGrad}. */
export interface BiasGradOptions {
  /** Rows of `dout` summed over (e.g. B*T tokens). */
  rows: number;
  /** Columns of `dout`, the bias length. */
  cols: number;
  /** When true, the sums are added to `dbias` (`+=`); when false (default) they overwrite it (`=`). */
  accumulate?: boolean;
}

/**
 * Gradient of a bias added to every row: `dbias[c] (+)= sum_r dout[r, c]`, in f32, as a deterministic
 * gather (each column summed in a fixed order by 8 row lanes, then folded; no atomics), so repeated
 * runs are bit-identical.
 *
 * - `dout` [rows, cols] (any shape with rows*cols elements), `dbias` [cols]; f32, not aliased.
 * - `opts.accumulate`: `+=` instead of `=`.
 *
 * A `dout` larger than one storage binding ({@link Gpu.bindingLimit}: many tokens of a wide layer) is
 * summed in row blocks, each added to `dbias` after the first; a single row over the limit is a
 * `GpuError` naming `dout`.
 *
 * Records the dispatch (one per block past the limit); nothing runs until the next {@link Gpu.flush}
 * (or a read). Throws {@link ShapeError} naming the offending tensor on a size, dtype or aliasing mismatch.
 */
export async function biasGrad(
  gpu: Gpu,
  dout: GpuTensor,
  dbias: GpuTensor,
  opts: BiasGradOptions,
): Promise<void> {
  const { rows, cols } = opts;
  for (const [k, v] of Object.entries({ rows, cols })) {
    if (!Number.isInteger(v) || v < 1) {
      throw new ShapeError(`biasGrad: ${k} = ${v} must be a positive integer`, { field: k });
    }
  }
  for (const [t, want, dims] of [[dout, rows * cols, "rows*cols"], [dbias, cols, "cols"]] as const) {
    if (t.dtype !== "f32") {
      throw new ShapeError(`biasGrad tensors must be f32, got ${t.dtype}`, { field: t.name });
    }
    if (t.numel !== want) {
      throw new ShapeError(
        `biasGrad tensor has shape [${t.shape}] (${t.numel} elements), expected ${dims} = ${want}`,
        { field: t.name },
      );
    }
  }
  if (dbias.buffer === dout.buffer) {
    throw new ShapeError(`biasGrad dbias must not alias '${dout.name}'`, { field: dbias.name });
  }
  const dispatch = (d: StorageBinding, count: number, accumulate: boolean) =>
    launch(
      gpu,
      "bias_grad",
      "bias_grad",
      [{ uniform: uniforms(count, cols, accumulate ? 1 : 0) }, d, dbias],
      grid(gpu, Math.ceil(cols / 32)),
      rowWorkgroupConstants(gpu, "columns"),
    );
  if (fitsBinding(gpu, dout)) return await dispatch(dout, rows, opts.accumulate ?? false);
  // Past the binding limit: the first row block overwrites (or accumulates, per the option), later
  // blocks add their column sums to it, in row order (still deterministic).
  await forRowBlocks(
    gpu,
    "biasGrad",
    rows,
    cols,
    [dout],
    [],
    (ins, _outs, first, count) => dispatch(ins[0], count, first > 0 || (opts.accumulate ?? false)),
  );
}

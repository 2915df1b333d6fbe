/** Launcher for the RMS norm backward kernels (`kernels/rmsnorm_backward.wgsl`). */
import { ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { type BlockTensor, fitsBinding, forBlocks, type StorageBinding } from "./blocks.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import { rowWorkgroupConstants } from "./row_workgroup.ts";
import {
  checkAddressed,
  checkDims,
  checkSize,
  groupBlocks,
  resolveAddressing,
  type ResolvedAddressing,
  type RowAddressing,
} from "./rmsnorm.ts";
import type { GpuTensor } from "./tensor.ts";

/** Options of {@link rmsNormBackward}. */
export interface RmsNormBackwardOptions {
  /** Number of rows normalised independently by the forward. */
  rows: number;
  /** Row length, the normalised dimension. */
  cols: number;
  /**
   * When true, the gradients are added to `dx` and `dweight` (`+=`, e.g. so the residual stream's
   * gradient accumulates); when false (default) they overwrite them (`=`).
   */
  accumulate?: boolean;
  /** Overrides `accumulate` for `dweight` only. Defaults to `accumulate`. */
  accumulateParams?: boolean;
  /** Where the rows lie in `dout`, `x` and `dx` (the forward's addressing); default dense [rows, cols]. */
  addressing?: RowAddressing;
}

function checkNoAlias(out: GpuTensor, inputs: GpuTensor[], what: string): void {
  for (const t of inputs) {
    if (out.buffer === t.buffer) {
      throw new ShapeError(`${what} must not alias '${t.name}'`, { field: out.name });
    }
  }
}

/**
 * Backward pass of {@link rmsNorm}, in f32, from the forward's saved per-row rstd. With
 * xhat = x * rstd and g = dout * weight:
 *
 * - `dx[r, c] (+)= rstd * (g - xhat * mean_c(g * xhat))`
 * - `dweight[c] (+)= sum_r dout[r, c] * xhat[r, c]`
 *
 * where `(+)=` is `+=` with `opts.accumulate` (for `dweight`: `opts.accumulateParams`, which defaults
 * to `opts.accumulate`), else `=`. `dout`, `x`, `dx` hold the rows in the forward's layout (dense
 * [rows, cols] or `opts.addressing`; only addressed elements of `dx` are written); `weight` [cols];
 * `stats` [rows] as written by the forward's `stats` option; `dweight` [cols] or null/undefined (then
 * the weight gradient is neither computed nor touched). Outputs must not alias inputs or each other.
 *
 * Records one dispatch for `dx` (a workgroup per row) and one for `dweight` (a deterministic per-column
 * gather over rows, no atomics); nothing runs until the next {@link Gpu.flush} (or a read). Throws
 * {@link ShapeError} naming the offending tensor on any size, dtype, layout or aliasing mismatch.
 */
export async function rmsNormBackward(
  gpu: Gpu,
  dout: GpuTensor,
  x: GpuTensor,
  weight: GpuTensor,
  stats: GpuTensor,
  dx: GpuTensor,
  dweight: GpuTensor | null | undefined,
  opts: RmsNormBackwardOptions,
): Promise<void> {
  const { rows, cols } = opts;
  checkDims(rows, cols, "rmsNormBackward");
  const ad = resolveAddressing(rows, cols, opts.addressing, "rmsNormBackward");
  checkAddressed(dout, ad, "rmsNormBackward dout");
  checkAddressed(x, ad, "rmsNormBackward input x");
  checkSize(weight, cols, "rmsNormBackward weight", "cols");
  checkSize(stats, rows, "rmsNormBackward stats", "rows");
  checkAddressed(dx, ad, "rmsNormBackward dx");
  const inputs = [dout, x, weight, stats];
  checkNoAlias(dx, inputs, "rmsNormBackward dx");
  if (dweight) {
    checkSize(dweight, cols, "rmsNormBackward dweight", "cols");
    checkNoAlias(dweight, [...inputs, dx], "rmsNormBackward dweight");
  }
  const acc = opts.accumulate ?? false;
  const accParams = opts.accumulateParams ?? acc;
  // `firstBlock`: the weight sums of later row blocks add to the first's.
  const dispatch = async (
    [dO, xb, sb, dxb]: StorageBinding[],
    n: number,
    a: ResolvedAddressing,
    firstBlock: boolean,
  ) => {
    const params = (acc1: boolean) => ({
      uniform: uniforms(n, cols, a.offset, a.rowsPerGroup, a.groupStride, a.rowStride, acc1 ? 1 : 0),
    });
    await launch(
      gpu,
      "rmsnorm_backward",
      "rmsnorm_backward",
      [params(acc), dO, xb, sb, weight, dxb],
      grid(gpu, n),
      rowWorkgroupConstants(gpu, "norm"),
    );
    if (dweight) {
      await launch(
        gpu,
        "rmsnorm_backward",
        "rmsnorm_backward_params",
        [params(accParams || !firstBlock), dO, xb, sb, dweight],
        grid(gpu, Math.ceil(cols / 32)),
        rowWorkgroupConstants(gpu, "columns"),
      );
    }
  };
  const grouped = fitsBinding(gpu, dout, x, stats, dx)
    ? undefined
    : groupBlocks(ad, rows, cols, [dout, x, dx]);
  if (!grouped) return await dispatch([dout, x, stats, dx], rows, ad, true);
  // Past the binding limit: blocks of plain rows or of whole row groups ({@link groupBlocks}); dx is
  // row-local (read back in when accumulating, or when only its addressed elements are written), dweight
  // sums block by block (rounded per block).
  const parts: BlockTensor[] = [
    { t: dout, cols: grouped.cols, role: "in" },
    { t: x, cols: grouped.cols, role: "in" },
    { t: stats, cols: grouped.rows, role: "in" },
    { t: dx, cols: grouped.cols, role: acc || !ad.dense ? "inout" : "out" },
  ];
  await forBlocks(
    gpu,
    "rmsNormBackward",
    grouped.blocks,
    parts,
    (b, first, n) => dispatch(b, n * grouped.rows, grouped.at(n), first === 0),
  );
}

/** Launcher for the GPT-2 layer norm backward kernels (`kernels/layernorm_backward.wgsl`). */
import { ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { type BlockTensor, fitsBinding, forBlocks, type StorageBinding } from "./blocks.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import { rowWorkgroupConstants } from "./row_workgroup.ts";
import type { GpuTensor } from "./tensor.ts";

/** Options of {@link layerNormBackward}. */
export interface LayerNormBackwardOptions {
  /** Number of rows normalised independently by the forward (e.g. B*T tokens). */
  rows: number;
  /** Row length, the normalised dimension (model width C). */
  cols: number;
  /**
   * When true, the gradients are added to `dx`, `dgamma` and `dbeta` (`+=`, e.g. so the residual
   * stream's gradient accumulates); when false (default) they overwrite them (`=`).
   */
  accumulate?: boolean;
  /**
   * Overrides `accumulate` for `dgamma` and `dbeta` only (e.g. `dx +=` into the residual gradient while
   * the parameter gradients start fresh, or the reverse). Defaults to `accumulate`.
   */
  accumulateParams?: boolean;
}

function checkSize(t: GpuTensor, want: number, what: string, dims: string): void {
  if (t.dtype !== "f32") throw new ShapeError(`${what} must be f32, got ${t.dtype}`, { field: t.name });
  if (t.numel !== want) {
    throw new ShapeError(`${what} has shape [${t.shape}] (${t.numel} elements), expected ${dims} = ${want}`, {
      field: t.name,
    });
  }
}

function checkNoAlias(out: GpuTensor, inputs: GpuTensor[], what: string): void {
  for (const t of inputs) {
    if (out.buffer === t.buffer) {
      throw new ShapeError(`${what} must not alias '${t.name}'`, { field: out.name });
    }
  }
}

/**
 * Backward pass of {@link layerNorm} (GPT-2 semantics), in f32, from the forward's saved per-row
 * (mean, rstd). With xhat = (x - mean) * rstd and g = dout * gamma:
 *
 * - `dx[r, c] (+)= rstd * (g - mean_c(g) - xhat * mean_c(g * xhat))`
 * - `dgamma[c] (+)= sum_r dout[r, c] * xhat[r, c]`, `dbeta[c] (+)= sum_r dout[r, c]`
 *
 * where `(+)=` is `+=` with `opts.accumulate` (for `dgamma`/`dbeta`: `opts.accumulateParams`, which
 * defaults to `opts.accumulate`), else `=`. Tensors (any shapes with these element counts):
 * `dout`, `x`, `dx` [rows, cols]; `gamma` [cols]; `stats` [rows, 2] as written by the forward's
 * `stats` option; `dgamma`, `dbeta` [cols], both given or both null/undefined (then the parameter
 * gradients are neither computed nor touched). Outputs must not alias inputs or each other.
 *
 * Records one dispatch for `dx` (a workgroup per row) and one for `dgamma`/`dbeta` (a deterministic
 * per-column gather over rows, no atomics); nothing runs until the next {@link Gpu.flush} (or a read).
 * Throws {@link ShapeError} naming the offending tensor on any size, dtype or aliasing mismatch.
 */
export async function layerNormBackward(
  gpu: Gpu,
  dout: GpuTensor,
  x: GpuTensor,
  gamma: GpuTensor,
  stats: GpuTensor,
  dx: GpuTensor,
  dgamma: GpuTensor | null | undefined,
  dbeta: GpuTensor | null | undefined,
  opts: LayerNormBackwardOptions,
): Promise<void> {
  const { rows, cols } = opts;
  for (const [k, v] of Object.entries({ rows, cols })) {
    if (!Number.isInteger(v) || v < 1) {
      throw new ShapeError(`layerNormBackward: ${k} = ${v} must be a positive integer`, { field: k });
    }
  }
  checkSize(dout, rows * cols, "layerNormBackward dout", "rows*cols");
  checkSize(x, rows * cols, "layerNormBackward input x", "rows*cols");
  checkSize(gamma, cols, "layerNormBackward gamma", "cols");
  checkSize(stats, rows * 2, "layerNormBackward stats", "rows*2");
  checkSize(dx, rows * cols, "layerNormBackward dx", "rows*cols");
  const inputs = [dout, x, gamma, stats];
  checkNoAlias(dx, inputs, "layerNormBackward dx");
  if ((dgamma == null) !== (dbeta == null)) {
    throw new ShapeError("layerNormBackward: dgamma and dbeta must both be given or both be omitted", {
      field: (dgamma ?? dbeta)!.name,
    });
  }
  if (dgamma && dbeta) {
    checkSize(dgamma, cols, "layerNormBackward dgamma", "cols");
    checkSize(dbeta, cols, "layerNormBackward dbeta", "cols");
    checkNoAlias(dgamma, [...inputs, dx, dbeta], "layerNormBackward dgamma");
    checkNoAlias(dbeta, [...inputs, dx], "layerNormBackward dbeta");
  }
  const acc = opts.accumulate ?? false;
  const accParams = opts.accumulateParams ?? acc;
  // `firstBlock`: the parameter sums of later row blocks add to the first's.
  const dispatch = async ([dO, xb, sb, dxb]: StorageBinding[], n: number, firstBlock: boolean) => {
    await launch(
      gpu,
      "layernorm_backward",
      "layernorm_backward",
      [{ uniform: uniforms(n, cols, acc ? 1 : 0) }, dO, xb, sb, gamma, dxb],
      grid(gpu, n),
      rowWorkgroupConstants(gpu, "norm"),
    );
    if (dgamma && dbeta) {
      await launch(
        gpu,
        "layernorm_backward",
        "layernorm_backward_params",
        [{ uniform: uniforms(n, cols, accParams || !firstBlock ? 1 : 0) }, dO, xb, sb, dgamma, dbeta],
        grid(gpu, Math.ceil(cols / 32)),
        rowWorkgroupConstants(gpu, "columns"),
      );
    }
  };
  if (fitsBinding(gpu, dout, x, stats, dx)) return await dispatch([dout, x, stats, dx], rows, true);
  // Past the binding limit: row blocks. dx is row-local (read back in when accumulating); dgamma and dbeta
  // sum block by block, so their rounding differs from the one-dispatch sum.
  const parts: BlockTensor[] = [
    { t: dout, cols, role: "in" },
    { t: x, cols, role: "in" },
    { t: stats, cols: 2, role: "in" },
    { t: dx, cols, role: acc ? "inout" : "out" },
  ];
  await forBlocks(gpu, "layerNormBackward", rows, parts, (b, first, n) => dispatch(b, n, first === 0));
}

/** Launchers for softmax and log-softmax over the last dimension (`kernels/softmax.wgsl`). */
import { ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import { rowWorkgroupConstants } from "./row_workgroup.ts";
import { fitsBinding, forRowBlocks } from "./blocks.ts";
import type { GpuTensor } from "./tensor.ts";

/** Sizes of a {@link softmax} / {@link logSoftmax} call. */
export interface SoftmaxOptions {
  /** Number of independent rows (e.g. batch size, or B*T positions). */
  rows: number;
  /** Row length, the dimension normalised over (e.g. the vocabulary V = 50257); any value >= 1. */
  cols: number;
}

// Params { rows, cols, one }: `one` = 1.0 is the runtime value that keeps the driver from folding the
// Kahan compensation of the row sum away (kernels/lib/kahan.wgsl).
const params = (rows: number, cols: number) => ({ uniform: uniforms(rows, cols, { f: 1 }) });

/**
 * One dispatch of `entry` over all rows when `x` and `out` fit a storage binding; past the limit, one
 * per row block (rows are independent), each block's input and output rows bound together.
 */
async function rowwise(
  gpu: Gpu,
  what: string,
  entry: string,
  x: GpuTensor,
  out: GpuTensor,
  opts: SoftmaxOptions,
): Promise<void> {
  const { rows, cols } = opts;
  const wg = rowWorkgroupConstants(gpu, "softmax");
  if (fitsBinding(gpu, x, out)) {
    await launch(gpu, "softmax", entry, [params(rows, cols), x, out], grid(gpu, rows), wg);
    return;
  }
  await forRowBlocks(
    gpu,
    what,
    rows,
    cols,
    [x],
    [out],
    (ins, outs, _first, count) =>
      launch(gpu, "softmax", entry, [params(count, cols), ins[0], outs[0]], grid(gpu, count), wg),
  );
}

function check(what: string, x: GpuTensor, out: GpuTensor, opts: SoftmaxOptions): void {
  const { rows, cols } = opts;
  for (const [k, v] of Object.entries({ rows, cols })) {
    if (!Number.isInteger(v) || v < 1) {
      throw new ShapeError(`${what}: ${k} = ${v} must be a positive integer`, { field: k });
    }
  }
  for (const [t, role] of [[x, "input"], [out, "output"]] as const) {
    if (t.dtype !== "f32") {
      throw new ShapeError(`${what} ${role} must be f32, got ${t.dtype}`, { field: t.name });
    }
    if (t.numel !== rows * cols) {
      throw new ShapeError(
        `${what} ${role} has shape [${t.shape}] (${t.numel} elements), expected rows*cols = ${rows * cols}`,
        { field: t.name },
      );
    }
  }
  if (out.buffer === x.buffer) {
    throw new ShapeError(`${what} output must not alias its input`, { field: out.name });
  }
}

/**
 * Softmax over the last dimension in f32, numerically stable (row max subtracted):
 * `out[r, c] = exp(x[r, c] - max_r) / sum_c' exp(x[r, c'] - max_r)`.
 *
 * - `x`, `out` [rows, cols] (any shapes with rows*cols elements); `out` must not alias `x`.
 *
 * Tensors larger than one storage binding ({@link Gpu.bindingLimit}) are processed in row blocks
 * (aligned windows, or temporaries when rows cannot start aligned); a single row over the limit is a
 * `GpuError` naming `x`.
 *
 * Records the dispatch (one per block past the limit); nothing runs until the next {@link Gpu.flush}
 * (or a read). Throws {@link ShapeError} naming the offending tensor on any size mismatch.
 */
export async function softmax(gpu: Gpu, x: GpuTensor, out: GpuTensor, opts: SoftmaxOptions): Promise<void> {
  check("softmax", x, out, opts);
  await rowwise(gpu, "softmax", "softmax", x, out, opts);
}

/**
 * Log-softmax over the last dimension in f32, numerically stable:
 * `out[r, c] = (x[r, c] - max_r) - log(sum_c' exp(x[r, c'] - max_r))`, i.e. log-probabilities in
 * nats (absolute error ~1e-6 against float64 for GPT-2-sized vocabularies and logits of scale ~10).
 *
 * - `x`, `out` [rows, cols] (any shapes with rows*cols elements); `out` must not alias `x`.
 *
 * Tensors larger than one storage binding ({@link Gpu.bindingLimit}) are processed in row blocks
 * (aligned windows, or temporaries when rows cannot start aligned); a single row over the limit is a
 * `GpuError` naming `x`.
 *
 * Records the dispatch (one per block past the limit); nothing runs until the next {@link Gpu.flush}
 * (or a read). Throws {@link ShapeError} naming the offending tensor on any size mismatch.
 */
export async function logSoftmax(
  gpu: Gpu,
  x: GpuTensor,
  out: GpuTensor,
  opts: SoftmaxOptions,
): Promise<void> {
  check("logSoftmax", x, out, opts);
  await rowwise(gpu, "logSoftmax", "log_softmax", x, out, opts);
}

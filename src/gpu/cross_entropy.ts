/** Launcher for the fused log-softmax + negative log-likelihood and its gradient (`kernels/cross_entropy.wgsl`). */
import { ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import { rowWorkgroupConstants } from "./row_workgroup.ts";
import { copyTensor, createTensor, type GpuTensor, windowSlackElems } from "./tensor.ts";

/** Target id marking a row that does not count: its loss is 0 and its gradient row all 0. */
export const IGNORE_TARGET = 0xffffffff;

/** Sizes and gradient scale of a {@link crossEntropy} call. */
export interface CrossEntropyOptions {
  /** Number of predictions (e.g. B*T positions). */
  rows: number;
  /** Number of classes (the vocabulary, e.g. 50257); any value >= 1. */
  cols: number;
  /**
   * Factor applied to the gradient (default 1). Pass 1 / (number of rows whose target is not
   * {@link IGNORE_TARGET}) for the gradient of the mean loss. Does not affect `losses`.
   */
  scale?: number;
}

/**
 * Cross-entropy loss and its gradient w.r.t. the logits, fused (the probabilities are never stored):
 *
 * - `losses[r] = -log softmax(logits[r])[targets[r]]` (nats, >= 0)
 * - `dlogits[r, c] = scale * (softmax(logits[r])[c] - (c == targets[r] ? 1 : 0))`
 *
 * Rows whose target is {@link IGNORE_TARGET} get loss 0 and a zero gradient row. Any other target
 * `>= cols` cannot be reported from the GPU: that row's loss and gradient are NaN.
 *
 * - `logits` f32 [rows, cols]; `targets` u32 [rows]; `losses` f32 [rows];
 * - `dlogits` f32 [rows, cols], not aliasing `logits`, or null/undefined to compute losses only.
 *
 * Logits (or dlogits) larger than one storage binding ({@link Gpu.bindingLimit}: a long sequence
 * over a large vocabulary) are processed in row blocks copied through temporaries that fit it.
 *
 * Numerically stable for any finite logits (row max subtracted; losses within ~1e-6 + 1 ulp of
 * float64). Records one dispatch; nothing runs until the next {@link Gpu.flush} (or a read). Throws
 * {@link ShapeError} naming the offending tensor on any size, dtype or aliasing mismatch.
 */
export async function crossEntropy(
  gpu: Gpu,
  logits: GpuTensor,
  targets: GpuTensor,
  losses: GpuTensor,
  dlogits: GpuTensor | null | undefined,
  opts: CrossEntropyOptions,
): Promise<void> {
  const { rows, cols } = opts;
  const scale = opts.scale ?? 1;
  for (const [k, v] of Object.entries({ rows, cols })) {
    if (!Number.isInteger(v) || v < 1) {
      throw new ShapeError(`crossEntropy: ${k} = ${v} must be a positive integer`, { field: k });
    }
  }
  if (typeof scale !== "number" || !Number.isFinite(scale)) {
    throw new RangeError(`crossEntropy: scale = ${scale} must be a finite number`);
  }
  const expect = (t: GpuTensor, role: string, dtype: string, n: number, dims: string) => {
    if (t.dtype !== dtype) {
      throw new ShapeError(`crossEntropy ${role} must be ${dtype}, got ${t.dtype}`, { field: t.name });
    }
    if (t.numel !== n) {
      throw new ShapeError(
        `crossEntropy ${role} has shape [${t.shape}] (${t.numel} elements), expected ${dims} = ${n}`,
        { field: t.name },
      );
    }
  };
  expect(logits, "logits", "f32", rows * cols, "rows*cols");
  expect(targets, "targets", "u32", rows, "rows");
  expect(losses, "losses", "f32", rows, "rows");
  if (dlogits) expect(dlogits, "dlogits", "f32", rows * cols, "rows*cols");
  // Outputs come last; each must not share a buffer with any other binding.
  const all = dlogits ? [logits, targets, losses, dlogits] : [logits, targets, losses];
  for (let i = 2; i < all.length; i++) {
    for (let j = 0; j < all.length; j++) {
      if (j !== i && all[j].buffer === all[i].buffer) {
        throw new ShapeError(`crossEntropy output '${all[i].name}' must not alias '${all[j].name}'`, {
          field: all[i].name,
        });
      }
    }
  }
  const limit = gpu.bindingLimit;
  if (logits.buffer.size > limit || (dlogits && dlogits.buffer.size > limit)) {
    // Rows are independent: run row blocks on temporaries (copies need no binding) and copy back.
    const per = Math.floor(windowSlackElems(gpu) / cols);
    if (per < 1) {
      throw new ShapeError(`crossEntropy: one row of ${cols * 4} bytes is over the binding limit ${limit}`, {
        field: logits.name,
      });
    }
    const n = Math.min(per, rows);
    const tl = createTensor(gpu, [n, cols], { name: `${logits.name}.rows` });
    const tt = createTensor(gpu, [n], { name: `${targets.name}.rows`, dtype: "u32" });
    const tr = createTensor(gpu, [n], { name: `${losses.name}.rows` });
    const td = dlogits ? createTensor(gpu, [n, cols], { name: `${dlogits.name}.rows` }) : undefined;
    for (let r0 = 0; r0 < rows; r0 += n) {
      const m = Math.min(n, rows - r0);
      copyTensor(logits, tl, m * cols, r0 * cols, 0);
      copyTensor(targets, tt, m, r0, 0);
      await crossEntropyDispatch(gpu, tl, tt, tr, td, m, cols, scale);
      copyTensor(tr, losses, m, 0, r0);
      if (td && dlogits) copyTensor(td, dlogits, m * cols, 0, r0 * cols);
    }
    for (const t of [tl, tt, tr, td]) t?.destroy();
    return;
  }
  await crossEntropyDispatch(gpu, logits, targets, losses, dlogits, rows, cols, scale);
}

async function crossEntropyDispatch(
  gpu: Gpu,
  logits: GpuTensor,
  targets: GpuTensor,
  losses: GpuTensor,
  dlogits: GpuTensor | null | undefined,
  rows: number,
  cols: number,
  scale: number,
): Promise<void> {
  // The trailing 1.0 keeps the driver from folding the Kahan compensation away (kernels/lib/kahan.wgsl).
  const params = { uniform: uniforms(rows, cols, { f: scale }, { f: 1 }) };
  await launch(
    gpu,
    "cross_entropy",
    dlogits ? "cross_entropy" : "cross_entropy_loss",
    dlogits ? [params, logits, targets, losses, dlogits] : [params, logits, targets, losses],
    grid(gpu, rows),
    rowWorkgroupConstants(gpu, "softmax"),
  );
}

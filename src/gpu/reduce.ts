/**
 * Launchers for whole-tensor reductions and fills (`kernels/reduce.wgsl`): the sum of squares behind
 * global gradient-norm clipping, an in-place scale, and a fill.
 *
 * Gradient clipping over many tensors:
 * ```ts
 * for (const [i, g] of grads.entries()) await sumSquares(gpu, g, sumsq, { accumulate: i > 0 });
 * const norm = Math.sqrt((await readTensor(sumsq))[0]);
 * if (norm > maxNorm) for (const g of grads) await scaleInPlace(gpu, g, maxNorm / (norm + 1e-6));
 * ```
 */
import { InputError, ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import { elementRanges, fitsBinding, forElements, type StorageBinding } from "./blocks.ts";
import { copyTensor, createTensor, elementWindow, type GpuTensor } from "./tensor.ts";

/** Workgroup size of every entry of `kernels/reduce.wgsl`. */
const WG = 256;
/** Elements summed by one workgroup of `sum_partial` (must match CHUNK in the kernel). */
const CHUNK = 4096;

/** Options of {@link sumSquares} and {@link sum}. */
export interface SumOptions {
  /** Add to `out[0]` instead of overwriting it (to total over several tensors). Default false. */
  accumulate?: boolean;
}

function requireF32(what: string, t: GpuTensor, role: string): void {
  if (t.dtype !== "f32") {
    throw new ShapeError(`${what} ${role} must be f32, got ${t.dtype}`, { field: t.name });
  }
}

async function reduceSum(
  what: string,
  gpu: Gpu,
  x: GpuTensor,
  out: GpuTensor,
  square: boolean,
  opts: SumOptions,
): Promise<void> {
  requireF32(what, x, "input");
  requireF32(what, out, "output");
  if (out.numel < 1) {
    throw new ShapeError(`${what} output has shape [${out.shape}], needs at least 1 element`, {
      field: out.name,
    });
  }
  if (out.buffer === x.buffer) {
    throw new ShapeError(`${what} output must not alias its input`, { field: out.name });
  }
  const n = x.numel;
  const acc = opts.accumulate ? 1 : 0;
  const partial = (src: StorageBinding, dst: GpuTensor, count: number) =>
    launch(
      gpu,
      "reduce",
      "sum_partial",
      [{ uniform: uniforms(count, square ? 1 : 0, acc, { f: 0 }, 0, { f: 1 }) }, src, dst],
      grid(gpu, Math.ceil(count / CHUNK)),
    );
  // Past the limit: windows of whole chunks where one fits (see elementRanges).
  const windows = fitsBinding(gpu, x) ? [] : elementRanges(gpu, n, CHUNK);
  const parts = windows.length
    ? windows.reduce((s, [a, b]) => s + Math.ceil((b - a) / CHUNK), 0)
    : Math.ceil(n / CHUNK);
  const partials = createTensor(gpu, [parts], { name: `${what}.partials` });
  const most = Math.max(0, ...windows.map(([a, b]) => Math.ceil((b - a) / CHUNK)));
  const part = windows.length ? createTensor(gpu, [most], { name: `${what}.window_partials` }) : undefined;
  try {
    if (!part) await partial(x, partials, n);
    else {
      // Each window's partials land at their place in one list (copies keep command order), so the final
      // fold is the one-dispatch fold: bit-identical whenever windows are whole chunks.
      let at = 0;
      for (const [first, end] of windows) {
        const k = Math.ceil((end - first) / CHUNK);
        await partial(elementWindow(x, first, end).window, part, end - first);
        copyTensor(part, partials, k, 0, at);
        at += k;
      }
    }
    await launch(
      gpu,
      "reduce",
      "sum_final",
      [{ uniform: uniforms(parts, 0, acc, { f: 0 }, 0, { f: 1 }) }, partials, out],
      [1],
    );
  } finally {
    // Freed only after the recorded dispatches are submitted.
    partials.destroy();
    part?.destroy();
  }
}

/**
 * `out[0] = sum_i x[i]^2` over all elements of `x` (or `out[0] += ...` with `accumulate`), in f32
 * with a deterministic two-level compensated reduction: the same input always gives the same bits,
 * relative error ~1e-7 for any size
 * (the f32 rounding of the squares and of the result). Other elements of `out` are untouched.
 *
 * - `x` f32, any shape; `out` f32 with >= 1 element, not aliasing `x`.
 *
 * An `x` larger than one storage binding ({@link Gpu.bindingLimit}: GPT-2 small's wte gradient) is
 * summed in windows of whole chunks, whose partials are the unsplit ones, so the result has the same bits.
 *
 * Records two dispatches (one more dispatch and a copy per window past the limit); nothing runs until the
 * next {@link Gpu.flush} (or a read). Throws {@link ShapeError} naming the offending tensor.
 */
export async function sumSquares(
  gpu: Gpu,
  x: GpuTensor,
  out: GpuTensor,
  opts: SumOptions = {},
): Promise<void> {
  await reduceSum("sumSquares", gpu, x, out, true, opts);
}

/**
 * `out[0] = Σ_t Σ_i t[i]²` over every tensor of `xs` (e.g. all parameter gradients: the squared global
 * norm of gradient clipping), recorded as a zero fill and one accumulating {@link sumSquares} per tensor.
 */
export async function sumSquaresAll(gpu: Gpu, xs: Iterable<GpuTensor>, out: GpuTensor): Promise<void> {
  await fill(gpu, out, 0);
  for (const x of xs) await sumSquares(gpu, x, out, { accumulate: true });
}

/**
 * `out[0] = sum_i x[i]` over all elements of `x` (or `out[0] += ...` with `accumulate`), e.g. the
 * total of a losses tensor. Same reduction, determinism and errors as {@link sumSquares}; the relative
 * error is ~1e-7 of sum_i |x[i]| (cancellation can make it large relative to the sum itself).
 */
export async function sum(gpu: Gpu, x: GpuTensor, out: GpuTensor, opts: SumOptions = {}): Promise<void> {
  await reduceSum("sum", gpu, x, out, false, opts);
}

/** `x[i] *= alpha` for every element of the f32 tensor `x`, in place (alpha rounded to f32). */
export async function scaleInPlace(gpu: Gpu, x: GpuTensor, alpha: number): Promise<void> {
  requireF32("scaleInPlace", x, "tensor");
  if (typeof alpha !== "number") {
    throw new TypeError(`scaleInPlace: alpha must be a number, got ${typeof alpha}`);
  }
  await forElements(gpu, x.numel, [x], ([b], n) =>
    launch(
      gpu,
      "reduce",
      "scale",
      [{ uniform: uniforms(n, 0, 0, { f: alpha }, 0, { f: 1 }) }, b],
      grid(gpu, Math.ceil(n / WG)),
    ));
}

/**
 * Sets every element of `x` to `value`: rounded to f32 for f32 tensors (NaN and ±Infinity allowed);
 * for u32 / i32 tensors `value` must be an integer in the type's range (so `fill(gpu, targets,
 * IGNORE_TARGET)` works). Throws {@link InputError} naming `x` for a value its type cannot hold.
 */
export async function fill(gpu: Gpu, x: GpuTensor, value: number): Promise<void> {
  let bits: number;
  if (x.dtype === "f32") {
    bits = new Uint32Array(new Float32Array([value]).buffer)[0];
  } else {
    const [lo, hi] = x.dtype === "u32" ? [0, 0xffffffff] : [-0x80000000, 0x7fffffff];
    if (!Number.isInteger(value) || value < lo || value > hi) {
      throw new InputError(`fill value ${value} does not fit a ${x.dtype} tensor`, { field: x.name });
    }
    bits = value >>> 0;
  }
  await forElements(gpu, x.numel, [x], ([b], n) =>
    launch(
      gpu,
      "reduce",
      "fill",
      [{ uniform: uniforms(n, 0, 0, { f: 0 }, bits, { f: 1 }) }, b],
      grid(gpu, Math.ceil(n / WG)),
    ));
}

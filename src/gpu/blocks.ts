/**
 * Splitting of element-wise and row-wise dispatches over tensors larger than one storage binding
 * ({@link Gpu.bindingLimit}): consecutive element ranges or row blocks, each bound as an aligned
 * window (element 0 of the binding is the range's first element, so kernels need no base offset) or,
 * when rows cannot start at the offset alignment, copied through temporaries that fit one binding.
 */
import { GpuError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import {
  copyTensor,
  createTensor,
  elementWindow,
  type GpuTensor,
  type TensorWindow,
  windowSlackElems,
} from "./tensor.ts";

/** A whole tensor or a window of one, as passed to `launch`. */
export type StorageBinding = GpuTensor | TensorWindow;

/** Whether every tensor's buffer fits one storage binding. */
export function fitsBinding(gpu: Gpu, ...ts: GpuTensor[]): boolean {
  return ts.every((t) => t.buffer.size <= gpu.bindingLimit);
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** The offset alignment in elements (4-byte), at least 1. */
function alignElems(gpu: Gpu): number {
  return Math.max(1, gpu.device.limits.minStorageBufferOffsetAlignment / 4);
}

/**
 * Runs an element-wise dispatch over the same element ranges of `tensors` (all of `n` elements) in
 * consecutive windows that start at the offset alignment; `run` gets one window per tensor (in order)
 * and the range's element count.
 */
export async function forElementBlocks(
  gpu: Gpu,
  n: number,
  tensors: GpuTensor[],
  run: (bindings: TensorWindow[], count: number) => Promise<void>,
): Promise<void> {
  const align = alignElems(gpu);
  const step = Math.max(align, Math.floor(windowSlackElems(gpu) / align) * align);
  for (let first = 0; first < n; first += step) {
    const end = Math.min(n, first + step);
    await run(tensors.map((t) => elementWindow(t, first, end).window), end - first);
  }
}

/**
 * The one home of element-wise dispatches: `run` once on the whole tensors (all of `n` elements) when
 * every one fits a binding, else once per aligned window via {@link forElementBlocks}. A kernel whose
 * only size is its element count (fill, scale, AdamW, Kahan accumulation) passes `count` as that size.
 */
export async function forElements(
  gpu: Gpu,
  n: number,
  tensors: GpuTensor[],
  run: (bindings: StorageBinding[], count: number) => Promise<void>,
): Promise<void> {
  if (fitsBinding(gpu, ...tensors)) return await run(tensors, n);
  await forElementBlocks(gpu, n, tensors, run);
}

/**
 * Runs a row-wise dispatch over row blocks of the row-major [rows, cols] tensors `inputs` (read) and
 * `outputs` (written whole). `run` gets, per block, one binding per input and per output (each holding
 * exactly the block's rows from element 0), the block's first row and its row count.
 *
 * Blocks are aligned windows when a whole number of alignment steps of rows fits a binding; otherwise
 * inputs are copied into temporaries, and outputs copied back after each dispatch (in command order).
 * Throws {@link GpuError} naming `inputs[0]` if a single row is over the binding limit.
 */
export async function forRowBlocks(
  gpu: Gpu,
  what: string,
  rows: number,
  cols: number,
  inputs: GpuTensor[],
  outputs: GpuTensor[],
  run: (ins: StorageBinding[], outs: StorageBinding[], first: number, count: number) => Promise<void>,
): Promise<void> {
  const per = Math.floor(windowSlackElems(gpu) / cols);
  if (per < 1) {
    const t = inputs[0] ?? outputs[0];
    throw new GpuError(
      `${what}: one row of tensor '${t.name}' (${cols} elements, ${cols * 4} bytes) is over the ` +
        `storage-binding limit of ${gpu.bindingLimit} bytes`,
      { field: t.name },
    );
  }
  const align = alignElems(gpu);
  // Rows whose first element is aligned: every `g`-th row.
  const g = align / gcd(cols, align);
  if (per >= g) {
    const step = Math.floor(per / g) * g;
    for (let first = 0; first < rows; first += step) {
      const end = Math.min(rows, first + step);
      const win = (t: GpuTensor) => elementWindow(t, first * cols, end * cols).window;
      await run(inputs.map(win), outputs.map(win), first, end - first);
    }
    return;
  }
  const n = Math.min(per, rows);
  const tin = inputs.map((t) => createTensor(gpu, [n, cols], { name: `${t.name}.rows` }));
  const tout = outputs.map((t) => createTensor(gpu, [n, cols], { name: `${t.name}.rows` }));
  try {
    for (let first = 0; first < rows; first += n) {
      const m = Math.min(n, rows - first);
      inputs.forEach((t, i) => copyTensor(t, tin[i], m * cols, first * cols, 0));
      await run(tin, tout, first, m);
      outputs.forEach((t, i) => copyTensor(tout[i], t, m * cols, 0, first * cols));
    }
  } finally {
    // Freed only after the recorded dispatches and copies are submitted.
    for (const t of [...tin, ...tout]) t.destroy();
  }
}

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
 * Consecutive element ranges [first, end) covering [0, n) past the binding limit: each starts at the
 * offset alignment (so a window from it has base 0) and fits one window. Ranges are whole multiples of
 * `quantum` elements when such a range fits (a reduction's chunk: its partials then equal the unsplit
 * ones), else of the alignment.
 */
export function elementRanges(gpu: Gpu, n: number, quantum = 1): Array<[number, number]> {
  const align = alignElems(gpu);
  const span = windowSlackElems(gpu);
  const q = (align * quantum) / gcd(align, quantum);
  const unit = q <= span ? q : align;
  const step = Math.max(unit, Math.floor(span / unit) * unit);
  const out: Array<[number, number]> = [];
  for (let first = 0; first < n; first += step) out.push([first, Math.min(n, first + step)]);
  return out;
}

/**
 * Runs an element-wise dispatch over the same element ranges of `tensors` (all of `n` elements) in
 * consecutive windows ({@link elementRanges}); `run` gets one window per tensor (in order) and the
 * range's element count.
 */
export async function forElementBlocks(
  gpu: Gpu,
  n: number,
  tensors: GpuTensor[],
  run: (bindings: TensorWindow[], count: number) => Promise<void>,
): Promise<void> {
  for (const [first, end] of elementRanges(gpu, n)) {
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
  const parts: BlockTensor[] = [
    ...inputs.map((t) => ({ t, cols, role: "in" as const })),
    ...outputs.map((t) => ({ t, cols, role: "out" as const })),
  ];
  await forBlocks(
    gpu,
    what,
    rows,
    parts,
    (b, first, count) => run(b.slice(0, inputs.length), b.slice(inputs.length), first, count),
  );
}

/**
 * One tensor of a {@link forBlocks} dispatch: `cols` elements per row (rows may differ in width between
 * tensors, e.g. one sequence's qkv rows and its attention probabilities) and whether the dispatch reads
 * it (`in`), writes it whole (`out`) or reads and writes it (`inout`: accumulated into, or with parts it
 * leaves untouched).
 */
export interface BlockTensor {
  /** The tensor, row-major. */
  t: GpuTensor;
  /** Elements per row. */
  cols: number;
  /** How the dispatch uses it. */
  role: "in" | "out" | "inout";
}

/**
 * Runs a dispatch over blocks of `rows` rows of every tensor in `parts` (row r of a tensor: its
 * elements [r * cols, (r + 1) * cols)). `run` gets one binding per part (holding exactly the block's
 * rows from element 0), the block's first row and its row count. Blocks are aligned windows when every
 * g-th row of every part starts at the offset alignment and g rows fit; otherwise `in` and `inout`
 * parts are copied into temporaries and `out` / `inout` ones copied back after each dispatch (in
 * command order). Throws {@link GpuError} naming the widest part if a single row is over the limit.
 */
export async function forBlocks(
  gpu: Gpu,
  what: string,
  rows: number,
  parts: BlockTensor[],
  run: (bindings: StorageBinding[], first: number, count: number) => Promise<void>,
): Promise<void> {
  const widest = parts.reduce((a, p) => (p.cols > a.cols ? p : a), parts[0]);
  const per = Math.floor(windowSlackElems(gpu) / widest.cols);
  if (per < 1) {
    const t = widest.t;
    throw new GpuError(
      `${what}: one row of tensor '${t.name}' (${widest.cols} elements, ${widest.cols * 4} bytes) is ` +
        `over the storage-binding limit of ${gpu.bindingLimit} bytes`,
      { field: t.name },
    );
  }
  const align = alignElems(gpu);
  // Rows whose first element is aligned in every part: every `g`-th row.
  const g = parts.reduce((acc, p) => {
    const gp = align / gcd(p.cols, align);
    return (acc * gp) / gcd(acc, gp);
  }, 1);
  if (per >= g) {
    const step = Math.floor(per / g) * g;
    for (let first = 0; first < rows; first += step) {
      const end = Math.min(rows, first + step);
      await run(
        parts.map((p) => elementWindow(p.t, first * p.cols, end * p.cols).window),
        first,
        end - first,
      );
    }
    return;
  }
  const n = Math.min(per, rows);
  const tmp = parts.map((p) =>
    createTensor(gpu, [n, p.cols], { name: `${p.t.name}.rows`, dtype: p.t.dtype })
  );
  try {
    for (let first = 0; first < rows; first += n) {
      const m = Math.min(n, rows - first);
      parts.forEach((p, i) => {
        if (p.role !== "out") copyTensor(p.t, tmp[i], m * p.cols, first * p.cols, 0);
      });
      await run(tmp, first, m);
      parts.forEach((p, i) => {
        if (p.role !== "in") copyTensor(tmp[i], p.t, m * p.cols, 0, first * p.cols);
      });
    }
  } finally {
    // Freed only after the recorded dispatches and copies are submitted.
    for (const t of tmp) t.destroy();
  }
}

/**
 * Runs `run` on elements [first, first + n) of `t` bound from element 0: an aligned window when the
 * range starts at the offset alignment, else a temporary, copied in first (`role` "in") or copied back
 * after the dispatch ("out").
 */
export async function withRange(
  gpu: Gpu,
  t: GpuTensor,
  first: number,
  n: number,
  role: "in" | "out",
  run: (b: StorageBinding) => Promise<void>,
): Promise<void> {
  const w = elementWindow(t, first, first + n);
  if (w.base === 0) return await run(w.window);
  const tmp = createTensor(gpu, [n], { name: `${t.name}.range`, dtype: t.dtype });
  try {
    if (role === "in") copyTensor(t, tmp, n, first, 0);
    await run(tmp);
    if (role === "out") copyTensor(tmp, t, n, 0, first);
  } finally {
    // Freed only after the recorded dispatch and copy are submitted.
    tmp.destroy();
  }
}

/** Launcher for the embedding backward scatter-as-gather (`kernels/embedding_backward.wgsl`). */
import { ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { checkIds } from "./embedding.ts";
import { fitsBinding, forBlocks, type StorageBinding } from "./blocks.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import { createTensor, type GpuTensor, rowChunks } from "./tensor.ts";

/** Options of {@link embeddingBackward}. */
export interface EmbeddingBackwardOptions {
  /** Number of rows of `dout` (all tokens of the batch, B*L). */
  T: number;
  /** Model width (columns of dout, dwte and dwpe). */
  C: number;
  /**
   * When true, gradients are added to `dwte`/`dwpe` and rows no token uses are left untouched; when
   * false (default) the tables are first cleared to 0 and then written.
   */
  accumulate?: boolean;
  /**
   * Overrides `accumulate` for `dwpe` only (e.g. when `dwte` already holds a tied head's gradient
   * but `dwpe` starts fresh). Defaults to `accumulate`.
   */
  accumulatePositions?: boolean;
}

/** Host-built CSR grouping of rows by index: what the kernel's bindings 2-4 hold. */
export interface RowGroups {
  /** Distinct indices, ascending. */
  uniq: Uint32Array;
  /** uniq.length + 1 offsets into `rows`. */
  offsets: Uint32Array;
  /** Row numbers 0..T-1 grouped by index, ascending within each group. */
  rows: Uint32Array;
}

/** Groups row numbers 0..index.length-1 by `index[t]` (counting sort, stable): see {@link RowGroups}. */
export function groupRows(index: ArrayLike<number>, bound: number): RowGroups {
  const T = index.length;
  const counts = new Uint32Array(bound + 1);
  for (let t = 0; t < T; t++) counts[index[t] + 1]++;
  let U = 0;
  for (let v = 1; v <= bound; v++) if (counts[v] > 0) U++;
  const uniq = new Uint32Array(U), offsets = new Uint32Array(U + 1);
  // start[v]: first slot of index v in `rows` (prefix sums of counts).
  const start = counts;
  for (let v = 1, k = 0; v <= bound; v++) {
    if (start[v] > 0) {
      uniq[k] = v - 1;
      offsets[k + 1] = offsets[k] + start[v];
      k++;
    }
    start[v] += start[v - 1];
  }
  const rows = new Uint32Array(T);
  for (let t = 0; t < T; t++) rows[start[index[t]]++] = t;
  return { uniq, offsets, rows };
}

function checkTable(t: GpuTensor, C: number, what: string): number {
  if (t.dtype !== "f32") throw new ShapeError(`${what} must be f32, got ${t.dtype}`, { field: t.name });
  if (!(t.shape.length === 2 && t.shape[1] === C && t.shape[0] >= 1)) {
    throw new ShapeError(`${what} has shape [${t.shape}], expected [rows, C] with C = ${C}`, {
      field: t.name,
    });
  }
  return t.shape[0];
}

async function scatter(
  gpu: Gpu,
  dout: StorageBinding,
  index: ArrayLike<number>,
  table: GpuTensor,
  C: number,
  accumulate: boolean,
  name: string,
): Promise<void> {
  const g = groupRows(index, table.shape[0]);
  if (!accumulate) gpu.commandEncoder().clearBuffer(table.buffer);
  const U = g.uniq.length;
  const temps = [
    createTensor(gpu, [U], { name: `${name}.uniq`, dtype: "u32", data: g.uniq }),
    createTensor(gpu, [U + 1], { name: `${name}.offsets`, dtype: "u32", data: g.offsets }),
    createTensor(gpu, [g.rows.length], { name: `${name}.rows`, dtype: "u32", data: g.rows }),
  ];
  try {
    // A table over the binding limit is written window by window: each dispatch takes the distinct
    // indices (ascending in uniq) that fall in its rows.
    let k0 = 0;
    for (const ch of rowChunks(table, C)) {
      let k1 = k0;
      while (k1 < U && g.uniq[k1] < ch.end) k1++;
      if (k1 > k0) {
        await launch(
          gpu,
          "embedding_backward",
          "embedding_backward",
          [
            { uniform: uniforms(C, k1, accumulate ? 1 : 0, k0, ch.first, ch.base) },
            dout,
            ...temps,
            ch.binding,
          ],
          grid(gpu, Math.ceil(((k1 - k0) * C) / 256)),
        );
      }
      k0 = k1;
    }
  } finally {
    // Destroyed after the next submit, which includes the dispatch just recorded.
    for (const t of temps) t.destroy();
  }
}

/**
 * Backward pass of {@link embedding}: scatters `dout` into the table gradients, in f32,
 * `dwte[v, c] (+)= sum_{t: ids[t] = v} dout[t, c]` and `dwpe[p, c] (+)= sum_{t: positions[t] = p} dout[t, c]`.
 * Deterministic (no atomics): rows are grouped by index on the host (sorted CSR lists, uploaded as u32
 * tensors) and one invocation per (distinct index, channel) sums its rows in increasing order.
 *
 * - `dout` [T, C] (any shape with T*C elements), f32.
 * - `ids`, `positions`: host arrays of T integers, checked with {@link checkIds} against V and P.
 *   `positions` may be null/undefined when `dwpe` is (models without learned positions).
 * - `dwte` [V, C], `dwpe` [P, C]: f32 gradient tables; either may be null/undefined to skip it (its
 *   index array is then not checked; no `dwpe` is the position gradient skipped, e.g. Llama, GPT-NeoX,
 *   GPT-J). Neither may alias `dout` or the other.
 * - `opts.accumulate`: add into the tables (rows no token uses keep their values) instead of clearing
 *   them to 0 first; `opts.accumulatePositions` overrides it for `dwpe`.
 *
 * A table larger than one storage binding ({@link Gpu.bindingLimit}) is written in row windows; a `dout`
 * larger than one is read in blocks of tokens (each block's sums added to the table: rounded per block).
 *
 * Records the commands; nothing runs until the next {@link Gpu.flush} (or a read). Throws
 * {@link ShapeError} naming the offending tensor or array on a size, dtype or aliasing mismatch and
 * {@link InputError} for ids or positions out of range.
 */
export async function embeddingBackward(
  gpu: Gpu,
  dout: GpuTensor,
  ids: ArrayLike<number>,
  positions: ArrayLike<number> | null | undefined,
  dwte: GpuTensor | null | undefined,
  dwpe: GpuTensor | null | undefined,
  opts: EmbeddingBackwardOptions,
): Promise<void> {
  const { T, C } = opts;
  for (const [k, v] of Object.entries({ T, C })) {
    if (!Number.isInteger(v) || v < 1) {
      throw new ShapeError(`embeddingBackward: ${k} = ${v} must be a positive integer`, { field: k });
    }
  }
  if (dout.dtype !== "f32") {
    throw new ShapeError(`embeddingBackward dout must be f32, got ${dout.dtype}`, { field: dout.name });
  }
  if (dout.numel !== T * C) {
    throw new ShapeError(
      `embeddingBackward dout has shape [${dout.shape}], expected T*C = ${T * C} elements`,
      {
        field: dout.name,
      },
    );
  }
  const jobs: Array<[GpuTensor, ArrayLike<number>, string]> = [];
  if (dwte) jobs.push([dwte, ids, "ids"]);
  if (dwpe) {
    if (positions == null) {
      throw new ShapeError("embeddingBackward: a position gradient dwpe needs the positions", {
        field: "positions",
      });
    }
    jobs.push([dwpe, positions, "positions"]);
  }
  for (const [table, index, name] of jobs) {
    const rows = checkTable(table, C, `embeddingBackward ${name === "ids" ? "dwte" : "dwpe"}`);
    if (table.buffer === dout.buffer) {
      throw new ShapeError(`embeddingBackward gradient table must not alias '${dout.name}'`, {
        field: table.name,
      });
    }
    if (index.length !== T) {
      throw new ShapeError(`${name} has ${index.length} entries, expected T = ${T}`, { field: name });
    }
    checkIds(index, rows, name);
  }
  if (dwte && dwpe && dwte.buffer === dwpe.buffer) {
    throw new ShapeError("embeddingBackward dwte and dwpe must not alias", { field: dwpe.name });
  }
  const accumulate = opts.accumulate ?? false;
  const accPos = opts.accumulatePositions ?? accumulate;
  for (const [table, index, name] of jobs) {
    const acc = name === "ids" ? accumulate : accPos;
    if (fitsBinding(gpu, dout)) {
      await scatter(gpu, dout, index, table, C, acc, name);
      continue;
    }
    // A dout past the binding limit (many tokens): blocks of tokens, each scattered with its own rows;
    // blocks after the first add to the table, so a row's sum is rounded per block.
    await forBlocks(
      gpu,
      "embeddingBackward",
      T,
      [{ t: dout, cols: C, role: "in" }],
      ([b], t0, n) =>
        scatter(gpu, b, Array.prototype.slice.call(index, t0, t0 + n), table, C, acc || t0 > 0, name),
    );
  }
}

/** Launcher for the RMS norm forward kernel (`kernels/rmsnorm.wgsl`) and the row addressing it shares. */
import { ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { type BlockTensor, fitsBinding, forBlocks, type StorageBinding } from "./blocks.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import { rowWorkgroupConstants } from "./row_workgroup.ts";
import type { GpuTensor } from "./tensor.ts";

/**
 * Where the rows of an RMS norm lie inside a wider buffer (all in elements): row i starts at
 * `offset + floor(i / rowsPerGroup) * groupStride + (i % rowsPerGroup) * rowStride` and its `cols`
 * elements are contiguous. E.g. Qwen3's per-head q norm on a fused qkv buffer of row width W with the
 * H query heads of width D at qOffset: rows = R*H, cols = D, `{ offset: qOffset, rowsPerGroup: H,
 * groupStride: W, rowStride: D }`.
 */
export interface RowAddressing {
  /** Start of row 0. Default 0. */
  offset?: number;
  /** Rows per group (e.g. heads per token row). Default: all rows in one group. */
  rowsPerGroup?: number;
  /** Distance between the starts of consecutive groups. Default rowsPerGroup * rowStride. */
  groupStride?: number;
  /** Distance between the starts of consecutive rows of a group. Default cols. */
  rowStride?: number;
}

/** A {@link RowAddressing} with every field resolved, plus the element count the rows span. */
export interface ResolvedAddressing {
  offset: number;
  rowsPerGroup: number;
  groupStride: number;
  rowStride: number;
  /** 1 + the largest element index any row touches: addressed tensors need at least this many. */
  span: number;
  /** True when the rows are exactly the dense [rows, cols] layout (then tensors must match it exactly). */
  dense: boolean;
}

/**
 * Resolves and checks `a` for `rows` rows of `cols` elements: every field a non-negative integer,
 * rows of a group do not overlap (rowStride >= cols when a group has several rows), groups do not
 * overlap (groupStride >= (rowsPerGroup - 1) * rowStride + cols when there are several groups), and
 * every index fits a u32. Throws {@link ShapeError} naming the field (prefixed by `fn`).
 */
export function resolveAddressing(
  rows: number,
  cols: number,
  a: RowAddressing | undefined,
  fn: string,
): ResolvedAddressing {
  const rowStride = a?.rowStride ?? cols;
  const rowsPerGroup = Math.min(a?.rowsPerGroup ?? rows, rows);
  const groupStride = a?.groupStride ?? rowsPerGroup * rowStride;
  const offset = a?.offset ?? 0;
  for (const [k, v] of Object.entries({ offset, rowsPerGroup, groupStride, rowStride })) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
      throw new ShapeError(`${fn}: addressing.${k} = ${v} must be a non-negative integer`, {
        field: `addressing.${k}`,
      });
    }
  }
  if (rowsPerGroup < 1) {
    throw new ShapeError(`${fn}: addressing.rowsPerGroup must be at least 1`, {
      field: "addressing.rowsPerGroup",
    });
  }
  const groups = Math.ceil(rows / rowsPerGroup);
  if (rowsPerGroup > 1 && rowStride < cols) {
    throw new ShapeError(`${fn}: addressing.rowStride = ${rowStride} < cols = ${cols}: rows would overlap`, {
      field: "addressing.rowStride",
    });
  }
  const groupSpan = (rowsPerGroup - 1) * rowStride + cols;
  if (groups > 1 && groupStride < groupSpan) {
    throw new ShapeError(
      `${fn}: addressing.groupStride = ${groupStride} < ${groupSpan} (the span of one group): groups would overlap`,
      { field: "addressing.groupStride" },
    );
  }
  // Strides are non-negative, so the last row of the last group or of the group before it starts last.
  const start = (i: number) =>
    offset + Math.floor(i / rowsPerGroup) * groupStride + (i % rowsPerGroup) * rowStride;
  let last = start(rows - 1);
  if (groups > 1) last = Math.max(last, start((groups - 1) * rowsPerGroup - 1));
  const span = last + cols;
  if (span > 0xffffffff) {
    throw new ShapeError(`${fn}: the addressed rows span ${span} elements, more than a u32 index reaches`, {
      field: "addressing",
    });
  }
  // Only rows given without addressing must fill the tensor exactly: addressed rows may be part of a wider
  // buffer even when they happen to be contiguous (the q heads of a single fused qkv row, B·T = 1).
  const dense = a === undefined &&
    offset === 0 && rowStride === cols && (groups === 1 || groupStride === rowsPerGroup * cols);
  return { offset, rowsPerGroup, groupStride, rowStride, span, dense };
}

/** Checks an f32 tensor holding the addressed rows: exactly rows*cols elements when dense, else >= span. */
export function checkAddressed(t: GpuTensor, ad: ResolvedAddressing, what: string): void {
  if (t.dtype !== "f32") throw new ShapeError(`${what} must be f32, got ${t.dtype}`, { field: t.name });
  if (ad.dense ? t.numel !== ad.span : t.numel < ad.span) {
    throw new ShapeError(
      `${what} has shape [${t.shape}] (${t.numel} elements), expected ${
        ad.dense ? "rows*cols =" : "at least the addressed span of"
      } ${ad.span}`,
      { field: t.name },
    );
  }
}

/** Checks an f32 tensor of exactly `want` elements. */
export function checkSize(t: GpuTensor, want: number, what: string, dims: string): void {
  if (t.dtype !== "f32") throw new ShapeError(`${what} must be f32, got ${t.dtype}`, { field: t.name });
  if (t.numel !== want) {
    throw new ShapeError(`${what} has shape [${t.shape}] (${t.numel} elements), expected ${dims} = ${want}`, {
      field: t.name,
    });
  }
}

/** Options of {@link rmsNorm}. */
export interface RmsNormOptions {
  /** Number of rows normalised independently (e.g. B*T tokens, or B*T*H heads). */
  rows: number;
  /** Row length, the normalised dimension (model width C, or head width D). */
  cols: number;
  /** Added to the mean square inside the square root (HF `rms_norm_eps`); default 1e-6 (LlamaRMSNorm's). */
  eps?: number;
  /** Optional output [rows] (any shape with `rows` elements, always dense): per row rstd, for the backward. */
  stats?: GpuTensor;
  /** Where the rows lie in `x` and `out` (default: dense [rows, cols]); see {@link RowAddressing}. */
  addressing?: RowAddressing;
}

/** Validates rows, cols and eps; shared by the forward and backward launchers. */
export function checkDims(rows: number, cols: number, fn: string): void {
  for (const [k, v] of Object.entries({ rows, cols })) {
    if (!Number.isInteger(v) || v < 1) {
      throw new ShapeError(`${fn}: ${k} = ${v} must be a positive integer`, { field: k });
    }
  }
}

/**
 * RMS norm over each row, HF LlamaRMSNorm semantics in f32:
 * `out[r, c] = weight[c] * (x[r, c] / sqrt(mean_c x[r, :]^2 + eps))`.
 *
 * - `x`, `out`: the rows, dense [rows, cols] by default (any shape with rows*cols elements), or
 *   placed by `opts.addressing` (then both buffers share that layout, need at least its span, and only
 *   the addressed elements of `out` are written). `out` must not alias `x`.
 * - `weight` [cols]: the scale (HF `*norm.weight`).
 * - `opts.stats` [rows], optional: per row rstd = 1 / sqrt(mean square + eps).
 *
 * Records the dispatch; nothing runs until the next {@link Gpu.flush} (or a read). Throws
 * {@link ShapeError} naming the offending tensor or field on any size, layout or aliasing mismatch.
 */
export async function rmsNorm(
  gpu: Gpu,
  x: GpuTensor,
  weight: GpuTensor,
  out: GpuTensor,
  opts: RmsNormOptions,
): Promise<void> {
  const { rows, cols, stats } = opts;
  const eps = opts.eps ?? 1e-6;
  checkDims(rows, cols, "rmsNorm");
  if (!(eps >= 0) || !Number.isFinite(eps)) {
    throw new ShapeError(`rmsNorm: eps = ${eps} must be a finite non-negative number`, { field: "eps" });
  }
  const ad = resolveAddressing(rows, cols, opts.addressing, "rmsNorm");
  checkAddressed(x, ad, "rmsNorm input x");
  checkSize(weight, cols, "rmsNorm weight", "cols");
  checkAddressed(out, ad, "rmsNorm output");
  if (out.buffer === x.buffer) {
    throw new ShapeError("rmsNorm output must not alias its input x", { field: out.name });
  }
  if (stats) {
    checkSize(stats, rows, "rmsNorm stats", "rows");
    if (stats.buffer === x.buffer || stats.buffer === out.buffer) {
      throw new ShapeError("rmsNorm stats must not alias x or out", { field: stats.name });
    }
  }
  const wg = rowWorkgroupConstants(gpu, "norm");
  const dispatch = async ([xb, ob, sb]: StorageBinding[], n: number, a: ResolvedAddressing) => {
    const params = {
      uniform: uniforms(n, cols, { f: eps }, a.offset, a.rowsPerGroup, a.groupStride, a.rowStride),
    };
    if (sb) await launch(gpu, "rmsnorm", "rmsnorm_stats", [params, xb, weight, ob, sb], grid(gpu, n), wg);
    else await launch(gpu, "rmsnorm", "rmsnorm", [params, xb, weight, ob], grid(gpu, n), wg);
  };
  const rowed = stats ? [x, out, stats] : [x, out];
  if (fitsBinding(gpu, ...rowed)) return await dispatch(rowed, rows, ad);
  // Past the binding limit (many tokens): blocks of plain rows, or of whole groups of strided rows
  // (Qwen3's q/k norms inside a fused qkv: a group is one token's row); only the addressed elements of
  // `out` are written, so its blocks are read in as well.
  const grouped = groupBlocks(ad, rows, cols, [x, out]);
  if (!grouped) return await dispatch(rowed, rows, ad);
  const parts: BlockTensor[] = [
    { t: x, cols: grouped.cols, role: "in" },
    { t: out, cols: grouped.cols, role: ad.dense ? "out" : "inout" },
    ...(stats ? [{ t: stats, cols: grouped.rows, role: "out" as const }] : []),
  ];
  await forBlocks(
    gpu,
    "rmsNorm",
    grouped.blocks,
    parts,
    (b, _f, n) => dispatch(b, n * grouped.rows, grouped.at(n)),
  );
}

/** Blocks of whole row groups for {@link forBlocks} ({@link groupBlocks}). */
export interface GroupBlocks {
  /** Block rows in all (groups; plain rows when the addressing is dense). */
  blocks: number;
  /** Elements per block row of the addressed tensors. */
  cols: number;
  /** Norm rows per block row (per-row tensors such as `stats` have this many elements per block row). */
  rows: number;
  /** The addressing of `n` block rows bound from element 0. */
  at(n: number): ResolvedAddressing;
}

/**
 * How to cut addressed rows into blocks past the binding limit: plain rows for a dense layout; for a
 * strided one, whole groups of `groupStride` elements, when each group lies inside its own stride (the
 * offset plus the group's span at most groupStride), every group is full and the `addressed` tensors hold
 * every group whole. Undefined when neither applies (the rows are then bound whole and a tensor over the
 * limit fails at launch, naming it).
 */
export function groupBlocks(
  ad: ResolvedAddressing,
  rows: number,
  cols: number,
  addressed: GpuTensor[],
): GroupBlocks | undefined {
  if (ad.dense) return { blocks: rows, cols, rows: 1, at: (n) => denseAddressing(n, cols) };
  const { offset, rowsPerGroup: g, groupStride: gs, rowStride } = ad;
  const groups = rows / g;
  const fits = Number.isInteger(groups) && offset + (g - 1) * rowStride + cols <= gs &&
    addressed.every((t) => t.numel >= groups * gs);
  if (!fits) return undefined;
  return {
    blocks: groups,
    cols: gs,
    rows: g,
    at: (n) => ({ ...ad, span: (n - 1) * gs + offset + (g - 1) * rowStride + cols }),
  };
}

/** The addressing of `n` plain rows of `cols` elements. */
export function denseAddressing(n: number, cols: number): ResolvedAddressing {
  return { offset: 0, rowsPerGroup: n, groupStride: n * cols, rowStride: cols, span: n * cols, dense: true };
}

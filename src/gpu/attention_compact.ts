/**
 * Attention when one sequence's qkv rows are over the storage-binding limit (long sequences of wide
 * models, or a lowered limit): the kernels bind a whole sequence, so each sequence runs in blocks of
 * heads whose q, k and v columns are first copied into a compact buffer ([T, (heads + 2 · kv heads) · D],
 * q | k | v blocked), whose outputs land in a compact buffer and are copied back into their columns.
 * Used by `attention` and `attentionBackward`; copies are recorded in command order, so the results are
 * those of the one dispatch (each output row is computed from the same values in the same order).
 */
import { GpuError } from "../errors.ts";
import type { QkvLayout, ResolvedAttention } from "./attention.ts";
import type { Gpu } from "./device.ts";
import { copyTensor, type GpuTensor, windowSlackElems } from "./tensor.ts";

/** Contiguous column runs of one row: `len` columns from `src` (source row) to `dst` (compact row). */
export type Segment = { src: number; dst: number; len: number };

/** One block of heads of {@link compactHeadBlocks}. */
export interface CompactBlock {
  /** First query head. */
  h0: number;
  /** Query heads in the block (whole groups of query heads sharing a kv head). */
  nHead: number;
  /** The block's geometry on its compact buffers: one sequence, blocked q | k | v, output [T, nHead · D]. */
  geometry: ResolvedAttention;
  /** Floats per compact qkv row. */
  width: number;
  /** Where the block's q, k and v columns sit in a source row and in a compact row. */
  segments: Segment[];
}

function merged(runs: Segment[]): Segment[] {
  const out: Segment[] = [];
  for (const s of runs) {
    const p = out[out.length - 1];
    if (p && p.src + p.len === s.src && p.dst + p.len === s.dst) p.len += s.len;
    else out.push({ ...s });
  }
  return out;
}

/**
 * The heads of a sequence in blocks of whole kv groups such that the block's compact qkv rows, its output
 * rows and (with `probs`) its probabilities each fit one binding. Throws {@link GpuError} naming `qkv`
 * when one group does not fit.
 */
export function compactHeadBlocks(
  gpu: Gpu,
  r: ResolvedAttention,
  what: string,
  qkv: GpuTensor,
  probs: boolean,
): CompactBlock[] {
  const { T, layout: l } = r;
  const D = l.headDim, G = l.nHead / l.nKvHead;
  const span = windowSlackElems(gpu);
  // Per group: compact qkv columns (G + 2) · D, output columns G · D, probabilities G · T · T.
  const perGroup = Math.max(T * (G + 2) * D, probs ? G * T * T : 0);
  const groups = Math.min(l.nKvHead, Math.floor(span / perGroup));
  if (groups < 1) {
    throw new GpuError(
      `${what}: one sequence's ${G} query head(s) sharing a kv head need ${
        perGroup * 4
      } bytes of one binding ` +
        `at T = ${T} (head size ${D}), over the storage-binding limit of ${gpu.bindingLimit} bytes`,
      { field: qkv.name },
    );
  }
  const blocks: CompactBlock[] = [];
  for (let g0 = 0; g0 < l.nKvHead; g0 += groups) {
    const nKv = Math.min(groups, l.nKvHead - g0), nHead = nKv * G, h0 = g0 * G;
    const layout: QkvLayout = {
      nHead,
      nKvHead: nKv,
      headDim: D,
      rowStride: (nHead + 2 * nKv) * D,
      qOffset: 0,
      kOffset: nHead * D,
      vOffset: (nHead + nKv) * D,
      qHeadStride: D,
      kvHeadStride: D,
    };
    const runs: Segment[] = [];
    for (let h = 0; h < nHead; h++) {
      runs.push({ src: l.qOffset + (h0 + h) * l.qHeadStride, dst: h * D, len: D });
    }
    for (let g = 0; g < nKv; g++) {
      runs.push({ src: l.kOffset + (g0 + g) * l.kvHeadStride, dst: layout.kOffset + g * D, len: D });
    }
    for (let g = 0; g < nKv; g++) {
      runs.push({ src: l.vOffset + (g0 + g) * l.kvHeadStride, dst: layout.vOffset + g * D, len: D });
    }
    // `aligned` stays the source's: the launcher picks the kernel path once per call (compact offsets are
    // multiples of 4 whenever the source's are).
    const geometry: ResolvedAttention = { ...r, B: 1, layout, oStride: nHead * D, oBase: 0 };
    blocks.push({ h0, nHead, geometry, width: layout.rowStride, segments: merged(runs) });
  }
  return blocks;
}

/**
 * Records the copies of rows `first .. first + rows - 1` of `src` (rows of `srcStride` floats) into the
 * compact rows 0.. of `dst` (rows of `dstStride`), segment by segment; `back` copies the other way.
 */
export function copyRowSegments(
  src: GpuTensor,
  srcStride: number,
  dst: GpuTensor,
  dstStride: number,
  first: number,
  rows: number,
  segments: Segment[],
  back = false,
): void {
  for (let t = 0; t < rows; t++) {
    for (const s of segments) {
      if (back) copyTensor(dst, src, s.len, t * dstStride + s.dst, (first + t) * srcStride + s.src);
      else copyTensor(src, dst, s.len, (first + t) * srcStride + s.src, t * dstStride + s.dst);
    }
  }
}

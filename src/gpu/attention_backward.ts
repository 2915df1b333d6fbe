/**
 * Launcher for causal self-attention backward (`kernels/attention_backward.wgsl`,
 * `kernels/attention_backward_wide.wgsl`), the gradient of {@link attention}: any q/k/v layout,
 * grouped-query attention, sliding windows; plus the FLOP count used by `deno bench`.
 */
import { ShapeError } from "../errors.ts";
import {
  type AttentionGeometry,
  attentionPairs,
  attentionParams,
  resolveAttention,
  type ResolvedAttention,
  sequenceHeadBlocks,
} from "./attention.ts";
import { compactHeadBlocks, copyRowSegments } from "./attention_compact.ts";
import { type BlockTensor, fitsBinding, forBlocks, type StorageBinding, withRange } from "./blocks.ts";
import { residualAddInPlace } from "./residual.ts";
import type { Gpu } from "./device.ts";
import { grid, launch } from "./pipeline.ts";
import { createTensor, elementWindow, type GpuTensor, windowSlackElems } from "./tensor.ts";

/** Invocations per workgroup (one per query row, then one per key row). */
const WG = 64;

/** Head sizes up to this use `kernels/attention_backward.wgsl` (shorter private arrays). */
const NARROW_MAX_HEAD_SIZE = 128;

/** Elements of the largest dS block (whole sequences of `perSeq` elements) that fits one binding. */
function blockScratch(gpu: Gpu, perSeq: number): number {
  return Math.max(1, Math.floor(windowSlackElems(gpu) / perSeq)) * perSeq;
}

/**
 * Options of {@link attentionBackward}: the forward's geometry ({@link AttentionGeometry}: GPT-2's
 * `{ B, T, C, nHead }` or `{ B, T, layout }`, and the same `scale`). The probabilities already encode the
 * forward's window, so `window` may be omitted (same result up to rounding); passing the forward's window
 * only skips the pairs it hides. A window smaller than the forward's would drop gradient terms.
 */
export type AttentionBackwardOptions = AttentionGeometry & {
  /** When true, the gradients are added to `dqkv` (`+=`); when false (default) they overwrite it (`=`). */
  accumulate?: boolean;
  /**
   * Optional f32 scratch of at least B*nHead*T*T elements (contents ignored, overwritten) for the
   * intermediate dS. When omitted, a scratch buffer cached per device is used (grown as needed, never
   * shrunk); it is shared by all calls, which is safe as long as calls are recorded one after another
   * (each awaited), as every engram launcher is used.
   */
  scratch?: GpuTensor;
};
function checkSize(t: GpuTensor, want: number, what: string, dims: string, atLeast = false): void {
  if (t.dtype !== "f32") throw new ShapeError(`${what} must be f32, got ${t.dtype}`, { field: t.name });
  if (atLeast ? t.numel < want : t.numel !== want) {
    throw new ShapeError(
      `${what} has shape [${t.shape}] (${t.numel} elements), expected ${
        atLeast ? "at least " : ""
      }${dims} = ${want}`,
      { field: t.name },
    );
  }
}

const scratchCache = new WeakMap<Gpu, GpuTensor>();

function cachedScratch(gpu: Gpu, n: number): GpuTensor {
  const have = scratchCache.get(gpu);
  if (have && have.numel >= n) return have;
  have?.destroy();
  const t = createTensor(gpu, [n], { name: "attentionBackward.scratch" });
  scratchCache.set(gpu, t);
  return t;
}

/**
 * Causal self-attention backward. Per sequence b and query head h (reading kv head
 * g = floor(h / (nHead / nKvHead))), with P the forward's probabilities, dO the gradient of the output
 * and `scale` the forward's (default 1 / sqrt(D)):
 *
 * - `dV = P^T dO`, `dP = dO V^T`, `dS = P ⊙ (dP - rowsum(dP ⊙ P))` (visible pairs only),
 * - `dQ = scale · dS K`, `dK = scale · dS^T Q`,
 *
 * where a kv head's dK and dV sum over the query heads that share it. Written into `dqkv` in the qkv
 * layout (`opts.layout`, default GPT-2's q | k | v blocks): every q, k and v element, `+=` with
 * `opts.accumulate`, else `=` (columns that belong to no head are not touched). Tensors (any shapes
 * with these element counts): `qkv` [B*T, rowStride] (the forward's input), `probs` [B, nHead, T, T]
 * as written by the forward's `probs` option, `dout` [B*T, nHead*D], `dqkv` [B*T, rowStride]; `dqkv`
 * must not alias an input.
 *
 * Past the storage-binding limit ({@link Gpu.bindingLimit}) the batch runs in blocks of whole sequences
 * (same results; the scratch then needs only one block's dS), each sequence in blocks of heads when its
 * probabilities, or its qkv / dout rows (then through compact copies), are over it.
 *
 * Records two dispatches (dQ per query row, which also writes dS into the scratch; then dK, dV per kv
 * key row; two per block past the limit), no atomics, deterministic; nothing runs until the next
 * {@link Gpu.flush} (or a read). Throws {@link ShapeError} naming the offending tensor or option on any
 * size, dtype or aliasing mismatch.
 */
export async function attentionBackward(
  gpu: Gpu,
  qkv: GpuTensor,
  probs: GpuTensor,
  dout: GpuTensor,
  dqkv: GpuTensor,
  opts: AttentionBackwardOptions,
): Promise<void> {
  const r = resolveAttention(opts, "attentionBackward");
  const { B, T, layout: l } = r;
  const D = l.headDim, H = l.nHead;
  const nP = B * H * T * T;
  checkSize(qkv, B * T * l.rowStride, "attentionBackward input qkv", "B*T*rowStride");
  checkSize(probs, nP, "attentionBackward probs", "B*nHead*T*T");
  checkSize(dout, B * T * H * D, "attentionBackward dout", "B*T*nHead*headDim");
  checkSize(dqkv, B * T * l.rowStride, "attentionBackward dqkv", "B*T*rowStride");
  for (const t of [qkv, probs, dout]) {
    if (dqkv.buffer === t.buffer) {
      throw new ShapeError(`attentionBackward dqkv must not alias '${t.name}'`, { field: dqkv.name });
    }
  }
  let scratch = opts.scratch;
  if (scratch) {
    checkSize(scratch, nP, "attentionBackward scratch", "B*nHead*T*T", true);
    for (const t of [qkv, probs, dout, dqkv]) {
      if (scratch.buffer === t.buffer) {
        throw new ShapeError(`attentionBackward scratch must not alias '${t.name}'`, { field: scratch.name });
      }
    }
  }
  const fits = fitsBinding(gpu, qkv, probs, dout, dqkv);
  const span = windowSlackElems(gpu);
  // One sequence's qkv or dout rows over the limit: blocks of heads on compact copies.
  const compact = !fits && (T * l.rowStride > span || T * H * D > span)
    ? compactHeadBlocks(gpu, r, "attentionBackward", qkv, true)
    : undefined;
  // One sequence's probabilities over the limit: each sequence runs in blocks of heads.
  const heads = !fits && !compact && H * T * T > span
    ? sequenceHeadBlocks(gpu, r, "attentionBackward", probs)
    : undefined;
  // Past the binding limit one block's dS at a time is enough.
  const most = compact ? Math.max(...compact.map((b) => b.nHead)) : heads ? heads[0].nHead : 0;
  scratch ??= cachedScratch(
    gpu,
    fits ? nP : most ? most * T * T : Math.min(nP, blockScratch(gpu, H * T * T)),
  );
  const ds = scratch;
  const kernel = D <= NARROW_MAX_HEAD_SIZE ? "attention_backward" : "attention_backward_wide";
  const constants = { D, WG, VEC4: r.aligned ? 1 : 0 };
  const acc = opts.accumulate ? 1 : 0;
  const dispatch = async (g: ResolvedAttention, bindings: StorageBinding[], b: number, accumulate = acc) => {
    // The scratch holds dS of these b sequences only: a window from its start when it is over the limit.
    const n = b * g.layout.nHead * T * T;
    const s = fitsBinding(gpu, ds) ? ds : elementWindow(ds, 0, n).window;
    const all = [{ uniform: attentionParams(g, b, accumulate) }, ...bindings, s];
    const rows = (heads: number) => grid(gpu, Math.ceil((b * heads * T) / WG));
    await launch(gpu, kernel, "attention_bwd_dq", all, rows(g.layout.nHead), constants);
    await launch(gpu, kernel, "attention_bwd_dkv", all, rows(g.layout.nKvHead), constants);
  };
  if (fits) return await dispatch(r, [qkv, probs, dout, dqkv], B);
  if (compact) {
    const width = Math.max(...compact.map((b) => b.width));
    const compactRows = (n: string) => createTensor(gpu, [T * width], { name: `${qkv.name}.${n}` });
    const cq = compactRows("heads"), cdq = compactRows("dheads");
    const cacc = acc ? compactRows("dheads.acc") : undefined;
    const cdo = createTensor(gpu, [T * most * D], { name: `${dout.name}.heads` });
    try {
      for (let b = 0; b < B; b++) {
        for (const blk of compact) {
          const cols = [{ src: blk.h0 * D, dst: 0, len: blk.nHead * D }];
          copyRowSegments(qkv, l.rowStride, cq, blk.width, b * T, T, blk.segments);
          copyRowSegments(dout, H * D, cdo, blk.nHead * D, b * T, T, cols);
          const at = (b * H + blk.h0) * T * T;
          // The block's gradients overwrite the compact buffer; accumulating adds them to dqkv's old
          // values (the same f32 sum the kernel's "+=" makes).
          await withRange(
            gpu,
            probs,
            at,
            blk.nHead * T * T,
            "in",
            (p) => dispatch(blk.geometry, [cq, p, cdo, cdq], 1, 0),
          );
          let result = cdq;
          if (cacc) {
            copyRowSegments(dqkv, l.rowStride, cacc, blk.width, b * T, T, blk.segments);
            await residualAddInPlace(gpu, cacc, cdq);
            result = cacc;
          }
          copyRowSegments(dqkv, l.rowStride, result, blk.width, b * T, T, blk.segments, true);
        }
      }
    } finally {
      // Freed only after the recorded copies and dispatches are submitted.
      for (const t of [cq, cdq, cacc, cdo]) t?.destroy();
    }
    return;
  }
  // Past the binding limit: blocks of whole sequences (attention never mixes sequences). dqkv is read
  // and written: accumulated into, and its columns outside every head are left as they were.
  const parts: BlockTensor[] = [
    { t: qkv, cols: T * l.rowStride, role: "in" },
    { t: dout, cols: T * H * D, role: "in" },
    { t: dqkv, cols: T * l.rowStride, role: "inout" },
  ];
  if (!heads) {
    parts.splice(1, 0, { t: probs, cols: H * T * T, role: "in" });
    return await forBlocks(gpu, "attentionBackward", B, parts, (b, _first, count) => dispatch(r, b, count));
  }
  // Each head block reads its own kv heads' and query heads' columns only, so the blocks of one
  // sequence write disjoint parts of dqkv.
  await forBlocks(gpu, "attentionBackward", B, parts, async ([q, o, dq], first, count) => {
    for (let j = 0; j < count; j++) {
      for (const blk of heads) {
        const at = ((first + j) * H + blk.h0) * T * T;
        await withRange(
          gpu,
          probs,
          at,
          blk.nHead * T * T,
          "in",
          (p) => dispatch(blk.at(j), [q, p, o, dq], 1),
        );
      }
    }
  });
}

/**
 * Floating-point operations of one backward call: 2·D per visible (query, key) pair for each of dP,
 * dQ, dK and dV (twice {@link attentionFlops} of the forward).
 */
export function attentionBackwardFlops(s: AttentionGeometry): number {
  const H = s.layout ? s.layout.nHead : s.nHead!;
  const D = s.layout ? s.layout.headDim : s.C! / s.nHead!;
  return 8 * s.B * H * D * attentionPairs(s.T, s.window);
}

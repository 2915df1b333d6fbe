/**
 * Launcher for causal self-attention (`kernels/attention.wgsl`, `kernels/attention_wide.wgsl`): any
 * q/k/v layout ({@link QkvLayout}), grouped-query attention, an optional sliding window; plus a
 * throughput measurement shared by `deno bench` and `engram bench`.
 */
import { GpuError, ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import { type BlockTensor, fitsBinding, forBlocks, type StorageBinding, withRange } from "./blocks.ts";
import { compactHeadBlocks, copyRowSegments } from "./attention_compact.ts";
import { createTensor, type GpuTensor, windowSlackElems } from "./tensor.ts";

/** Largest head size D the kernels support (GPT-J-6B's 256; the private arrays of the wide kernel). */
export const ATTENTION_MAX_HEAD_SIZE = 256;

/** Head sizes up to this use `kernels/attention.wgsl` (half the private memory per invocation). */
const NARROW_MAX_HEAD_SIZE = 128;

/** Invocations per workgroup (one per query row). */
const WG = 64;

/**
 * Where the query, key and value heads sit in one qkv buffer of B*T rows (all in f32 elements).
 * Element d of query head h in row r is at `r*rowStride + qOffset + h*qHeadStride + d`; element d of
 * kv head g at `r*rowStride + kOffset + g*kvHeadStride + d` (values likewise with `vOffset`). Query head
 * h reads kv head `floor(h / (nHead / nKvHead))`. Build one with {@link blockedQkvLayout} or
 * {@link neoxQkvLayout}; the q, k and v slices must not overlap and must fit in a row.
 */
export interface QkvLayout {
  /** Query heads H. */
  nHead: number;
  /** Key/value heads KV; divides H (KV = H: multi-head, KV < H: grouped-query attention). */
  nKvHead: number;
  /** Head size D (1..{@link ATTENTION_MAX_HEAD_SIZE}). */
  headDim: number;
  /** Elements per row of the qkv buffer. */
  rowStride: number;
  /** Offset of query head 0 in a row. */
  qOffset: number;
  /** Offset of key head 0 in a row. */
  kOffset: number;
  /** Offset of value head 0 in a row. */
  vOffset: number;
  /** Distance between consecutive query heads. */
  qHeadStride: number;
  /** Distance between consecutive key heads (and between consecutive value heads). */
  kvHeadStride: number;
}

/**
 * Row = all H query heads, then all KV key heads, then all KV value heads, each head D contiguous
 * elements: GPT-2's c_attn output (KV = H) and Llama-family fused q/k/v projections.
 */
export function blockedQkvLayout(nHead: number, nKvHead: number, headDim: number): QkvLayout {
  return {
    nHead,
    nKvHead,
    headDim,
    rowStride: (nHead + 2 * nKvHead) * headDim,
    qOffset: 0,
    kOffset: nHead * headDim,
    vOffset: (nHead + nKvHead) * headDim,
    qHeadStride: headDim,
    kvHeadStride: headDim,
  };
}

/** Row = per head [q (D) k (D) v (D)] for h = 0..H-1: GPT-NeoX's query_key_value output. */
export function neoxQkvLayout(nHead: number, headDim: number): QkvLayout {
  return {
    nHead,
    nKvHead: nHead,
    headDim,
    rowStride: 3 * nHead * headDim,
    qOffset: 0,
    kOffset: headDim,
    vOffset: 2 * headDim,
    qHeadStride: 3 * headDim,
    kvHeadStride: 3 * headDim,
  };
}

/** Sizes of one GPT-2-style attention call: B sequences of T tokens, model width C split into nHead heads. */
export interface AttentionShape {
  /** Batch size (sequences). */
  B: number;
  /** Sequence length (tokens per sequence). */
  T: number;
  /** Model width; the head size is D = C / nHead. */
  C: number;
  /** Number of heads; must divide C. */
  nHead: number;
}

/**
 * Geometry of one attention call, shared by {@link attention} and `attentionBackward`: either
 * GPT-2's `{ B, T, C, nHead }` (meaning `blockedQkvLayout(nHead, nHead, C / nHead)`) or
 * `{ B, T, layout }` (then `C` is ignored, and `nHead`, when given, must equal `layout.nHead`).
 */
export type AttentionGeometry =
  & {
    /** Batch size (sequences). */
    B: number;
    /** Sequence length (tokens per sequence). */
    T: number;
    /**
     * Sliding window (Mistral, Qwen2): key s is visible to query t iff s ≤ t and t − s < window
     * (Hugging Face's `kv_idx > q_idx - sliding_window`). Omitted: plain causal attention.
     */
    window?: number;
    /** Score scale; default 1 / sqrt(headDim). */
    scale?: number;
  }
  & (
    | { C: number; nHead: number; layout?: undefined }
    | { layout: QkvLayout; C?: number; nHead?: number }
  );

/** Options of {@link attention}: the geometry, and optionally where to write the probabilities. */
export type AttentionOptions = AttentionGeometry & {
  /**
   * Optional output [B, nHead, T, T] (any shape with that many elements): the softmax probabilities,
   * row (b, h, t) over keys s; entries of invisible keys (s > t, or outside the window) are written as 0.
   */
  probs?: GpuTensor;
};

/** {@link AttentionGeometry} resolved and checked: the layout, and the window as the kernels take it. */
export interface ResolvedAttention {
  B: number;
  T: number;
  layout: QkvLayout;
  /** min(window, T) (T without a window): every key within this distance back is visible. */
  window: number;
  scale: number;
  /** Every offset and stride a multiple of 4: the kernels' vec4 path applies. */
  aligned: boolean;
  /** Floats per row of the output (and of the backward's dout): nHead * headDim. */
  oStride: number;
  /** Float offset of the first head's output: 0 (a head block of {@link sequenceHeadBlocks} shifts it). */
  oBase: number;
}

const posInt = (v: unknown) => Number.isInteger(v) && (v as number) >= 1;
const natInt = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;

/**
 * Checks an {@link AttentionGeometry} and resolves it (the default layout, window and scale). Throws
 * {@link ShapeError} naming the offending field (`layout.<field>` for layout fields); `who` prefixes
 * the messages.
 */
export function resolveAttention(g: AttentionGeometry, who = "attention"): ResolvedAttention {
  const { B, T } = g;
  for (const [k, v] of Object.entries({ B, T })) {
    if (!posInt(v)) throw new ShapeError(`${who}: ${k} = ${v} must be a positive integer`, { field: k });
  }
  let layout: QkvLayout;
  if (g.layout === undefined) {
    const { C, nHead } = g;
    for (const [k, v] of Object.entries({ C, nHead })) {
      if (!posInt(v)) throw new ShapeError(`${who}: ${k} = ${v} must be a positive integer`, { field: k });
    }
    if (C % nHead !== 0) {
      throw new ShapeError(`${who}: C = ${C} is not divisible by nHead = ${nHead}`, { field: "nHead" });
    }
    layout = blockedQkvLayout(nHead, nHead, C / nHead);
  } else {
    layout = g.layout;
    checkLayout(layout, who);
    if (g.nHead !== undefined && g.nHead !== layout.nHead) {
      throw new ShapeError(`${who}: nHead = ${g.nHead} differs from layout.nHead = ${layout.nHead}`, {
        field: "nHead",
      });
    }
  }
  const D = layout.headDim;
  if (D > ATTENTION_MAX_HEAD_SIZE) {
    throw new ShapeError(`${who}: head size ${D} exceeds the supported ${ATTENTION_MAX_HEAD_SIZE}`, {
      field: g.layout ? "layout.headDim" : "nHead",
    });
  }
  if (g.window !== undefined && !posInt(g.window)) {
    throw new ShapeError(`${who}: window = ${g.window} must be a positive integer`, { field: "window" });
  }
  const scale = g.scale ?? 1 / Math.sqrt(D);
  if (!Number.isFinite(scale)) {
    throw new ShapeError(`${who}: scale = ${scale} must be finite`, { field: "scale" });
  }
  const l = layout;
  const aligned = [D, l.rowStride, l.qOffset, l.kOffset, l.vOffset, l.qHeadStride, l.kvHeadStride]
    .every((v) => v % 4 === 0);
  const window = Math.min(g.window ?? T, T);
  return { B, T, layout, window, scale, aligned, oStride: layout.nHead * D, oBase: 0 };
}

function checkLayout(l: QkvLayout, who: string): void {
  const fields = ["nHead", "nKvHead", "headDim", "rowStride"] as const;
  for (const k of fields) {
    if (!posInt(l[k])) {
      throw new ShapeError(`${who}: layout.${k} = ${l[k]} must be a positive integer`, {
        field: `layout.${k}`,
      });
    }
  }
  for (const k of ["qOffset", "kOffset", "vOffset", "qHeadStride", "kvHeadStride"] as const) {
    if (!natInt(l[k])) {
      throw new ShapeError(`${who}: layout.${k} = ${l[k]} must be a non-negative integer`, {
        field: `layout.${k}`,
      });
    }
  }
  if (l.nHead % l.nKvHead !== 0) {
    throw new ShapeError(`${who}: layout.nKvHead = ${l.nKvHead} does not divide nHead = ${l.nHead}`, {
      field: "layout.nKvHead",
    });
  }
  // Every head slice inside the row and no two overlapping (the backward writes each one once).
  const D = l.headDim;
  const slices: Array<[number, string]> = [];
  for (let h = 0; h < l.nHead; h++) slices.push([l.qOffset + h * l.qHeadStride, `q head ${h}`]);
  for (let g = 0; g < l.nKvHead; g++) {
    slices.push([l.kOffset + g * l.kvHeadStride, `k head ${g}`]);
    slices.push([l.vOffset + g * l.kvHeadStride, `v head ${g}`]);
  }
  slices.sort((a, b) => a[0] - b[0]);
  for (let i = 0; i < slices.length; i++) {
    const [at, what] = slices[i];
    if (at + D > l.rowStride) {
      throw new ShapeError(
        `${who}: layout puts ${what} at ${at}..${at + D - 1}, beyond rowStride = ${l.rowStride}`,
        { field: "layout.rowStride" },
      );
    }
    if (i > 0 && slices[i - 1][0] + D > at) {
      throw new ShapeError(`${who}: layout overlaps ${slices[i - 1][1]} and ${what} (headDim ${D})`, {
        field: "layout",
      });
    }
  }
}

function checkSize(t: GpuTensor, want: number, what: string, dims: string): void {
  if (t.dtype !== "f32") throw new ShapeError(`${what} must be f32, got ${t.dtype}`, { field: t.name });
  if (t.numel !== want) {
    throw new ShapeError(`${what} has shape [${t.shape}] (${t.numel} elements), expected ${dims} = ${want}`, {
      field: t.name,
    });
  }
}

/**
 * Causal self-attention forward: for each sequence b, query head h (reading kv head
 * g = floor(h / (nHead / nKvHead))) and query position t,
 * `out[b*T + t, h*D + d] = sum_s softmax_s(scale · q_t · k_s) * v_s[d]` over the visible keys s
 * (s ≤ t, and t − s < window when `opts.window` is set), softmax in f32 with max subtraction.
 *
 * - `qkv` [B*T, rowStride] (any shape with that many elements), laid out as `opts.layout` says
 *   (default: GPT-2's c_attn output [B*T, 3C], `blockedQkvLayout(nHead, nHead, C / nHead)`);
 *   head size D = layout.headDim ≤ {@link ATTENTION_MAX_HEAD_SIZE}.
 * - `out` [B*T, nHead*D]: heads concatenated, head h in columns h*D.. (the output projection's input).
 * - `opts.probs` [B, nHead, T, T], optional: the attention probabilities (0 for invisible keys).
 *
 * When a tensor is larger than one storage binding ({@link Gpu.bindingLimit}: the probabilities of many
 * long sequences), the batch runs in blocks of whole sequences, one dispatch each, with the same results;
 * when one sequence's probabilities are over it, each sequence runs in blocks of heads
 * ({@link sequenceHeadBlocks}); when one sequence's qkv or output rows are over it, each sequence runs in
 * blocks of heads copied into compact buffers (`compactHeadBlocks`). One kv group that does not fit even so
 * is a {@link GpuError}.
 *
 * Records the dispatch (one per block); nothing runs until the next {@link Gpu.flush} (or a read). Throws
 * {@link ShapeError} naming the offending tensor or option on any size mismatch.
 */
export async function attention(
  gpu: Gpu,
  qkv: GpuTensor,
  out: GpuTensor,
  opts: AttentionOptions,
): Promise<void> {
  const r = resolveAttention(opts, "attention");
  const { B, T, layout: l } = r;
  const { probs } = opts;
  const D = l.headDim, H = l.nHead;
  checkSize(qkv, B * T * l.rowStride, "attention input qkv", "B*T*rowStride");
  checkSize(out, B * T * H * D, "attention output", "B*T*nHead*headDim");
  if (out === qkv || out.buffer === qkv.buffer) {
    throw new ShapeError("attention output must not alias its qkv input", { field: out.name });
  }
  if (probs) {
    checkSize(probs, B * H * T * T, "attention probs", "B*nHead*T*T");
    if (probs.buffer === qkv.buffer || probs.buffer === out.buffer) {
      throw new ShapeError("attention probs must not alias qkv or out", { field: probs.name });
    }
  }
  const kernel = D <= NARROW_MAX_HEAD_SIZE ? "attention" : "attention_wide";
  const constants = { D, WG, VEC4: r.aligned ? 1 : 0 };
  const dispatch = async (
    g: ResolvedAttention,
    q: StorageBinding,
    o: StorageBinding,
    p: StorageBinding | undefined,
    b: number,
  ) => {
    const params = { uniform: attentionParams(g, b) };
    const wg = grid(gpu, Math.ceil((b * g.layout.nHead * T) / WG));
    if (p) await launch(gpu, kernel, "attention_probs", [params, q, o, p], wg, constants);
    else await launch(gpu, kernel, "attention_fwd", [params, q, o], wg, constants);
  };
  const all = probs ? [qkv, out, probs] : [qkv, out];
  if (fitsBinding(gpu, ...all)) return await dispatch(r, qkv, out, probs, B);
  const span = windowSlackElems(gpu);
  if (T * l.rowStride > span || T * H * D > span) {
    // One sequence's qkv or output rows are over the limit: blocks of heads on compact copies.
    const blocks = compactHeadBlocks(gpu, r, "attention", qkv, probs !== undefined);
    const cq = createTensor(gpu, [T * Math.max(...blocks.map((b) => b.width))], {
      name: `${qkv.name}.heads`,
    });
    const co = createTensor(gpu, [T * Math.max(...blocks.map((b) => b.nHead)) * D], {
      name: `${out.name}.heads`,
    });
    try {
      for (let b = 0; b < B; b++) {
        for (const blk of blocks) {
          copyRowSegments(qkv, l.rowStride, cq, blk.width, b * T, T, blk.segments);
          const run = (p?: StorageBinding) => dispatch(blk.geometry, cq, co, p, 1);
          if (probs) await withRange(gpu, probs, (b * H + blk.h0) * T * T, blk.nHead * T * T, "out", run);
          else await run();
          const cols = [{ src: blk.h0 * D, dst: 0, len: blk.nHead * D }];
          copyRowSegments(out, H * D, co, blk.nHead * D, b * T, T, cols, true);
        }
      }
    } finally {
      // Freed only after the recorded copies and dispatches are submitted.
      cq.destroy();
      co.destroy();
    }
    return;
  }
  const parts: BlockTensor[] = [
    { t: qkv, cols: T * l.rowStride, role: "in" },
    { t: out, cols: T * H * D, role: "out" },
  ];
  if (!probs || H * T * T <= span) {
    // Past the binding limit (probs [B, H, T, T] of many sequences): blocks of whole sequences, which
    // the kernel treats as a smaller batch.
    if (probs) parts.push({ t: probs, cols: H * T * T, role: "out" });
    return await forBlocks(gpu, "attention", B, parts, ([q, o, p], _f, b) => dispatch(r, q, o, p, b));
  }
  // One sequence's probabilities are over the limit (many heads, long T): blocks of whole sequences of
  // qkv and out, and within each sequence blocks of heads, each writing its probabilities through a
  // binding that fits.
  const blocks = sequenceHeadBlocks(gpu, r, "attention", probs);
  await forBlocks(gpu, "attention", B, parts, async ([q, o], first, count) => {
    for (let j = 0; j < count; j++) {
      for (const blk of blocks) {
        const at = ((first + j) * H + blk.h0) * T * T;
        await withRange(gpu, probs, at, blk.nHead * T * T, "out", (p) => dispatch(blk.at(j), q, o, p, 1));
      }
    }
  });
}

/** One block of a sequence's heads ({@link sequenceHeadBlocks}). */
export interface HeadBlock {
  /** First query head. */
  h0: number;
  /** Query heads in the block (a multiple of nHead / nKvHead). */
  nHead: number;
  /** The geometry of this block for sequence j of a bound block of sequences (B = 1). */
  at(j: number): ResolvedAttention;
}

/**
 * The heads of one sequence in consecutive blocks whose probabilities (block heads · T · T floats) fit
 * one binding; each block is whole groups of query heads sharing kv heads, so that the backward writes
 * each kv head from one block. The geometry of a block addresses sequence j and its heads through the
 * layout's offsets and the output base alone, so the kernels need no extra index. Throws
 * {@link GpuError} naming `probs` when one group's probabilities do not fit.
 */
export function sequenceHeadBlocks(
  gpu: Gpu,
  r: ResolvedAttention,
  what: string,
  probs: GpuTensor,
): HeadBlock[] {
  const { T, layout: l } = r;
  const G = l.nHead / l.nKvHead;
  const groups = Math.floor(windowSlackElems(gpu) / (G * T * T));
  if (groups < 1) {
    throw new GpuError(
      `${what}: the probabilities of one sequence's ${G} head(s) sharing a kv head (${G * T * T * 4} bytes ` +
        `at T = ${T}) are over the storage-binding limit of ${gpu.bindingLimit} bytes`,
      { field: probs.name },
    );
  }
  const blocks: HeadBlock[] = [];
  for (let h0 = 0; h0 < l.nHead; h0 += groups * G) {
    const nHead = Math.min(groups * G, l.nHead - h0);
    const g0 = h0 / G;
    const at = (j: number): ResolvedAttention => {
      const seq = j * T * l.rowStride;
      return {
        ...r,
        B: 1,
        layout: {
          ...l,
          nHead,
          nKvHead: nHead / G,
          qOffset: seq + l.qOffset + h0 * l.qHeadStride,
          kOffset: seq + l.kOffset + g0 * l.kvHeadStride,
          vOffset: seq + l.vOffset + g0 * l.kvHeadStride,
        },
        oBase: j * T * r.oStride + h0 * l.headDim,
      };
    };
    blocks.push({ h0, nHead, at });
  }
  return blocks;
}

/**
 * The Params uniform shared by the forward and backward kernels for `b` sequences (the backward appends
 * its accumulate flag).
 */
export function attentionParams(r: ResolvedAttention, b: number, ...extra: number[]): ArrayBuffer {
  const l = r.layout;
  return uniforms(
    b,
    r.T,
    l.nHead,
    l.nHead / l.nKvHead,
    l.rowStride,
    l.qOffset,
    l.kOffset,
    l.vOffset,
    l.qHeadStride,
    l.kvHeadStride,
    r.window,
    { f: r.scale },
    r.oStride,
    r.oBase,
    ...extra,
  );
}

/** Visible (query, key) pairs of one sequence and head: T(T+1)/2, fewer with a window W < T. */
export function attentionPairs(T: number, window = T): number {
  const W = Math.min(window, T);
  return (W * (W + 1)) / 2 + (T - W) * W;
}

/** Floating-point operations of one causal attention call: 2·D per visible (query, key) pair for q·k and as many for p·v. */
export function attentionFlops(s: AttentionGeometry): number {
  const H = s.layout ? s.layout.nHead : s.nHead!;
  const D = s.layout ? s.layout.headDim : s.C! / s.nHead!;
  return 4 * s.B * H * D * attentionPairs(s.T, s.window);
}

/** One {@link measureAttention} result: milliseconds per call and the implied GFLOP/s. */
export interface AttentionMeasurement {
  config: AttentionShape & { probs: boolean };
  /** Mean wall time per call, ms: `callsPerFlush` calls recorded, then one awaited `gpu.flush()`. */
  ms: number;
  /** {@link attentionFlops} / time, 1e9 FLOP/s. */
  gflops: number;
  /** Calls recorded per flush (amortises submit/wait latency, ~12 ms per flush on llvmpipe). */
  callsPerFlush: number;
}

/**
 * Times {@link attention} on deterministic pseudo-random inputs for each config: one warm-up flush,
 * then `iters` rounds of `callsPerFlush` calls each followed by an awaited `gpu.flush()`. Set
 * `probs: true` in a config to time the probabilities variant.
 */
export async function measureAttention(
  gpu: Gpu,
  configs: Array<AttentionShape & { probs?: boolean }>,
  iters = 3,
  callsPerFlush = 4,
): Promise<AttentionMeasurement[]> {
  const results: AttentionMeasurement[] = [];
  for (const cfg of configs) {
    const { B, T, C, nHead } = cfg;
    const data = new Float32Array(B * T * 3 * C);
    for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.7368) * 1.3;
    const qkv = createTensor(gpu, [B, T, 3 * C], { name: "bench.qkv", data });
    const out = createTensor(gpu, [B, T, C], { name: "bench.att" });
    const probs = cfg.probs ? createTensor(gpu, [B, nHead, T, T], { name: "bench.probs" }) : undefined;
    const opts = { B, T, C, nHead, probs };
    await attention(gpu, qkv, out, opts);
    await gpu.flush();
    const t0 = performance.now();
    for (let i = 0; i < iters; i++) {
      for (let j = 0; j < callsPerFlush; j++) await attention(gpu, qkv, out, opts);
      await gpu.flush();
    }
    const ms = (performance.now() - t0) / (iters * callsPerFlush);
    qkv.destroy();
    out.destroy();
    probs?.destroy();
    results.push({
      config: { B, T, C, nHead, probs: Boolean(cfg.probs) },
      ms,
      gflops: attentionFlops(cfg) / (ms * 1e6),
      callsPerFlush,
    });
  }
  await gpu.flush();
  return results;
}

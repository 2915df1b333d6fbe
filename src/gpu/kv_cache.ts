/**
 * A key/value cache for incremental decoding (`kernels/kv_append.wgsl`, `kernels/attention_cached.wgsl`):
 * per layer, the keys and values of every position seen so far, after q/k norms and rotary, one block per
 * kv head ([B, KV, maxLen, D]). A step appends the new rows' keys and values, then attends the new queries
 * over the cache, so generating a token costs one row of every projection instead of a full forward.
 */
import { ShapeError } from "../errors.ts";
import type { QkvLayout } from "./attention.ts";
import { ATTENTION_MAX_HEAD_SIZE } from "./attention.ts";
import type { Gpu } from "./device.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import { createTensor, type GpuTensor } from "./tensor.ts";

/** Keys and values of one layer: each [B, nKvHead, maxLen, headDim]. */
export interface KvLayer {
  /** Cached keys (after q/k norm and rotary). */
  k: GpuTensor;
  /** Cached values. */
  v: GpuTensor;
}

/**
 * The KV cache of B sequences decoded together: `length` positions filled out of `maxLen`. Create one
 * with `TransformerModel.createKvCache`; free it with {@link KvCache.destroy}.
 */
export class KvCache {
  /** Positions filled so far (the next token's position). */
  length = 0;
  /** Per-layer keys and values. */
  readonly layers: KvLayer[];

  /** Allocates `nLayer` key and value blocks of [B, layout.nKvHead, maxLen, layout.headDim]. */
  constructor(
    /** The device holding the cache. */
    readonly gpu: Gpu,
    /** Sequences decoded together. */
    readonly B: number,
    /** Capacity in positions. */
    readonly maxLen: number,
    /** The qkv layout of the model whose keys it holds. */
    readonly layout: QkvLayout,
    nLayer: number,
  ) {
    for (const [k, v] of Object.entries({ B, maxLen, nLayer })) {
      if (!Number.isInteger(v) || v < 1) {
        throw new ShapeError(`kv cache: ${k} = ${v} must be >= 1`, { field: k });
      }
    }
    const n = [B, layout.nKvHead, maxLen, layout.headDim];
    this.layers = Array.from({ length: nLayer }, (_, l) => ({
      k: createTensor(gpu, n, { name: `kv_cache.${l}.k` }),
      v: createTensor(gpu, n, { name: `kv_cache.${l}.v` }),
    }));
  }

  /** Frees the cache's GPU memory. */
  destroy(): void {
    for (const l of this.layers) {
      l.k.destroy();
      l.v.destroy();
    }
  }
}

/**
 * Writes the keys and values of `T` new rows per sequence (`qkv` [B*T, rowStride], laid out as
 * `layout`) into `kv` at positions `start .. start+T-1`.
 */
export async function kvAppend(
  gpu: Gpu,
  qkv: GpuTensor,
  kv: KvLayer,
  o: { B: number; T: number; start: number; maxLen: number; layout: QkvLayout },
): Promise<void> {
  const { B, T, start, maxLen, layout: l } = o;
  if (start + T > maxLen) {
    throw new ShapeError(`kv cache holds ${maxLen} positions, ${start} + ${T} requested`, {
      field: "kv_cache",
    });
  }
  if (qkv.numel !== B * T * l.rowStride) {
    throw new ShapeError(`kv append: qkv has ${qkv.numel} elements, expected ${B * T * l.rowStride}`, {
      field: qkv.name,
    });
  }
  const n = B * T * l.nKvHead * l.headDim;
  const params = uniforms(
    B,
    T,
    l.nKvHead,
    l.headDim,
    maxLen,
    start,
    l.rowStride,
    l.kOffset,
    l.vOffset,
    l.kvHeadStride,
  );
  await launch(
    gpu,
    "kv_append",
    "kv_append",
    [{ uniform: params }, qkv, kv.k, kv.v],
    grid(gpu, Math.ceil(n / 64)),
  );
}

/**
 * Attention of `T` new query rows per sequence (`qkv` [B*T, rowStride]) over the cached keys and values
 * `kv` (positions 0 .. start+T-1 filled): new row t at position start+t sees keys s <= start+t, and with a
 * `window` only those with start+t − s < window. Writes `out` [B*T, nHead*D]; scale 1 / sqrt(D).
 */
export async function attentionCached(
  gpu: Gpu,
  qkv: GpuTensor,
  kv: KvLayer,
  out: GpuTensor,
  o: { B: number; T: number; start: number; maxLen: number; layout: QkvLayout; window?: number },
): Promise<void> {
  const { B, T, start, maxLen, layout: l } = o;
  const D = l.headDim, H = l.nHead;
  if (D > ATTENTION_MAX_HEAD_SIZE) {
    throw new ShapeError(`head size ${D} exceeds the supported ${ATTENTION_MAX_HEAD_SIZE}`, {
      field: "headDim",
    });
  }
  if (start + T > maxLen) {
    throw new ShapeError(`kv cache holds ${maxLen} positions, ${start} + ${T} requested`, {
      field: "kv_cache",
    });
  }
  if (out.numel !== B * T * H * D) {
    throw new ShapeError(`cached attention output has ${out.numel} elements, expected ${B * T * H * D}`, {
      field: out.name,
    });
  }
  const window = o.window ?? start + T;
  const params = uniforms(
    B,
    T,
    H,
    H / l.nKvHead,
    maxLen,
    start,
    l.rowStride,
    l.qOffset,
    l.qHeadStride,
    window,
    {
      f: 1 / Math.sqrt(D),
    },
  );
  await launch(
    gpu,
    "attention_cached",
    "attention_cached",
    [{ uniform: params }, qkv, kv.k, kv.v, out],
    grid(gpu, Math.ceil((B * H * T) / 64)),
    { D },
  );
}

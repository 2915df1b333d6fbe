/**
 * Float64 CPU twin of `kernels/attention.wgsl`: causal self-attention forward with any q/k/v layout,
 * grouped-query attention and an optional sliding window. Written independently of the GPU launcher
 * (its own layout arithmetic), so the two can be checked against each other.
 */

/** Where q, k and v heads sit in a qkv row (elements); the same fields as the GPU's `QkvLayout`. */
export interface AttentionRefLayout {
  nHead: number;
  nKvHead: number;
  headDim: number;
  rowStride: number;
  qOffset: number;
  kOffset: number;
  vOffset: number;
  qHeadStride: number;
  kvHeadStride: number;
}

/**
 * Sizes for {@link attentionRef}: B sequences of T tokens, and either GPT-2's width C split into
 * nHead heads (row = q (C) | k (C) | v (C)) or an explicit `layout`; optional sliding `window` (key s
 * visible to query t iff s ≤ t and t − s < window) and score `scale` (default 1 / sqrt(headDim)).
 */
export interface AttentionRefShape {
  B: number;
  T: number;
  C?: number;
  nHead?: number;
  layout?: AttentionRefLayout;
  window?: number;
  scale?: number;
}

/** The layout of `shape` (GPT-2's q | k | v blocks when none is given), checked for divisibility. */
export function refLayout(shape: AttentionRefShape): AttentionRefLayout {
  if (shape.layout) {
    const l = shape.layout;
    if (l.nHead % l.nKvHead !== 0) throw new RangeError(`nKvHead = ${l.nKvHead} does not divide ${l.nHead}`);
    return l;
  }
  const { C, nHead } = shape;
  if (C === undefined || nHead === undefined) throw new RangeError("need C and nHead, or a layout");
  const D = C / nHead;
  if (!Number.isInteger(D)) throw new RangeError(`C = ${C} not divisible by nHead = ${nHead}`);
  return {
    nHead,
    nKvHead: nHead,
    headDim: D,
    rowStride: 3 * C,
    qOffset: 0,
    kOffset: C,
    vOffset: 2 * C,
    qHeadStride: D,
    kvHeadStride: D,
  };
}

/** True when key s is visible to query t. */
export function visible(t: number, s: number, window: number | undefined): boolean {
  return s <= t && (window === undefined || t - s < window);
}

/**
 * Causal self-attention in float64.
 * - `qkv` [B*T, rowStride] as the layout says (default GPT-2's [B, T, 3C]).
 * - returns `out` [B*T, nHead*D] (heads concatenated) and `probs` [B, nHead, T, T] (softmax of
 *   scale·q·k over the visible keys, 0 elsewhere). Query head h reads kv head floor(h / (nHead / nKvHead)).
 */
export function attentionRef(
  qkv: ArrayLike<number>,
  shape: AttentionRefShape,
): { out: Float64Array; probs: Float64Array } {
  const { B, T, window } = shape;
  const L = refLayout(shape);
  const H = L.nHead, D = L.headDim, group = L.nHead / L.nKvHead;
  if (qkv.length !== B * T * L.rowStride) {
    throw new RangeError(`qkv has ${qkv.length} elements, expected ${B * T * L.rowStride}`);
  }
  const scale = shape.scale ?? 1 / Math.sqrt(D);
  const at = (row: number, off: number, head: number, stride: number) =>
    row * L.rowStride + off + head * stride;
  const out = new Float64Array(B * T * H * D);
  const probs = new Float64Array(B * H * T * T);
  const z = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / group);
      for (let t = 0; t < T; t++) {
        const qo = at(b * T + t, L.qOffset, h, L.qHeadStride);
        let m = -Infinity;
        for (let s = 0; s <= t; s++) {
          if (!visible(t, s, window)) continue;
          const ko = at(b * T + s, L.kOffset, g, L.kvHeadStride);
          let dot = 0;
          for (let d = 0; d < D; d++) dot += qkv[qo + d] * qkv[ko + d];
          z[s] = dot * scale;
          if (z[s] > m) m = z[s];
        }
        let sum = 0;
        for (let s = 0; s <= t; s++) {
          if (!visible(t, s, window)) continue;
          z[s] = Math.exp(z[s] - m);
          sum += z[s];
        }
        const po = ((b * H + h) * T + t) * T;
        const oo = (b * T + t) * H * D + h * D;
        for (let s = 0; s <= t; s++) {
          if (!visible(t, s, window)) continue;
          const pr = z[s] / sum;
          probs[po + s] = pr;
          const vo = at(b * T + s, L.vOffset, g, L.kvHeadStride);
          for (let d = 0; d < D; d++) out[oo + d] += pr * qkv[vo + d];
        }
      }
    }
  }
  return { out, probs };
}

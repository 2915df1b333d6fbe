/** Float64 CPU twin of `kernels/attention.wgsl`: causal multi-head self-attention forward (GPT-2). */

/** Sizes for {@link attentionRef}: B sequences of T tokens, width C split into nHead heads of D = C / nHead. */
export interface AttentionRefShape {
  B: number;
  T: number;
  C: number;
  nHead: number;
}

/**
 * Causal self-attention in float64.
 * - `qkv` [B, T, 3C]: per row q (C), k (C), v (C); head h uses columns h*D .. h*D+D-1 of each part.
 * - returns `out` [B, T, C] (heads concatenated) and `probs` [B, nHead, T, T] (softmax of
 *   q·k / sqrt(D) over s ≤ t, 0 above the diagonal).
 */
export function attentionRef(
  qkv: ArrayLike<number>,
  { B, T, C, nHead }: AttentionRefShape,
): { out: Float64Array; probs: Float64Array } {
  const D = C / nHead;
  if (!Number.isInteger(D)) throw new RangeError(`C = ${C} not divisible by nHead = ${nHead}`);
  if (qkv.length !== B * T * 3 * C) {
    throw new RangeError(`qkv has ${qkv.length} elements, expected ${B * T * 3 * C}`);
  }
  const C3 = 3 * C;
  const scale = 1 / Math.sqrt(D);
  const out = new Float64Array(B * T * C);
  const probs = new Float64Array(B * nHead * T * T);
  const z = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nHead; h++) {
      for (let t = 0; t < T; t++) {
        const qo = (b * T + t) * C3 + h * D;
        let m = -Infinity;
        for (let s = 0; s <= t; s++) {
          const ko = (b * T + s) * C3 + C + h * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += qkv[qo + d] * qkv[ko + d];
          z[s] = dot * scale;
          if (z[s] > m) m = z[s];
        }
        let sum = 0;
        for (let s = 0; s <= t; s++) {
          z[s] = Math.exp(z[s] - m);
          sum += z[s];
        }
        const po = ((b * nHead + h) * T + t) * T;
        const oo = (b * T + t) * C + h * D;
        for (let s = 0; s <= t; s++) {
          const pr = z[s] / sum;
          probs[po + s] = pr;
          const vo = (b * T + s) * C3 + 2 * C + h * D;
          for (let d = 0; d < D; d++) out[oo + d] += pr * qkv[vo + d];
        }
      }
    }
  }
  return { out, probs };
}

/**
 * Float64 CPU twin of `kernels/attention_backward.wgsl`: causal self-attention backward with any q/k/v
 * layout, grouped-query attention and (through the probabilities) a sliding window.
 */
import { attentionRef, type AttentionRefShape, refLayout } from "./attention.ts";

/**
 * Gradient of {@link attentionRef} with respect to its `qkv` input, in float64. Per (b, h), with
 * P the probabilities, dO the output gradient and the score scale s (default 1 / sqrt(D)):
 * dV = P^T dO; dP = dO V^T; dS = P ⊙ (dP - rowsum(dP ⊙ P)); dQ = s·dS K; dK = s·dS^T Q, where K, V are
 * the kv head query head h reads, so a kv head's dK, dV sum over the query heads sharing it.
 *
 * - `qkv` [B*T, rowStride]: the forward's input in the layout of `shape` (default GPT-2's q | k | v).
 * - `probs` [B, nHead, T, T] or null: the forward's probabilities (0 for invisible keys); when null
 *   they are recomputed in float64 from `qkv` (with `shape.window`).
 * - `dout` [B*T, nHead*D]: gradient of the attention output (heads concatenated).
 * - returns `dqkv` [B*T, rowStride] in the qkv layout (0 in columns that are no q/k/v element).
 */
export function attentionBackwardRef(
  qkv: ArrayLike<number>,
  probs: ArrayLike<number> | null,
  dout: ArrayLike<number>,
  shape: AttentionRefShape,
): Float64Array {
  const { B, T } = shape;
  const L = refLayout(shape);
  const H = L.nHead, D = L.headDim, group = L.nHead / L.nKvHead;
  if (qkv.length !== B * T * L.rowStride) {
    throw new RangeError(`qkv has ${qkv.length} elements, expected ${B * T * L.rowStride}`);
  }
  if (dout.length !== B * T * H * D) {
    throw new RangeError(`dout has ${dout.length} elements, expected ${B * T * H * D}`);
  }
  const P = probs ?? attentionRef(qkv, shape).probs;
  if (P.length !== B * H * T * T) {
    throw new RangeError(`probs has ${P.length} elements, expected ${B * H * T * T}`);
  }
  const scale = shape.scale ?? 1 / Math.sqrt(D);
  const at = (row: number, off: number, head: number, stride: number) =>
    row * L.rowStride + off + head * stride;
  const dqkv = new Float64Array(B * T * L.rowStride);
  const dS = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / group);
      for (let i = 0; i < T; i++) {
        const po = ((b * H + h) * T + i) * T;
        const oo = (b * T + i) * H * D + h * D;
        const qo = at(b * T + i, L.qOffset, h, L.qHeadStride);
        // dP_ij = dO_i . v_j and Di = sum_j P_ij dP_ij (invisible keys have P_ij = 0).
        let Di = 0;
        for (let j = 0; j <= i; j++) {
          const vo = at(b * T + j, L.vOffset, g, L.kvHeadStride);
          let dp = 0;
          for (let d = 0; d < D; d++) dp += dout[oo + d] * qkv[vo + d];
          dS[j] = dp;
          Di += P[po + j] * dp;
        }
        for (let j = 0; j <= i; j++) {
          const pij = P[po + j];
          if (pij === 0) continue;
          const gr = pij * (dS[j] - Di) * scale;
          const ko = at(b * T + j, L.kOffset, g, L.kvHeadStride);
          const vo = at(b * T + j, L.vOffset, g, L.kvHeadStride);
          for (let d = 0; d < D; d++) {
            dqkv[qo + d] += gr * qkv[ko + d]; // dQ_i
            dqkv[ko + d] += gr * qkv[qo + d]; // dK_j
            dqkv[vo + d] += pij * dout[oo + d]; // dV_j
          }
        }
      }
    }
  }
  return dqkv;
}

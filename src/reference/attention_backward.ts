/** Float64 CPU twin of `kernels/attention_backward.wgsl`: causal multi-head self-attention backward (GPT-2). */
import { attentionRef, type AttentionRefShape } from "./attention.ts";

/**
 * Gradient of {@link attentionRef} with respect to its `qkv` input, in float64. Per (b, h), with
 * P the probabilities, dO the output gradient and scale = 1 / sqrt(D):
 * dV = P^T dO; dP = dO V^T; dS = P ⊙ (dP - rowsum(dP ⊙ P)) (j ≤ i); dQ = scale·dS K; dK = scale·dS^T Q.
 *
 * - `qkv` [B, T, 3C]: the forward's input (q | k | v per row, head h in columns h*D..).
 * - `probs` [B, nHead, T, T] or null: the forward's probabilities (only j ≤ i are read); when null
 *   they are recomputed in float64 from `qkv`.
 * - `dout` [B, T, C]: gradient of the attention output (heads concatenated).
 * - returns `dqkv` [B, T, 3C] in the qkv layout.
 */
export function attentionBackwardRef(
  qkv: ArrayLike<number>,
  probs: ArrayLike<number> | null,
  dout: ArrayLike<number>,
  shape: AttentionRefShape,
): Float64Array {
  const { B, T, C, nHead } = shape;
  const D = C / nHead;
  if (!Number.isInteger(D)) throw new RangeError(`C = ${C} not divisible by nHead = ${nHead}`);
  if (qkv.length !== B * T * 3 * C) {
    throw new RangeError(`qkv has ${qkv.length} elements, expected ${B * T * 3 * C}`);
  }
  if (dout.length !== B * T * C) {
    throw new RangeError(`dout has ${dout.length} elements, expected ${B * T * C}`);
  }
  const P = probs ?? attentionRef(qkv, shape).probs;
  if (P.length !== B * nHead * T * T) {
    throw new RangeError(`probs has ${P.length} elements, expected ${B * nHead * T * T}`);
  }
  const C3 = 3 * C;
  const scale = 1 / Math.sqrt(D);
  const dqkv = new Float64Array(B * T * C3);
  const dS = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nHead; h++) {
      for (let i = 0; i < T; i++) {
        const po = ((b * nHead + h) * T + i) * T;
        const oo = (b * T + i) * C + h * D;
        const qo = (b * T + i) * C3 + h * D;
        // dP_ij = dO_i . v_j and Di = sum_j P_ij dP_ij.
        let Di = 0;
        for (let j = 0; j <= i; j++) {
          const vo = (b * T + j) * C3 + 2 * C + h * D;
          let dp = 0;
          for (let d = 0; d < D; d++) dp += dout[oo + d] * qkv[vo + d];
          dS[j] = dp;
          Di += P[po + j] * dp;
        }
        for (let j = 0; j <= i; j++) {
          const pij = P[po + j];
          const g = pij * (dS[j] - Di) * scale;
          const ko = (b * T + j) * C3 + C + h * D;
          for (let d = 0; d < D; d++) {
            dqkv[qo + d] += g * qkv[ko + d]; // dQ_i
            dqkv[ko + d] += g * qkv[qo + d]; // dK_j
            dqkv[ko + C + d] += pij * dout[oo + d]; // dV_j
          }
        }
      }
    }
  }
  return dqkv;
}

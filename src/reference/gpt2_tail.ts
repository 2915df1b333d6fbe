/**
 * Float64 forward of the top of GPT-2 — from the residual stream entering block `start` to the logits —
 * with a tape, and its exact backward to that residual stream. The edit references use it to get
 * dL/dδ for a δ added to `mlp_out.L` or `resid_post.L`: both enter the residual stream leaving block L
 * additively, so dL/dδ is the gradient at that stream's row (start = L + 1).
 *
 * Built from the float64 kernel twins (layer norm, attention, GELU and their backwards); independent of
 * the GPU model and of src/edit/. Weights are read from their float32 host tensors (Conv1D [in, out]).
 */
import type { ModelConfig, WeightMap } from "../model/config.ts";
import { attentionRef } from "./attention.ts";
import { attentionBackwardRef } from "./attention_backward.ts";
import { geluScalarRef } from "./gelu.ts";
import { geluGradScalarRef } from "./gelu_backward.ts";
import { layerNormRef } from "./layernorm.ts";
import { layerNormBackwardRef } from "./layernorm_backward.ts";

/** Saved activations of one block. */
interface BlockTape {
  x: Float64Array; // residual entering the block [T, C]
  a: Float64Array; // ln_1 output [T, C]
  qkv: Float64Array; // [T, 3C]
  probs: Float64Array; // [nHead, T, T]
  x2: Float64Array; // residual after the attention add [T, C]
  m: Float64Array; // ln_2 output [T, C]
  pre: Float64Array; // c_fc output (pre-GELU) [T, I]
  post: Float64Array; // GELU output [T, I]
}

/** What {@link tailForwardRef} saves for {@link tailBackwardRef}. */
export interface TailTape {
  start: number;
  T: number;
  blocks: BlockTape[];
  /** Residual entering ln_f [T, C]. */
  xf: Float64Array;
}

/** out[T, N] = x[T, K] W[K, N] + b[N] (Conv1D). */
function linear(
  x: Float64Array,
  T: number,
  K: number,
  W: ArrayLike<number>,
  b: ArrayLike<number>,
  N: number,
) {
  const out = new Float64Array(T * N);
  for (let t = 0; t < T; t++) {
    for (let n = 0; n < N; n++) out[t * N + n] = b[n];
    for (let k = 0; k < K; k++) {
      const a = x[t * K + k];
      for (let n = 0; n < N; n++) out[t * N + n] += a * W[k * N + n];
    }
  }
  return out;
}

/** dx[T, K] = dout[T, N] Wᵀ for out = x W + b. */
function linearBackward(dout: Float64Array, T: number, K: number, W: ArrayLike<number>, N: number) {
  const dx = new Float64Array(T * K);
  for (let t = 0; t < T; t++) {
    for (let k = 0; k < K; k++) {
      let s = 0;
      for (let n = 0; n < N; n++) s += dout[t * N + n] * W[k * N + n];
      dx[t * K + k] = s;
    }
  }
  return dx;
}

function head(weights: WeightMap): Float32Array {
  return (weights.get("lm_head.weight") ?? weights.get("wte.weight")!).data;
}

/**
 * Runs blocks start..nLayer−1, ln_f and the head on `x` ([T, C], the residual entering block `start`;
 * start = nLayer means only ln_f and the head). Returns logits [T, V] and the tape.
 */
export function tailForwardRef(
  cfg: ModelConfig,
  weights: WeightMap,
  start: number,
  x: Float64Array,
  T: number,
): { logits: Float64Array; tape: TailTape } {
  const { nEmbd: C, nInner: I, nHead, vocabSize: V, layerNormEpsilon: eps } = cfg;
  const W = (n: string) => weights.get(n)!.data;
  const blocks: BlockTape[] = [];
  let cur = Float64Array.from(x);
  for (let l = start; l < cfg.nLayer; l++) {
    const p = `h.${l}.`;
    const a = layerNormRef(cur, W(p + "ln_1.weight"), W(p + "ln_1.bias"), T, C, eps).out;
    const qkv = linear(a, T, C, W(p + "attn.c_attn.weight"), W(p + "attn.c_attn.bias"), 3 * C);
    const att = attentionRef(qkv, { B: 1, T, C, nHead });
    const ao = linear(att.out, T, C, W(p + "attn.c_proj.weight"), W(p + "attn.c_proj.bias"), C);
    const x2 = Float64Array.from(cur, (v, i) => v + ao[i]);
    const m = layerNormRef(x2, W(p + "ln_2.weight"), W(p + "ln_2.bias"), T, C, eps).out;
    const pre = linear(m, T, C, W(p + "mlp.c_fc.weight"), W(p + "mlp.c_fc.bias"), I);
    const post = pre.map(geluScalarRef);
    const mo = linear(post, T, I, W(p + "mlp.c_proj.weight"), W(p + "mlp.c_proj.bias"), C);
    blocks.push({ x: cur, a, qkv, probs: att.probs, x2, m, pre, post });
    cur = Float64Array.from(x2, (v, i) => v + mo[i]);
  }
  const lnf = layerNormRef(cur, W("ln_f.weight"), W("ln_f.bias"), T, C, eps).out;
  const h = head(weights);
  const logits = new Float64Array(T * V);
  for (let t = 0; t < T; t++) {
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let c = 0; c < C; c++) s += lnf[t * C + c] * h[v * C + c];
      logits[t * V + v] = s;
    }
  }
  return { logits, tape: { start, T, blocks, xf: cur } };
}

/** dL/dx [T, C] for the `x` given to {@link tailForwardRef}, from dL/dlogits [T, V]. */
export function tailBackwardRef(
  cfg: ModelConfig,
  weights: WeightMap,
  tape: TailTape,
  dlogits: Float64Array,
): Float64Array {
  const { nEmbd: C, nInner: I, nHead, vocabSize: V, layerNormEpsilon: eps } = cfg;
  const { T } = tape;
  const W = (n: string) => weights.get(n)!.data;
  const h = head(weights);
  const dlnf = new Float64Array(T * C);
  for (let t = 0; t < T; t++) {
    for (let v = 0; v < V; v++) {
      const g = dlogits[t * V + v];
      if (g === 0) continue;
      for (let c = 0; c < C; c++) dlnf[t * C + c] += g * h[v * C + c];
    }
  }
  let dx = layerNormBackwardRef(dlnf, tape.xf, W("ln_f.weight"), T, C, eps).dx;
  for (let bi = tape.blocks.length - 1; bi >= 0; bi--) {
    const b = tape.blocks[bi], p = `h.${tape.start + bi}.`;
    // x3 = x2 + c_proj(gelu(c_fc(ln_2(x2)))): dx2 = dx3 + MLP backward.
    const dpost = linearBackward(dx, T, I, W(p + "mlp.c_proj.weight"), C);
    const dpre = dpost.map((g, i) => g * geluGradScalarRef(b.pre[i]));
    const dm = linearBackward(dpre, T, C, W(p + "mlp.c_fc.weight"), I);
    const dx2 = layerNormBackwardRef(dm, b.x2, W(p + "ln_2.weight"), T, C, eps).dx;
    for (let i = 0; i < dx2.length; i++) dx2[i] += dx[i];
    // x2 = x + attn_c_proj(attention(c_attn(ln_1(x)))).
    const dmerged = linearBackward(dx2, T, C, W(p + "attn.c_proj.weight"), C);
    const dqkv = attentionBackwardRef(b.qkv, b.probs, dmerged, { B: 1, T, C, nHead });
    const da = linearBackward(dqkv, T, C, W(p + "attn.c_attn.weight"), 3 * C);
    const dx1 = layerNormBackwardRef(da, b.x, W(p + "ln_1.weight"), T, C, eps).dx;
    for (let i = 0; i < dx1.length; i++) dx1[i] += dx2[i];
    dx = dx1;
  }
  return dx;
}

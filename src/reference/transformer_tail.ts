/**
 * Float64 forward of the top of any model family — from the residual stream entering block `start` to
 * the logits — with a tape, and its exact backward to that residual stream. The edit references use it
 * for dL/dδ of a δ added to `mlp_out.L` or `resid_post.L`: both enter the residual stream leaving block
 * L additively, so dL/dδ is the gradient at that stream's row (start = L + 1).
 *
 * Built from the float64 kernel twins (layer norm, RMS norm, attention with any q/k/v layout and GQA,
 * rotary, GELU in both forms, SwiGLU, and their backwards); independent of the GPU model, its backward
 * and src/edit/. Only weight names and layouts come from the family spec (src/model/families/). The
 * block follows the HF modeling files, as src/reference/transformer.ts does:
 *   a = ln1(x); q, k, v = proj(a) (fused or separate); Qwen3 per-head RMS norms of q and k; rotary on q
 *   and k (angles in float64, as {@link ropeInvFreqRef}); attention; o-projection;
 *   MLP input m = ln2(x + attn) (sequential), ln2(x) (NeoX parallel, "two_norms") or a (GPT-J, "one_norm");
 *   post = act(up m) or silu(gate m) · up m; out = down post;
 *   x' = x + attn + out.
 * Backward of the rotation is the inverse rotation (a rotation's transpose); a kv head's dk, dv sum over
 * the query heads sharing it (attentionBackwardRef). For GPT-2 every float operation is the one of
 * ./gpt2_tail.ts, so its results are bit-identical (checked in tests/family_edit_test.ts).
 */
import type { RotaryOptions } from "../gpu/rotary.ts";
import { type ModelConfig, resolveConfig, type ResolvedConfig, type WeightMap } from "../model/config.ts";
import { familySpec, type LayerSpec, type LinearSpec, type NormSpec } from "../model/families/mod.ts";
import { attentionRef, type AttentionRefLayout } from "./attention.ts";
import { attentionBackwardRef } from "./attention_backward.ts";
import { geluRef } from "./gelu.ts";
import { geluBackwardRef } from "./gelu_backward.ts";
import { layerNormRef } from "./layernorm.ts";
import { layerNormBackwardRef } from "./layernorm_backward.ts";
import { rmsNormBackwardRef, rmsNormRef, type RmsNormRefAddressing } from "./rmsnorm.ts";
import { rotaryRef } from "./rotary.ts";
import { siluGradScalarRef, siluScalarRef, swigluBackwardRef, swigluRef } from "./swiglu.ts";
import { ropeInvFreqRef } from "./transformer.ts";

/** Saved activations of one block. */
interface BlockTape {
  spec: LayerSpec;
  /** Residual entering the block [T, C]. */
  x: Float64Array;
  /** ln1 output [T, C]. */
  a: Float64Array;
  /** q/k/v projection output in `layout` [T, rowStride] (before q/k norms and rotary). */
  qkvPre: Float64Array;
  /** After the q/k norms, before rotary (= qkvPre without q/k norms). */
  qkvNormed: Float64Array;
  /** Attention input (after rotary). */
  qkv: Float64Array;
  /** Attention probabilities [H, T, T]. */
  probs: Float64Array;
  /** Residual after the attention add [T, C] (sequential blocks only). */
  mid?: Float64Array;
  /** MLP input (norm output) [T, C]. */
  m: Float64Array;
  /** Up projection output (pre-activation) [T, I]. */
  up: Float64Array;
  /** Gate projection output [T, I] (gated MLPs). */
  gate?: Float64Array;
}

/** What {@link transformerTailForwardRef} saves for {@link transformerTailBackwardRef}. */
export interface TransformerTailTape {
  start: number;
  T: number;
  blocks: BlockTape[];
  /** Residual entering the final norm [T, C]. */
  xf: Float64Array;
  /** cos/sin tables [T, rope.dim / 2] (rotary families). */
  cos?: Float64Array;
  sin?: Float64Array;
}

type Get = (name: string) => ArrayLike<number>;

/** y[T, N] = x[T, K] W (+ b), W stored Conv1D [K, N] or nn.Linear [N, K]; summation in k order. */
function project(x: Float64Array, T: number, p: LinearSpec, W: Get): Float64Array {
  const w = W(p.weight), b = p.bias ? W(p.bias) : undefined;
  const K = p.in, N = p.out;
  const out = new Float64Array(T * N);
  for (let t = 0; t < T; t++) {
    if (b) { for (let n = 0; n < N; n++) out[t * N + n] = b[n]; }
    if (p.layout === "conv1d") {
      for (let k = 0; k < K; k++) {
        const a = x[t * K + k];
        for (let n = 0; n < N; n++) out[t * N + n] += a * w[k * N + n];
      }
    } else {
      for (let n = 0; n < N; n++) {
        let s = out[t * N + n];
        for (let k = 0; k < K; k++) s += x[t * K + k] * w[n * K + k];
        out[t * N + n] = s;
      }
    }
  }
  return out;
}

/** dx[T, K] = dout[T, N] Wᵀ for y = x W + b (in W's storage layout). */
function projectBackward(dout: Float64Array, T: number, p: LinearSpec, W: Get): Float64Array {
  const w = W(p.weight);
  const K = p.in, N = p.out;
  const dx = new Float64Array(T * K);
  for (let t = 0; t < T; t++) {
    for (let k = 0; k < K; k++) {
      let s = 0;
      if (p.layout === "conv1d") { for (let n = 0; n < N; n++) s += dout[t * N + n] * w[k * N + n]; }
      else for (let n = 0; n < N; n++) s += dout[t * N + n] * w[n * K + k];
      dx[t * K + k] = s;
    }
  }
  return dx;
}

function norm(r: ResolvedConfig, n: NormSpec, x: Float64Array, rows: number, cols: number, W: Get) {
  const eps = r.layerNormEpsilon;
  if (r.norm === "rmsnorm") return rmsNormRef(x, W(n.weight), rows, cols, eps).out;
  const beta = n.bias ? W(n.bias) : new Float64Array(cols);
  return layerNormRef(x, W(n.weight), beta, rows, cols, eps).out;
}

function normBackward(
  r: ResolvedConfig,
  n: NormSpec,
  dout: Float64Array,
  x: Float64Array,
  rows: number,
  cols: number,
  W: Get,
): Float64Array {
  const eps = r.layerNormEpsilon;
  if (r.norm === "rmsnorm") return rmsNormBackwardRef(dout, x, W(n.weight), rows, cols, eps).dx;
  return layerNormBackwardRef(dout, x, W(n.weight), rows, cols, eps).dx;
}

/** The attention input layout of block `s`: a fused projection's own, or q | k | v stacked (blocked). */
function qkvLayout(r: ResolvedConfig, s: LayerSpec): AttentionRefLayout {
  const H = r.nHead, KV = r.nKvHead, D = r.headDim;
  if (s.qkvLayout === "neox") {
    return {
      nHead: H,
      nKvHead: KV,
      headDim: D,
      rowStride: 3 * H * D,
      qOffset: 0,
      kOffset: D,
      vOffset: 2 * D,
      qHeadStride: 3 * D,
      kvHeadStride: 3 * D,
    };
  }
  return {
    nHead: H,
    nKvHead: KV,
    headDim: D,
    rowStride: (H + 2 * KV) * D,
    qOffset: 0,
    kOffset: H * D,
    vOffset: (H + KV) * D,
    qHeadStride: D,
    kvHeadStride: D,
  };
}

/** Row addressing of the q heads (or kv heads) of a qkv buffer, one row per (t, head). */
function headRows(L: AttentionRefLayout, which: "q" | "k"): RmsNormRefAddressing {
  return which === "q"
    ? { offset: L.qOffset, rowsPerGroup: L.nHead, groupStride: L.rowStride, rowStride: L.qHeadStride }
    : { offset: L.kOffset, rowsPerGroup: L.nKvHead, groupStride: L.rowStride, rowStride: L.kvHeadStride };
}

/** The q/k/v projections of `a` laid out as `L`. */
function projectQkv(a: Float64Array, T: number, s: LayerSpec, L: AttentionRefLayout, W: Get): Float64Array {
  if (s.qkv.length === 1) return project(a, T, s.qkv[0], W);
  const out = new Float64Array(T * L.rowStride);
  let off = 0;
  for (const p of s.qkv) {
    const y = project(a, T, p, W);
    for (let t = 0; t < T; t++) {
      for (let n = 0; n < p.out; n++) out[t * L.rowStride + off + n] = y[t * p.out + n];
    }
    off += p.out;
  }
  return out;
}

function projectQkvBackward(
  d: Float64Array,
  T: number,
  C: number,
  s: LayerSpec,
  L: AttentionRefLayout,
  W: Get,
): Float64Array {
  if (s.qkv.length === 1) return projectBackward(d, T, s.qkv[0], W);
  const da = new Float64Array(T * C);
  let off = 0;
  for (const p of s.qkv) {
    const dy = new Float64Array(T * p.out);
    for (let t = 0; t < T; t++) {
      for (let n = 0; n < p.out; n++) dy[t * p.out + n] = d[t * L.rowStride + off + n];
    }
    const g = projectBackward(dy, T, p, W);
    for (let i = 0; i < da.length; i++) da[i] += g[i];
    off += p.out;
  }
  return da;
}

function rotaryOpts(r: ResolvedConfig, L: AttentionRefLayout, T: number, inverse: boolean): RotaryOptions {
  return { rows: T, layout: L, dim: r.rope!.dim, style: r.rope!.style, inverse };
}

function activation(r: ResolvedConfig, x: Float64Array): Float64Array {
  if (r.activation === "silu") return x.map(siluScalarRef);
  return geluRef(x, r.activation === "gelu_erf" ? "none" : "tanh");
}

function activationBackward(r: ResolvedConfig, x: Float64Array, dout: Float64Array): Float64Array {
  if (r.activation === "silu") return dout.map((g, i) => g * siluGradScalarRef(x[i]));
  return geluBackwardRef(x, dout, r.activation === "gelu_erf" ? "none" : "tanh");
}

/**
 * Runs blocks start..nLayer−1, the final norm and the head on `x` ([T, C], the residual entering block
 * `start` of one sequence at positions 0..T−1; start = nLayer means only the final norm and the head).
 * Returns logits [T, V] and the tape. The head is untied when `weights` holds the family's head.
 */
export function transformerTailForwardRef(
  config: ModelConfig,
  weights: WeightMap,
  start: number,
  x: Float64Array,
  T: number,
): { logits: Float64Array; tape: TransformerTailTape } {
  const r = resolveConfig(config);
  const spec = familySpec(r);
  const { nEmbd: C, vocabSize: V } = r;
  if (x.length !== T * C) throw new RangeError(`x has ${x.length} values, expected ${T} * ${C}`);
  const W: Get = (n) => weights.get(n)!.data;
  let cos: Float64Array | undefined, sin: Float64Array | undefined;
  const positions = Array.from({ length: T }, (_, t) => t);
  if (r.rope) {
    const inv = ropeInvFreqRef(r.rope, T), half = r.rope.dim / 2;
    cos = new Float64Array(T * half);
    sin = new Float64Array(T * half);
    for (let t = 0; t < T; t++) {
      for (let i = 0; i < half; i++) {
        cos[t * half + i] = Math.cos(t * inv[i]);
        sin[t * half + i] = Math.sin(t * inv[i]);
      }
    }
  }
  const blocks: BlockTape[] = [];
  let cur = Float64Array.from(x);
  for (let l = start; l < r.nLayer; l++) {
    const s = spec.layer(r, l);
    const L = qkvLayout(r, s);
    const a = norm(r, s.ln1, cur, T, C, W);
    const qkvPre = projectQkv(a, T, s, L, W);
    let qkvNormed = qkvPre;
    if (s.qNorm) {
      qkvNormed = rmsNormRef(qkvNormed, W(s.qNorm.weight), T * r.nHead, r.headDim, r.layerNormEpsilon, {
        addressing: headRows(L, "q"),
        base: qkvNormed,
      }).out;
    }
    if (s.kNorm) {
      qkvNormed = rmsNormRef(qkvNormed, W(s.kNorm.weight), T * r.nKvHead, r.headDim, r.layerNormEpsilon, {
        addressing: headRows(L, "k"),
        base: qkvNormed,
      }).out;
    }
    const qkv = r.rope ? rotaryRef(qkvNormed, cos!, sin!, positions, rotaryOpts(r, L, T, false)) : qkvNormed;
    const att = attentionRef(qkv, { B: 1, T, layout: L, window: r.slidingWindow });
    const ao = project(att.out, T, s.o, W);
    let mid: Float64Array | undefined;
    let m: Float64Array;
    if (r.parallelResidual === "none") {
      mid = Float64Array.from(cur, (v, i) => v + ao[i]);
      m = norm(r, s.ln2!, mid, T, C, W);
    } else if (r.parallelResidual === "two_norms") m = norm(r, s.ln2!, cur, T, C, W);
    else m = a;
    const up = project(m, T, s.up, W);
    const gate = s.gate ? project(m, T, s.gate, W) : undefined;
    const post = gate ? swigluRef(gate, up) : activation(r, up);
    const mo = project(post, T, s.down, W);
    blocks.push({ spec: s, x: cur, a, qkvPre, qkvNormed, qkv, probs: att.probs, mid, m, up, gate });
    cur = mid
      ? Float64Array.from(mid, (v, i) => v + mo[i])
      : Float64Array.from(cur, (v, i) => v + ao[i] + mo[i]);
  }
  const f = norm(r, spec.finalNorm, cur, T, C, W);
  const head = W(weights.has(spec.head) ? spec.head : spec.embed);
  const hb = spec.headBias && weights.has(spec.headBias) ? W(spec.headBias) : undefined;
  const logits = new Float64Array(T * V);
  for (let t = 0; t < T; t++) {
    for (let v = 0; v < V; v++) {
      let acc = hb ? hb[v] : 0;
      for (let c = 0; c < C; c++) acc += f[t * C + c] * head[v * C + c];
      logits[t * V + v] = acc;
    }
  }
  return { logits, tape: { start, T, blocks, xf: cur, cos, sin } };
}

/** dL/dx [T, C] for the `x` given to {@link transformerTailForwardRef}, from dL/dlogits [T, V]. */
export function transformerTailBackwardRef(
  config: ModelConfig,
  weights: WeightMap,
  tape: TransformerTailTape,
  dlogits: Float64Array,
): Float64Array {
  const r = resolveConfig(config);
  const spec = familySpec(r);
  const { nEmbd: C, vocabSize: V, nHead: H, nKvHead: KV, headDim: D } = r;
  const { T } = tape;
  const W: Get = (n) => weights.get(n)!.data;
  const positions = Array.from({ length: T }, (_, t) => t);
  const head = W(weights.has(spec.head) ? spec.head : spec.embed);
  const df = new Float64Array(T * C);
  for (let t = 0; t < T; t++) {
    for (let v = 0; v < V; v++) {
      const g = dlogits[t * V + v];
      if (g === 0) continue;
      for (let c = 0; c < C; c++) df[t * C + c] += g * head[v * C + c];
    }
  }
  let dx = normBackward(r, spec.finalNorm, df, tape.xf, T, C, W);
  for (let bi = tape.blocks.length - 1; bi >= 0; bi--) {
    const b = tape.blocks[bi], s = b.spec;
    const L = qkvLayout(r, s);
    // MLP: out = down(post), post = act(up m) or silu(gate m) · up m.
    const dpost = projectBackward(dx, T, s.down, W);
    let dm: Float64Array;
    if (b.gate) {
      const g = swigluBackwardRef(b.gate, b.up, dpost);
      dm = projectBackward(g.dup, T, s.up, W);
      const dg = projectBackward(g.dgate, T, s.gate!, W);
      for (let i = 0; i < dm.length; i++) dm[i] += dg[i];
    } else dm = projectBackward(activationBackward(r, b.up, dpost), T, s.up, W);
    // Gradient reaching the attention output, and (one_norm) the shared norm output.
    let dattn: Float64Array;
    let dxBlock: Float64Array; // everything but the ln1 path
    let dExtraA: Float64Array | undefined;
    if (r.parallelResidual === "none") {
      const dmid = normBackward(r, s.ln2!, dm, b.mid!, T, C, W);
      for (let i = 0; i < dmid.length; i++) dmid[i] += dx[i];
      dattn = dmid;
      dxBlock = dmid;
    } else if (r.parallelResidual === "two_norms") {
      const d2 = normBackward(r, s.ln2!, dm, b.x, T, C, W);
      dattn = dx;
      dxBlock = Float64Array.from(dx, (v, i) => v + d2[i]);
    } else {
      dattn = dx;
      dxBlock = dx;
      dExtraA = dm;
    }
    // Attention: o-projection, attention, inverse rotary, q/k norms, q/k/v projections.
    const dheads = projectBackward(dattn, T, s.o, W);
    let dq = attentionBackwardRef(b.qkv, b.probs, dheads, { B: 1, T, layout: L, window: r.slidingWindow });
    if (r.rope) dq = rotaryRef(dq, tape.cos!, tape.sin!, positions, rotaryOpts(r, L, T, true));
    for (const [n, which, heads] of [[s.qNorm, "q", H], [s.kNorm, "k", KV]] as const) {
      if (!n) continue;
      const addr = headRows(L, which);
      const g = rmsNormBackwardRef(dq, b.qkvPre, W(n.weight), T * heads, D, r.layerNormEpsilon, addr).dx;
      // The normalised rows take the norm's input gradient; every other element passes through.
      for (let t = 0; t < T; t++) {
        for (let h = 0; h < heads; h++) {
          const o = t * L.rowStride + addr.offset! + h * addr.rowStride!;
          for (let d = 0; d < D; d++) dq[o + d] = g[o + d];
        }
      }
    }
    const da = projectQkvBackward(dq, T, C, s, L, W);
    if (dExtraA) { for (let i = 0; i < da.length; i++) da[i] += dExtraA[i]; }
    const d1 = normBackward(r, s.ln1, da, b.x, T, C, W);
    for (let i = 0; i < d1.length; i++) d1[i] += dxBlock[i];
    dx = d1;
  }
  return dx;
}

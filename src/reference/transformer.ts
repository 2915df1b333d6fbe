/**
 * Float64 CPU reference forward of every model family (GPT-2, Llama / Mistral / Qwen2 / Qwen3,
 * GPT-NeoX / Pythia, GPT-J): the independent twin the GPU model (src/model/transformer.ts) is tested
 * against. Written from the Hugging Face modeling files (modeling_gpt2/llama/mistral/qwen2/qwen3/
 * gpt_neox/gptj.py), not from engram's GPU code; only the weight names and storage layouts come from
 * the family specs (src/model/families/).
 *
 * All activations and all arithmetic are float64; float32 weights are read directly (exact as doubles).
 * Rotary angles are computed in float64 too (HF computes them in float32: see ropeInvFreqRef).
 *
 * Hook sites (per layer L, 0-based), in execution order:
 * - `embed`          [T, C]      token embedding (+ learned positions for GPT-2)
 * - `resid_pre.L`    [T, C]      residual stream entering block L
 * - `attn_pattern.L` [H, T, T]   attention probabilities (row t = query, column s = key; masked = 0)
 * - `head_out.L`     [T, H*D]    attention output per head, before the output projection
 * - `attn_out.L`     [T, C]      after the output projection (incl. its bias)
 * - `mlp_post.L`     [T, I]      input of the MLP output projection: act(fc x) or silu(gate x) * up x
 * - `mlp_out.L`      [T, C]      MLP output after its output projection
 * - `resid_post.L`   [T, C]      residual stream leaving block L
 * - `ln_f`           [T, C]      final norm output
 */
import { InputError, ShapeError } from "../errors.ts";
import {
  type HostTensor,
  type ModelConfig,
  resolveConfig,
  type ResolvedConfig,
  type WeightMap,
} from "../model/config.ts";
import { familySpec, type LinearSpec, type NormSpec, weightShapes } from "../model/families/mod.ts";
import type { RopeConfig } from "../model/rope.ts";

/** Options of {@link transformerForwardRef}. */
export interface TransformerRefOptions {
  /** Hook sites whose values to return (copies). */
  capture?: string[];
  /** Input embeddings [T, C] used instead of the token (+ position) embeddings (e.g. noised ones). */
  embed?: Float64Array;
}

/** What {@link transformerForwardRef} returns. */
export interface TransformerRefResult {
  /** Logits [T, V] row-major. */
  logits: Float64Array;
  /** Captured sites by name (shapes in the module doc). */
  sites: Map<string, Float64Array>;
}

const SITE_RE =
  /^(embed|ln_f)$|^(resid_pre|attn_pattern|head_out|attn_out|mlp_post|mlp_out|resid_post)\.(\d+)$/;

/** Every hook-site name of a model with `nLayer` layers, in execution order. */
export function transformerSiteNames(nLayer: number): string[] {
  const out = ["embed"];
  for (let l = 0; l < nLayer; l++) {
    for (
      const k of ["resid_pre", "attn_pattern", "head_out", "attn_out", "mlp_post", "mlp_out", "resid_post"]
    ) {
      out.push(`${k}.${l}`);
    }
  }
  out.push("ln_f");
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Scalar functions

/**
 * erf(x) in float64 (absolute error ~1e-16): for |x| <= 3 the series
 * erf x = 2/√π e^{-x²} Σ 2ⁿ x^{2n+1} / (1·3···(2n+1)) (all terms positive: no cancellation),
 * beyond it 1 - erfc x with erfc from its continued fraction (modified Lentz).
 */
export function erfRef(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  if (a <= 3) {
    const x2 = x * x;
    let term = x, sum = x;
    for (let n = 1; n < 200; n++) {
      term *= (2 * x2) / (2 * n + 1);
      sum += term;
      if (Math.abs(term) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * Math.exp(-x2) * sum;
  }
  const e = erfcLarge(a);
  return x > 0 ? 1 - e : e - 1;
}

/** erfc(x) for x > 3: e^{-x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...))))). */
function erfcLarge(x: number): number {
  if (x > 27) return 0;
  const tiny = 1e-300;
  // Lentz on f = x + K_{n>=1}(a_n / x) with a_n = n/2.
  let f = x, C = x, D = 0;
  for (let n = 1; n < 500; n++) {
    const an = n / 2;
    D = x + an * D;
    if (D === 0) D = tiny;
    C = x + an / C;
    if (C === 0) C = tiny;
    D = 1 / D;
    const delta = C * D;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-x * x) / (Math.sqrt(Math.PI) * f);
}

/** GELU, tanh approximation (HF gelu_new / gelu_pytorch_tanh). */
function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

/** Exact GELU (HF "gelu", nn.GELU()): x Φ(x) = x/2 (1 + erf(x/√2)). */
export function geluErfRef(x: number): number {
  return 0.5 * x * (1 + erfRef(x / Math.SQRT2));
}

/** SiLU x σ(x). */
function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

// ---------------------------------------------------------------------------------------------------
// Rotary

/**
 * Inverse frequencies [dim/2] of a rotary embedding for a sequence of `seqLen` positions, in float64,
 * from HF's modeling_rope_utils definitions:
 * - default: inv_freq[i] = 1 / theta^(2i / dim);
 * - "linear": inv_freq / factor (HF divides the positions by factor: the same angles);
 * - "dynamic" (NTK): when seqLen > originalMaxPositionEmbeddings, theta is replaced by
 *   theta · (factor · seqLen / origMax - (factor - 1))^(dim / (dim - 2)); otherwise default;
 * - "llama3": wavelengths 2π / inv_freq above origMax / lowFreqFactor are divided by factor, those
 *   below origMax / highFreqFactor kept, and those between interpolated with
 *   s = (origMax / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor):
 *   (1 - s) inv_freq / factor + s inv_freq.
 */
export function ropeInvFreqRef(rope: RopeConfig, seqLen: number): Float64Array {
  const dim = rope.dim;
  const sc = rope.scaling;
  let theta = rope.theta;
  if (sc?.type === "dynamic" && seqLen > sc.originalMaxPositionEmbeddings) {
    theta *= ((sc.factor * seqLen) / sc.originalMaxPositionEmbeddings - (sc.factor - 1)) ** (dim / (dim - 2));
  }
  const inv = new Float64Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) inv[i] = 1 / theta ** ((2 * i) / dim);
  if (sc?.type === "linear") {
    for (let i = 0; i < inv.length; i++) inv[i] /= sc.factor;
  } else if (sc?.type === "llama3") {
    const old = sc.originalMaxPositionEmbeddings;
    const lowWavelen = old / sc.lowFreqFactor, highWavelen = old / sc.highFreqFactor;
    for (let i = 0; i < inv.length; i++) {
      const wavelen = (2 * Math.PI) / inv[i];
      if (wavelen > lowWavelen) inv[i] /= sc.factor;
      else if (wavelen >= highWavelen) {
        const s = (old / wavelen - sc.lowFreqFactor) / (sc.highFreqFactor - sc.lowFreqFactor);
        inv[i] = ((1 - s) * inv[i]) / sc.factor + s * inv[i];
      }
    }
  }
  return inv;
}

/**
 * Rotates the first `rope.dim` elements of one head vector x[o .. o+D) in place at position `pos`.
 * "half" (HF rotate_half; Llama, NeoX): pairs (i, i + dim/2), x' = x cos + rotate_half(x) sin with
 * rotate_half(x) = [-x2, x1]. "interleaved" (GPT-J rotate_every_two): pairs (2i, 2i+1).
 */
export function applyRotaryRef(
  x: Float64Array,
  o: number,
  rope: RopeConfig,
  invFreq: Float64Array,
  pos: number,
): void {
  const half = rope.dim / 2;
  for (let i = 0; i < half; i++) {
    const ang = pos * invFreq[i];
    const c = Math.cos(ang), s = Math.sin(ang);
    const [a, b] = rope.style === "half" ? [o + i, o + i + half] : [o + 2 * i, o + 2 * i + 1];
    const xa = x[a], xb = x[b];
    x[a] = xa * c - xb * s;
    x[b] = xb * c + xa * s;
  }
}

// ---------------------------------------------------------------------------------------------------
// Layers

type Get = (name: string) => Float32Array;

/** y[T, out] = x[T, in] W (+ b), W stored as Conv1D [in, out] or nn.Linear [out, in]. */
function project(x: Float64Array, T: number, p: LinearSpec, W: Get): Float64Array {
  const w = W(p.weight), b = p.bias ? W(p.bias) : undefined;
  const K = p.in, N = p.out;
  const y = new Float64Array(T * N);
  for (let t = 0; t < T; t++) {
    for (let n = 0; n < N; n++) {
      let acc = b ? b[n] : 0;
      if (p.layout === "conv1d") { for (let k = 0; k < K; k++) acc += x[t * K + k] * w[k * N + n]; }
      else for (let k = 0; k < K; k++) acc += x[t * K + k] * w[n * K + k];
      y[t * N + n] = acc;
    }
  }
  return y;
}

/**
 * Normalises each of the `rows` vectors x[o + r*stride .. + width) into a new array: layer norm
 * (x - mean) / sqrt(var + eps) * w + b (biased variance) or HF's RMS norm w * (x / sqrt(mean(x²) + eps)).
 */
function normRows(
  x: Float64Array,
  rows: number,
  width: number,
  n: NormSpec,
  kind: "layernorm" | "rmsnorm",
  eps: number,
  W: Get,
): Float64Array {
  const w = W(n.weight), b = n.bias ? W(n.bias) : undefined;
  const y = new Float64Array(rows * width);
  for (let r = 0; r < rows; r++) {
    const o = r * width;
    let mean = 0;
    if (kind === "layernorm") {
      for (let c = 0; c < width; c++) mean += x[o + c];
      mean /= width;
    }
    let ss = 0;
    for (let c = 0; c < width; c++) ss += (x[o + c] - mean) ** 2;
    const inv = 1 / Math.sqrt(ss / width + eps);
    for (let c = 0; c < width; c++) y[o + c] = w[c] * ((x[o + c] - mean) * inv) + (b ? b[c] : 0);
  }
  return y;
}

/** q [T, H*D], k and v [T, KV*D], head-major columns. */
interface Qkv {
  q: Float64Array;
  k: Float64Array;
  v: Float64Array;
}

/** Splits a fused projection output [T, 3C] into q, k, v by the family's layout. */
function splitFused(y: Float64Array, T: number, H: number, D: number, layout: "blocked" | "neox"): Qkv {
  const C = H * D;
  const q = new Float64Array(T * C), k = new Float64Array(T * C), v = new Float64Array(T * C);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < H; h++) {
      for (let d = 0; d < D; d++) {
        const dst = t * C + h * D + d;
        if (layout === "blocked") {
          // GPT-2 c_attn: split(C) into q | k | v, then view heads.
          q[dst] = y[t * 3 * C + h * D + d];
          k[dst] = y[t * 3 * C + C + h * D + d];
          v[dst] = y[t * 3 * C + 2 * C + h * D + d];
        } else {
          // NeoX query_key_value: view (H, 3D), then q = [:D], k = [D:2D], v = [2D:].
          q[dst] = y[t * 3 * C + h * 3 * D + d];
          k[dst] = y[t * 3 * C + h * 3 * D + D + d];
          v[dst] = y[t * 3 * C + h * 3 * D + 2 * D + d];
        }
      }
    }
  }
  return { q, k, v };
}

/**
 * Softmax attention with grouped-query heads (query head h reads kv head floor(h / (H / KV))),
 * causal mask and optional sliding window (HF masking_utils: key s visible to query t iff s <= t and
 * s > t - window), scale 1 / sqrt(D). Returns the merged heads [T, H*D] and the pattern [H, T, T].
 */
function attention(
  qkv: Qkv,
  T: number,
  H: number,
  KV: number,
  D: number,
  window: number | undefined,
): { out: Float64Array; pattern: Float64Array } {
  const out = new Float64Array(T * H * D);
  const pattern = new Float64Array(H * T * T);
  const scale = 1 / Math.sqrt(D);
  const group = H / KV;
  for (let h = 0; h < H; h++) {
    const g = Math.floor(h / group);
    for (let t = 0; t < T; t++) {
      const lo = window === undefined ? 0 : Math.max(0, t - window + 1);
      const row = pattern.subarray((h * T + t) * T, (h * T + t + 1) * T);
      let m = -Infinity;
      for (let s = lo; s <= t; s++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += qkv.q[(t * H + h) * D + d] * qkv.k[(s * KV + g) * D + d];
        row[s] = dot * scale;
        if (row[s] > m) m = row[s];
      }
      let sum = 0;
      for (let s = lo; s <= t; s++) {
        row[s] = Math.exp(row[s] - m);
        sum += row[s];
      }
      for (let s = lo; s <= t; s++) {
        row[s] /= sum;
        for (let d = 0; d < D; d++) out[(t * H + h) * D + d] += row[s] * qkv.v[(s * KV + g) * D + d];
      }
    }
  }
  return { out, pattern };
}

// ---------------------------------------------------------------------------------------------------
// Checks

function checkWeights(c: ModelConfig, spec: ReturnType<typeof familySpec>, weights: WeightMap): void {
  const shapes = weightShapes(c, weights.has(spec.head));
  for (const [name, shape] of shapes) {
    const t = weights.get(name);
    if (!t) throw new ShapeError("missing weight", { field: name });
    const n = shape.reduce((a, b) => a * b, 1);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]) || t.data.length !== n) {
      throw new ShapeError(`weight has shape [${t.shape}] (${t.data.length} values), expected [${shape}]`, {
        field: name,
      });
    }
  }
}

function checkIds(r: ResolvedConfig, learnedPositions: boolean, ids: number[]): void {
  if (ids.length === 0) throw new InputError("empty prompt: at least one token is needed", { field: "ids" });
  // Learned positions end at nPositions; rotary models (like HF's) take any length.
  if (learnedPositions && ids.length > r.nPositions) {
    throw new InputError(`prompt has ${ids.length} tokens, longer than the context of ${r.nPositions}`, {
      field: "ids",
    });
  }
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= r.vocabSize) {
      throw new InputError(`token id ${id} out of range [0, ${r.vocabSize})`, { field: "ids" });
    }
  }
}

function checkSite(r: ResolvedConfig, site: string): void {
  const m = SITE_RE.exec(site);
  if (!m) {
    throw new InputError(
      `unknown hook site '${site}' (expected embed, ln_f, or ` +
        `resid_pre|attn_pattern|head_out|attn_out|mlp_post|mlp_out|resid_post.<layer>)`,
      { field: "site" },
    );
  }
  if (m[3] !== undefined && Number(m[3]) >= r.nLayer) {
    throw new InputError(`hook site '${site}': layer ${m[3]} out of range (model has ${r.nLayer})`, {
      field: "site",
    });
  }
}

// ---------------------------------------------------------------------------------------------------
// Forward

/**
 * Forward pass of one sequence `ids` in float64 for any family. Throws {@link ShapeError} for
 * missing or mis-shaped weights (the head is untied when `weights` holds the family's head) and
 * {@link InputError} for bad ids or unknown hook sites.
 */
export function transformerForwardRef(
  config: ModelConfig,
  weights: WeightMap,
  ids: number[],
  opts: TransformerRefOptions = {},
): TransformerRefResult {
  const r = resolveConfig(config);
  const spec = familySpec(r);
  checkWeights(config, spec, weights);
  checkIds(r, spec.positions !== undefined, ids);
  const capture = new Set(opts.capture ?? []);
  for (const s of capture) checkSite(r, s);

  const { nLayer: L, nHead: H, nKvHead: KV, headDim: D, nEmbd: C, vocabSize: V } = r;
  const eps = r.layerNormEpsilon;
  const T = ids.length;
  const W: Get = (n) => (weights.get(n) as HostTensor).data;
  const sites = new Map<string, Float64Array>();
  const site = (name: string, v: Float64Array) => {
    if (capture.has(name)) sites.set(name, v.slice());
  };
  const invFreq = r.rope ? ropeInvFreqRef(r.rope, T) : undefined;

  const wte = W(spec.embed);
  let x = new Float64Array(T * C);
  for (let t = 0; t < T; t++) for (let c = 0; c < C; c++) x[t * C + c] = wte[ids[t] * C + c];
  if (spec.positions) {
    const wpe = W(spec.positions);
    for (let i = 0; i < T * C; i++) x[i] += wpe[i];
  }
  if (opts.embed) {
    if (opts.embed.length !== T * C) {
      throw new ShapeError(`embed has ${opts.embed.length} values, not ${T * C}`);
    }
    x = Float64Array.from(opts.embed);
  }
  site("embed", x);

  for (let l = 0; l < L; l++) {
    const ls = spec.layer(r, l);
    site(`resid_pre.${l}`, x);

    // Attention branch.
    const a = normRows(x, T, C, ls.ln1, r.norm, eps, W);
    let qkv: Qkv;
    if (ls.qkv.length === 1) qkv = splitFused(project(a, T, ls.qkv[0], W), T, H, D, ls.qkvLayout);
    else {qkv = {
        q: project(a, T, ls.qkv[0], W),
        k: project(a, T, ls.qkv[1], W),
        v: project(a, T, ls.qkv[2], W),
      };}
    // Qwen3: RMS norm over each head's D values, before rotary.
    if (ls.qNorm) qkv.q = normRows(qkv.q, T * H, D, ls.qNorm, "rmsnorm", eps, W);
    if (ls.kNorm) qkv.k = normRows(qkv.k, T * KV, D, ls.kNorm, "rmsnorm", eps, W);
    if (r.rope && invFreq) {
      for (let t = 0; t < T; t++) {
        for (let h = 0; h < H; h++) applyRotaryRef(qkv.q, (t * H + h) * D, r.rope, invFreq, t);
        for (let g = 0; g < KV; g++) applyRotaryRef(qkv.k, (t * KV + g) * D, r.rope, invFreq, t);
      }
    }
    const att = attention(qkv, T, H, KV, D, r.slidingWindow);
    site(`attn_pattern.${l}`, att.pattern);
    site(`head_out.${l}`, att.out);
    const attnOut = project(att.out, T, ls.o, W);
    site(`attn_out.${l}`, attnOut);

    // MLP input: after the attention residual (sequential), from the block input (NeoX parallel),
    // or the attention's own norm output (GPT-J).
    let mid: Float64Array | undefined;
    let m: Float64Array;
    if (r.parallelResidual === "none") {
      mid = new Float64Array(T * C);
      for (let i = 0; i < T * C; i++) mid[i] = x[i] + attnOut[i];
      m = normRows(mid, T, C, ls.ln2!, r.norm, eps, W);
    } else if (r.parallelResidual === "two_norms") m = normRows(x, T, C, ls.ln2!, r.norm, eps, W);
    else m = a;

    const up = project(m, T, ls.up, W);
    if (ls.gate) {
      const gate = project(m, T, ls.gate, W);
      for (let i = 0; i < up.length; i++) up[i] = silu(gate[i]) * up[i];
    } else {
      const act = r.activation === "gelu_erf" ? geluErfRef : r.activation === "gelu_tanh" ? geluTanh : silu;
      for (let i = 0; i < up.length; i++) up[i] = act(up[i]);
    }
    site(`mlp_post.${l}`, up);
    const mlpOut = project(up, T, ls.down, W);
    site(`mlp_out.${l}`, mlpOut);

    const next = new Float64Array(T * C);
    if (mid) { for (let i = 0; i < T * C; i++) next[i] = mid[i] + mlpOut[i]; }
    else for (let i = 0; i < T * C; i++) next[i] = x[i] + attnOut[i] + mlpOut[i];
    x = next;
    site(`resid_post.${l}`, x);
  }

  const f = normRows(x, T, C, spec.finalNorm, r.norm, eps, W);
  site("ln_f", f);
  const head = weights.has(spec.head) ? W(spec.head) : wte;
  const hb = spec.headBias && weights.has(spec.headBias) ? W(spec.headBias) : undefined;
  const logits = new Float64Array(T * V);
  for (let t = 0; t < T; t++) {
    for (let v = 0; v < V; v++) {
      let acc = hb ? hb[v] : 0;
      for (let c = 0; c < C; c++) acc += f[t * C + c] * head[v * C + c];
      logits[t * V + v] = acc;
    }
  }
  return { logits, sites };
}

/**
 * Mean over positions t with targets[t] >= 0 of -log softmax(logits[t])[targets[t]], in float64
 * (the loss whose finite differences check the GPU backward). `targets` has one entry per id.
 */
export function transformerLossRef(
  config: ModelConfig,
  weights: WeightMap,
  ids: number[],
  targets: number[],
): number {
  if (targets.length !== ids.length) {
    throw new InputError(`${targets.length} targets for ${ids.length} ids`, { field: "targets" });
  }
  const V = config.vocabSize;
  for (const y of targets) {
    if (!Number.isInteger(y) || y >= V) {
      throw new InputError(`target ${y} out of range [0, ${V}) (negative = ignored)`, { field: "targets" });
    }
  }
  const { logits } = transformerForwardRef(config, weights, ids);
  let total = 0, n = 0;
  for (let t = 0; t < ids.length; t++) {
    if (targets[t] < 0) continue;
    const row = logits.subarray(t * V, (t + 1) * V);
    let mx = -Infinity;
    for (let v = 0; v < V; v++) mx = Math.max(mx, row[v]);
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(row[v] - mx);
    total += mx + Math.log(sum) - row[targets[t]];
    n++;
  }
  if (n === 0) throw new InputError("no target >= 0: the loss is undefined", { field: "targets" });
  return total / n;
}

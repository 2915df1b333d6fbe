/**
 * Float64 CPU twin of the GPT-2 forward pass (the GPU model in `src/model/transformer.ts` is checked against it).
 *
 * Every activation is a Float64Array and all arithmetic is float64. Weights stay in their float32
 * HostTensors and are read directly: a float32 value read from a Float32Array is exactly representable as
 * a double, so this computes the same numbers as converting the weights to float64 first, without a
 * second (8 bytes/parameter) copy and without a cache that could go stale when weights are edited in place.
 *
 * Hook sites (per layer L, 0-based), in execution order:
 * - `embed`          [T, C]      wte[ids] + wpe[pos]
 * - `resid_pre.L`    [T, C]      residual stream entering block L (same stream as `resid_post.(L-1)`)
 * - `attn_out.L`     [T, C]      attention output after c_proj, before the residual add
 * - `mlp_post.L`     [T, inner]  MLP neuron activations after GELU
 * - `mlp_out.L`      [T, C]      MLP output after c_proj, before the residual add
 * - `resid_post.L`   [T, C]      residual stream leaving block L
 * - `ln_f`           [T, C]      final layer-norm output
 * At each site the patch (if any) runs first, mutating the live value in place, then the capture (if any)
 * copies it; downstream computation uses the patched value. Since `resid_post.L` and `resid_pre.(L+1)`
 * (and `embed` and `resid_pre.0`) are the same stream, a patch at the earlier site shows in the later
 * site's capture, but not the other way round.
 */
import { InputError, ShapeError } from "../errors.ts";
import type { HostTensor, ModelConfig, WeightMap } from "../model/config.ts";
import { weightShapes } from "../model/families/mod.ts";

/** A hook-site name: `embed`, `ln_f`, or `<kind>.<layer>` (see the module doc). */
export type RefHookSite =
  | "embed"
  | "ln_f"
  | `${"resid_pre" | "attn_out" | "mlp_post" | "mlp_out" | "resid_post"}.${number}`;

/** All hook-site names of a model with `nLayer` layers, in execution order. */
export function hookSiteNames(nLayer: number): RefHookSite[] {
  const out: RefHookSite[] = ["embed"];
  for (let l = 0; l < nLayer; l++) {
    out.push(`resid_pre.${l}`, `attn_out.${l}`, `mlp_post.${l}`, `mlp_out.${l}`, `resid_post.${l}`);
  }
  out.push("ln_f");
  return out;
}

/** Mutates a site's value [T, width] (row-major) in place before it is used downstream. */
export type RefPatchFn = (value: Float64Array, T: number, width: number) => void;

/** Hooks of one reference forward pass. */
export interface RefHooks {
  /** Sites whose values to return in {@link RefForwardResult.cache} (copies, [T * width] each). */
  capture?: Set<string>;
  /** Per-site in-place edits, applied before the capture and before downstream use. */
  patch?: Record<string, RefPatchFn>;
}

/** Options of {@link gpt2ForwardRef}. */
export interface RefForwardOptions {
  /** Capture or patch named sites of the reference forward. */
  hooks?: RefHooks;
}

/** What {@link gpt2ForwardRef} returns. */
export interface RefForwardResult {
  /** Logits at every position, [T * V] row-major. */
  logits: Float64Array;
  /** Log-softmax of the last position's logits, [V]. */
  logprobsLast: Float64Array;
  /** Captured sites by name, [T * width] each. */
  cache: Record<string, Float64Array>;
}

/** gelu_new / gelu_pytorch_tanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
export function geluNewRef(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

const SITE_RE = /^(embed|ln_f)$|^(resid_pre|attn_out|mlp_post|mlp_out|resid_post)\.(\d+)$/;

function checkSite(config: ModelConfig, site: string): void {
  const m = SITE_RE.exec(site);
  if (!m) {
    throw new InputError(
      `unknown hook site '${site}' (expected embed, ln_f, or resid_pre|attn_out|mlp_post|mlp_out|resid_post.<layer>)`,
      { field: "site" },
    );
  }
  if (m[3] !== undefined && Number(m[3]) >= config.nLayer) {
    throw new InputError(`hook site '${site}': layer ${m[3]} out of range (model has ${config.nLayer})`, {
      field: "site",
    });
  }
}

function checkWeights(config: ModelConfig, weights: WeightMap): void {
  const shapes = weightShapes(config);
  if (weights.has("lm_head.weight")) shapes.set("lm_head.weight", [config.vocabSize, config.nEmbd]);
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

function checkIds(config: ModelConfig, ids: number[]): void {
  if (ids.length === 0) throw new InputError("empty prompt: at least one token is needed", { field: "ids" });
  if (ids.length > config.nPositions) {
    throw new InputError(
      `prompt has ${ids.length} tokens, longer than the model's context of ${config.nPositions}`,
      {
        field: "ids",
      },
    );
  }
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= config.vocabSize) {
      throw new InputError(`token id ${id} out of range [0, ${config.vocabSize})`, { field: "ids" });
    }
  }
}

/** out[T, N] = x[T, K] @ W[K, N] + b[N]  (Conv1D layout). */
function linear(
  x: Float64Array,
  T: number,
  K: number,
  W: ArrayLike<number>,
  b: ArrayLike<number>,
  N: number,
): Float64Array {
  const out = new Float64Array(T * N);
  for (let t = 0; t < T; t++) {
    const o = t * N;
    for (let n = 0; n < N; n++) out[o + n] = b[n];
    for (let k = 0; k < K; k++) {
      const a = x[t * K + k];
      if (a === 0) continue;
      const wo = k * N;
      for (let n = 0; n < N; n++) out[o + n] += a * W[wo + n];
    }
  }
  return out;
}

/** Row-wise LayerNorm with biased variance and eps inside the square root. */
function layerNorm(
  x: Float64Array,
  T: number,
  C: number,
  g: ArrayLike<number>,
  b: ArrayLike<number>,
  eps: number,
): Float64Array {
  const out = new Float64Array(T * C);
  for (let t = 0; t < T; t++) {
    const o = t * C;
    let mean = 0;
    for (let c = 0; c < C; c++) mean += x[o + c];
    mean /= C;
    let v = 0;
    for (let c = 0; c < C; c++) {
      const d = x[o + c] - mean;
      v += d * d;
    }
    v /= C;
    const inv = 1 / Math.sqrt(v + eps);
    for (let c = 0; c < C; c++) out[o + c] = (x[o + c] - mean) * inv * g[c] + b[c];
  }
  return out;
}

/** Causal multi-head attention on qkv [T, 3C]; head h reads columns h*D.. of the q, k and v blocks. */
function causalAttention(qkv: Float64Array, T: number, C: number, nHead: number): Float64Array {
  const D = C / nHead;
  const C3 = 3 * C;
  const scale = 1 / Math.sqrt(D);
  const out = new Float64Array(T * C);
  const z = new Float64Array(T);
  for (let h = 0; h < nHead; h++) {
    for (let t = 0; t < T; t++) {
      const qo = t * C3 + h * D;
      let m = -Infinity;
      for (let s = 0; s <= t; s++) {
        const ko = s * C3 + C + h * D;
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
      const oo = t * C + h * D;
      for (let s = 0; s <= t; s++) {
        const p = z[s] / sum;
        const vo = s * C3 + 2 * C + h * D;
        for (let d = 0; d < D; d++) out[oo + d] += p * qkv[vo + d];
      }
    }
  }
  return out;
}

/**
 * GPT-2 forward pass over one sequence `ids` in float64, with optional capture and patch hooks.
 * Throws {@link ShapeError} for missing or mis-shaped weights and {@link InputError} for bad ids or
 * unknown hook sites.
 */
export function gpt2ForwardRef(
  config: ModelConfig,
  weights: WeightMap,
  ids: number[],
  opts: RefForwardOptions = {},
): RefForwardResult {
  const { nLayer: L, nHead, nEmbd: C, nInner: I, vocabSize: V, layerNormEpsilon: eps } = config;
  if (!Number.isInteger(C / nHead)) {
    throw new ShapeError(`n_embd ${C} is not divisible by n_head ${nHead}`, { field: "n_head" });
  }
  checkWeights(config, weights);
  checkIds(config, ids);
  const capture = opts.hooks?.capture ?? new Set<string>();
  const patch = opts.hooks?.patch ?? {};
  for (const s of capture) checkSite(config, s);
  for (const s of Object.keys(patch)) checkSite(config, s);

  const T = ids.length;
  const cache: Record<string, Float64Array> = {};
  const site = (name: string, v: Float64Array, width: number) => {
    const fn = patch[name];
    if (fn) fn(v, T, width);
    if (capture.has(name)) cache[name] = v.slice();
  };
  const W = (n: string): Float32Array => (weights.get(n) as HostTensor).data;

  const wte = W("wte.weight"), wpe = W("wpe.weight");
  const x = new Float64Array(T * C);
  for (let t = 0; t < T; t++) {
    for (let c = 0; c < C; c++) x[t * C + c] = wte[ids[t] * C + c] + wpe[t * C + c];
  }
  site("embed", x, C);

  for (let l = 0; l < L; l++) {
    const p = `h.${l}.`;
    site(`resid_pre.${l}`, x, C);
    const a = layerNorm(x, T, C, W(p + "ln_1.weight"), W(p + "ln_1.bias"), eps);
    const qkv = linear(a, T, C, W(p + "attn.c_attn.weight"), W(p + "attn.c_attn.bias"), 3 * C);
    const merged = causalAttention(qkv, T, C, nHead);
    const attnOut = linear(merged, T, C, W(p + "attn.c_proj.weight"), W(p + "attn.c_proj.bias"), C);
    site(`attn_out.${l}`, attnOut, C);
    for (let i = 0; i < T * C; i++) x[i] += attnOut[i];

    const m = layerNorm(x, T, C, W(p + "ln_2.weight"), W(p + "ln_2.bias"), eps);
    const h = linear(m, T, C, W(p + "mlp.c_fc.weight"), W(p + "mlp.c_fc.bias"), I);
    for (let i = 0; i < h.length; i++) h[i] = geluNewRef(h[i]);
    site(`mlp_post.${l}`, h, I);
    const mlpOut = linear(h, T, I, W(p + "mlp.c_proj.weight"), W(p + "mlp.c_proj.bias"), C);
    site(`mlp_out.${l}`, mlpOut, C);
    for (let i = 0; i < T * C; i++) x[i] += mlpOut[i];
    site(`resid_post.${l}`, x, C);
  }

  const lnf = layerNorm(x, T, C, W("ln_f.weight"), W("ln_f.bias"), eps);
  site("ln_f", lnf, C);

  // logits[t, v] = ln_f[t] · head[v], head = lm_head.weight [V, C] if present, else wte (tied).
  const head = weights.has("lm_head.weight") ? W("lm_head.weight") : wte;
  const logits = new Float64Array(T * V);
  for (let t = 0; t < T; t++) {
    const xo = t * C;
    for (let v = 0; v < V; v++) {
      const ho = v * C;
      let dot = 0;
      for (let c = 0; c < C; c++) dot += lnf[xo + c] * head[ho + c];
      logits[t * V + v] = dot;
    }
  }

  const last = logits.subarray((T - 1) * V, T * V);
  let mx = -Infinity;
  for (let v = 0; v < V; v++) if (last[v] > mx) mx = last[v];
  let sum = 0;
  for (let v = 0; v < V; v++) sum += Math.exp(last[v] - mx);
  const lse = mx + Math.log(sum);
  const logprobsLast = new Float64Array(V);
  for (let v = 0; v < V; v++) logprobsLast[v] = last[v] - lse;

  return { logits, logprobsLast, cache };
}

/**
 * Neuron attribution (NA): integrated gradients over the MLP neuron activations, Dai et al.'s
 * "knowledge neurons" (methods.md §2(d)), for GPT-2 models on WebGPU.
 *
 * - f(x) is the **probability** p(target | prompt) of the target token after the prompt's last position
 *   (Dai et al. differentiate the softmax probability, not the log-probability).
 * - For layer L the activations w of the **last** token are replaced by α_k·w, every other layer and
 *   position unchanged; IG_i = (w_i / m) · Σ_k ∂f(α_k w)/∂w_i.
 * - Defaults reproduce Dai et al. (`1_analyze_mlm.py: scaled_input`): w is the post-GELU activation
 *   (`mlp_post.L`; BERT's `intermediate` module includes the activation function), baseline 0, and
 *   α_k = k/m for k = 0..m-1 (left Riemann sum), m = 20.
 * - Options reproduce EleutherAI/knowledge-neurons (and Yu et al.'s fork of it): `points: "linspace"`
 *   takes α_k = k/(m−1), k = 0..m−1 (`torch.linspace(0, 1, steps)`, both ends), still divided by m;
 *   `activation: "pre"` scales the output of `mlp.c_fc` (the pre-GELU value h, which EleutherAI patches on
 *   GPT-2), so the layer sees GELU(α_k h) and IG_i = (h_i / m) · Σ_k ∂f/∂h_i at α_k h.
 * - The m scaled copies run as batches of rows; the backward pass returns ∂(−log p)/∂a per row, and
 *   since ∂p/∂a = −p · ∂(−log p)/∂a exactly, the per-step factors −p_k go to the WGSL accumulation
 *   kernel (`kernels/ig_accumulate.wgsl`), which forms the Riemann sum on the GPU. With `activation:
 *   "pre"` the sum also carries GELU'(α_k h_i) per neuron and is formed on the host in float64.
 * - Completeness: Σ_i IG_i → f(x) − f(x with layer L's last-token activations zeroed) as m grows
 *   (GELU(0) = 0, so both activations give the same baseline). f(baseline) is returned as `baselineProb`.
 */
import { createTensor, type GpuTensor, readTensors } from "../gpu/tensor.ts";
import { igAccumulate } from "../gpu/ig_accumulate.ts";
import { InputError } from "../errors.ts";
import { backward, type BackwardResult } from "../model/backward.ts";
import { NonFiniteError } from "../model/nonfinite.ts";
import type { TransformerModel } from "../model/transformer.ts";
import type { EditSpec, Hooks } from "../model/hooks.ts";
import { mulberry32 } from "../model/generate.ts";
import { argmax } from "../numeric/mod.ts";

/** One scored neuron: `neuron` indexes the nInner post-GELU activations of block `layer`. */
export interface Neuron {
  /** Block (layer) index. */
  layer: number;
  /** Index of the neuron in the MLP's inner width. */
  neuron: number;
  /** Its attribution score. */
  score: number;
}

/** Where the interpolation points α_k lie: see the module comment. */
export type IgPoints = "left" | "linspace";
/** Which MLP activation is scaled: post-GELU (Dai) or the c_fc output before GELU (EleutherAI on GPT-2). */
export type IgActivation = "post" | "pre";

/** Options of {@link integratedGradients}. */
export interface IgOptions {
  /** Interpolation steps m (default 20). */
  steps?: number;
  /** Layers to attribute (default all). */
  layers?: number[];
  /** α_k = k/m, k < m ("left", default, Dai) or k/(m−1) ("linspace", EleutherAI); both divide by m. */
  points?: IgPoints;
  /** Scale the post-GELU activations ("post", default, Dai) or the pre-GELU c_fc output ("pre"). */
  activation?: IgActivation;
  /** Steps per forward/backward batch (default m: one batch). Results do not depend on it. */
  batchSize?: number;
  /** false runs one step at a time (= batchSize 1; benchmark baseline). */
  batched?: boolean;
  /** Called after each layer. */
  onLayer?: (done: number, total: number) => void;
}

/** Result of {@link integratedGradients}. */
export interface NeuronAttribution {
  /** The prompt's token ids (including any prefix) and the attributed target token. */
  ids: number[];
  /** The target token. */
  target: number;
  /** Riemann steps of the integral. */
  steps: number;
  /** Where the interpolation points α_k lie (left Riemann sum or numpy linspace). */
  points: IgPoints;
  /** Which activation is scaled: before or after the MLP nonlinearity. */
  activation: IgActivation;
  /** The layers attributed, in the order of `scores`. */
  layers: number[];
  /** IG score per neuron, one array [nInner] per entry of `layers`. */
  scores: Float32Array[];
  /** f(x) = p(target | prompt). */
  prob: number;
  /** f(baseline) per layer: p(target) with that layer's last-token activations zeroed. */
  baselineProb: number[];
}

function checkTarget(model: TransformerModel, ids: number[], target: number): void {
  if (ids.length === 0) throw new InputError("empty prompt", { field: "prompt" });
  model.checkBatch([ids]);
  if (!Number.isInteger(target) || target < 0 || target >= model.config.vocabSize) {
    throw new InputError(`target id ${target} out of range [0, ${model.config.vocabSize})`, {
      field: "target",
    });
  }
}

/** The interpolation factors α_0..α_{m−1} of `points` (see the module comment). */
export function igAlphas(m: number, points: IgPoints = "left"): Float64Array {
  const a = new Float64Array(m);
  for (let k = 0; k < m; k++) a[k] = points === "left" ? k / m : m > 1 ? k / (m - 1) : 0;
  return a;
}

const GELU_K = Math.sqrt(2 / Math.PI);
/** gelu_new and its derivative at x (float64). */
function gelu(x: number): number {
  return 0.5 * x * (1 + Math.tanh(GELU_K * (x + 0.044715 * x * x * x)));
}
function geluGrad(x: number): number {
  const th = Math.tanh(GELU_K * (x + 0.044715 * x * x * x));
  const sech2 = 1 - th * th;
  return 0.5 * (1 + th) + (sech2 === 0 ? 0 : 0.5 * x * sech2 * GELU_K * (1 + 3 * 0.044715 * x * x));
}

/**
 * The pre-GELU MLP input h = norm(x) · W_up + b_up of one token in float64, from the captured residual
 * entering the block and the attention output, with the model's host weights. x is the residual after
 * the attention add (x_mid = resid_pre + attn_out) in sequential blocks and resid_pre in parallel ones;
 * the norm is ln_2, or ln_1 where one norm feeds both branches (GPT-J).
 */
function preActivation(
  model: TransformerModel,
  layer: number,
  residPre: Float32Array,
  attnOut: Float32Array,
) {
  const { nEmbd: C, nInner: I, layerNormEpsilon: eps, parallelResidual } = model.config;
  const spec = model.spec.layer(model.config, layer);
  const host = (n: string | undefined) => (n ? model.weights.get(n)!.data : undefined);
  const norm = spec.ln2 ?? spec.ln1;
  const g = host(norm.weight)!, bln = host(norm.bias);
  const W = host(spec.up.weight)!, b = host(spec.up.bias);
  const x = Float64Array.from(residPre, (v, c) => v + (parallelResidual === "none" ? attnOut[c] : 0));
  let mean = 0;
  for (let c = 0; c < C; c++) mean += x[c];
  mean /= C;
  let v = 0;
  for (let c = 0; c < C; c++) v += (x[c] - mean) ** 2;
  const inv = 1 / Math.sqrt(v / C + eps);
  const h = b ? Float64Array.from(b) : new Float64Array(I);
  const conv = spec.up.layout === "conv1d";
  for (let c = 0; c < C; c++) {
    const a = (x[c] - mean) * inv * g[c] + (bln ? bln[c] : 0);
    for (let i = 0; i < I; i++) h[i] += a * W[conv ? c * I + i : i * C + c];
  }
  return h;
}

/** Integrated gradients of p(target | ids) over every neuron of the chosen layers; see the module comment. */
export async function integratedGradients(
  model: TransformerModel,
  ids: number[],
  target: number,
  opts: IgOptions = {},
): Promise<NeuronAttribution> {
  checkTarget(model, ids, target);
  const m = opts.steps ?? 20;
  if (!Number.isInteger(m) || m < 1) {
    throw new InputError(`steps = ${m} must be an integer >= 1`, { field: "steps" });
  }
  const points = opts.points ?? "left";
  if (points !== "left" && points !== "linspace") {
    throw new InputError(`points '${points}' must be 'left' or 'linspace'`, { field: "points" });
  }
  const activation = opts.activation ?? "post";
  if (activation !== "post" && activation !== "pre") {
    throw new InputError(`activation '${activation}' must be 'post' or 'pre'`, { field: "activation" });
  }
  if (activation === "pre" && model.config.activation !== "gelu_tanh") {
    // "pre" rescales the input of GELU; a gated MLP has no such single input (EasyEdit scales the
    // activation's output there, which is "post"), and the erf GELU's host derivative is not here.
    throw new InputError(
      `activation 'pre' scales the input of a tanh GELU; this model's MLP is ${model.config.activation}: use 'post'`,
      { field: "activation" },
    );
  }
  const bs = opts.batched === false ? 1 : opts.batchSize ?? m;
  if (!Number.isInteger(bs) || bs < 1) {
    throw new InputError(`batch size ${bs} must be an integer >= 1`, { field: "batchSize" });
  }
  const { nLayer, nInner: I, nEmbd: C } = model.config;
  const layers = opts.layers ?? Array.from({ length: nLayer }, (_, l) => l);
  for (const l of layers) {
    if (!Number.isInteger(l) || l < 0 || l >= nLayer) {
      throw new InputError(`layer ${l} out of range [0, ${nLayer})`, { field: "layers" });
    }
  }
  const gpu = model.gpu;
  const T = ids.length;
  const alphas = igAlphas(m, points);
  const sites = layers.map((l) => `mlp_post.${l}`);
  const extra = activation === "pre" ? layers.flatMap((l) => [`resid_pre.${l}`, `attn_out.${l}`]) : [];
  const clean = await model.forward([ids], { hooks: { capture: [...sites, ...extra] } });
  const prob = Math.exp(clean.logprobs[0][target]);
  const scores: Float32Array[] = [];
  const baselineProb: number[] = [];
  const tgtRow = (n: number) => Array.from({ length: n }, (_, t) => (t === n - 1 ? target : -1));
  const lastRow = (site: string, w: number) => clean.captured.get(site)!.data.slice((T - 1) * w, T * w);
  // Each layer costs one completion wait (its backward's site gradient and row losses come back in one
  // map; the forward reads nothing back); the GPU-summed scores of every layer come back in one map at
  // the end.
  const tensors: GpuTensor[] = [];
  const pending: Array<GpuTensor | Float32Array> = [];
  try {
    for (const [li, l] of layers.entries()) {
      const site = sites[li];
      const act = lastRow(site, I);
      // The value the scaled copies start from: post-GELU w, or pre-GELU h (then the layer sees GELU(α h)).
      const pre = activation === "pre"
        ? preActivation(model, l, lastRow(`resid_pre.${l}`, C), lastRow(`attn_out.${l}`, C))
        : undefined;
      const actT = createTensor(gpu, [I], { name: `ig.act.${l}`, data: act });
      const outT = createTensor(gpu, [I], { name: `ig.out.${l}` });
      tensors.push(actT, outT);
      const hostSum = new Float64Array(I);
      for (let s = 0, ci = 0; s < m; s += bs, ci++) {
        const ks = Array.from({ length: Math.min(bs, m - s) }, (_, j) => s + j);
        const B = ks.length;
        const values = new Float32Array(B * I);
        ks.forEach((k, b) => {
          const a = alphas[k];
          for (let i = 0; i < I; i++) values[b * I + i] = pre ? gelu(a * pre[i]) : a * act[i];
        });
        const batch = ks.map(() => ids);
        const hooks = { patch: [{ site, rows: ks.map((_, b) => [b, T - 1] as [number, number]), values }] };
        const res = await stepGradients(model, batch, tgtRow(T), hooks, site);
        const probs = ks.map((_, b) => Math.exp(-res.rowLosses[b * T + T - 1]));
        if (ks[0] === 0) baselineProb.push(probs[0]);
        const grads = res.siteGrads.get(site)!;
        if (pre) {
          // ∂p/∂h_i at α h = −p · ∂(−log p)/∂post_i · GELU'(α h_i).
          ks.forEach((k, b) => {
            const o = (b * T + T - 1) * I;
            for (let i = 0; i < I; i++) hostSum[i] -= probs[b] * grads[o + i] * geluGrad(alphas[k] * pre[i]);
          });
          continue;
        }
        const gT = createTensor(gpu, [B * T * I], { name: "ig.grads", data: grads });
        const wT = createTensor(gpu, [B], { name: "ig.weights", data: Float32Array.from(probs, (p) => -p) });
        tensors.push(gT, wT);
        await igAccumulate(gpu, gT, wT, actT, outT, {
          n: I,
          steps: B,
          rowStride: T * I,
          offset: (T - 1) * I,
          scale: 1 / m,
          accumulate: ci > 0,
        });
      }
      pending.push(pre ? Float32Array.from(hostSum, (x, i) => (pre[i] * x) / m) : outT);
      opts.onLayer?.(li + 1, layers.length);
    }
    const onGpu = pending.filter((p): p is GpuTensor => !(p instanceof Float32Array));
    const read = onGpu.length ? await readTensors(onGpu) : [];
    let r = 0;
    for (const p of pending) scores.push(p instanceof Float32Array ? p : read[r++]);
  } finally {
    for (const t of tensors) t.destroy();
  }
  return { ids, target, steps: m, points, activation, layers, scores, prob, baselineProb };
}

/**
 * One batch of scaled copies: the forward reads nothing back (the loss reads its rows), the backward
 * returns the site's gradient and the row losses in one map. A non-finite loss runs the forward again
 * with its readback, which names the first non-finite site ({@link NonFiniteError}), as a forward does.
 */
async function stepGradients(
  model: TransformerModel,
  batch: number[][],
  targets: number[],
  hooks: Hooks,
  site: string,
): Promise<BackwardResult> {
  const { saved } = await model.forwardForBackward(batch, { hooks, noReadback: true });
  let res: BackwardResult;
  try {
    res = await backward(model, saved, { targets: batch.map(() => targets), reduction: "sum" }, {
      siteGrads: [site],
    });
  } finally {
    saved.destroy();
  }
  if (!res.rowLosses.every(Number.isFinite)) {
    await model.forward(batch, { hooks });
    throw new NonFiniteError("integrated gradients: a non-finite loss of the scaled copies", "logits");
  }
  return res;
}

/** All neurons of an attribution sorted by score, highest first. */
export function rankNeurons(attr: Pick<NeuronAttribution, "layers" | "scores">): Neuron[] {
  const out: Neuron[] = [];
  attr.layers.forEach((layer, li) =>
    attr.scores[li].forEach((score, neuron) => out.push({ layer, neuron, score }))
  );
  return out.sort((a, b) => b.score - a.score || a.layer - b.layer || a.neuron - b.neuron);
}

/**
 * Per-prompt thresholding: the neurons whose score is >= `threshold` × the largest score over all
 * attributed layers (default 0.2, Dai et al.'s `threshold_ratio`), highest first. `strict` keeps only
 * scores > the threshold, as EleutherAI's `get_coarse_neurons(adaptive_threshold=…)` does. Empty when no
 * score is positive.
 */
export function coarseNeurons(
  attr: Pick<NeuronAttribution, "layers" | "scores">,
  threshold = 0.2,
  opts: { strict?: boolean } = {},
): Neuron[] {
  if (!(threshold >= 0 && threshold <= 1)) {
    throw new InputError(`threshold ${threshold} must be in [0, 1]`, { field: "threshold" });
  }
  const ranked = rankNeurons(attr);
  const max = ranked[0]?.score ?? 0;
  if (!(max > 0)) return [];
  const t = threshold * max;
  return ranked.filter((n) => (opts.strict ? n.score > t : n.score >= t));
}

/** A neuron kept by {@link refineNeurons}: in how many prompts' coarse sets it appears. */
export interface SharedNeuron {
  /** Block (layer) index. */
  layer: number;
  /** Index of the neuron in the MLP's inner width. */
  neuron: number;
  /** Number of prompts that share the neuron. */
  count: number;
  /** count / number of prompts. */
  share: number;
  /** Mean score over the prompts where it appears. */
  meanScore: number;
}

/** Options of {@link refineNeurons}. */
export interface RefineOptions {
  /**
   * A neuron must also appear in at least this many prompts (default 0). Dai et al.'s `2_get_kn.py`
   * uses 3 for a bag: count >= max(share × prompts, 3).
   */
  minCount?: number;
  /** Keep count > share × prompts (EleutherAI `get_refined_neurons`, parameter p) instead of >=. */
  strict?: boolean;
}

/**
 * Refinement across paraphrase prompts of one fact: keeps the neurons that appear in the coarse sets of
 * at least `share` of the prompts (default 0.7, Dai et al.'s `mode_ratio_bag`), most shared first.
 */
export function refineNeurons(perPrompt: Neuron[][], share = 0.7, opts: RefineOptions = {}): SharedNeuron[] {
  if (perPrompt.length === 0) throw new InputError("no prompts to refine over", { field: "prompts" });
  if (!(share > 0 && share <= 1)) {
    throw new InputError(`share ${share} must be in (0, 1]`, { field: "share" });
  }
  const minCount = opts.minCount ?? 0;
  if (!(Number.isInteger(minCount) && minCount >= 0)) {
    throw new InputError(`minCount ${minCount} must be an integer >= 0`, { field: "minCount" });
  }
  const acc = new Map<string, SharedNeuron>();
  for (const list of perPrompt) {
    const seen = new Set<string>();
    for (const n of list) {
      const key = `${n.layer}:${n.neuron}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const s = acc.get(key) ?? { layer: n.layer, neuron: n.neuron, count: 0, share: 0, meanScore: 0 };
      s.meanScore = (s.meanScore * s.count + n.score) / (s.count + 1);
      s.count++;
      acc.set(key, s);
    }
  }
  const t = share * perPrompt.length;
  // A relative slack of 1e-9 so that 0.7 × 10 = 7.000000000000001 still admits a count of 7.
  const keep = (c: number) => c >= minCount && (opts.strict ? c > t + 1e-9 * t : c >= t - 1e-9 * t);
  return [...acc.values()]
    .map((s) => ({ ...s, share: s.count / perPrompt.length }))
    .filter((s) => keep(s.count))
    .sort((a, b) => b.count - a.count || b.meanScore - a.meanScore);
}

/**
 * Per-neuron multipliers of the last token's MLP activations: `masks[b]` maps a layer to a [nInner]
 * array of factors (absent layers are left alone). Returns the next-token log-probabilities [V] after
 * the last token for each mask, in batched forward passes (host-side edit hooks, so downstream layers see
 * the modified activations).
 */
export async function maskedLogprobs(
  model: TransformerModel,
  ids: number[],
  masks: Array<Map<number, Float32Array>>,
): Promise<Float32Array[]> {
  if (ids.length === 0) throw new InputError("empty prompt", { field: "prompt" });
  model.checkBatch([ids]);
  if (masks.length === 0) return [];
  const { nLayer, nInner: I } = model.config;
  const layers = Array.from({ length: nLayer }, (_, l) => l).filter((l) => masks.some((mk) => mk.has(l)));
  for (const mk of masks) {
    for (const [l, f] of mk) {
      if (!(l >= 0 && l < nLayer)) {
        throw new InputError(`mask layer ${l} out of range [0, ${nLayer})`, { field: "mask" });
      }
      if (f.length !== I) {
        throw new InputError(`mask of layer ${l} has ${f.length} entries, expected ${I}`, { field: "mask" });
      }
    }
  }
  const out: Float32Array[] = [];
  // Batches of at most 64 rows; each row b gets its own mask at its last token.
  for (let s = 0; s < masks.length; s += 64) {
    const part = masks.slice(s, s + 64);
    const edit: EditSpec[] = layers.map((l) => ({
      site: `mlp_post.${l}`,
      fn: (v: Float32Array, _B: number, TT: number, W: number) => {
        part.forEach((mk, b) => {
          const f = mk.get(l);
          if (!f) return;
          const base = (b * TT + TT - 1) * W;
          for (let i = 0; i < W; i++) v[base + i] *= f[i];
        });
      },
    }));
    const { logprobs } = await model.forward(part.map(() => ids), { hooks: { edit } });
    out.push(...logprobs);
  }
  return out;
}

/** p(target) after each mask of {@link maskedLogprobs}. */
export async function maskedProbs(
  model: TransformerModel,
  ids: number[],
  target: number,
  masks: Array<Map<number, Float32Array>>,
): Promise<number[]> {
  checkTarget(model, ids, target);
  return (await maskedLogprobs(model, ids, masks)).map((lp) => Math.exp(lp[target]));
}

/** Multiplier masks that scale the listed neurons by `factor` (0 suppresses, 2 amplifies). */
export function neuronMask(
  model: TransformerModel,
  neurons: Array<{ layer: number; neuron: number }>,
  factor: number,
  rest = 1,
): Map<number, Float32Array> {
  const { nLayer, nInner } = model.config;
  const mk = new Map<number, Float32Array>();
  if (rest !== 1) { for (let l = 0; l < nLayer; l++) mk.set(l, new Float32Array(nInner).fill(rest)); }
  for (const n of neurons) {
    if (n.layer < 0 || n.layer >= nLayer || n.neuron < 0 || n.neuron >= nInner) {
      throw new InputError(`neuron ${n.layer}:${n.neuron} outside the model (${nLayer} layers × ${nInner})`, {
        field: "neurons",
      });
    }
    const f = mk.get(n.layer) ?? new Float32Array(nInner).fill(rest);
    f[n.neuron] = factor;
    mk.set(n.layer, f);
  }
  return mk;
}

/** Result of {@link suppressAmplify}. */
export interface ScaleReport {
  /** p(target) unchanged. */
  prob: number;
  /** With the neurons' last-token activations set to 0. */
  suppressed: number;
  /** With them multiplied by 2. */
  amplified: number;
  /** (suppressed − prob) / prob and (amplified − prob) / prob. */
  suppressChange: number;
  /** (amplified − prob) / prob. */
  amplifyChange: number;
}

/** Suppresses (×0) and amplifies (×2) `neurons` at the last token and reports p(target) (Dai et al. §5). */
export async function suppressAmplify(
  model: TransformerModel,
  ids: number[],
  target: number,
  neurons: Array<{ layer: number; neuron: number }>,
): Promise<ScaleReport> {
  const [prob, suppressed, amplified] = await maskedProbs(model, ids, target, [
    new Map(),
    neuronMask(model, neurons, 0),
    neuronMask(model, neurons, 2),
  ]);
  return {
    prob,
    suppressed,
    amplified,
    suppressChange: (suppressed - prob) / prob,
    amplifyChange: (amplified - prob) / prob,
  };
}

/**
 * What blocking a set of neurons did, pooled over `runs` blocked forward passes of one or more prompts.
 * Each run compares the blocked model with the unblocked one on the same prompt.
 */
export interface BlockStats {
  /**
   * engram's statistic: mean of p_blocked(target) / p(target), the fraction of the attributed target's
   * probability that is retained (1 = unchanged; lower = the neurons mattered more).
   */
  retainedRatio: number;
  /**
   * Yu et al.'s statistic (`block_salient_neurons.py: analyze`): mean of p(label) − p_blocked(label),
   * where label is the token the unblocked model predicts (its argmax), not necessarily the target.
   */
  probDrop: number;
  /** Yu et al.'s count of runs whose blocked argmax differs from the unblocked one. */
  flips: number;
  /** Number of runs pooled. */
  runs: number;
}

/** One row of {@link faithfulness}: blocking k neurons of the ranking, and k random neurons. */
export interface FaithfulnessRow {
  /** Neurons blocked (the requested k, clipped to the ranking's length). */
  k: number;
  /**
   * Sufficiency (Yu et al.'s `block_mode "sufficiency"`): at the last token, every MLP neuron of every
   * layer is zeroed except the top-k.
   */
  sufficiency: BlockStats;
  /** Comprehensiveness (Yu et al.'s `block_mode "suppress"`): the top-k zeroed at the last token. */
  comprehensiveness: BlockStats;
  /** The same with k random neurons, pooled over the random draws (baseline, `--baseline_exp`). */
  randomSufficiency: BlockStats;
  /** Comprehensiveness with k random neurons, pooled over the random draws. */
  randomComprehensiveness: BlockStats;
}

/** Result of {@link faithfulness} for one prompt. */
export interface FaithfulnessResult {
  /** The attributed target, its unblocked probability, and the unblocked prediction (argmax) and its probability. */
  target: number;
  /** The target's probability with nothing blocked. */
  targetProb: number;
  /** The unblocked prediction (argmax). */
  label: number;
  /** The unblocked prediction's probability. */
  labelProb: number;
  /** One row per k. */
  rows: FaithfulnessRow[];
}

/** Pools BlockStats (means weighted by runs, flips and runs summed). */
export function poolBlockStats(parts: BlockStats[]): BlockStats {
  const runs = parts.reduce((s, p) => s + p.runs, 0);
  const mean = (f: (p: BlockStats) => number) =>
    runs ? parts.reduce((s, p) => s + f(p) * p.runs, 0) / runs : NaN;
  return {
    retainedRatio: mean((p) => p.retainedRatio),
    probDrop: mean((p) => p.probDrop),
    flips: parts.reduce((s, p) => s + p.flips, 0),
    runs,
  };
}

/**
 * Pools the faithfulness of several prompts (each with its own ranking), row by row: Yu et al. report
 * the mean probability drop and the number of flipped predictions over a data set. The prompts must
 * have been run with the same ks.
 */
export function poolFaithfulness(results: FaithfulnessResult[]): FaithfulnessRow[] {
  if (results.length === 0) return [];
  return results[0].rows.map((_, j) => {
    const rows = results.map((r, i) => {
      const row = r.rows[j];
      if (!row) throw new InputError(`prompt ${i} has no faithfulness row ${j}`, { field: "ks" });
      return row;
    });
    const pool = (f: (r: FaithfulnessRow) => BlockStats) => poolBlockStats(rows.map(f));
    return {
      k: rows[0].k,
      sufficiency: pool((r) => r.sufficiency),
      comprehensiveness: pool((r) => r.comprehensiveness),
      randomSufficiency: pool((r) => r.randomSufficiency),
      randomComprehensiveness: pool((r) => r.randomComprehensiveness),
    };
  });
}

/**
 * Faithfulness of a neuron ranking (Yu et al. 2024, `block_salient_neurons.py`): for each k, block the
 * top-k neurons of `ranking` at the last token in two ways, sufficiency (keep only them: every other MLP
 * neuron of every layer zeroed there) and comprehensiveness (zero them), and the same for k random
 * neurons (drawn without replacement from all neurons, `randomTrials` draws) as the baseline. Each is
 * reported as {@link BlockStats}: Yu et al.'s probability drop of the unblocked prediction and its flips,
 * and engram's retained ratio of p(target). k larger than the ranking is clipped.
 */
export async function faithfulness(
  model: TransformerModel,
  ids: number[],
  target: number,
  ranking: Array<{ layer: number; neuron: number }>,
  ks: number[] = [2, 100],
  opts: { randomTrials?: number; seed?: number } = {},
): Promise<FaithfulnessResult> {
  checkTarget(model, ids, target);
  const trials = opts.randomTrials ?? 3;
  if (!(Number.isInteger(trials) && trials >= 0)) {
    throw new InputError(`randomTrials ${trials} must be an integer >= 0`, { field: "randomTrials" });
  }
  for (const k of ks) {
    if (!(Number.isInteger(k) && k >= 1)) {
      throw new InputError(`k = ${k} must be an integer >= 1`, { field: "ks" });
    }
  }
  const rand = mulberry32(opts.seed ?? 1);
  const { nLayer, nInner } = model.config;
  const all: Array<{ layer: number; neuron: number }> = [];
  for (let l = 0; l < nLayer; l++) for (let i = 0; i < nInner; i++) all.push({ layer: l, neuron: i });
  const masks: Array<Map<number, Float32Array>> = [new Map()];
  const kk = ks.map((k) => Math.min(k, ranking.length));
  for (const k of kk) {
    const top = ranking.slice(0, k);
    masks.push(neuronMask(model, top, 1, 0), neuronMask(model, top, 0));
    for (let t = 0; t < trials; t++) {
      const pick = [...all];
      for (let i = 0; i < k; i++) {
        const j = i + Math.floor(rand() * (pick.length - i));
        [pick[i], pick[j]] = [pick[j], pick[i]];
      }
      const rnd = pick.slice(0, k);
      masks.push(neuronMask(model, rnd, 1, 0), neuronMask(model, rnd, 0));
    }
  }
  const lps = await maskedLogprobs(model, ids, masks);
  const base = lps[0];
  const label = argmax(base);
  const pT = Math.exp(base[target]), pL = Math.exp(base[label]);
  const stats = (lp: Float32Array): BlockStats => ({
    retainedRatio: Math.exp(lp[target]) / pT,
    probDrop: pL - Math.exp(lp[label]),
    flips: argmax(lp) === label ? 0 : 1,
    runs: 1,
  });
  let at = 1;
  const rows = kk.map((k) => {
    const sufficiency = stats(lps[at++]);
    const comprehensiveness = stats(lps[at++]);
    const rs: BlockStats[] = [], rc: BlockStats[] = [];
    for (let t = 0; t < trials; t++) {
      rs.push(stats(lps[at++]));
      rc.push(stats(lps[at++]));
    }
    return {
      k,
      sufficiency,
      comprehensiveness,
      randomSufficiency: poolBlockStats(rs),
      randomComprehensiveness: poolBlockStats(rc),
    };
  });
  return { target, targetProb: pT, label, labelProb: pL, rows };
}

/**
 * Neuron attribution (NA): integrated gradients over the MLP neuron activations, Dai et al.'s
 * "knowledge neurons" (methods.md §2(d)), for GPT-2 models on WebGPU.
 *
 * - f(x) is the **probability** p(target | prompt) of the target token after the prompt's last position
 *   (Dai et al. differentiate the softmax probability, not the log-probability).
 * - For layer L the post-GELU activations w = `mlp_post.L` at the **last** token are replaced by α_k·w,
 *   α_k = k/m for k = 0..m-1 (baseline 0, left Riemann sum, m = 20 by default), every other layer and
 *   position unchanged; IG_i = (w_i / m) · Σ_k ∂f(α_k w)/∂w_i.
 * - The m scaled copies run as one batch of m rows; the backward pass returns ∂(−log p)/∂a per row, and
 *   since ∂p/∂a = −p · ∂(−log p)/∂a exactly, the per-step factors −p_k go to the WGSL accumulation
 *   kernel (`kernels/ig_accumulate.wgsl`), which forms the Riemann sum on the GPU.
 * - Completeness: Σ_i IG_i → f(x) − f(x with layer L's last-token activations zeroed) as m grows.
 *   f(baseline) is the k = 0 row, returned as `baselineProb`.
 */
import { createTensor, readTensor } from "../gpu/tensor.ts";
import { igAccumulate } from "../gpu/ig_accumulate.ts";
import { InputError } from "../errors.ts";
import { lossAndGradients } from "../model/backward.ts";
import type { GPT2Model } from "../model/gpt2.ts";
import type { EditSpec } from "../model/hooks.ts";
import { mulberry32 } from "../model/generate.ts";

/** One scored neuron: `neuron` indexes the nInner post-GELU activations of block `layer`. */
export interface Neuron {
  layer: number;
  neuron: number;
  score: number;
}

/** Options of {@link integratedGradients}. */
export interface IgOptions {
  /** Interpolation steps m (default 20). */
  steps?: number;
  /** Layers to attribute (default all). */
  layers?: number[];
  /** Run the m steps as one batch (default true); false runs one step at a time (benchmark baseline). */
  batched?: boolean;
  /** Called after each layer. */
  onLayer?: (done: number, total: number) => void;
}

/** Result of {@link integratedGradients}. */
export interface NeuronAttribution {
  /** The prompt's token ids (including any prefix) and the attributed target token. */
  ids: number[];
  target: number;
  steps: number;
  layers: number[];
  /** IG score per neuron, one array [nInner] per entry of `layers`. */
  scores: Float32Array[];
  /** f(x) = p(target | prompt). */
  prob: number;
  /** f(baseline) per layer: p(target) with that layer's last-token activations zeroed. */
  baselineProb: number[];
}

function checkTarget(model: GPT2Model, ids: number[], target: number): void {
  if (ids.length === 0) throw new InputError("empty prompt", { field: "prompt" });
  model.checkBatch([ids]);
  if (!Number.isInteger(target) || target < 0 || target >= model.config.vocabSize) {
    throw new InputError(`target id ${target} out of range [0, ${model.config.vocabSize})`, {
      field: "target",
    });
  }
}

/** Integrated gradients of p(target | ids) over every neuron of the chosen layers; see the module comment. */
export async function integratedGradients(
  model: GPT2Model,
  ids: number[],
  target: number,
  opts: IgOptions = {},
): Promise<NeuronAttribution> {
  checkTarget(model, ids, target);
  const m = opts.steps ?? 20;
  if (!Number.isInteger(m) || m < 1) {
    throw new InputError(`steps = ${m} must be an integer >= 1`, { field: "steps" });
  }
  const { nLayer, nInner: I } = model.config;
  const layers = opts.layers ?? Array.from({ length: nLayer }, (_, l) => l);
  for (const l of layers) {
    if (!Number.isInteger(l) || l < 0 || l >= nLayer) {
      throw new InputError(`layer ${l} out of range [0, ${nLayer})`, { field: "layers" });
    }
  }
  const gpu = model.gpu;
  const T = ids.length;
  const sites = layers.map((l) => `mlp_post.${l}`);
  const clean = await model.forward([ids], { hooks: { capture: sites } });
  const prob = Math.exp(clean.logprobs[0][target]);
  const scores: Float32Array[] = [];
  const baselineProb: number[] = [];
  const tgtRow = (n: number) => Array.from({ length: n }, (_, t) => (t === n - 1 ? target : -1));
  for (const [li, l] of layers.entries()) {
    const site = sites[li];
    const act = clean.captured.get(site)!.slice((T - 1) * I, T * I);
    const actT = createTensor(gpu, [I], { name: `ig.act.${l}`, data: act });
    const outT = createTensor(gpu, [I], { name: `ig.out.${l}` });
    const tensors = [actT, outT];
    try {
      const chunks = opts.batched === false
        ? Array.from({ length: m }, (_, k) => [k])
        : [Array.from({ length: m }, (_, k) => k)];
      for (const [ci, ks] of chunks.entries()) {
        const B = ks.length;
        const values = new Float32Array(B * I);
        ks.forEach((k, b) => {
          const a = k / m;
          for (let i = 0; i < I; i++) values[b * I + i] = a * act[i];
        });
        const res = await lossAndGradients(
          model,
          ks.map(() => ids),
          { targets: ks.map(() => tgtRow(T)), reduction: "sum" },
          {
            hooks: { patch: [{ site, rows: ks.map((_, b) => [b, T - 1] as [number, number]), values }] },
            siteGrads: [site],
          },
        );
        const probs = ks.map((_, b) => Math.exp(-res.rowLosses[b * T + T - 1]));
        if (ks[0] === 0) baselineProb.push(probs[0]);
        const gT = createTensor(gpu, [B * T * I], { name: "ig.grads", data: res.siteGrads.get(site)! });
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
      scores.push(await readTensor(outT));
    } finally {
      for (const t of tensors) t.destroy();
    }
    opts.onLayer?.(li + 1, layers.length);
  }
  return { ids, target, steps: m, layers, scores, prob, baselineProb };
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
 * Dai et al.'s per-prompt thresholding: the neurons whose score is >= `threshold` × the largest score over
 * all attributed layers (default 0.2), highest first. Empty when no score is positive.
 */
export function coarseNeurons(attr: Pick<NeuronAttribution, "layers" | "scores">, threshold = 0.2): Neuron[] {
  if (!(threshold >= 0 && threshold <= 1)) {
    throw new InputError(`threshold ${threshold} must be in [0, 1]`, { field: "threshold" });
  }
  const ranked = rankNeurons(attr);
  const max = ranked[0]?.score ?? 0;
  if (!(max > 0)) return [];
  return ranked.filter((n) => n.score >= threshold * max);
}

/** A neuron kept by {@link refineNeurons}: in how many prompts' coarse sets it appears. */
export interface SharedNeuron {
  layer: number;
  neuron: number;
  count: number;
  /** count / number of prompts. */
  share: number;
  /** Mean score over the prompts where it appears. */
  meanScore: number;
}

/**
 * Refinement across paraphrase prompts of one fact: keeps the neurons that appear in the coarse sets of
 * at least `share` of the prompts (default 0.7, Dai et al.'s `mode_ratio_bag`), most shared first.
 */
export function refineNeurons(perPrompt: Neuron[][], share = 0.7): SharedNeuron[] {
  if (perPrompt.length === 0) throw new InputError("no prompts to refine over", { field: "prompts" });
  if (!(share > 0 && share <= 1)) {
    throw new InputError(`share ${share} must be in (0, 1]`, { field: "share" });
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
  const need = share * perPrompt.length - 1e-9;
  return [...acc.values()]
    .map((s) => ({ ...s, share: s.count / perPrompt.length }))
    .filter((s) => s.count >= need)
    .sort((a, b) => b.count - a.count || b.meanScore - a.meanScore);
}

/**
 * Per-neuron multipliers of the last token's MLP activations: `masks[b]` maps a layer to a [nInner]
 * array of factors (absent layers are left alone). Returns p(target) for each mask, in one batched
 * forward pass (host-side edit hooks, so downstream layers see the modified activations).
 */
export async function maskedProbs(
  model: GPT2Model,
  ids: number[],
  target: number,
  masks: Array<Map<number, Float32Array>>,
): Promise<number[]> {
  checkTarget(model, ids, target);
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
  const out: number[] = [];
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
    for (const lp of logprobs) out.push(Math.exp(lp[target]));
  }
  return out;
}

/** Multiplier masks that scale the listed neurons by `factor` (0 suppresses, 2 amplifies). */
export function neuronMask(
  model: GPT2Model,
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
  amplifyChange: number;
}

/** Suppresses (×0) and amplifies (×2) `neurons` at the last token and reports p(target) (Dai et al. §5). */
export async function suppressAmplify(
  model: GPT2Model,
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

/** One row of {@link faithfulness}. */
export interface FaithfulnessRow {
  k: number;
  /** p(target) keeping only the top-k neurons (all other neurons of every layer zeroed at the last token) / p. */
  sufficiency: number;
  /** p(target) with the top-k neurons zeroed / p. */
  comprehensiveness: number;
  /** The same with k random neurons, averaged over `randomTrials` draws (baseline). */
  randomSufficiency: number;
  randomComprehensiveness: number;
}

/**
 * Faithfulness of a neuron ranking (Yu et al. 2024, `block_salient_neurons.py`): for each k, the fraction
 * of the original p(target) retained when only the top-k neurons are kept at the last token (sufficiency:
 * every other MLP neuron of every layer zeroed there) and when the top-k are zeroed (comprehensiveness),
 * with k random neurons as the baseline. k larger than the number of neurons is clipped.
 */
export async function faithfulness(
  model: GPT2Model,
  ids: number[],
  target: number,
  ranking: Array<{ layer: number; neuron: number }>,
  ks: number[] = [1, 10, 100],
  opts: { randomTrials?: number; seed?: number } = {},
): Promise<FaithfulnessRow[]> {
  const trials = opts.randomTrials ?? 3;
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
  const probs = await maskedProbs(model, ids, target, masks);
  const p = probs[0];
  let at = 1;
  return kk.map((k) => {
    const suff = probs[at++] / p;
    const comp = probs[at++] / p;
    let rs = 0, rc = 0;
    for (let t = 0; t < trials; t++) {
      rs += probs[at++] / p;
      rc += probs[at++] / p;
    }
    return {
      k,
      sufficiency: suff,
      comprehensiveness: comp,
      randomSufficiency: trials ? rs / trials : NaN,
      randomComprehensiveness: trials ? rc / trials : NaN,
    };
  });
}

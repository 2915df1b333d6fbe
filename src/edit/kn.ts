/**
 * KN: knowledge-neuron editing (Dai et al. 2022), as the EleutherAI `knowledge-neurons` package does it
 * and as ROME's and EasyEdit's KN baselines call it (methods.md §2(d)):
 *
 * 1. Find the fact's knowledge neurons: integrated gradients of p(ground_truth | prompt) over every MLP
 *    neuron at the prompt's last token (src/attribute/neurons.ts, m = `steps`), keep the neurons scoring
 *    >= `adaptive_threshold` × the maximum; with `refine`, repeat on the request's rephrase prompts and
 *    keep neurons found in more than a `p` share of the prompts.
 * 2. Rewrite each neuron's value vector (its row of `h.L.mlp.c_proj.weight`, [nInner, nEmbd] in the
 *    Hugging Face Conv1D layout): subtract `erase_scale` × the word embedding of the model's current
 *    top-1 prediction and add `add_scale` × the embedding of `target_new` (EleutherAI: 2 and 2). For a
 *    multi-token target every token's embedding is added once, as the reference does. `norm_scaled`
 *    instead scales each embedding to the row's norm (Dai et al.'s fact update: λ1 = 1, λ2 = 8).
 *
 * Requests are edited one after another (the reference handles one request per call). The ground truth
 * is attributed through its first token; a request without `ground_truth` uses the model's own top-1
 * prediction, which is what the reference erases.
 */
import type { GPT2Config, HostTensor } from "../model/config.ts";
import type { GPT2Model } from "../model/gpt2.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import { coarseNeurons, integratedGradients, type Neuron, refineNeurons } from "../attribute/neurons.ts";
import {
  type EditOptions,
  type EditResult,
  keepOriginal,
  registerEditor,
  restoreWeights,
  weightDeltas,
} from "./apply.ts";
import { checkLayers, type HparamSchema, mergeBySchema, rule } from "./hparams.ts";
import { type EditRequest, filledPrompt } from "./requests.ts";
import { encodeTarget, encodeText } from "../prompt/encode.ts";

/** Hyper-parameters of the KN editor (EasyEdit `hparams/KN/*.yaml` names where they exist). */
export interface KnHparams {
  /** Layers searched for neurons (default: all). */
  layers: number[];
  /** Integrated-gradients steps m (reference: 20). */
  steps: number;
  /** Keep neurons scoring >= this × the maximum (reference: 0.2). */
  adaptive_threshold: number;
  /** With `refine`, keep neurons found in more than this share of the prompts (reference: 0.4). */
  p: number;
  /** Refine over the prompt and its rephrasings (reference: false). */
  refine: boolean;
  /** Multiple of the old prediction's embedding subtracted from each value vector (reference: 2). */
  erase_scale: number;
  /** Multiple of the target's embedding added (reference: 2). */
  add_scale: number;
  /** Scale each embedding to the value vector's norm first (Dai et al.'s update; reference: false). */
  norm_scaled: boolean;
  /** Keep at most this many neurons per request, highest score first (0: no cap; reference: no cap). */
  max_neurons: number;
  /** Explicit BOS override (see CommonHparams.prefix_eos); absent: the model's BOS policy. */
  prefix_eos?: boolean;
}

/** The KN defaults of ROME's and EasyEdit's KN baselines (gpt2-xl): steps 20, threshold 0.2, p 0.4. */
export function knDefaults(cfg: GPT2Config): KnHparams {
  return {
    layers: Array.from({ length: cfg.nLayer }, (_, l) => l),
    steps: 20,
    adaptive_threshold: 0.2,
    p: 0.4,
    refine: false,
    erase_scale: 2,
    add_scale: 2,
    norm_scaled: false,
    max_neurons: 0,
  };
}

const IGNORED = new Set(["alg_name", "model_name", "device", "batch_size", "lr_scale", "max_length"]);

/** Overrides `base` with a JSON object (from `file`, for messages); unknown keys are a {@link ConfigError}. */
export function mergeKnHparams(base: KnHparams, over: unknown, cfg: GPT2Config, file?: string): KnHparams {
  return mergeBySchema(base, over, KN_SCHEMA, IGNORED, cfg, file);
}

const KN_SCHEMA: HparamSchema = {
  layers: rule.layers(),
  steps: rule.int(1),
  adaptive_threshold: rule.unit(),
  p: rule.unit(),
  refine: rule.bool(),
  erase_scale: rule.finite(),
  add_scale: rule.finite(),
  norm_scaled: rule.bool(),
  max_neurons: rule.int(),
  prefix_eos: rule.bool(),
};

function promptIds(
  tokenizer: Tokenizer,
  text: string,
  hp: KnHparams,
  cfg: GPT2Config,
  where: string,
): number[] {
  return encodeText(tokenizer, text, {
    nPositions: cfg.nPositions,
    bos: hp.prefix_eos,
    where: { record: where },
  });
}

function argmax(xs: Float32Array): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
  return best;
}

function norm(xs: Float32Array | number[]): number {
  let s = 0;
  for (const x of xs) s += x * x;
  return Math.sqrt(s);
}

/** What the KN editor found and did for one request. */
export interface KnRequestInfo {
  neurons: Array<{ layer: number; neuron: number; score: number }>;
  /** Token id of the prediction erased and the target tokens added. */
  erased: number;
  added: number[];
  /** p(ground-truth first token) on the prompt before the edit. */
  groundTruthProb: number;
}

/**
 * Knowledge-neuron editor: finds each request's neurons by integrated gradients and rewrites their value
 * vectors (module comment). Mutates `model`; the returned originals undo it exactly.
 */
export async function knEdit(
  model: GPT2Model,
  tokenizer: Tokenizer,
  requests: EditRequest[],
  opts: EditOptions = {},
): Promise<EditResult> {
  const cfg = model.config;
  let hp = knDefaults(cfg);
  if (opts.hparams) hp = mergeKnHparams(hp, opts.hparams, cfg);
  if (opts.layers) {
    checkLayers(opts.layers, cfg);
    hp = { ...hp, layers: [...opts.layers] };
  }
  const originals = new Map<string, HostTensor>();
  const order: string[] = [];
  const perRequest: KnRequestInfo[] = [];
  const warnings: string[] = [];
  // The reference adds *input* word embeddings (GPT-2's wte), tied to the output head in GPT-2.
  const E = model.weights.get("wte.weight")!;
  const C = cfg.nEmbd;
  const embRow = (id: number) => E.data.subarray(id * C, (id + 1) * C);
  try {
    for (const [ri, req] of requests.entries()) {
      const where = `request ${ri}`;
      const target = encodeTarget(tokenizer, req.target_new, {
        record: where,
        fields: { target: "target_new" },
      });
      const prompts = [filledPrompt(req), ...(hp.refine ? req.rephrase ?? [] : [])];
      const idsList = prompts.map((p, i) =>
        promptIds(tokenizer, p, hp, cfg, i === 0 ? where : `${where} rephrase ${i}`)
      );
      const { logprobs } = await model.forward([idsList[0]]);
      const erased = argmax(logprobs[0]);
      const gt = req.ground_truth && req.ground_truth.trim() !== ""
        ? encodeTarget(tokenizer, req.ground_truth)[0]
        : erased;
      const perPrompt: Neuron[][] = [];
      for (const [pi, ids] of idsList.entries()) {
        const attr = await integratedGradients(model, ids, gt, {
          steps: hp.steps,
          layers: hp.layers,
          onLayer: (d, t) => opts.onProgress?.(`request ${ri + 1}/${requests.length} prompt ${pi + 1}`, d, t),
        });
        perPrompt.push(coarseNeurons(attr, hp.adaptive_threshold));
      }
      let neurons: Array<{ layer: number; neuron: number; score: number }>;
      if (perPrompt.length === 1) neurons = perPrompt[0];
      else {
        // The reference keeps neurons counted in *more than* p · n prompts.
        neurons = refineNeurons(perPrompt, Math.min(1, hp.p + 1e-9)).filter((s) =>
          s.count > hp.p * perPrompt.length
        )
          .map((s) => ({ layer: s.layer, neuron: s.neuron, score: s.meanScore }));
      }
      if (hp.max_neurons > 0) neurons = neurons.slice(0, hp.max_neurons);
      if (neurons.length === 0) {
        const msg = `${where}: no knowledge neurons found (no positive attribution); nothing edited`;
        warnings.push(msg);
        opts.onWarning?.(msg);
      }
      const eOld = embRow(erased);
      for (const { layer, neuron } of neurons) {
        const name = `h.${layer}.mlp.c_proj.weight`;
        keepOriginal(model, name, originals, order);
        const w = model.weights.get(name)!;
        const row = w.data.subarray(neuron * C, (neuron + 1) * C);
        const rn = norm(row);
        const sOld = hp.erase_scale * (hp.norm_scaled ? rn / norm(eOld) : 1);
        const upd = new Float64Array(C);
        for (let c = 0; c < C; c++) upd[c] = -sOld * eOld[c];
        // Reference: one target token gets add_scale × its embedding; several get one embedding each.
        const addEach = target.length === 1 ? hp.add_scale : hp.add_scale / 2;
        for (const t of target) {
          const e = embRow(t);
          const s = addEach * (hp.norm_scaled ? rn / norm(e) : 1);
          for (let c = 0; c < C; c++) upd[c] += s * e[c];
        }
        for (let c = 0; c < C; c++) row[c] += upd[c];
      }
      for (const name of new Set(neurons.map((n) => `h.${n.layer}.mlp.c_proj.weight`))) {
        model.syncWeight(name);
      }
      perRequest.push({ neurons, erased, added: target, groundTruthProb: Math.exp(logprobs[0][gt]) });
    }
  } catch (e) {
    restoreWeights(model, originals);
    throw e;
  }
  const tensors = weightDeltas(model, originals, order);
  return {
    method: "kn",
    weights: order,
    originals,
    tensors,
    hparams: { ...hp },
    info: { requests: perRequest, neurons: perRequest.reduce((s, r) => s + r.neurons.length, 0) },
    warnings,
  };
}

registerEditor("kn", knEdit);

/**
 * KN: knowledge-neuron editing (Dai et al. 2022), as the EleutherAI `knowledge-neurons` package does it
 * and as ROME's and EasyEdit's KN baselines call it (methods.md §2(d)):
 *
 * 1. Find the fact's knowledge neurons: integrated gradients of p(ground_truth | prompt) over every MLP
 *    neuron at the prompt's last token (src/attribute/neurons.ts, m = `steps`), as EleutherAI's package
 *    (which EasyEdit vendors) computes them: the pre-GELU `c_fc` output scaled by linspace(0, 1, m), the
 *    sum divided by m (`ig_points`, `ig_activation`); keep the neurons scoring > `adaptive_threshold` ×
 *    the maximum (`ig_strict`); with `refine`, repeat on the request's rephrase prompts and keep neurons
 *    found in more than a `p` share of the prompts.
 * 2. Rewrite each neuron's value vector (its row of `h.L.mlp.c_proj.weight`, [nInner, nEmbd] in the
 *    Hugging Face Conv1D layout) as EasyEdit's `modify_weights` does for GPT-2. With n target tokens the
 *    model's greedy completion of the prompt is taken for n steps (tokens g_1..g_n); then
 *      n = 1:  row −= erase_scale · e(g_1)            (reference: 2 · e(g_1))
 *      n > 1:  row −= erase_scale / 2 · Σ_i e(g_i)    (reference: each greedy token's embedding once)
 *      always: row += add_scale · Σ_j e(t_j)          (reference: each target token's embedding once,
 *              a one-token target too: EasyEdit indexes the embedding matrix with the token list)
 *    where e is the input word embedding (wte). `norm_scaled` instead scales each embedding to the row's
 *    norm first (Dai et al.'s fact update: λ1 = 1, λ2 = 8).
 *
 * Requests are computed one after another, each on the model with the earlier requests' changes in
 * place (the reference handles one request per call); the model is left as it was and the changes are
 * returned as deltas (src/edit/apply.ts applies them). The ground truth is attributed through its first
 * token; a request without `ground_truth` uses the model's own top-1 prediction.
 */
import { keyValueIndex, mlpOutProjection } from "./target.ts";
import { InputError } from "../errors.ts";
import { type HostTensor, type ModelConfig, resolveConfig } from "../model/config.ts";
import type { TransformerModel } from "../model/transformer.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import {
  coarseNeurons,
  type IgActivation,
  type IgPoints,
  integratedGradients,
  type Neuron,
  refineNeurons,
} from "../attribute/neurons.ts";
import { type EditDeltas, type EditOptions, ScratchWeights } from "./apply.ts";
import { checkLayers, mergeBySchema } from "./hparams.ts";
import { IGNORED_KN, KN_HPARAMS } from "../schema/hparams.ts";
import type { z } from "../schema/zod.ts";
import { sameType } from "../schema/same_type.ts";
import { type EditRequest, filledPrompt } from "./requests.ts";
import { encodeTarget, encodeText } from "../prompt/encode.ts";
import { argmax } from "../numeric/mod.ts";

/** Hyper-parameters of the KN editor (EasyEdit `hparams/KN/*.yaml` names where they exist). */
export interface KnHparams {
  /** Layers searched for neurons (default: all). */
  layers: number[];
  /** Integrated-gradients steps m (reference: 20). */
  steps: number;
  /** Keep neurons scoring above this × the maximum (reference: 0.2). */
  adaptive_threshold: number;
  /** IG points: "linspace" (EleutherAI / EasyEdit, default) or "left" (Dai et al.'s α = k/m). */
  ig_points: IgPoints;
  /** What IG scales: the pre-GELU c_fc output ("pre", EleutherAI / EasyEdit, default) or "post" (Dai). */
  ig_activation: IgActivation;
  /** Keep scores strictly above the threshold (EleutherAI / EasyEdit, default) or also equal (Dai). */
  ig_strict: boolean;
  /** With `refine`, keep neurons found in more than this share of the prompts (reference: 0.4). */
  p: number;
  /** Refine over the prompt and its rephrasings (reference: false). */
  refine: boolean;
  /**
   * Multiple of the old prediction's embedding subtracted from each value vector for a one-token target
   * (reference: 2); with several target tokens each greedy token's embedding is subtracted
   * `erase_scale / 2` times (reference: once).
   */
  erase_scale: number;
  /** Multiple of each target token's embedding added (reference: 1, i.e. once each). */
  add_scale: number;
  /** Scale each embedding to the value vector's norm first (Dai et al.'s update; reference: false). */
  norm_scaled: boolean;
  /** Keep at most this many neurons per request, highest score first (0: no cap; reference: no cap). */
  max_neurons: number;
  /** Explicit BOS override (see CommonHparams.prefix_eos); absent: the model's BOS policy. */
  prefix_eos?: boolean;
}
// The zod schema validates this type's files; the interface is what the public API shows (deno doc
// cannot document a z.infer alias): the two must stay the same type.
sameType<KnHparams, z.infer<typeof KN_HPARAMS>>(true);

/**
 * The KN defaults of ROME's and EasyEdit's KN baselines (gpt2-xl): steps 20, threshold 0.2, p 0.4; the
 * update scales of EasyEdit's GPT-2 path (erase 2, add 1).
 */
export function knDefaults(cfg: ModelConfig): KnHparams {
  return {
    layers: Array.from({ length: cfg.nLayer }, (_, l) => l),
    steps: 20,
    adaptive_threshold: 0.2,
    ig_points: "linspace",
    // EleutherAI scales the pre-GELU fc output; a gated or erf-GELU MLP gets the activation itself.
    ig_activation: resolveConfig(cfg).activation === "gelu_tanh" ? "pre" : "post",
    ig_strict: true,
    p: 0.4,
    refine: false,
    erase_scale: 2,
    add_scale: 1,
    norm_scaled: false,
    max_neurons: 0,
  };
}

/** Overrides `base` with a JSON object (from `file`, for messages); unknown keys are a ConfigError. */
export function mergeKnHparams(base: KnHparams, over: unknown, cfg: ModelConfig, file?: string): KnHparams {
  return mergeBySchema(base, over, KN_HPARAMS.shape, IGNORED_KN, cfg, file);
}

function promptIds(
  tokenizer: Tokenizer,
  text: string,
  hp: KnHparams,
  cfg: ModelConfig,
  where: string,
): number[] {
  return encodeText(tokenizer, text, {
    nPositions: cfg.nPositions,
    bos: hp.prefix_eos,
    where: { record: where },
  });
}

function norm(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i] * xs[i];
  return Math.sqrt(s);
}

/** What the KN editor found and did for one request. */
export interface KnRequestInfo {
  /** The knowledge neurons edited for the request, with their attribution scores. */
  neurons: Array<{ layer: number; neuron: number; score: number }>;
  /** The greedy completion whose embeddings were subtracted (one token per target token). */
  erased: number[];
  /** The target tokens whose embeddings were added. */
  added: number[];
  /** p(ground-truth first token) on the prompt before the edit. */
  groundTruthProb: number;
}

/**
 * The change of one value vector `row` (module comment): −erase · Σ e(greedy) + add · Σ e(target), in
 * float64. `emb(id)` is a word-embedding row.
 */
export function knRowUpdate(
  row: ArrayLike<number>,
  greedy: number[],
  target: number[],
  emb: (id: number) => ArrayLike<number>,
  hp: Pick<KnHparams, "erase_scale" | "add_scale" | "norm_scaled">,
): Float64Array {
  const C = row.length;
  const rn = norm(row);
  const upd = new Float64Array(C);
  const eraseEach = greedy.length === 1 ? hp.erase_scale : hp.erase_scale / 2;
  const add = (id: number, scale: number) => {
    const e = emb(id);
    const s = scale * (hp.norm_scaled ? rn / norm(e) : 1);
    for (let c = 0; c < C; c++) upd[c] += s * e[c];
  };
  for (const g of greedy) add(g, -eraseEach);
  for (const t of target) add(t, hp.add_scale);
  return upd;
}

/**
 * Knowledge-neuron editor: finds each request's neurons by integrated gradients and computes the change
 * of their value vectors (module comment). Leaves `model` as it was; returns the deltas.
 */
export async function knEdit(
  model: TransformerModel,
  tokenizer: Tokenizer,
  requests: EditRequest[],
  opts: EditOptions = {},
): Promise<EditDeltas> {
  const cfg = model.config;
  let hp = knDefaults(cfg);
  if (opts.hparams) hp = mergeKnHparams(hp, opts.hparams, cfg);
  if (opts.layers) {
    checkLayers(opts.layers, cfg);
    hp = { ...hp, layers: [...opts.layers] };
  }
  const perRequest: KnRequestInfo[] = [];
  const warnings: string[] = [];
  // The reference adds *input* word embeddings (GPT-2's wte, the family's token embedding).
  const E = model.weights.get(model.spec.embed)!;
  const C = cfg.nEmbd;
  const embRow = (id: number) => E.data.subarray(id * C, (id + 1) * C);
  // Accumulated change of each edited weight, in the order first changed.
  const total = new Map<string, Float64Array>();
  const scratch = new ScratchWeights(model);
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
      if (idsList[0].length + target.length - 1 > cfg.nPositions) {
        throw new InputError(
          `${where}: the prompt and a ${target.length}-token greedy completion need ${
            idsList[0].length + target.length - 1
          } tokens, more than the context ${cfg.nPositions}`,
          { field: "prompt" },
        );
      }
      const { logprobs } = await model.forward([idsList[0]]);
      // The greedy completion, one token per target token (the reference's `_generate`).
      const greedy = [argmax(logprobs[0])];
      for (let cur = [...idsList[0], greedy[0]]; greedy.length < target.length;) {
        const next = argmax((await model.forward([cur])).logprobs[0]);
        greedy.push(next);
        cur = [...cur, next];
      }
      const gt = req.ground_truth && req.ground_truth.trim() !== ""
        ? encodeTarget(tokenizer, req.ground_truth)[0]
        : greedy[0];
      const perPrompt: Neuron[][] = [];
      for (const [pi, ids] of idsList.entries()) {
        const attr = await integratedGradients(model, ids, gt, {
          steps: hp.steps,
          layers: hp.layers,
          points: hp.ig_points,
          activation: hp.ig_activation,
          onLayer: (d, t) => opts.onProgress?.(`request ${ri + 1}/${requests.length} prompt ${pi + 1}`, d, t),
        });
        perPrompt.push(coarseNeurons(attr, hp.adaptive_threshold, { strict: hp.ig_strict }));
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
      const changed = new Set<string>();
      for (const { layer, neuron } of neurons) {
        const proj = mlpOutProjection(model, layer);
        const name = proj.weight;
        const w = model.weights.get(name)!; // as edited by the earlier requests
        // The neuron's value vector: its row of a Conv1D [I, C] weight, its column of a Linear [C, I] one.
        const at = (c: number) => keyValueIndex(proj, neuron, c);
        const value = Float32Array.from({ length: C }, (_, c) => w.data[at(c)]);
        const upd = knRowUpdate(value, greedy, target, embRow, hp);
        if (!total.has(name)) total.set(name, new Float64Array(w.data.length));
        const acc = total.get(name)!;
        for (let c = 0; c < C; c++) acc[at(c)] += upd[c];
        changed.add(name);
      }
      if (ri + 1 < requests.length) {
        for (const name of changed) scratch.setDelta(name, Float32Array.from(total.get(name)!));
      }
      perRequest.push({ neurons, erased: greedy, added: target, groundTruthProb: Math.exp(logprobs[0][gt]) });
    }
  } finally {
    scratch.restore();
  }
  const deltas = new Map<string, HostTensor>();
  const tensors = new Map<string, HostTensor>();
  for (const [name, acc] of total) {
    const t = { shape: [...model.weights.get(name)!.shape], data: Float32Array.from(acc) };
    deltas.set(name, t);
    tensors.set(`delta.${name}`, t);
  }
  return {
    method: "kn",
    deltas,
    tensors,
    hparams: { ...hp },
    info: { requests: perRequest, neurons: perRequest.reduce((s, r) => s + r.neurons.length, 0) },
    warnings,
  };
}

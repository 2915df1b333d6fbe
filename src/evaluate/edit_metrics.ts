/**
 * Knowledge-editing metrics as EasyEdit / KnowEdit and ROME's CounterFact define them (methods.md 2(e)):
 *
 * - **reliability** (EasyEdit `rewrite_acc`): teacher-forced token accuracy of `target_new` after the
 *   rewrite prompt — the mean over target tokens of [argmax == target token].
 * - **generalization** (`rephrase_acc`): the same on each rephrase prompt (mean over rephrases).
 * - **locality**: the argmax tokens at the answer positions of each locality prompt (its
 *   ground truth appended) post-edit versus pre-edit; the fraction that did not change.
 * - **portability**: token accuracy of each portability prompt's `ground_truth`.
 * - Locality and portability of a case, as KnowEdit (`examples/run_knowedit_llama2.py`): the mean over
 *   the prompts of each sub-key (`Reasoning`, `Subject_Aliasing`, ...; one sub-key when the data has
 *   none), then the mean over the sub-keys ({@link subKeyMean}).
 * - **fluency** (bits): ROME's / EasyEdit's n-gram entropy of the rewrite prompt plus a seeded top-5
 *   sampled continuation, 100 tokens in all (src/evaluate/fluency.ts).
 * - CounterFact (ROME): with P = exp(−mean token NLL) of `" " + answer` after a prompt,
 *   **efficacy** [P(new) > P(true)] on the rewrite prompt, **paraphrase** the same averaged over
 *   rephrases, **neighborhood** [P(true) > P(new)] averaged over the locality prompts whose answer is
 *   the edited fact's true answer (CounterFact's neighbours; null otherwise, e.g. zsRE); the magnitudes are
 *   the mean differences P(new) − P(true) (P(true) − P(new) for the neighborhood).
 *
 * Answers are tokenised as `" " + answer` after the separately tokenised prompt (ROME's convention).
 * Sequences are right-padded into one batch: the model is causal, so padding after a position cannot
 * change the logits there.
 */
import { InputError } from "../errors.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import type { TransformerModel } from "../model/transformer.ts";
import { promptSeed, textEntropy } from "./fluency.ts";
import { generateFastBatch } from "../model/generate_batch.ts";
import type { EditRequest } from "../edit/requests.ts";
import { filledPrompt } from "../edit/requests.ts";
import { bosPrefix, encodeTarget } from "../prompt/encode.ts";
import type { PatchSpec } from "../model/hooks.ts";
import { type AppliedEdit, applyEdit, type EditOptions, getEditor } from "../edit/editors.ts";
import { wildAnswers } from "./wild.ts";

/** A prompt and an answer to score after it. */
export interface ScoreItem {
  /** The prompt text, tokenised on its own after the prefix. */
  prompt: string;
  /** The answer, scored teacher-forced as `" " + answer.trim()` after the prompt. */
  answer: string;
}

/** Per-item scores of {@link scoreAnswers}. */
export interface AnswerScore {
  /** The answer's token ids. */
  answerIds: number[];
  /** Argmax token at each answer position (teacher-forced). */
  argmax: number[];
  /** Mean over answer tokens of [argmax == answer token] (EasyEdit's token accuracy). */
  accuracy: number;
  /** Mean per-token negative log-likelihood of the answer (nats). */
  nll: number;
  /** Rank of the answer's first token in the next-token distribution after the prompt (1 = top). */
  firstRank: number;
}

/** Options shared by the scoring functions. */
export interface ScoreOptions {
  /** Token ids put before every prompt; default the tokenizer's BOS policy (src/prompt, decided at load). */
  prefix?: number[];
  /** Sequences per forward pass (default 64). */
  batchSize?: number;
  /**
   * Patches for one forward (e.g. Fact Forcing's subject noise): given each batch row's item index, its
   * prompt tokens (prefix included) and its row.
   */
  patch?: (rows: Array<{ index: number; prompt: number[]; row: number }>) => PatchSpec[];
}

/**
 * Teacher-forced scores of `answer` after `prompt` for every item: argmax tokens, token accuracy and
 * mean token NLL. Throws {@link InputError} for an empty answer or a sequence longer than the context.
 */
export async function scoreAnswers(
  model: TransformerModel,
  tokenizer: Tokenizer,
  items: ScoreItem[],
  opts: ScoreOptions = {},
): Promise<AnswerScore[]> {
  const prefix = opts.prefix ?? bosPrefix(tokenizer);
  const ctx = model.config.nPositions;
  const V = model.config.vocabSize;
  const enc = items.map((it, i) => {
    const p = [...prefix, ...tokenizer.encode(it.prompt)];
    // The prompt module's one spacing rule (" " + answer); EasyEdit's `prompt + ' ' + target` after trim.
    const a = encodeTarget(tokenizer, it.answer.trim(), {
      record: `item ${i}`,
      fields: { target: "answer" },
    });
    if (p.length === 0) throw new InputError(`empty prompt`, { field: `item ${i}: prompt` });
    const seq = [...p, ...a.slice(0, -1)];
    if (seq.length > ctx) {
      throw new InputError(
        `prompt '${it.prompt}' plus answer '${it.answer}' need ${seq.length} tokens, more than the context ${ctx}`,
        {
          field: `item ${i}: prompt`,
        },
      );
    }
    return { seq, promptLen: p.length, answer: a };
  });
  const out: AnswerScore[] = new Array(items.length);
  const bs = opts.batchSize ?? 64;
  const order = enc.map((_, i) => i).sort((x, y) => enc[x].seq.length - enc[y].seq.length);
  const pad = tokenizer.eosId ?? 0;
  for (let s = 0; s < order.length; s += bs) {
    const chunk = order.slice(s, s + bs);
    const T = Math.max(...chunk.map((i) => enc[i].seq.length));
    const batch = chunk.map((i) => [...enc[i].seq, ...new Array(T - enc[i].seq.length).fill(pad)]);
    const patch = opts.patch?.(
      chunk.map((i, b) => ({ index: i, prompt: enc[i].seq.slice(0, enc[i].promptLen), row: b })),
    );
    const { logits } = await model.forward(batch, {
      allLogits: true,
      ...(patch ? { hooks: { patch } } : {}),
    });
    chunk.forEach((i, b) => {
      const { promptLen, answer } = enc[i];
      const argmax: number[] = [];
      let correct = 0, nll = 0, firstRank = 1;
      answer.forEach((tok, j) => {
        const off = (b * T + promptLen - 1 + j) * V;
        let best = 0, m = -Infinity;
        for (let v = 0; v < V; v++) {
          const x = logits![off + v];
          if (x > m) {
            m = x;
            best = v;
          }
        }
        let sum = 0;
        for (let v = 0; v < V; v++) sum += Math.exp(logits![off + v] - m);
        nll += -(logits![off + tok] - m - Math.log(sum));
        if (j === 0) {
          for (let v = 0; v < V; v++) if (logits![off + v] > logits![off + tok]) firstRank++;
        }
        argmax.push(best);
        if (best === tok) correct++;
      });
      out[i] = {
        answerIds: answer,
        argmax,
        accuracy: correct / answer.length,
        nll: nll / answer.length,
        firstRank,
      };
    });
  }
  return out;
}

/** Fraction of positions where `pre` and `post` agree (EasyEdit locality); lengths must match. */
export function agreement(pre: number[], post: number[]): number {
  if (pre.length !== post.length || pre.length === 0) {
    throw new InputError(`token lists differ in length (${pre.length} vs ${post.length})`, {
      field: "locality",
    });
  }
  let same = 0;
  for (let i = 0; i < pre.length; i++) if (pre[i] === post[i]) same++;
  return same / pre.length;
}

export { nGramEntropy, nGramEntropyOf, textEntropy } from "./fluency.ts";
export { wordTokenize } from "./word_tokenize.ts";

/**
 * KnowEdit's per-case mean: the mean of `values` within each sub-key of `keys` (undefined = one
 * unnamed sub-key), then the mean over sub-keys; null when there are no values.
 */
export function subKeyMean(values: number[], keys: (string | undefined)[]): number | null {
  if (values.length !== keys.length) {
    throw new InputError(`${values.length} values for ${keys.length} sub-keys`, { field: "keys" });
  }
  const groups = new Map<string | undefined, number[]>();
  values.forEach((v, i) => {
    const g = groups.get(keys[i]);
    if (g) g.push(v);
    else groups.set(keys[i], [v]);
  });
  return mean([...groups.values()].map((g) => mean(g)!));
}

/** Pre-edit state of one request: the locality argmax tokens (and pre-edit scores, for reference). */
export interface PreEdit {
  /** Per locality prompt (request order), the pre-edit argmax token at each position of its ground truth. */
  localityArgmax: number[][];
  /** The request's scores on the unedited model (locality and fluency null: not measured pre-edit). */
  scores: CaseScores;
}

/** Metrics of one request (null where the request has no data for a metric). */
export interface CaseScores {
  /** Token accuracy of target_new after the rewrite prompt (EasyEdit `rewrite_acc`), in [0, 1]. */
  reliability: number;
  /** Mean token accuracy of target_new over the rephrase prompts (`rephrase_acc`); null without rephrases. */
  generalization: number | null;
  /**
   * Per locality prompt, the fraction of its answer positions whose argmax is unchanged from pre-edit,
   * averaged by {@link subKeyMean}; null without locality prompts or pre-edit state.
   */
  locality: number | null;
  /** Token accuracy of the portability ground truths, by {@link subKeyMean}; null without portability. */
  portability: number | null;
  /** n-gram entropy (bits) of the rewrite prompt plus its sampled continuation; null when skipped. */
  fluency: number | null;
  /**
   * CounterFact efficacy: 1 when P(new) > P(true) after the rewrite prompt, else 0; null without a
   * ground truth.
   */
  efficacy_score: number | null;
  /** P(new) − P(true) after the rewrite prompt; null without a ground truth. */
  efficacy_magnitude: number | null;
  /** Fraction of rephrase prompts with P(new) > P(true); null without a ground truth or rephrases. */
  paraphrase_score: number | null;
  /** Mean over rephrase prompts of P(new) − P(true); null without a ground truth or rephrases. */
  paraphrase_magnitude: number | null;
  /**
   * Fraction of the neighbour prompts (locality prompts whose answer is the true answer) with
   * P(true) > P(new); null without a ground truth or neighbours.
   */
  neighborhood_score: number | null;
  /** Mean over the neighbour prompts of P(true) − P(new); null without a ground truth or neighbours. */
  neighborhood_magnitude: number | null;
}

/**
 * "In the wild" scores of one request (src/evaluate/wild.ts: greedy generation without teacher forcing):
 * exact match and containment of target_new after the rewrite prompt and, averaged, after the rephrases.
 */
export interface WildScores {
  /** 1 when the greedy answer after the rewrite prompt is target_new (both trimmed), else 0 (or a mean). */
  wild_exact: number | null;
  /** 1 when the greedy answer after the rewrite prompt contains target_new (trimmed), else 0 (or a mean). */
  wild_contains: number | null;
  /** Mean of the exact match over the rephrase prompts; null without rephrases. */
  wild_generalization_exact: number | null;
  /** Mean of the containment over the rephrase prompts; null without rephrases. */
  wild_generalization_contains: number | null;
}

/** The wild metric names, in report order. */
export const WILD_METRIC_NAMES: (keyof WildScores)[] = [
  "wild_exact",
  "wild_contains",
  "wild_generalization_exact",
  "wild_generalization_contains",
];

/** The wild metrics' units. */
export const WILD_UNITS: Record<keyof WildScores, string> = {
  wild_exact: "fraction (greedy answer equals target)",
  wild_contains: "fraction (greedy answer contains target)",
  wild_generalization_exact: "fraction (greedy answer equals target)",
  wild_generalization_contains: "fraction (greedy answer contains target)",
};

/** A request's scores, with the wild ones when they were measured. */
export type CaseScoresWild = CaseScores & Partial<WildScores>;

/** Means of the wild scores over the cases that have them (null when none do). */
export function aggregateWild(cases: CaseScoresWild[]): WildScores {
  const m = {} as WildScores;
  for (const k of WILD_METRIC_NAMES) {
    m[k] = mean(cases.map((c) => c[k]).filter((x): x is number => typeof x === "number"));
  }
  return m;
}

/** Options of {@link evaluateRequests}. */
export interface EvalOptions extends ScoreOptions {
  /** Also measure the wild scores ({@link WildScores}; default false: greedy generation costs a forward per token). */
  wild?: boolean;
  /** Wild generation: new tokens beyond the target's length (default 3). */
  wildExtraTokens?: number;
  /** Pre-edit state per request, from {@link preEditState}; without it locality is null. */
  pre?: PreEdit[];
  /**
   * Fluency's generation length in tokens, prompt and prefix included (ROME's `max_out_len`; default
   * 100, capped by the context); 0 skips fluency.
   */
  fluencyMaxLen?: number;
  /**
   * @deprecated engram's former option: N new tokens after the prompt (now sampled as ROME does); 0
   * skips fluency. Overrides `fluencyMaxLen` when given.
   */
  fluencyTokens?: number;
  /** Fluency's sampler: the k most likely tokens (default 5, ROME's top_k). */
  fluencyTopK?: number;
  /** Base seed of fluency's sampler (default 0); each prompt's stream is seeded from it and its text. */
  fluencySeed?: number;
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

interface Layout {
  /** Index of each item group in the flat item list. */
  rewriteNew: number;
  rewriteTrue: number;
  rephraseNew: number[];
  rephraseTrue: number[];
  locGt: number[];
  locKeys: (string | undefined)[];
  locNew: number[];
  locTrue: number[];
  port: number[];
  portKeys: (string | undefined)[];
}

const cfNeighbours = (loc: { prompt: string; ground_truth: string }[], gt: string) =>
  loc.filter((l) => l.ground_truth.trim() === gt.trim());

function layout(reqs: EditRequest[]): { items: ScoreItem[]; lay: Layout[] } {
  const items: ScoreItem[] = [];
  const add = (prompt: string, answer: string) => items.push({ prompt, answer }) - 1;
  const lay = reqs.map((r) => {
    const p = filledPrompt(r);
    const gt = r.ground_truth && r.ground_truth.trim() !== "" ? r.ground_truth : undefined;
    const reph = r.rephrase ?? [];
    const loc = r.locality ?? [];
    return {
      rewriteNew: add(p, r.target_new),
      rewriteTrue: gt ? add(p, gt) : -1,
      rephraseNew: reph.map((q) => add(q, r.target_new)),
      rephraseTrue: gt ? reph.map((q) => add(q, gt)) : [],
      locGt: loc.map((l) => add(l.prompt, l.ground_truth)),
      locKeys: loc.map((l) => l.key),
      // CounterFact neighbours share the edited fact's true answer; other locality prompts (zsRE's
      // unrelated questions) have no P(true) vs P(new) comparison.
      locNew: gt ? cfNeighbours(loc, gt).map((l) => add(l.prompt, r.target_new)) : [],
      locTrue: gt ? cfNeighbours(loc, gt).map((l) => add(l.prompt, gt)) : [],
      port: (r.portability ?? []).map((q) => add(q.prompt, q.ground_truth)),
      portKeys: (r.portability ?? []).map((q) => q.key),
    };
  });
  return { items, lay };
}

async function scoreAll(
  model: TransformerModel,
  tokenizer: Tokenizer,
  reqs: EditRequest[],
  opts: EvalOptions,
  pre: PreEdit[] | undefined,
  withFluency: boolean,
  withWild = false,
): Promise<{ scores: CaseScoresWild[]; localityArgmax: number[][][] }> {
  const { items, lay } = layout(reqs);
  const sc = await scoreAnswers(model, tokenizer, items, opts);
  const P = (i: number) => Math.exp(-sc[i].nll);
  // Wild answers after the rewrite and rephrase prompts (the items whose answer is target_new).
  const wildIdx = withWild ? lay.flatMap((L) => [L.rewriteNew, ...L.rephraseNew]) : [];
  const wildAt = new Map<number, { exact: number; contains: number }>();
  if (wildIdx.length) {
    const w = await wildAnswers(model, tokenizer, wildIdx.map((i) => items[i]), {
      prefix: opts.prefix,
      extraTokens: opts.wildExtraTokens,
    });
    wildIdx.forEach((i, j) => wildAt.set(i, w[j]));
  }
  // Fluency's samples decode together (generateFastBatch: one forward per new token for all prompts of
  // one length), each with the seed and text it gets alone.
  const fluencyTexts = withFluency
    ? (await generateFastBatch(
      model,
      tokenizer,
      reqs.map((r) => {
        const text = filledPrompt(r);
        const ids = [...(opts.prefix ?? bosPrefix(tokenizer)), ...tokenizer.encode(text)];
        const maxOutLen = opts.fluencyTokens !== undefined
          ? ids.length + opts.fluencyTokens
          : opts.fluencyMaxLen ?? 100;
        return { ids, maxOutLen, seed: promptSeed(opts.fluencySeed ?? 0, text) };
      }),
      { topK: opts.fluencyTopK ?? 5 },
    )).map((g) => g.text)
    : [];
  const scores: CaseScoresWild[] = [];
  const localityArgmax: number[][][] = [];
  for (let k = 0; k < reqs.length; k++) {
    const L = lay[k];
    const cf = L.rewriteTrue >= 0;
    const locArg = L.locGt.map((i) => sc[i].argmax);
    localityArgmax.push(locArg);
    let locality: number | null = null;
    if (pre && locArg.length) {
      locality = subKeyMean(locArg.map((a, j) => agreement(pre[k].localityArgmax[j], a)), L.locKeys);
    }
    const fluency = withFluency ? textEntropy(fluencyTexts[k]) : null;
    scores.push({
      reliability: sc[L.rewriteNew].accuracy,
      generalization: mean(L.rephraseNew.map((i) => sc[i].accuracy)),
      locality,
      portability: subKeyMean(L.port.map((i) => sc[i].accuracy), L.portKeys),
      fluency,
      efficacy_score: cf ? (sc[L.rewriteTrue].nll > sc[L.rewriteNew].nll ? 1 : 0) : null,
      efficacy_magnitude: cf ? P(L.rewriteNew) - P(L.rewriteTrue) : null,
      paraphrase_score: cf
        ? mean(L.rephraseNew.map((i, j) => (sc[L.rephraseTrue[j]].nll > sc[i].nll ? 1 : 0)))
        : null,
      paraphrase_magnitude: cf ? mean(L.rephraseNew.map((i, j) => P(i) - P(L.rephraseTrue[j]))) : null,
      neighborhood_score: cf
        ? mean(L.locNew.map((i, j) => (sc[i].nll > sc[L.locTrue[j]].nll ? 1 : 0)))
        : null,
      neighborhood_magnitude: cf ? mean(L.locNew.map((i, j) => P(L.locTrue[j]) - P(i))) : null,
      ...(withWild
        ? {
          wild_exact: wildAt.get(L.rewriteNew)!.exact,
          wild_contains: wildAt.get(L.rewriteNew)!.contains,
          wild_generalization_exact: mean(L.rephraseNew.map((i) => wildAt.get(i)!.exact)),
          wild_generalization_contains: mean(L.rephraseNew.map((i) => wildAt.get(i)!.contains)),
        }
        : {}),
    });
  }
  return { scores, localityArgmax };
}

/** Records what locality needs before an edit (and the pre-edit scores, fluency excluded). */
export async function preEditState(
  model: TransformerModel,
  tokenizer: Tokenizer,
  reqs: EditRequest[],
  opts: ScoreOptions = {},
): Promise<PreEdit[]> {
  const { scores, localityArgmax } = await scoreAll(model, tokenizer, reqs, opts, undefined, false);
  return reqs.map((_, k) => ({ localityArgmax: localityArgmax[k], scores: scores[k] }));
}

/**
 * Scores every request on the (edited) model; see the module comment for the definitions. Locality needs
 * the pre-edit state (`opts.pre`, from {@link preEditState} before the edit) and is null without it; after
 * an `applyEdit`, src/evaluate/evaluate_edit.ts `evaluateEdit` measures that state itself.
 */
export async function evaluateRequests(
  model: TransformerModel,
  tokenizer: Tokenizer,
  reqs: EditRequest[],
  opts: EvalOptions = {},
): Promise<CaseScoresWild[]> {
  if (reqs.length === 0) throw new InputError("no edit requests to evaluate", { field: "requests" });
  if (opts.pre && opts.pre.length !== reqs.length) {
    throw new InputError(`pre-edit state has ${opts.pre.length} entries for ${reqs.length} requests`, {
      field: "pre",
    });
  }
  const fluencyOn = opts.fluencyTokens !== undefined
    ? opts.fluencyTokens > 0
    : (opts.fluencyMaxLen ?? 100) > 0;
  const { scores } = await scoreAll(model, tokenizer, reqs, opts, opts.pre, fluencyOn, opts.wild ?? false);
  return scores;
}

/** Metric names in report order. */
export const METRIC_NAMES: (keyof CaseScores)[] = [
  "reliability",
  "generalization",
  "locality",
  "portability",
  "fluency",
  "efficacy_score",
  "paraphrase_score",
  "neighborhood_score",
  "efficacy_magnitude",
  "paraphrase_magnitude",
  "neighborhood_magnitude",
];

/** The unit of every metric as the JSON reports it: fractions, magnitudes and fluency in bits. */
export const METRIC_UNITS: Record<keyof CaseScores | "score", string> = {
  reliability: "fraction",
  generalization: "fraction",
  locality: "fraction",
  portability: "fraction",
  fluency: "bits (n-gram entropy)",
  efficacy_score: "fraction",
  paraphrase_score: "fraction",
  neighborhood_score: "fraction",
  efficacy_magnitude: "probability difference",
  paraphrase_magnitude: "probability difference",
  neighborhood_magnitude: "probability difference",
  score: "fraction (harmonic mean)",
};

/** Aggregate metrics: per metric the mean over the cases that have it (null when none do), plus the CounterFact score S. */
export type Metrics = Record<keyof CaseScores, number | null> & { score: number | null };

/** Means over cases (KnowEdit: per case the mean of sub-keys, then the mean over cases), and S = harmonic mean(ES, PS, NS). */
export function aggregate(cases: CaseScores[]): Metrics {
  const m = {} as Metrics;
  for (const k of METRIC_NAMES) {
    const xs = cases.map((c) => c[k]).filter((x): x is number => x !== null);
    m[k] = mean(xs);
  }
  const parts = [m.efficacy_score, m.paraphrase_score, m.neighborhood_score];
  m.score = parts.every((x) => x !== null)
    ? (parts.some((x) => x === 0) ? 0 : 3 / parts.reduce((a, x) => a! + 1 / x!, 0)!)
    : null;
  return m;
}

/** How edits are applied in {@link evaluateMethod} (EasyEdit's edit / sequential_edit / batch_edit). */
export type EditMode = "single" | "sequential" | "batch";

/** Options of {@link evaluateMethod}. */
export interface MethodEvalOptions extends EvalOptions {
  /** "single" (default): edit, measure, restore per request; "sequential": all edits one after another,
   * measured at the end; "batch": one editor call per chunk of `editBatchSize` requests, measured, restored. */
  mode?: EditMode;
  /** Requests per editor call in batch mode (default: all). */
  editBatchSize?: number;
  /** Passed to the editor (layers, hparams, statistics paths). */
  edit?: EditOptions;
  /** Called after each request is measured: done of total. */
  onProgress?: (done: number, total: number, text?: string) => void;
  /** Also return the per-request scores. */
  perCase?: boolean;
}

/** One request's scores in {@link MethodEvalResult.per_case}. */
export interface CaseResult extends CaseScores, Partial<WildScores> {
  /** The request's `case_id`, when it has one. */
  case_id?: number | string;
  /** The request's subject. */
  subject: string;
  /** The request's new target. */
  target_new: string;
  /** The request's scores on the unedited model ({@link PreEdit.scores}). */
  pre: CaseScores;
}

/** What {@link evaluateMethod} returns (the eval CLI's JSON). */
export interface MethodEvalResult {
  /** The editor's registered name (e.g. "rome"). */
  method: string;
  /** How the edits were applied. */
  mode: EditMode;
  /** Number of requests evaluated. */
  n: number;
  /** Post-edit means (fractions in [0, 1]; fluency in bits; see `units`); the wild ones with `wild`. */
  metrics: Metrics & Partial<WildScores>;
  /** The unit of each metric's value. */
  units: Record<keyof Metrics, string> & Partial<Record<keyof WildScores, string>>;
  /** The same measures on the unedited model (locality and fluency are not measured pre-edit: null). */
  pre_metrics: Metrics;
  /** Seconds spent in the editor and in measuring. */
  timing: { edit_s: number; eval_s: number; edit_s_per_request: number };
  /** Hyper-parameters the editor reported (of the first call). */
  hparams: Record<string, unknown>;
  /** The editors' warnings, each once, in the order first seen. */
  warnings: string[];
  /** Each request's scores; present only when `perCase` was set. */
  per_case?: CaseResult[];
}

/**
 * Edits `model` with `method` on every request (see {@link EditMode}), measures the edits and restores
 * the model exactly. Throws {@link InputError} for an unknown method (listing the known ones) or no requests.
 */
export async function evaluateMethod(
  model: TransformerModel,
  tokenizer: Tokenizer,
  method: string,
  requests: EditRequest[],
  opts: MethodEvalOptions = {},
): Promise<MethodEvalResult> {
  getEditor(method);
  if (requests.length === 0) throw new InputError("no edit requests to evaluate", { field: "requests" });
  const mode = opts.mode ?? "single";
  const n = requests.length;
  const pre = await preEditState(model, tokenizer, requests, opts);
  const post: CaseScoresWild[] = new Array(n);
  let editMs = 0, evalMs = 0;
  let hparams: Record<string, unknown> | undefined;
  const warnings: string[] = [];
  const edit = async (reqs: EditRequest[]) => {
    const t0 = performance.now();
    const h = await applyEdit(model, tokenizer, method, reqs, opts.edit ?? {});
    editMs += performance.now() - t0;
    hparams ??= h.result.hparams;
    for (const w of h.result.warnings) if (!warnings.includes(w)) warnings.push(w);
    return h;
  };
  const measure = async (idx: number[]) => {
    const t0 = performance.now();
    const sc = await evaluateRequests(model, tokenizer, idx.map((i) => requests[i]), {
      ...opts,
      pre: idx.map((i) => pre[i]),
    });
    idx.forEach((i, j) => (post[i] = sc[j]));
    evalMs += performance.now() - t0;
  };
  if (mode === "single") {
    for (let i = 0; i < n; i++) {
      const h = await edit([requests[i]]);
      try {
        await measure([i]);
      } finally {
        h.restore();
      }
      opts.onProgress?.(
        i + 1,
        n,
        `${method} reliability ${mean(post.slice(0, i + 1).map((c) => c.reliability))!.toFixed(2)}`,
      );
    }
  } else if (mode === "sequential") {
    const handles: AppliedEdit[] = [];
    try {
      for (let i = 0; i < n; i++) {
        handles.push(await edit([requests[i]]));
        opts.onProgress?.(i, n, `${method} edited ${i + 1}`);
      }
      await measure(requests.map((_, i) => i));
      opts.onProgress?.(n, n, method);
    } finally {
      for (const h of handles.reverse()) h.restore();
    }
  } else if (mode === "batch") {
    const bs = opts.editBatchSize ?? n;
    if (!Number.isInteger(bs) || bs < 1) {
      throw new InputError(`edit batch size must be a positive integer, got ${bs}`, {
        field: "--batch-size",
      });
    }
    for (let s = 0; s < n; s += bs) {
      const idx = requests.slice(s, s + bs).map((_, j) => s + j);
      const h = await edit(idx.map((i) => requests[i]));
      try {
        await measure(idx);
      } finally {
        h.restore();
      }
      opts.onProgress?.(idx[idx.length - 1] + 1, n, method);
    }
  } else {
    throw new InputError(`unknown mode '${mode}' (known: single, sequential, batch)`, { field: "--mode" });
  }
  const res: MethodEvalResult = {
    method,
    mode,
    n,
    metrics: { ...aggregate(post), ...(opts.wild ? aggregateWild(post) : {}) },
    units: opts.wild ? { ...METRIC_UNITS, ...WILD_UNITS } : METRIC_UNITS,
    pre_metrics: aggregate(pre.map((p) => p.scores)),
    timing: { edit_s: editMs / 1000, eval_s: evalMs / 1000, edit_s_per_request: editMs / 1000 / n },
    hparams: hparams ?? {},
    warnings,
  };
  if (opts.perCase) {
    res.per_case = requests.map((r, i) => ({
      ...(r.case_id !== undefined ? { case_id: r.case_id } : {}),
      subject: r.subject,
      target_new: r.target_new,
      ...post[i],
      pre: pre[i].scores,
    }));
  }
  return res;
}

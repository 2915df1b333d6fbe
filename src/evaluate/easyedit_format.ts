/**
 * Edit results in EasyEdit's metric-dict layout (zjunlp/EasyEdit `BaseEditor.edit`, whose list it also
 * dumps to `logs/results.json`): one dict per request,
 * `{"pre": {...}, "case_id", "requested_rewrite", "post": {...}}`, each phase as
 * `compute_edit_quality` returns it: `rewrite_acc` and `rephrase_acc` lists, `locality` and
 * `portability` dicts of `<key>_acc` lists, and (post, when measured) `fluency: {"ngram_entropy"}`.
 * {@link easyEditSummary} is `summary_metrics`' mean dict.
 *
 * Differences (engram keeps one value per request and metric, not EasyEdit's per-token lists): every
 * list holds that one value; the locality / portability key is the prompts' KnowEdit sub-key when all
 * of a request's prompts share one, else "neighborhood" (locality) / "portability", and pre-edit
 * locality is `{}` (engram does not store EasyEdit's `<key>_output` token lists).
 */
import type { EditRequest } from "../prompt/requests.ts";
import { fillSubject } from "../prompt/requests.ts";
import type { CaseScores, MethodEvalResult, PreEdit } from "./edit_metrics.ts";

/** One phase of a case (`compute_edit_quality`'s dict). */
export interface EasyEditPhase {
  /** Reliability, one value (EasyEdit's per-token list of the rewrite prompt). */
  rewrite_acc: number[];
  /** Generalization over the rephrases, one value; absent when the request has no rephrase. */
  rephrase_acc?: number[];
  /** `<key>_acc` -> [locality]; post-edit only (`{}` before the edit). */
  locality: Record<string, number[]>;
  /** `<key>_acc` -> [portability]; `{}` when the request has no portability prompt. */
  portability: Record<string, number[]>;
  /** N-gram entropy of the generation (bits); post-edit only, when fluency was measured. */
  fluency?: { ngram_entropy: number };
}

/** One entry of EasyEdit's `all_metrics`. */
export interface EasyEditCase {
  /** Scores before the edit. */
  pre: EasyEditPhase;
  /** The case's `case_id`, else its index in the result's `per_case`. */
  case_id: number | string;
  /** The request as EasyEdit records it ({@link requestedRewrite}); only subject and target_new without it. */
  requested_rewrite: Record<string, unknown>;
  /** Scores after the edit. */
  post: EasyEditPhase;
  /** Seconds of the editor call (`BaseEditor.batch_edit`'s `time`); `edit --metrics-out` only. */
  time?: number;
}

function sharedKey(items: { key?: string }[] | undefined, dflt: string): string {
  const keys = new Set((items ?? []).map((p) => p.key ?? dflt));
  return keys.size === 1 ? [...keys][0] : dflt;
}

function phase(s: CaseScores, req: EditRequest | undefined, post: boolean): EasyEditPhase {
  const p: EasyEditPhase = { rewrite_acc: [s.reliability], locality: {}, portability: {} };
  if (s.generalization !== null) p.rephrase_acc = [s.generalization];
  if (post && s.locality !== null) {
    p.locality[`${sharedKey(req?.locality, "neighborhood")}_acc`] = [s.locality];
  }
  if (s.portability !== null) {
    p.portability[`${sharedKey(req?.portability, "portability")}_acc`] = [s.portability];
  }
  if (post && s.fluency !== null) p.fluency = { ngram_entropy: s.fluency };
  return p;
}

function group(items: { prompt: string; ground_truth: string; key?: string }[] | undefined, dflt: string) {
  const out: Record<string, { prompt: string[]; ground_truth: string[] }> = {};
  for (const it of items ?? []) {
    const g = (out[it.key ?? dflt] ??= { prompt: [], ground_truth: [] });
    g.prompt.push(it.prompt);
    g.ground_truth.push(it.ground_truth);
  }
  return out;
}

/** EasyEdit's `requested_rewrite` of a request (the dict `_prepare_requests` builds). */
export function requestedRewrite(req: EditRequest): Record<string, unknown> {
  return {
    prompt: fillSubject(req.prompt, req.subject),
    target_new: req.target_new,
    ground_truth: req.ground_truth ?? null,
    portability: group(req.portability, "portability"),
    locality: group(req.locality, "neighborhood"),
    subject: req.subject,
    ...(req.rephrase?.length
      ? { rephrase_prompt: req.rephrase.length === 1 ? req.rephrase[0] : req.rephrase }
      : {}),
  };
}

/**
 * The `all_metrics` list of one method's result (which must hold `per_case`, i.e. `perCase: true`);
 * `requests` (the evaluated ones, in order) fill `requested_rewrite` and the metric keys.
 */
export function easyEditCases(r: MethodEvalResult, requests?: EditRequest[]): EasyEditCase[] {
  if (!r.per_case) throw new RangeError(`${r.method}: the result has no per-case scores (perCase)`);
  return r.per_case.map((c, i) => {
    const req = requests?.[i];
    return {
      pre: phase(c.pre, req, false),
      case_id: c.case_id ?? i,
      requested_rewrite: req ? requestedRewrite(req) : { subject: c.subject, target_new: c.target_new },
      post: phase(c, req, true),
    };
  });
}

/**
 * The `all_metrics` list of one editor call over `requests` (as `BaseEditor.batch_edit` builds it: one
 * dict per request with `case_id`, `requested_rewrite`, `time`, `post` and `pre`), from the pre-edit
 * state and post-edit scores of `evaluateEdit` (src/evaluate/evaluate_edit.ts); `seconds` is the editor
 * call's time. `case_id` is the request's own when it has one, else its index.
 */
export function easyEditCasesOfEdit(
  pre: PreEdit[],
  post: CaseScores[],
  requests: EditRequest[],
  seconds: number,
): EasyEditCase[] {
  return requests.map((req, i) => ({
    pre: phase(pre[i].scores, req, false),
    case_id: req.case_id ?? i,
    requested_rewrite: requestedRewrite(req),
    post: phase(post[i], req, true),
    time: seconds,
  }));
}

/** `summary_metrics`' means: per phase the mean of each list's mean over the cases that have it. */
export function easyEditSummary(cases: EasyEditCase[]): Record<string, Record<string, unknown>> {
  const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;
  const out: Record<string, Record<string, unknown>> = {};
  for (const ph of ["pre", "post"] as const) {
    const m: Record<string, unknown> = {};
    for (const k of ["rewrite_acc", "rephrase_acc"] as const) {
      const v = cases.map((c) => c[ph][k]).filter((x): x is number[] => !!x).map(mean);
      if (v.length) m[k] = mean(v);
    }
    for (const sec of ["locality", "portability"] as const) {
      const keys = [...new Set(cases.flatMap((c) => Object.keys(c[ph][sec])))];
      if (keys.length) {
        m[sec] = Object.fromEntries(keys.map((k) => {
          const v = cases.map((c) => c[ph][sec][k]).filter((x) => x).map(mean);
          return [k, mean(v)];
        }));
      }
    }
    out[ph] = m;
  }
  return out;
}

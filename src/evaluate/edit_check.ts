/**
 * What one edit did to its own prompt, for `engram edit` to print before and after: the probability of
 * `target_new` and of the ground truth after the filled prompt, the rank of target_new's first token, and
 * whether target_new is now the model's top prediction.
 *
 * Definitions (ROME's convention, answers tokenised as `" " + answer` after the prompt):
 * - `p` is the **full-target probability**: the product over the answer's tokens of p(token | prompt,
 *   earlier answer tokens), teacher-forced; for a one-token answer it is the next-token probability.
 * - `rank` is the rank of the answer's **first token** in the next-token distribution (1 = top).
 * - `top` is true when every teacher-forced argmax equals the answer's token, i.e. greedy decoding
 *   from the prompt produces the whole answer (EasyEdit's rewrite accuracy of 1).
 */
import type { Tokenizer } from "../io/tokenizer.ts";
import type { TransformerModel } from "../model/transformer.ts";
import { type EditRequest, filledPrompt } from "../edit/requests.ts";
import { scoreAnswers, type ScoreOptions } from "./edit_metrics.ts";

/** One answer's standing after the prompt. */
export interface AnswerStanding {
  answer: string;
  /** Full-target probability (product over the answer's tokens, teacher-forced). */
  p: number;
  /** Rank of the answer's first token in the next-token distribution (1 = top). */
  rank: number;
  /** Whether greedy decoding produces the whole answer. */
  top: boolean;
  /** The model's teacher-forced argmax tokens at the answer's positions (decoded). */
  predicted: string[];
}

/** A request's standing: target_new, and the ground truth when the request has one. */
export interface RequestStanding {
  prompt: string;
  target_new: AnswerStanding;
  ground_truth: AnswerStanding | null;
}

/** Measures every request's target_new (and ground truth) on `model` as it is now. */
export async function requestStanding(
  model: TransformerModel,
  tokenizer: Tokenizer,
  requests: EditRequest[],
  opts: ScoreOptions = {},
): Promise<RequestStanding[]> {
  const items = requests.flatMap((r) => {
    const prompt = filledPrompt(r);
    const gt = r.ground_truth?.trim() ? [{ prompt, answer: r.ground_truth }] : [];
    return [{ prompt, answer: r.target_new }, ...gt];
  });
  const sc = await scoreAnswers(model, tokenizer, items, opts);
  let i = 0;
  return requests.map((r) => {
    const standing = (answer: string): AnswerStanding => {
      const s = sc[i++];
      return {
        answer,
        p: Math.exp(-s.nll * s.answerIds.length),
        rank: s.firstRank,
        top: s.argmax.every((t, j) => t === s.answerIds[j]),
        predicted: s.argmax.map((t) => tokenizer.decode([t])),
      };
    };
    const target_new = standing(r.target_new);
    const ground_truth = r.ground_truth?.trim() ? standing(r.ground_truth) : null;
    return { prompt: filledPrompt(r), target_new, ground_truth };
  });
}

/** The warning for a request whose edit left another prediction on top (null when target_new is on top). */
export function notTopWarning(index: number, after: RequestStanding): string | null {
  const t = after.target_new;
  if (t.top) return null;
  return `request ${index} ('${after.prompt}'): the edit did not make '${t.answer}' the top prediction ` +
    `(greedy gives '${t.predicted.join("")}'; p(target_new) ${fmtP(t.p)}, first-token rank ${t.rank})`;
}

/** A probability with 4 significant digits. */
export function fmtP(p: number): string {
  return p >= 1e-4 ? p.toFixed(4) : p.toExponential(2);
}

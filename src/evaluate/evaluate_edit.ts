/**
 * Measuring an edit already applied: {@link evaluateRequests} needs the pre-edit state (the locality
 * prompts' argmax tokens) to score locality, and after the edit that state is gone. Given the edit's
 * handle, the original weights are put back for the pre-edit measurement and the edited ones reinstated
 * exactly, so a notebook can edit first and measure afterwards.
 */
import type { AppliedEdit } from "../edit/apply.ts";
import type { EditRequest } from "../prompt/requests.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import type { TransformerModel } from "../model/transformer.ts";
import {
  type CaseScores,
  type EvalOptions,
  evaluateRequests,
  type PreEdit,
  preEditState,
} from "./edit_metrics.ts";

/** What {@link evaluateEdit} returns: the pre-edit state (with the pre-edit scores) and the post-edit scores. */
export interface EditEvaluation {
  /** Per request, measured on the original weights ({@link preEditState}). */
  pre: PreEdit[];
  /** Per request, measured on the edited model, locality included ({@link evaluateRequests}). */
  post: CaseScores[];
}

/**
 * Scores `requests` on the edited `model` with locality: the weights `edit` changed are set back to their
 * originals while the pre-edit state is measured, then to their edited values (bit for bit), and the
 * post-edit scores are computed against that state. Options as {@link evaluateRequests} (`pre` is
 * computed here and ignored if given). The model is left edited, also when a measurement throws.
 */
export async function evaluateEdit(
  model: TransformerModel,
  tokenizer: Tokenizer,
  edit: AppliedEdit,
  requests: EditRequest[],
  opts: Omit<EvalOptions, "pre"> = {},
): Promise<EditEvaluation> {
  const edited = new Map<string, Float32Array>();
  for (const name of edit.result.originals.keys()) edited.set(name, model.weights.get(name)!.data.slice());
  let pre: PreEdit[];
  try {
    for (const [name, t] of edit.result.originals) model.setWeight(name, t.data);
    pre = await preEditState(model, tokenizer, requests, opts);
  } finally {
    for (const [name, data] of edited) model.setWeight(name, data);
  }
  const post = await evaluateRequests(model, tokenizer, requests, { ...opts, pre });
  return { pre, post };
}

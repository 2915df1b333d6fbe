/**
 * Top-1 factual recall: the fraction of prompts whose most likely next token is the answer's first
 * token. Prompts and answers are encoded by the prompt module (the tokenizer's BOS policy: the world
 * model's tokenizer declares the end-of-text prefix its training instances have, src/train/corpus.ts),
 * and batched by token length.
 */
import { InputError } from "../errors.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import type { TransformerModel } from "../model/transformer.ts";
import { encodeTarget, encodeText } from "../prompt/encode.ts";
import { argmax } from "../numeric/mod.ts";

/** One prompt and the word that should follow it. */
export interface PromptCase {
  prompt: string;
  answer: string;
  /** Grouping key for the per-group breakdown (e.g. the relation). */
  group?: string;
}

/** Result of {@link topOneAccuracy}. */
export interface AccuracyResult {
  n: number;
  correct: number;
  accuracy: number;
  /** Accuracy per `group`. */
  byGroup: Record<string, { n: number; correct: number; accuracy: number }>;
  /** How many answers are longer than one token (scored by their first token). */
  multiTokenAnswers: number;
  /** Mean probability given to the answer's first token. */
  meanAnswerProb: number;
}

/** Scores `cases` with `model`; `onProgress(done, total)` is called after each batch. */
export async function topOneAccuracy(
  model: TransformerModel,
  tokenizer: Tokenizer,
  cases: PromptCase[],
  opts: {
    batchSize?: number;
    /** Explicit BOS override; default the tokenizer's policy. */
    bos?: boolean;
    /** The file the cases came from, for errors (records are the cases' indices). */
    file?: string;
    onProgress?: (done: number, total: number) => void;
  } = {},
): Promise<AccuracyResult> {
  if (cases.length === 0) throw new InputError("no prompts to score", { field: "prompts" });
  const byLen = new Map<number, Array<{ ids: number[]; answer: number; group: string }>>();
  let multi = 0;
  for (const [i, c] of cases.entries()) {
    const where = { file: opts.file, record: i, fields: { target: "answer" } };
    const ids = encodeText(tokenizer, c.prompt, {
      nPositions: model.config.nPositions,
      bos: opts.bos,
      where,
    });
    const ans = encodeTarget(tokenizer, c.answer, where);
    if (ans.length > 1) multi++;
    const list = byLen.get(ids.length) ?? [];
    list.push({ ids, answer: ans[0], group: c.group ?? "all" });
    byLen.set(ids.length, list);
  }
  const bs = opts.batchSize ?? 64;
  let done = 0, correct = 0, probSum = 0;
  const byGroup: AccuracyResult["byGroup"] = {};
  for (const list of byLen.values()) {
    for (let i = 0; i < list.length; i += bs) {
      const chunk = list.slice(i, i + bs);
      const { logprobs } = await model.forward(chunk.map((x) => x.ids));
      chunk.forEach((x, b) => {
        const lp = logprobs[b];
        const ok = argmax(lp) === x.answer;
        const g = (byGroup[x.group] ??= { n: 0, correct: 0, accuracy: 0 });
        g.n++;
        if (ok) {
          g.correct++;
          correct++;
        }
        probSum += Math.exp(lp[x.answer]);
      });
      done += chunk.length;
      opts.onProgress?.(done, cases.length);
    }
  }
  for (const g of Object.values(byGroup)) g.accuracy = g.correct / g.n;
  return {
    n: cases.length,
    correct,
    accuracy: correct / cases.length,
    byGroup,
    multiTokenAnswers: multi,
    meanAnswerProb: probSum / cases.length,
  };
}

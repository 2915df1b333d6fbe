/**
 * Does the model know a fact? The filter `trace --facts` applies before tracing.
 *
 * ROME (`experiments/causal_trace.py: calculate_hidden_flow`, called with `expect=attribute` by the
 * known_1000 loop) decodes the clean run's top-1 next token and keeps the fact only when that text,
 * stripped of surrounding whitespace, equals the whole attribute string (`answer.strip() != expect`
 * returns `correct_prediction=False`, and the loop and the averaging notebook skip it). A single token is
 * compared, so an attribute the tokenizer splits into several tokens is always dropped; the expected
 * string itself is not stripped. Rules:
 * - `"whole"` (default, ROME's): decode(top-1).trim() === attribute;
 * - `"greedy"`: the greedy continuation of as many tokens as the attribute's continuation has, decoded
 *   and trimmed, equals the trimmed attribute (ROME's test extended to multi-token attributes);
 * - `"first"` (engram's earlier rule): the top-1 token id equals the attribute continuation's first token.
 */
import { InputError } from "../errors.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import type { TransformerModel } from "../model/transformer.ts";
import { argmax } from "../numeric/mod.ts";

/** Which comparison decides that the model knows a fact: see the module doc. */
export type KnownRule = "whole" | "greedy" | "first";

/** The rules, default first. */
export const KNOWN_RULES: readonly KnownRule[] = ["whole", "greedy", "first"];

/**
 * Greedy continuation of `ids` by `k` tokens (one forward per token, no cache: k is small). Throws
 * {@link InputError} naming `field` when the prompt plus the continuation does not fit the context.
 */
export async function greedyContinuation(
  model: TransformerModel,
  ids: number[],
  k: number,
  field = "target",
): Promise<number[]> {
  if (ids.length + k - 1 > model.config.nPositions) {
    throw new InputError(
      `the prompt (${ids.length} tokens) and ${k - 1} more answer tokens do not fit the model's ` +
        `${model.config.nPositions} positions`,
      { field },
    );
  }
  const out: number[] = [];
  for (let i = 0; i < k; i++) {
    const r = await model.forward([[...ids, ...out]]);
    out.push(argmax(r.logprobs[0]));
  }
  return out;
}

/**
 * Whether `greedy` (the model's greedy continuation: at least 1 token, and `targetIds.length` for
 * "greedy") matches `target` (text) / `targetIds` (its continuation's token ids) under `rule`.
 */
export function knownByRule(
  rule: KnownRule,
  tok: Tokenizer,
  greedy: number[],
  target: string,
  targetIds: number[],
): boolean {
  if (greedy.length === 0 || targetIds.length === 0) return false;
  if (rule === "first") return greedy[0] === targetIds[0];
  if (rule === "whole") return tok.decode([greedy[0]]).trim() === target;
  if (greedy.length < targetIds.length) {
    throw new RangeError(`greedy continuation has ${greedy.length} tokens, need ${targetIds.length}`);
  }
  return tok.decode(greedy.slice(0, targetIds.length)).trim() === target.trim();
}

/** Tokens the "known" test needs from the greedy continuation under `rule`. */
export function greedyLength(rule: KnownRule, targetIds: number[]): number {
  return rule === "greedy" ? Math.max(1, targetIds.length) : 1;
}

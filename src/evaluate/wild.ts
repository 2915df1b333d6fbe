/**
 * "In the wild" answers (Yang et al., ACL 2025, "The Mirage of Model Editing"): the answer is generated
 * without teacher forcing — greedy decoding after the prompt, at most the target's token count plus
 * `extraTokens` new tokens, stopping at the end-of-text token or a token whose text holds a newline — and
 * scored by exact match (the generated text, trimmed, equals the target, trimmed) and containment (the
 * generated text holds the trimmed target). The teacher-forced token accuracy (EasyEdit's reliability)
 * can count a target as learnt that greedy decoding never produces; these scores cannot.
 *
 * Generation is batched: at each step the unfinished prompts of equal length share one forward pass.
 */
import type { Tokenizer } from "../io/tokenizer.ts";
import type { TransformerModel } from "../model/transformer.ts";
import { bosPrefix, encodeTarget } from "../prompt/encode.ts";

/** Options of {@link wildAnswers}. */
export interface WildOptions {
  /** Token ids put before every prompt; default the tokenizer's BOS policy. */
  prefix?: number[];
  /** New tokens allowed beyond the target's token count (default 3). */
  extraTokens?: number;
}

/** One prompt's generated answer and its scores. */
export interface WildAnswer {
  /** Generated ids (the stop token excluded). */
  ids: number[];
  /** Their decoded text. */
  text: string;
  /** 1 when the trimmed text equals the trimmed target, else 0. */
  exact: number;
  /** 1 when the text contains the trimmed target, else 0. */
  contains: number;
}

/** Default new tokens beyond the target's length. */
export const WILD_EXTRA_TOKENS = 3;

/** Generates and scores the answer after each `{prompt, answer}` (see the module comment). */
export async function wildAnswers(
  model: TransformerModel,
  tokenizer: Tokenizer,
  items: { prompt: string; answer: string }[],
  opts: WildOptions = {},
): Promise<WildAnswer[]> {
  const prefix = opts.prefix ?? bosPrefix(tokenizer);
  const extra = opts.extraTokens ?? WILD_EXTRA_TOKENS;
  const ctx = model.config.nPositions;
  const st = items.map((it, i) => {
    const target = encodeTarget(tokenizer, it.answer.trim(), {
      record: `item ${i}`,
      fields: { target: "answer" },
    });
    return {
      seq: [...prefix, ...tokenizer.encode(it.prompt)],
      max: target.length + extra,
      out: [] as number[],
      done: false,
    };
  });
  for (const s of st) if (s.max <= 0 || s.seq.length >= ctx) s.done = true;
  for (;;) {
    const active = st.filter((s) => !s.done);
    if (active.length === 0) break;
    const byLen = new Map<number, typeof active>();
    for (const s of active) {
      const g = byLen.get(s.seq.length);
      if (g) g.push(s);
      else byLen.set(s.seq.length, [s]);
    }
    for (const group of byLen.values()) {
      const { logprobs } = await model.forward(group.map((s) => s.seq));
      group.forEach((s, b) => {
        const lp = logprobs[b];
        let best = 0;
        for (let v = 1; v < lp.length; v++) if (lp[v] > lp[best]) best = v;
        if (best === tokenizer.eosId || tokenizer.decode([best]).includes("\n")) {
          s.done = true;
          return;
        }
        s.out.push(best);
        s.seq.push(best);
        if (s.out.length >= s.max || s.seq.length >= ctx) s.done = true;
      });
    }
  }
  return st.map((s, i) => {
    const text = s.out.length ? tokenizer.decode(s.out) : "";
    const want = items[i].answer.trim();
    return { ids: s.out, text, exact: text.trim() === want ? 1 : 0, contains: text.includes(want) ? 1 : 0 };
  });
}

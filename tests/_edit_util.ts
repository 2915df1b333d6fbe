/** Helpers of the editing tests. */
import type { Tokenizer } from "../src/io/tokenizer.ts";

/** A word-level tokenizer over "w0".."w{V-2}" plus an end-of-text token V-1: " w5" -> 5. */
export function wordTokenizer(V: number): Tokenizer {
  return {
    encode: (text: string) =>
      text.split(/\s+/).filter(Boolean).map((w) => {
        const id = Number(w.slice(1));
        if (!/^w\d+$/.test(w) || id >= V) throw new Error(`bad word ${w}`);
        return id;
      }),
    decode: (ids: number[]) => ids.map((i) => ` w${i}`).join(""),
    tokenString: (i: number) => ` w${i}`,
    vocabSize: V,
    eosId: V - 1,
    source: "test",
  };
}

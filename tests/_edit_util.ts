/** Helpers of the editing tests. */
import type { Tokenizer } from "../src/io/tokenizer.ts";
import type { ModelConfig, WeightMap } from "../src/model/config.ts";

/** The tiny 2-layer GPT-2 the editing unit tests run on (vocabulary = {@link wordTokenizer}(13)). */
export const TINY_EDIT_CONFIG: ModelConfig = {
  nLayer: 2,
  nHead: 2,
  nEmbd: 8,
  vocabSize: 13,
  nPositions: 12,
  nInner: 32,
  layerNormEpsilon: 1e-5,
};

/** A copy of every weight's data, to check later that an edit changed only what it should. */
export function copyWeights(w: WeightMap): Map<string, Float32Array> {
  return new Map([...w].map(([k, v]) => [k, v.data.slice()]));
}

/**
 * A word-level tokenizer over "w0".."w{V-2}" plus an end-of-text token V-1: " w5" -> 5. Like the world
 * tokenizer, its convention is to start every prompt with the end-of-text token (src/prompt BOS policy).
 */
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
    bosConvention: { adds: true, id: V - 1, from: "test" },
    bosId: V - 1,
  };
}

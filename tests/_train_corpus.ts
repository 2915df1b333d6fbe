/** A tiny training corpus of world sentences, written as the trainer reads it (shared by the training tests). */
import { join } from "node:path";

/** Six sentences in the world tokenizer's words. */
export const TRAIN_FACTS = [
  "Narnux was born in Tarvos .",
  "Fostix was born in Sunmere .",
  "Pilvun plays the trombone .",
  "Narnux speaks Greek .",
  "The birthplace of Fostix is Sunmere .",
  "Pilvun was born in Tarvos .",
];

/** Writes `lines` as `dir/corpus.jsonl` ({id: "c<i>", text} per line) and returns its path. */
export async function writeCorpus(dir: string, lines: string[]): Promise<string> {
  const p = join(dir, "corpus.jsonl");
  await Deno.writeTextFile(
    p,
    lines.map((text, i) => JSON.stringify({ id: `c${i}`, text })).join("\n") + "\n",
  );
  return p;
}

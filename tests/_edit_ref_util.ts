/**
 * Helpers of the tests that compare the GPU editors with the float64 references (src/reference/rome.ts,
 * memit.ts, edit_value.ts, key_stats.ts): a word-level tokenizer, a tiny random GPT-2 with odd sizes,
 * a seeded corpus and seeded requests.
 */
import assert from "node:assert/strict";
import type { Tokenizer } from "../src/io/tokenizer.ts";
import type { ModelConfig, WeightMap } from "../src/model/config.ts";
import { refPrompt, type RefRequest } from "../src/reference/edit_value.ts";
import { transformerForwardRef } from "../src/reference/transformer.ts";
import { rng } from "./_util.ts";

/** 4 layers (MEMIT edits 3 below the last, whose tail carries the loss), odd widths. */
export const REF_EDIT_CONFIG: ModelConfig = {
  nLayer: 4,
  nHead: 2,
  nEmbd: 26,
  vocabSize: 47,
  nPositions: 20,
  nInner: 42,
  layerNormEpsilon: 1e-5,
};

/**
 * Hparams that make the editors follow the reference prompt convention (no end-of-text prefix: ROME
 * and MEMIT never prepend one on GPT-2). One place to change if the BOS option is renamed.
 */
export const NO_PREFIX = { prefix_eos: false } as const;

/**
 * Word-level tokenizer: id 0 is ".", "w1".."w{V-2}" are ids 1..V−2, V−1 is the end-of-text token. Any
 * other word (e.g. "is", "a" of the KL prompt "{} is a", or seeds of context templates) maps to a fixed id
 * by a string hash, so every text encodes, and word boundaries are token boundaries (the subject's token
 * range is then the same under any locating rule).
 */
export function refWordTokenizer(V: number): Tokenizer {
  const word = (w: string): number => {
    if (w === ".") return 0;
    const m = /^w(\d+)$/.exec(w);
    if (m && Number(m[1]) >= 1 && Number(m[1]) <= V - 2) return Number(m[1]);
    if (w === "<|endoftext|>") return V - 1;
    let h = 2166136261;
    for (let i = 0; i < w.length; i++) h = Math.imul(h ^ w.charCodeAt(i), 16777619) >>> 0;
    return 1 + (h % (V - 2));
  };
  const str = (i: number) => (i === 0 ? " ." : i === V - 1 ? "<|endoftext|>" : ` w${i}`);
  return {
    encode: (text: string) => text.replaceAll(".", " . ").split(/\s+/).filter(Boolean).map(word),
    decode: (ids: number[]) => ids.map(str).join(""),
    tokenString: str,
    vocabSize: V,
    eosId: V - 1,
    source: "test",
  };
}

function words(r: () => number, n: number, V: number): string {
  return Array.from({ length: n }, () => `w${1 + Math.floor(r() * (V - 2))}`).join(" ");
}

/** `n` seeded requests: two-word subjects inside prompts (not at the end), two-word targets. */
export function refRequests(seed: number, n: number, V: number): RefRequest[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => ({
    prompt: `${words(r, 2, V)} {} ${words(r, 2, V)}`,
    subject: words(r, 2, V),
    target_new: words(r, 2, V),
  }));
}

/**
 * Writes a seeded corpus of `records` texts of 6–13 words to `dir` and returns its path and the token
 * sequences the statistics should see. "jsonl": one {"text"} per line, each record a sequence (with
 * `eosDelimit`, between end-of-text tokens, as layerStats does when the corpus asks for it); "text": plain text, one
 * line per record, tokenised whole and cut into `nPositions`-token chunks (ROME's raw-text statistics
 * add no end-of-text tokens; this format is unaffected by the JSONL delimiting default).
 */
export async function writeCorpus(
  dir: string,
  seed: number,
  records: number,
  tok: Tokenizer,
  opts: { format?: "jsonl" | "text"; nPositions?: number; eosDelimit?: boolean } = {},
): Promise<{ file: string; seqs: number[][] }> {
  const r = rng(seed);
  const texts = Array.from({ length: records }, () => words(r, 6 + Math.floor(r() * 8), tok.vocabSize));
  const nPos = opts.nPositions ?? REF_EDIT_CONFIG.nPositions;
  if ((opts.format ?? "text") === "text") {
    const file = `${dir}/corpus.txt`;
    const text = texts.join("\n") + "\n";
    await Deno.writeTextFile(file, text);
    const ids = tok.encode(text);
    const seqs: number[][] = [];
    for (let i = 0; i < ids.length; i += nPos) seqs.push(ids.slice(i, i + nPos));
    return { file, seqs };
  }
  const file = `${dir}/corpus.jsonl`;
  await Deno.writeTextFile(file, texts.map((text) => JSON.stringify({ text })).join("\n") + "\n");
  const eos = tok.eosId!;
  return {
    file,
    seqs: texts.map((t) => (opts.eosDelimit ? [eos, ...tok.encode(t), eos] : tok.encode(t)).slice(0, nPos)),
  };
}

/** The context templates an editor used, from its result info: a flat list or groups. */
export function usedTemplates(info: Record<string, unknown>): string[][] {
  const t = info.context_templates;
  assert.ok(Array.isArray(t) && t.length > 0, "editor result has no info.context_templates");
  if (t.every((x) => typeof x === "string")) return [t as string[]];
  assert.ok(
    t.every((g) => Array.isArray(g) && g.every((x) => typeof x === "string")),
    "bad context_templates",
  );
  return t as string[][];
}

/** current − original of weight `name`, as float64. */
export function weightDelta(now: WeightMap, before: Map<string, Float32Array>, name: string): Float64Array {
  const a = now.get(name)!.data, b = before.get(name)!;
  return Float64Array.from(a, (x, i) => x - b[i]);
}

/** max |a − b| / max |b|. */
export function rel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    num = Number.isNaN(d) ? Infinity : Math.max(num, d);
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

/** Cosine of the angle between a and b. */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / Math.sqrt(aa * bb);
}

/**
 * A v_lr that makes the clamp bind: Adam's first steps move every coordinate by about v_lr, so ‖δ‖ grows by
 * about v_lr·√C a step, and with v_lr = 0.35·‖h‖/√C (h = `site` at the request's fact token, the value δ
 * is added to) the first step already leaves the clamp ball 0.3‖h‖.
 */
export function clampBindingLr(
  tok: Tokenizer,
  weights: WeightMap,
  req: RefRequest,
  site: string,
  cfg: ModelConfig = REF_EDIT_CONFIG,
): number {
  const p = refPrompt(tok, "{}", req.prompt, req.subject);
  const v = transformerForwardRef(cfg, weights, p.ids, { capture: [site] }).sites.get(site)!;
  const C = cfg.nEmbd;
  return (0.35 * Math.hypot(...v.slice(p.lookup * C, (p.lookup + 1) * C))) / Math.sqrt(C);
}

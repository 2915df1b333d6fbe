/**
 * Training corpora: JSONL files with one training instance per line, `{"id": "...", "text": "..."}`
 * (other fields are kept but unused). Instances are tokenized as [eos] + text + [eos] so that the
 * first word is predicted too and the model learns where a statement ends.
 */
import { EngramError, InputError } from "../errors.ts";
import type { Tokenizer } from "../io/tokenizer.ts";

/** One tokenized training instance. */
export interface TrainingInstance {
  /** The instance's id in the corpus (instance attribution names instances by it). */
  id: string;
  /** 0-based line number in the corpus file. */
  line: number;
  text: string;
  /** Token ids including the leading and trailing eos. */
  ids: number[];
}

/** Reads and tokenizes a JSONL corpus; every line must fit the context `maxTokens`. */
export async function readCorpus(
  path: string,
  tokenizer: Tokenizer,
  maxTokens: number,
): Promise<TrainingInstance[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new EngramError("io", `cannot read the training corpus: ${(e as Error).message}`, { file: path });
  }
  return parseCorpus(text, path, tokenizer, maxTokens);
}

/** Parses corpus text (see {@link readCorpus}); `path` is used in error messages. */
export function parseCorpus(
  text: string,
  path: string,
  tokenizer: Tokenizer,
  maxTokens: number,
): TrainingInstance[] {
  const eos = tokenizer.eosId;
  if (eos === undefined) {
    throw new InputError("the tokenizer has no end-of-text token to delimit instances", { file: path });
  }
  const out: TrainingInstance[] = [];
  const ids = new Set<string>();
  const lines = text.split("\n");
  lines.forEach((raw, i) => {
    if (raw.trim() === "") return;
    const where = { file: path, field: `line ${i + 1}` };
    let rec: unknown;
    try {
      rec = JSON.parse(raw);
    } catch (e) {
      throw new InputError(`not valid JSON: ${(e as Error).message}`, where);
    }
    if (typeof rec !== "object" || rec === null || Array.isArray(rec)) {
      throw new InputError("not a JSON object", where);
    }
    const r = rec as Record<string, unknown>;
    if (typeof r.text !== "string" || r.text.trim() === "") {
      throw new InputError("missing or empty 'text'", where);
    }
    const id = r.id === undefined ? `line${i + 1}` : String(r.id);
    if (ids.has(id)) throw new InputError(`duplicate id '${id}'`, where);
    ids.add(id);
    const toks = [eos, ...tokenizer.encode(r.text), eos];
    if (toks.length > maxTokens) {
      throw new InputError(
        `${toks.length} tokens (with the two end-of-text markers) do not fit the model's context of ${maxTokens}`,
        where,
      );
    }
    out.push({ id, line: i, text: r.text, ids: toks });
  });
  if (out.length === 0) throw new InputError("the training corpus is empty", { file: path });
  return out;
}

/**
 * Pads instances to a common length with `pad` and builds next-token targets (-1 where there is no
 * next token of the instance), ready for {@link lossAndGradients}.
 */
export function makeBatch(
  instances: TrainingInstance[],
  pad: number,
): { batch: number[][]; targets: number[][] } {
  const T = Math.max(...instances.map((x) => x.ids.length)) - 1;
  const batch: number[][] = [];
  const targets: number[][] = [];
  for (const x of instances) {
    const inp = x.ids.slice(0, -1);
    const tgt = x.ids.slice(1);
    while (inp.length < T) {
      inp.push(pad);
      tgt.push(-1);
    }
    batch.push(inp);
    targets.push(tgt);
  }
  return { batch, targets };
}

/**
 * Inputs of the attribution commands: prompts and single-token targets (encoded by the prompt module,
 * with the model's BOS policy), and training files with ids.
 */
import { InputError } from "../errors.ts";
import { encodeTarget, encodeText } from "../prompt/encode.ts";
import { FactError, type FactWhere } from "../prompt/errors.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import type { TransformerModel } from "../model/transformer.ts";
import { parseCorpus, type TrainingInstance } from "../train/corpus.ts";

/**
 * The prompt's ids for attribution: the prompt module's {@link encodeText} (the tokenizer's BOS policy,
 * the context check), validated against the model.
 */
export function attributionIds(
  model: TransformerModel,
  tokenizer: Tokenizer,
  text: string,
  where?: FactWhere,
): number[] {
  const ids = encodeText(tokenizer, text, { nPositions: model.config.nPositions, where });
  model.checkBatch([ids]);
  return ids;
}

/**
 * The target word as one token ({@link encodeTarget}: " " + target unless it starts with a space).
 * Attribution explains the probability of ONE next token; a multi-token target is refused unless
 * `firstToken`, which attributes its first token only.
 */
export function attributionTarget(
  tokenizer: Tokenizer,
  target: string,
  firstToken = false,
  where?: FactWhere,
): number {
  const ids = encodeTarget(tokenizer, target, where);
  if (ids.length > 1 && !firstToken) {
    const pieces = ids.map((i) => JSON.stringify(tokenizer.tokenString(i))).join(" + ");
    throw new FactError(
      `target '${target}' is ${ids.length} tokens (${pieces}); attribution explains the probability of a single next ` +
        `token after the prompt, so give a one-token target, or pass --first-token to attribute its first token only`,
      { file: where?.file, record: where?.record, field: where?.fields?.target ?? "target" },
    );
  }
  return ids[0];
}

/** A training instance with the metadata fields of its JSONL record. */
export interface TrainRecord extends TrainingInstance {
  /** The record's other string fields (e.g. subject, relation, object in the fixture world). */
  meta: Record<string, string>;
}

/**
 * Reads a training JSONL file ({"id", "text", ...} per line) tokenized as in training; a line that does not
 * fit the model's context is an {@link InputError} naming the file and line. `candidates` keeps only
 * those ids (unknown ids are an error); `limit` keeps the first N instances after that.
 */
export async function readTrainingFile(
  path: string,
  tokenizer: Tokenizer,
  nPositions: number,
  opts: { limit?: number; candidates?: string[] } = {},
): Promise<TrainRecord[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new InputError(`cannot read the training file: ${(e as Error).message}`, {
      file: path,
      field: "--train",
    });
  }
  const inst = parseCorpus(text, path, tokenizer, nPositions + 1);
  const lines = text.split("\n");
  let out: TrainRecord[] = inst.map((x) => {
    const rec = JSON.parse(lines[x.line]) as Record<string, unknown>;
    const meta: Record<string, string> = {};
    for (const [k, v] of Object.entries(rec)) {
      if (typeof v === "string" && k !== "text" && k !== "id") meta[k] = v;
    }
    return { ...x, meta };
  });
  if (opts.candidates) {
    const byId = new Map(out.map((x) => [x.id, x]));
    out = opts.candidates.map((id) => {
      const x = byId.get(id);
      if (!x) {
        throw new InputError(`candidate id '${id}' is not in the training file`, {
          file: path,
          field: "--candidates",
        });
      }
      return x;
    });
  }
  if (opts.limit !== undefined) out = out.slice(0, opts.limit);
  if (out.length === 0) {
    throw new InputError("no training instances selected", { file: path, field: "--train" });
  }
  return out;
}

/** Parses `--candidates`: comma-separated ids, or `@FILE` with one id per line (or JSONL with "id"). */
export async function parseCandidates(arg: string): Promise<string[]> {
  let items: string[];
  if (arg.startsWith("@")) {
    const file = arg.slice(1);
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch (e) {
      throw new InputError(`cannot read the candidates file: ${(e as Error).message}`, {
        file,
        field: "--candidates",
      });
    }
    items = text.split("\n").map((l) => l.trim()).filter((l) => l !== "").map((l) => {
      if (!l.startsWith("{")) return l;
      try {
        return String(JSON.parse(l).id);
      } catch {
        throw new InputError(`not JSON: ${l.slice(0, 40)}`, { file, field: "--candidates" });
      }
    });
  } else items = arg.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (items.length === 0) throw new InputError("--candidates lists no id", { field: "--candidates" });
  return items;
}

/**
 * The prompt/target pair that neuron attribution uses for a training instance: when the record has an
 * `object` field that is one token of the text, the prompt is everything before its last occurrence and the
 * target is that token (the fact's answer); otherwise the target is the text's last token.
 */
export function instancePrompt(x: TrainRecord, tokenizer: Tokenizer): { ids: number[]; target: number } {
  const body = x.ids.slice(0, -1); // drop the trailing eos
  if (x.meta.object) {
    const obj = x.meta.object.trim() === "" ? [] : encodeTarget(tokenizer, x.meta.object);
    if (obj.length === 1) {
      const j = body.lastIndexOf(obj[0]);
      if (j >= 1) return { ids: body.slice(0, j), target: obj[0] };
    }
  }
  if (body.length < 2) {
    throw new InputError(`instance '${x.id}' is too short to attribute`, { field: "--train" });
  }
  return { ids: body.slice(0, -1), target: body[body.length - 1] };
}

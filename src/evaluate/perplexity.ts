/**
 * Perplexity of a held-out text: exp of the mean token negative log-likelihood over every predicted token
 * of every line. Each line is encoded with the model's BOS convention (src/prompt: the tokenizer's prefix,
 * decided at load); with a BOS prefix every text token is predicted, without one the first token of a
 * line has no context and is not scored. A line longer than the context is cut into context-sized pieces,
 * each starting afresh (with the prefix).
 */
import { InputError } from "../errors.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import type { TransformerModel } from "../model/transformer.ts";
import { bosPrefix } from "../prompt/encode.ts";

/** What {@link perplexity} measured. */
export interface PerplexityResult {
  /** exp({@link nll}): the perplexity over every scored token. */
  perplexity: number;
  /** Mean token NLL (nats). */
  nll: number;
  /** Tokens scored. */
  tokens: number;
  /** Sequences (lines or their pieces) scored. */
  sequences: number;
}

/**
 * Reads a held-out text: JSON lines with a "text" field, or with "prompt" and "answer" (the world's
 * `heldout.jsonl`: prompt + " " + answer), or plain text (one sequence per non-empty line). At most
 * `maxLines` lines, spread evenly over the file (every k-th line), when the file has more.
 */
export async function readPerplexityText(file: string, maxLines = 256): Promise<string[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new InputError(`cannot read the perplexity text: ${(e as Error).message}`, {
      file,
      field: "--ppl-text",
    });
  }
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== "");
  if (lines.length === 0) throw new InputError("the perplexity text is empty", { file, field: "--ppl-text" });
  const out = lines.map((l, i) => {
    if (!l.trimStart().startsWith("{")) return l.trim();
    let o: unknown;
    try {
      o = JSON.parse(l);
    } catch {
      throw new InputError(`line ${i + 1} is not valid JSON`, { file, field: "--ppl-text" });
    }
    const r = o as Record<string, unknown>;
    if (typeof r.text === "string") return r.text;
    if (typeof r.prompt === "string" && typeof r.answer === "string") return `${r.prompt} ${r.answer}`;
    throw new InputError(`line ${i + 1}: a JSON line needs "text", or "prompt" and "answer"`, {
      file,
      field: "text",
    });
  });
  if (out.length <= maxLines) return out;
  const step = out.length / maxLines;
  return Array.from({ length: maxLines }, (_, i) => out[Math.floor(i * step)]);
}

/** Perplexity of `texts` under `model` (see the module comment). */
export async function perplexity(
  model: TransformerModel,
  tokenizer: Tokenizer,
  texts: string[],
  opts: { prefix?: number[]; batchSize?: number } = {},
): Promise<PerplexityResult> {
  const prefix = opts.prefix ?? bosPrefix(tokenizer);
  const ctx = model.config.nPositions;
  const room = ctx - prefix.length;
  if (room < 1) throw new InputError("the BOS prefix fills the context", { field: "--ppl-text" });
  const seqs: number[][] = [];
  for (const t of texts) {
    const ids = tokenizer.encode(t);
    for (let s = 0; s < ids.length; s += room) {
      const seq = [...prefix, ...ids.slice(s, s + room)];
      if (seq.length >= 2) seqs.push(seq);
    }
  }
  if (seqs.length === 0) {
    throw new InputError("the perplexity text has no token to predict", { field: "--ppl-text" });
  }
  const V = model.config.vocabSize;
  const pad = tokenizer.eosId ?? 0;
  const bs = opts.batchSize ?? 64;
  const order = seqs.map((_, i) => i).sort((a, b) => seqs[a].length - seqs[b].length);
  let nll = 0, tokens = 0;
  for (let s = 0; s < order.length; s += bs) {
    const chunk = order.slice(s, s + bs);
    const T = Math.max(...chunk.map((i) => seqs[i].length));
    const batch = chunk.map((i) => [...seqs[i], ...new Array(T - seqs[i].length).fill(pad)]);
    const { logits } = await model.forward(batch, { allLogits: true });
    chunk.forEach((i, b) => {
      const seq = seqs[i];
      for (let p = 0; p + 1 < seq.length; p++) {
        const off = (b * T + p) * V;
        let m = -Infinity;
        for (let v = 0; v < V; v++) m = Math.max(m, logits![off + v]);
        let sum = 0;
        for (let v = 0; v < V; v++) sum += Math.exp(logits![off + v] - m);
        nll -= logits![off + seq[p + 1]] - m - Math.log(sum);
        tokens++;
      }
    });
  }
  return { perplexity: Math.exp(nll / tokens), nll: nll / tokens, tokens, sequences: seqs.length };
}

/**
 * Shared pieces of ROME and MEMIT: the edit prompts' key and target positions (encoded by the prompt
 * module), and reading hook sites at those positions (context templates: ./templates.ts).
 *
 * Batches of different lengths are right-padded: the model is causal, so padding after a sequence
 * changes nothing at its own positions (pad rows are never read).
 */
import type { Tokenizer } from "../io/tokenizer.ts";
import { encodeFact } from "../prompt/encode.ts";
import type { TransformerModel } from "../model/transformer.ts";
import type { PatchSpec } from "../model/hooks.ts";
import type { EditRequest } from "../prompt/requests.ts";
import type { SubjectNoiser } from "../locate/subject_noiser.ts";

/**
 * Where the edited key and value are read (ROME's `fact_token`): the subject's last token (the
 * reference default), or the prompt's last token — the position that predicts the answer, for models
 * whose causal trace puts the fact there (the fixture world's 2-layer model).
 */
export type FactToken = "subject_last" | "last";

/** A tokenised prompt: ids, the fact-token position, and (for rewriting prompts) target positions. */
export interface PromptTokens {
  ids: number[];
  /** Index in `ids` of the fact token: the subject's last token, or the prompt's last token. */
  lookup: number;
  /** The subject's tokens [a, b) in `ids` (where Fact Forcing's noise goes). */
  subjectRange: [number, number];
  /** Positions whose next token is a target token, and those tokens. */
  targetPos: number[];
  targetIds: number[];
}

/**
 * Encodes `template` (with "{}") filled with `prompt` (itself with "{}" for `subject`) by the prompt
 * module's {@link encodeFact}, optionally followed by all but the last `target` token. The BOS is the
 * tokenizer's policy, or `bos` when given (an explicit `prefix_eos` hparam). Leading template tokens
 * are dropped when the sequence would not fit the context. `lookup` is the subject's last token, or
 * with `factToken` "last" the prompt's last token (before any target token).
 */
export function tokenizePrompt(
  tokenizer: Tokenizer,
  nPositions: number,
  template: string,
  prompt: string,
  subject: string,
  target: number[] | undefined,
  bos: boolean | undefined,
  factToken: FactToken = "subject_last",
): PromptTokens {
  const tgt = target ?? [];
  const f = encodeFact(tokenizer, { prompt, subject }, {
    nPositions,
    template,
    bos,
    reserve: Math.max(0, tgt.length - 1),
  });
  const promptLen = f.ids.length;
  return {
    ids: [...f.ids, ...tgt.slice(0, -1)],
    lookup: factToken === "last" ? promptLen - 1 : f.subjectRange[1] - 1,
    subjectRange: [f.subjectRange[0], f.subjectRange[1]],
    targetPos: tgt.map((_, j) => promptLen - 1 + j),
    targetIds: tgt,
  };
}

/** Right-pads sequences to a common length (pad token: the first token of each sequence). */
export function padBatch(seqs: number[][]): number[][] {
  const T = Math.max(...seqs.map((s) => s.length));
  return seqs.map((s) => (s.length === T ? s : [...s, ...new Array(T - s.length).fill(s[0])]));
}

/** Splits items into batches of at most `maxTokens` tokens when each is padded to `T0`. */
export function chunkByTokens<T>(items: T[], maxTokens: number, T0: number): T[][] {
  const out: T[][] = [];
  const per = Math.max(1, Math.floor(maxTokens / T0));
  for (let i = 0; i < items.length; i += per) out.push(items.slice(i, i + per));
  return out;
}

/**
 * Values of hook `site` at one position of each sequence ([seqs.length][width]); sequences are
 * right-padded and run in batches, optionally with patches built per batch.
 */
export async function readAtPositions<S extends { ids: number[]; pos: number }>(
  model: TransformerModel,
  seqs: S[],
  site: string,
  opts: { maxTokens?: number; patch?: (batch: S[]) => PatchSpec[] } = {},
): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  if (seqs.length === 0) return out;
  const T = Math.max(...seqs.map((s) => s.ids.length));
  for (const batch of chunkByTokens(seqs, opts.maxTokens ?? 4096, T)) {
    const padded = padBatch(batch.map((s) => s.ids));
    const Tb = padded[0].length;
    const { captured } = await model.forward(padded, {
      hooks: { capture: [site], patch: opts.patch?.(batch) },
    });
    const { data: v, shape } = captured.get(site)!;
    const width = shape[2];
    batch.forEach((s, b) => out.push(v.slice((b * Tb + s.pos) * width, (b * Tb + s.pos + 1) * width)));
  }
  return out;
}

/** A `readAtPositions` patch builder giving each batch row (with its subject range) a fresh noise draw. */
export function noisePatches(
  model: TransformerModel,
  noiser: SubjectNoiser,
): (batch: Array<{ ids: number[]; subjectRange?: [number, number] }>) => PatchSpec[] {
  return (batch) =>
    noiser.patches(
      model,
      batch.map((s, row) => ({ ids: s.ids, subjectRange: s.subjectRange ?? [0, 0], row })),
    );
}

/** Mean of vectors (float64). */
export function meanVec(vs: ArrayLike<number>[]): Float64Array {
  const out = new Float64Array(vs[0].length);
  for (const v of vs) for (let i = 0; i < out.length; i++) out[i] += v[i];
  for (let i = 0; i < out.length; i++) out[i] /= vs.length;
  return out;
}

/**
 * The key of a request at `layer` (input of c_proj at the subject's last token), averaged over each
 * template group and then across groups — MEMIT's `compute_ks`; with one group ROME's `compute_u` mean.
 * With `noiser` every sequence's subject embeddings get a fresh noise draw (Fact Forcing).
 */
export async function requestKeys(
  model: TransformerModel,
  tokenizer: Tokenizer,
  requests: EditRequest[],
  groups: string[][],
  layer: number,
  bos: boolean | undefined,
  factToken: FactToken = "subject_last",
  noiser?: SubjectNoiser,
): Promise<Float64Array[]> {
  const seqs: Array<{ ids: number[]; pos: number; r: number; g: number; subjectRange: [number, number] }> =
    [];
  requests.forEach((req, r) =>
    groups.forEach((grp, g) =>
      grp.forEach((tpl) => {
        const p = tokenizePrompt(
          tokenizer,
          model.config.nPositions,
          tpl,
          req.prompt,
          req.subject,
          undefined,
          bos,
          factToken,
        );
        seqs.push({ ids: p.ids, pos: p.lookup, r, g, subjectRange: p.subjectRange });
      })
    )
  );
  const vals = await readAtPositions(
    model,
    seqs,
    `mlp_post.${layer}`,
    noiser && { patch: noisePatches(model, noiser) },
  );
  return requests.map((_, r) => {
    const perGroup = groups.map((_, g) => meanVec(vals.filter((_, i) => seqs[i].r === r && seqs[i].g === g)));
    return meanVec(perGroup);
  });
}

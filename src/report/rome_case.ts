/**
 * ROME's per-case trace file: `experiments/causal_trace.py` saves the dict `calculate_hidden_flow`
 * returns with `numpy.savez` as `knowledge_<known_id><suffix>.npz` (suffix "", "_mlp", "_attn"), and
 * its notebooks read those files back. engram writes the same keys and dtypes, so ROME's
 * `plot_trace_heatmap` and `average_causal_effects.ipynb` read engram's traces, and any traced fact can
 * be drawn again later ({@link replotCase}).
 *
 * Keys and dtypes (as numpy.savez stores what ROME passes it, a float32 model on the GPU):
 * `scores` <f4 [tokens, layers] (torch float32), `low_score` <f8 0-d (a Python float), `high_score` <f4
 * 0-d (a torch scalar), `input_ids` <i8 [tokens], `input_tokens` <U [tokens], `subject_range` <i8 [2],
 * `answer` <U 0-d, `window` <i8 0-d (ROME saves 10 for every kind), `kind` <U 0-d ("" for hidden).
 */
import { InputError } from "../errors.ts";
import { encodeNpz } from "../io/npz_write.ts";
import { type Npz, readNpz } from "../io/npz.ts";
import type { TraceKind } from "../locate/trace.ts";
import { traceHeatmapSvg } from "./heatmap.ts";

/** The record ROME's `calculate_hidden_flow` returns (and saves per case). */
export interface RomeCase {
  /** Restored score [token][layer]: the answer's probability (ROME's), or the trace's {@link metric}. */
  scores: number[][];
  /** The corrupted run's score (nothing restored), in the units of `scores`. */
  low_score: number;
  /** The clean run's score, in the units of `scores`. */
  high_score: number;
  /** Token ids of the prompt. */
  input_ids: number[];
  /** Token strings of the prompt. */
  input_tokens: string[];
  /** Subject tokens [a, b). */
  subject_range: [number, number];
  /** The traced answer, decoded. */
  answer: string;
  /** Restoration window (engram writes the kind's effective window: 1 for hidden). */
  window: number;
  /** "" (hidden), "mlp" or "attn", as ROME. */
  kind: string;
  /**
   * What the scores measure (engram's trace metrics; not in ROME's files, not written to the .npz):
   * "prob" (ROME's, the default when absent), "logprob" or "logit-diff".
   */
  metric?: string;
}

/** ROME's file name of a case: `knowledge_<id><suffix>.npz`; characters outside [\w.-] become "_". */
export function romeCaseFileName(id: string | number, kind: TraceKind | ""): string {
  const safe = String(id).replace(/[^\w.-]/g, "_");
  return `knowledge_${safe}${kind === "" || kind === "hidden" ? "" : `_${kind}`}.npz`;
}

/** The case as an `.npz` archive (see the module doc for keys and dtypes). */
export function encodeRomeCase(c: RomeCase): Uint8Array {
  const T = c.scores.length, L = T ? c.scores[0].length : 0;
  return encodeNpz({
    scores: { dtype: "<f4", shape: [T, L], data: c.scores.flat() },
    low_score: { dtype: "<f8", shape: [], data: [c.low_score] },
    high_score: { dtype: "<f4", shape: [], data: [c.high_score] },
    input_ids: { dtype: "<i8", shape: [c.input_ids.length], data: c.input_ids },
    input_tokens: { dtype: "<U", shape: [c.input_tokens.length], strings: c.input_tokens },
    subject_range: { dtype: "<i8", shape: [2], data: c.subject_range },
    answer: { dtype: "<U", shape: [], strings: [c.answer] },
    window: { dtype: "<i8", shape: [], data: [c.window] },
    kind: { dtype: "<U", shape: [], strings: [c.kind] },
  });
}

/** Reads a case back from an opened `.npz` (engram's or ROME's); errors name the file and key. */
export function decodeRomeCase(npz: Npz): RomeCase {
  const num = (k: string) => {
    const a = npz.get(k);
    if (a.strings || a.data.length !== 1) {
      throw new InputError(`'${k}' must be one number`, { file: npz.file, field: k });
    }
    return a.data[0];
  };
  const str = (k: string) => {
    const a = npz.get(k);
    if (!a.strings) throw new InputError(`'${k}' must be a string array`, { file: npz.file, field: k });
    return a.strings;
  };
  const s = npz.get("scores");
  if (s.strings || s.shape.length !== 2) {
    throw new InputError(`'scores' must be a 2-d number array`, { file: npz.file, field: "scores" });
  }
  const [T, L] = s.shape;
  const scores = Array.from({ length: T }, (_, t) => Array.from(s.data.subarray(t * L, (t + 1) * L)));
  const tokens = str("input_tokens");
  const range = npz.get("subject_range");
  if (range.strings || range.data.length !== 2 || tokens.length !== T) {
    throw new InputError(`'subject_range' must be 2 numbers and 'input_tokens' ${T} strings`, {
      file: npz.file,
      field: range.data.length !== 2 ? "subject_range" : "input_tokens",
    });
  }
  const ids = npz.names.includes("input_ids") ? Array.from(npz.get("input_ids").data) : [];
  return {
    scores,
    low_score: num("low_score"),
    high_score: npz.names.includes("high_score") ? num("high_score") : NaN,
    input_ids: ids,
    input_tokens: tokens,
    subject_range: [range.data[0], range.data[1]],
    answer: str("answer")[0],
    window: npz.names.includes("window") ? num("window") : 10,
    kind: npz.names.includes("kind") ? (str("kind")[0] ?? "") : "",
  };
}

/** Reads the case file `file`. */
export async function readRomeCase(file: string): Promise<RomeCase> {
  return decodeRomeCase(await readNpz(file));
}

/** The ROME-style heatmap of a saved case file (engram's or ROME's `knowledge_*.npz`). */
export async function replotCase(file: string): Promise<string> {
  return traceHeatmapSvg(await readRomeCase(file));
}

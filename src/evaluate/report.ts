/**
 * Editing results as a KnowEdit-style markdown table (rows: methods; columns: metrics) and as JSON.
 * Fractions are shown ×100, as in KnowEdit / EasyEdit summaries; fluency is shown in bits, the unit the
 * JSON has, and its header says so (KnowEdit's tables print it ×100: 584.04 there is 5.84 bits).
 */
import { InputError } from "../errors.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import type { MethodEvalResult, Metrics, WildScores } from "./edit_metrics.ts";
import type { EvalOutput } from "../schema/eval_output.ts";
import { schemaTag } from "../schema/common.ts";

/**
 * A result with the run's settings the eval CLI adds (the data file, model, BOS, fluency settings);
 * {@link resultsJson} checks it against the `engram-eval/1` schema's type.
 */
export type EvalRunResult = MethodEvalResult & {
  data?: string;
  model?: string;
  bos?: boolean;
  hparams_file?: string;
  fluency_settings?: { max_out_len: number; new_tokens?: number; top_k: number; seed: number };
};

/** A table column: header and the metric it shows. */
export interface Column {
  /** The column's header. */
  header: string;
  /** The metric it shows. */
  key: keyof Metrics | keyof WildScores;
  /** Factor applied to the JSON value for display (default 100: fractions as percentages). */
  scale?: number;
}

/** KnowEdit's columns, then ROME's CounterFact scores and magnitudes. */
export const DEFAULT_COLUMNS: Column[] = [
  { header: "Edit Succ. (Reliability)", key: "reliability" },
  { header: "Generalization", key: "generalization" },
  { header: "Locality", key: "locality" },
  { header: "Portability", key: "portability" },
  { header: "Fluency (bits)", key: "fluency", scale: 1 },
  { header: "ES", key: "efficacy_score" },
  { header: "PS", key: "paraphrase_score" },
  { header: "NS", key: "neighborhood_score" },
  { header: "S", key: "score" },
  { header: "EM", key: "efficacy_magnitude" },
  { header: "PM", key: "paraphrase_magnitude" },
  { header: "NM", key: "neighborhood_magnitude" },
  { header: "Wild EM", key: "wild_exact" },
  { header: "Wild contains", key: "wild_contains" },
  { header: "Wild gen. EM", key: "wild_generalization_exact" },
];

/** A value × `scale` (default 100) with two decimals, or "–" when the metric is absent. */
export function formatMetric(v: number | null | undefined, scale = 100): string {
  return v === null || v === undefined || !Number.isFinite(v) ? "–" : (scale * v).toFixed(2);
}

/**
 * The markdown table of `results`: one row per result (method, mode, n), columns that at least one
 * result has (or all of `columns` when `keepEmpty`). With `includePre`, a "(pre-edit)" row follows each.
 */
export function markdownTable(
  results: MethodEvalResult[],
  opts: { columns?: Column[]; keepEmpty?: boolean; includePre?: boolean; title?: string } = {},
): string {
  if (results.length === 0) throw new InputError("no results to tabulate", { field: "results" });
  const cols = (opts.columns ?? DEFAULT_COLUMNS).filter((c) =>
    opts.keepEmpty || results.some((r) => r.metrics[c.key] !== null && r.metrics[c.key] !== undefined)
  );
  const rows: string[][] = [];
  for (const r of results) {
    rows.push([r.method, r.mode, String(r.n), ...cols.map((c) => formatMetric(r.metrics[c.key], c.scale))]);
    if (opts.includePre) {
      rows.push([
        `${r.method} (pre-edit)`,
        r.mode,
        String(r.n),
        ...cols.map((c) => formatMetric((r.pre_metrics as Metrics & Partial<WildScores>)[c.key], c.scale)),
      ]);
    }
  }
  const header = ["Method", "Mode", "N", ...cols.map((c) => c.header)];
  const lines = [
    ...(opts.title ? [`### ${opts.title}`, ""] : []),
    `| ${header.join(" | ")} |`,
    `|${header.map((_, i) => (i < 3 ? "---" : "---:")).join("|")}|`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ];
  return lines.join("\n") + "\n";
}

/** Writes the table (markdown) to `file` atomically. */
export async function writeTable(
  file: string,
  results: MethodEvalResult[],
  opts: Parameters<typeof markdownTable>[1] = {},
): Promise<void> {
  await writeFileAtomic(file, new TextEncoder().encode(markdownTable(results, opts)));
}

/** Writes results as JSON to `file` atomically ({@link resultsJson}'s `engram-eval/1` document). */
export async function writeResultsJson(file: string, results: EvalRunResult[]): Promise<void> {
  await writeFileAtomic(file, new TextEncoder().encode(JSON.stringify(resultsJson(results), null, 2) + "\n"));
}

/**
 * The JSON document for `results` (the eval CLI prints and writes this): `{schema: "engram-eval/1",
 * results: [...]}`, the same layout for one method as for several (schemas/engram-eval.json).
 */
export function resultsJson(results: EvalRunResult[]): { schema: "engram-eval/1"; results: EvalRunResult[] } {
  // Typed by the schema here; the public signature names the library's own types (JSR's fast types).
  const doc: EvalOutput = { schema: schemaTag("eval", 1), results };
  return { schema: doc.schema, results };
}

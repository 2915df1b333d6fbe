/**
 * The `report.html` pages of `trace --out` (one prompt, or many facts) and `eval --out`: tables of the
 * results and their figures as inline SVG (src/report/html.ts), readable offline.
 */
import type { ClassAverage } from "../locate/average.ts";
import type { MethodEvalResult, Metrics, WildScores } from "../evaluate/edit_metrics.ts";
import { DEFAULT_COLUMNS } from "../evaluate/report.ts";
import { barChartSvg } from "./bars.ts";
import { type Cell, htmlFigure, htmlPage, htmlTable, type Section } from "./html.ts";

/** The fields of one kind of `trace --json` the page shows. */
export interface TraceKindJson {
  /** Trace kind: hidden, mlp or attn. */
  kind: string;
  /** Token strings of the prompt. */
  tokens: string[];
  /** Subject tokens [a, b), indices into `tokens`. */
  subject_range: [number, number];
  /** Indirect effects [token][layer], in the metric's units. */
  effects: number[][];
  /** Probability of the answer in the clean run. */
  p_clean: number;
  /** Probability of the answer in the corrupted run (nothing restored). */
  p_corrupt: number;
  /** Clean minus corrupted metric. */
  total_effect: number;
  /** The traced answer, decoded. */
  answer: string;
  /** The clean run's top-1 token, as a string. */
  predicted: string;
  /** Whether the model knows the fact (the `--known` rule when a target is given). */
  known: boolean;
  /** Effective restoration window (1 for hidden). */
  window: number;
  /** Noise samples (1 for token replacement). */
  samples: number;
  /** Noise std (0 for token replacement). */
  noise_std: number;
  /** The prompt as given (shown instead of the joined tokens when present). */
  prompt?: string;
  /** The subject as given (shown instead of the subject's joined tokens when present). */
  subject?: string;
}

function peak(grid: number[][]): { token: number; layer: number; value: number } {
  let best = { token: 0, layer: 0, value: -Infinity };
  grid.forEach((row, t) =>
    row.forEach((v, l) => v > best.value && (best = { token: t, layer: l, value: v }))
  );
  return best;
}

/** Figures of a folder: file name -> SVG text, in the order shown. */
export type Figures = Array<{ file: string; svg: string; caption: string }>;

/** The page of a one-prompt trace: summary, peak effect per kind, the heatmaps. */
export function traceReportHtml(kinds: TraceKindJson[], figures: Figures): string {
  const o = kinds[0];
  const summary = htmlTable(["quantity", "value"], [
    ["prompt", o.prompt ?? o.tokens.join("")],
    ["subject", o.subject ?? o.tokens.slice(...o.subject_range).join("")],
    ["answer", o.answer],
    ["model's top-1", o.predicted],
    ["known", String(o.known)],
    ["p_clean", o.p_clean],
    ["p_corrupt", o.p_corrupt],
    ["total effect", o.total_effect],
    ["noise std", o.noise_std],
    ["samples", o.samples],
  ]);
  const peaks = htmlTable(
    ["kind", "window", "peak indirect effect", "token", "layer"],
    kinds.map((k) => {
      const p = peak(k.effects);
      return [k.kind, k.window, p.value, `${p.token}: ${JSON.stringify(k.tokens[p.token])}`, p.layer];
    }),
  );
  return htmlPage("engram causal trace", [`${o.tokens.length} tokens, subject tokens [${o.subject_range}]`], [
    { heading: "Summary", parts: [summary, peaks] },
    { heading: "Heatmaps", parts: figures.map((f) => htmlFigure(f.svg, f.caption, f.file)) },
  ]);
}

/** The fields of `trace --facts --json` the page shows. */
export interface FactsJson {
  /** The facts file traced. */
  facts_file: string;
  /** Facts in the file. */
  records: number;
  /** Facts traced. */
  traced: number;
  /** Facts the model does not know (traced anyway with --include-unknown). */
  unknown: number;
  /** Facts whose encoding failed. */
  skipped_invalid: number;
  /** Token-class pooling rule ("token" or "prompt"). */
  pool: string;
  /** The model's layer count. */
  layers: number;
  /** Mean clean p(answer) over the traced facts. */
  mean_p_clean: number;
  /** Mean corrupted p(answer) over the traced facts. */
  mean_p_corrupt: number;
  /** Mean clean metric minus mean corrupted metric. */
  mean_total_effect: number;
  /** Noise std (0 for token replacement). */
  noise_std: number;
  /** Noise samples per fact. */
  samples: number;
  /** Restoration window of MLP / attention layers asked for. */
  window: number;
  /** Token-class averages per kind. */
  kinds: Record<string, Pick<ClassAverage, "classes" | "mean" | "ci95" | "count">>;
  /** Per-fact records as `trace --facts --json` writes them (id, prompt, subject, traced, ...). */
  facts: Array<Record<string, unknown>>;
}

/** The page of a many-facts trace: summary, AIE per token class, line figure, heatmaps, the facts. */
export function factsReportHtml(out: FactsJson, figures: Figures): string {
  const summary = htmlTable(["quantity", "value"], [
    ["facts file", out.facts_file],
    ["records", out.records],
    ["traced", out.traced],
    ["not known by the model", out.unknown],
    ["invalid", out.skipped_invalid],
    ["mean p_clean", out.mean_p_clean],
    ["mean p_corrupt", out.mean_p_corrupt],
    ["mean total effect", out.mean_total_effect],
    ["noise std", out.noise_std],
    ["samples", out.samples],
    ["window", out.window],
    ["pool", out.pool],
  ]);
  const classTables = Object.entries(out.kinds).map(([k, a]) => {
    const rows: Cell[][] = [];
    a.classes.forEach((c, j) => {
      if (a.count[j] === 0) return;
      const p = peak([a.mean[j]]);
      rows.push([c, a.count[j], p.value, a.ci95[j][p.layer], p.layer]);
    });
    return `<h3>${k}</h3>` + htmlTable(["token class", "n", "max AIE", "± 95% CI", "at layer"], rows);
  });
  const factRows = out.facts.map((f) => [
    String(f.id ?? ""),
    String(f.prompt ?? ""),
    String(f.subject ?? ""),
    f.target === null || f.target === undefined ? null : String(f.target),
    String(f.traced),
    typeof f.p_clean === "number" ? f.p_clean : null,
    typeof f.p_corrupt === "number" ? f.p_corrupt : null,
    typeof f.error === "string" ? f.error : (Array.isArray(f.cases) ? f.cases.join(" ") : null),
  ]);
  return htmlPage("engram causal trace: averages over facts", [
    `${out.traced} of ${out.records} facts traced; ${out.layers} layers`,
  ], [
    { heading: "Summary", parts: [summary] },
    { heading: "Average indirect effect by token class", parts: classTables },
    { heading: "Figures", parts: figures.map((f) => htmlFigure(f.svg, f.caption, f.file)) },
    {
      heading: "Facts",
      parts: [
        htmlTable(
          ["id", "prompt", "subject", "target", "traced", "p_clean", "p_corrupt", "files / error"],
          factRows,
        ),
      ],
    },
  ]);
}

/** The fraction metrics drawn in the eval page's bar chart (fluency, in bits, is in the table only). */
const BAR_KEYS: Array<keyof Metrics> = [
  "reliability",
  "generalization",
  "locality",
  "portability",
  "efficacy_score",
  "paraphrase_score",
  "neighborhood_score",
  "score",
];

/** The page of `eval`: post- and pre-edit metrics per method (table and bar chart), timing, warnings. */
export function evalReportHtml(results: MethodEvalResult[], title = "engram edit evaluation"): string {
  const cols = DEFAULT_COLUMNS.filter((c) =>
    results.some((r) => r.metrics[c.key] !== null && r.metrics[c.key] !== undefined)
  );
  const rows: Cell[][] = [];
  for (const r of results) {
    const row = (m: Metrics & Partial<WildScores>) =>
      cols.map((c) => (m[c.key] == null ? null : (c.scale ?? 100) * m[c.key]!));
    rows.push([r.method, r.mode, r.n, ...row(r.metrics)]);
    rows.push([`${r.method} (pre-edit)`, r.mode, r.n, ...row(r.pre_metrics)]);
  }
  const table = htmlTable(["method", "mode", "n", ...cols.map((c) => c.header)], rows, 2);
  const keys = BAR_KEYS.filter((k) =>
    results.some((r) => r.metrics[k] !== null && r.metrics[k] !== undefined)
  );
  const chart = barChartSvg(
    keys.map(String),
    results.map((r) => ({
      name: `${r.method} (${r.mode})`,
      values: keys.map((k) => r.metrics[k] ?? null),
      reference: keys.map((k) => r.pre_metrics[k] ?? null),
    })),
    { title: "Post-edit metrics (fractions)", referenceLabel: "pre-edit" },
  );
  const timing = htmlTable(
    ["method", "edit s", "edit s / request", "measuring s", "warnings"],
    results.map((r) => [
      r.method,
      r.timing.edit_s,
      r.timing.edit_s_per_request,
      r.timing.eval_s,
      r.warnings.join("; ") || null,
    ]),
    2,
  );
  const sections: Section[] = [
    { heading: "Metrics (×100; fluency in bits)", parts: [table] },
    { heading: "Figure", parts: [htmlFigure(chart, "bars: post-edit; black ticks: pre-edit")] },
    { heading: "Timing", parts: [timing] },
  ];
  const perCase = results.filter((r) => r.per_case?.length);
  if (perCase.length) {
    sections.push({
      heading: "Per request",
      parts: perCase.map((r) =>
        `<h3>${r.method}</h3>` +
        htmlTable(
          ["case", "subject", "target_new", "reliability", "generalization", "locality", "portability"],
          r.per_case!.map((c) => [
            String(c.case_id ?? ""),
            c.subject,
            c.target_new,
            c.reliability,
            c.generalization,
            c.locality,
            c.portability,
          ]),
        )
      ),
    });
  }
  return htmlPage(title, [`${results.length} method(s)`], sections);
}

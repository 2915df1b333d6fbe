/**
 * Hand-written SVG heatmaps in the style of ROME's causal-tracing figures: tokens down, layers across,
 * subject tokens marked with "*", ColorBrewer Purples / Greens / Reds for hidden / MLP / attention,
 * a colour bar, and a tooltip (<title>) with the value of every cell. No dependencies.
 */
import type { Tokenizer } from "../io/tokenizer.ts";
import type { ClassAverage } from "../locate/average.ts";
import type { TraceKind, TraceResult } from "../locate/trace.ts";
import type { RomeCase } from "./rome_case.ts";

/** Sequential colour maps (ColorBrewer 9-class, as matplotlib's Purples / Greens / Reds). */
export const COLORMAPS: Record<string, string[]> = {
  Purples: [
    "#fcfbfd",
    "#efedf5",
    "#dadaeb",
    "#bcbddc",
    "#9e9ac8",
    "#807dba",
    "#6a51a3",
    "#54278f",
    "#3f007d",
  ],
  Greens: ["#f7fcf5", "#e5f5e0", "#c7e9c0", "#a1d99b", "#74c476", "#41ab5d", "#238b45", "#006d2c", "#00441b"],
  Reds: ["#fff5f0", "#fee0d2", "#fcbba1", "#fc9272", "#fb6a4a", "#ef3b2c", "#cb181d", "#a50f15", "#67000d"],
};

/** Colour map of a trace kind: Purples (hidden), Greens (mlp), Reds (attn). */
export function kindColormap(kind: string): string {
  return kind === "mlp" ? "Greens" : kind === "attn" ? "Reds" : "Purples";
}

/** Colour of `x` in [0, 1] on colour map `name` (linear interpolation between the map's stops). */
export function colorAt(name: string, x: number): string {
  const stops = COLORMAPS[name] ?? COLORMAPS.Purples;
  const f = Math.min(1, Math.max(0, Number.isFinite(x) ? x : 0)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(f));
  const u = f - i;
  const p = (s: string) => [1, 3, 5].map((k) => parseInt(s.slice(k, k + 2), 16));
  const [a, b] = [p(stops[i]), p(stops[i + 1])];
  return "#" + a.map((v, k) => Math.round(v + (b[k] - v) * u).toString(16).padStart(2, "0")).join("");
}

/** Escapes text for SVG/XML and makes control characters visible. */
export function escapeXml(s: string): string {
  return s
    .replace(/\n/g, "\\n").replace(/\t/g, "\\t").replace(/\r/g, "\\r")
    // deno-lint-ignore no-control-regex
    .replace(/[\u0000-\u001f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`)
    .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** Input of {@link heatmapSvg}. */
export interface HeatmapSpec {
  /** Values [row][column]. */
  values: number[][];
  /** Row labels (tokens or token classes). */
  rowLabels: string[];
  /** Rows to mark (subject tokens): their label gets a "*" and bold type. */
  marked?: Set<number>;
  /** Colour map name (see {@link COLORMAPS}). */
  colormap: string;
  /** Value at the lowest colour; lower values clip to it (default: the minimum of the finite values). */
  vmin?: number;
  /** Value at the highest colour (default: the maximum of the finite values); at least vmin + 1e-9. */
  vmax?: number;
  /** Title above the grid. */
  title: string;
  /** Label of the x axis (the columns: layers in engram's figures). */
  xlabel: string;
  /** Label above the colour bar. */
  colorbarLabel: string;
  /** Optional per-cell extra tooltip text (e.g. a confidence interval). */
  cellNote?: (row: number, col: number) => string;
}

/**
 * Width in px of `text` at `size` px in DejaVu Sans, from its mean advance (about 0.6 em for mixed
 * text, rounded up so that the estimate errs wide).
 */
export function textWidth(text: string, size: number): number {
  return Array.from(text).length * size * 0.62;
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e4) ? v.toExponential(2) : v.toFixed(a < 0.1 ? 4 : 3);
}

/** Renders a heatmap as a standalone SVG document. */
export function heatmapSvg(spec: HeatmapSpec): string {
  const rows = spec.values.length, cols = rows ? spec.values[0].length : 0;
  const flat = spec.values.flat().filter(Number.isFinite);
  const vmin = spec.vmin ?? (flat.length ? Math.min(...flat) : 0);
  let vmax = spec.vmax ?? (flat.length ? Math.max(...flat) : 1);
  if (!(vmax > vmin)) vmax = vmin + 1e-9;
  const cell = Math.max(8, Math.min(22, Math.floor(640 / Math.max(1, cols))));
  const cellH = 18;
  const labels = spec.rowLabels.map((l, i) => (spec.marked?.has(i) ? `${l}*` : l));
  const labelW = Math.min(260, 12 + 7 * Math.max(4, ...labels.map((l) => l.length)));
  const top = 44, gridW = cols * cell, gridH = rows * cellH;
  // The canvas is sized from the text too: on a small model the grid is narrower than the title, which
  // is centred on the grid when it fits and otherwise starts at the left margin.
  const titleW = textWidth(spec.title, 13), xlabelW = textWidth(spec.xlabel, 11);
  const left = Math.max(labelW, xlabelW / 2 - gridW / 2 + 8);
  const cbX = left + gridW + 24, cbW = 14;
  const titleX = Math.max(left + gridW / 2, titleW / 2 + 8);
  const width = Math.ceil(Math.max(cbX + cbW + 70, titleX + titleW / 2 + 8)),
    height = top + gridH + 56;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      `font-family="DejaVu Sans, Arial, sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${titleX}" y="20" text-anchor="middle" font-size="13">${escapeXml(spec.title)}</text>`,
  );
  for (let r = 0; r < rows; r++) {
    const y = top + r * cellH;
    const bold = spec.marked?.has(r) ? ` font-weight="bold"` : "";
    out.push(
      `<text x="${left - 6}" y="${
        y + cellH / 2 + 4
      }" text-anchor="end" font-family="DejaVu Sans Mono, monospace"${bold}>` +
        `${escapeXml(labels[r])}</text>`,
    );
    for (let c = 0; c < cols; c++) {
      const v = spec.values[r][c];
      const note = spec.cellNote ? ` ${spec.cellNote(r, c)}` : "";
      out.push(
        `<rect x="${left + c * cell}" y="${y}" width="${cell}" height="${cellH}" fill="${
          colorAt(spec.colormap, (v - vmin) / (vmax - vmin))
        }">` +
          `<title>${escapeXml(`${spec.rowLabels[r]} / layer ${c}: ${fmt(v)}${note}`)}</title></rect>`,
      );
    }
  }
  out.push(
    `<rect x="${left}" y="${top}" width="${gridW}" height="${gridH}" fill="none" stroke="#444" stroke-width="0.6"/>`,
  );
  const step = cols <= 12 ? 1 : cols <= 30 ? 5 : 10;
  for (let c = 0; c < cols; c += step) {
    out.push(
      `<text x="${left + c * cell + cell / 2}" y="${top + gridH + 14}" text-anchor="middle">${c}</text>`,
    );
  }
  out.push(
    `<text x="${left + gridW / 2}" y="${top + gridH + 34}" text-anchor="middle">${
      escapeXml(spec.xlabel)
    }</text>`,
  );
  // Colour bar (top = vmax).
  const nStops = 24;
  const sh = gridH / nStops;
  for (let i = 0; i < nStops; i++) {
    const x = 1 - (i + 0.5) / nStops;
    out.push(
      `<rect x="${cbX}" y="${(top + i * sh).toFixed(2)}" width="${cbW}" height="${
        (sh + 0.5).toFixed(2)
      }" fill="${colorAt(spec.colormap, x)}"/>`,
    );
  }
  out.push(
    `<rect x="${cbX}" y="${top}" width="${cbW}" height="${gridH}" fill="none" stroke="#444" stroke-width="0.6"/>`,
  );
  for (const [f, v] of [[0, vmax], [0.5, (vmin + vmax) / 2], [1, vmin]] as const) {
    out.push(`<text x="${cbX + cbW + 4}" y="${top + f * gridH + 4}">${fmt(v)}</text>`);
  }
  out.push(
    `<text x="${cbX + cbW / 2}" y="${top - 8}" text-anchor="middle">${escapeXml(spec.colorbarLabel)}</text>`,
    `</svg>`,
  );
  return out.join("\n") + "\n";
}

const KIND_TITLE: Record<string, string> = { hidden: "state", mlp: "MLP", attn: "Attn" };

/** The older input of {@link traceHeatmapSvg}: the fields of one kind copied from a trace. */
export interface TraceHeatmapInput {
  /** Trace kind: "hidden", "mlp" or "attn" (picks the colour map and the titles). */
  kind: string;
  /** Token strings of the prompt, one per row. */
  tokens: string[];
  /** Subject tokens [start, end) (end exclusive), marked "*". */
  subjectRange: [number, number];
  /** Restored scores [token][layer]. */
  scores: number[][];
  /** Score of the corrupted run: the bottom of the colour scale (ROME's `low_score`). */
  pCorrupt: number;
  /** Restoration window (named in the x label of mlp / attn). */
  window: number;
  /** Answer text, named in the colour-bar label. */
  answer: string;
}

/** What a figure needs to name tokens and the answer (a {@link Tokenizer} has both). */
export type TokenNames = Pick<Tokenizer, "tokenString" | "decode">;

/**
 * ROME-style figure of one trace (`plot_trace_heatmap`): restored answer probability per (token,
 * layer), the colour scale from the corrupted probability (`vmin=low_score`; lower values take the
 * lowest colour, as pcolor clips) to the largest score; subject tokens marked "*".
 *
 * Called with a trace result, the kind to draw and the tokenizer; or with a ROME case record
 * ({@link RomeCase}, e.g. read back from its `.npz`); or with the older {@link TraceHeatmapInput}.
 */
export function traceHeatmapSvg(r: TraceResult, kind: TraceKind, tok: TokenNames): string;
/** The same figure from a ROME case record ({@link RomeCase}) or a {@link TraceHeatmapInput}. */
export function traceHeatmapSvg(c: RomeCase | TraceHeatmapInput): string;
export function traceHeatmapSvg(
  x: TraceResult | RomeCase | TraceHeatmapInput,
  kind?: TraceKind,
  tok?: TokenNames,
): string {
  let c: RomeCase;
  if ("traces" in x) {
    if (!kind || !tok) {
      throw new TypeError("traceHeatmapSvg(result, kind, tokenizer): kind and tokenizer needed");
    }
    c = romeCaseOf(x, kind, tok);
  } else if ("tokens" in x) {
    c = {
      scores: x.scores,
      low_score: x.pCorrupt,
      high_score: NaN,
      input_ids: [],
      input_tokens: x.tokens,
      subject_range: x.subjectRange,
      answer: x.answer,
      window: x.window,
      kind: x.kind === "hidden" ? "" : x.kind,
    };
  } else c = x;
  return caseSvg(c);
}

/** The ROME case record of kind `kind` of trace `r` (the fields `calculate_hidden_flow` returns). */
export function romeCaseOf(r: TraceResult, kind: TraceKind, tok: TokenNames): RomeCase {
  const t = r.traces.find((k) => k.kind === kind);
  if (!t) throw new RangeError(`the trace has no kind '${kind}' (has ${r.traces.map((k) => k.kind)})`);
  const ids = r.ids.slice(0, r.promptLength);
  return {
    scores: t.scores,
    // In the metric's units (the scores are): ROME's probabilities for the default "prob".
    low_score: r.metricCorrupt,
    high_score: r.metricClean,
    input_ids: ids,
    input_tokens: ids.map((id) => tok.tokenString(id)),
    subject_range: r.subjectRange,
    answer: tok.decode(r.answer),
    window: t.window,
    kind: kind === "hidden" ? "" : kind,
    ...(r.metric !== "prob" ? { metric: r.metric } : {}),
  };
}

function caseSvg(c: RomeCase): string {
  const kind = c.kind === "" ? "hidden" : c.kind;
  const marked = new Set<number>();
  for (let i = c.subject_range[0]; i < c.subject_range[1]; i++) marked.add(i);
  const finite = c.scores.flat().filter(Number.isFinite);
  return heatmapSvg({
    values: c.scores,
    rowLabels: c.input_tokens,
    marked,
    colormap: kindColormap(kind),
    vmin: c.low_score,
    vmax: Math.max(c.low_score, ...finite),
    title: `Impact of restoring ${KIND_TITLE[kind] ?? kind} after corrupted input`,
    xlabel: kind === "hidden"
      ? "single restored layer"
      : `center of interval of ${c.window} restored ${KIND_TITLE[kind] ?? kind} layers`,
    colorbarLabel: c.metric === "logprob"
      ? `log p(${c.answer.trim()})`
      : c.metric === "logit-diff"
      ? `logit diff (${c.answer.trim()})`
      : `p(${c.answer.trim()})`,
  });
}

/**
 * Heatmap of the token-class averages of one kind (ROME notebook's `plot_array`): AIE per class and
 * layer, the 95% CI in each cell's tooltip. Classes without samples (e.g. middle subject tokens when
 * every subject is one or two tokens) are left out rather than drawn as a row of zeros.
 */
export function averageHeatmapSvg(
  kind: TraceKind,
  a: ClassAverage,
  opts: { window: number; traced: number },
): string {
  const keep = a.classes.map((_, j) => j).filter((j) => a.count[j] > 0);
  const win = kind === "hidden" ? 1 : opts.window;
  const mean = keep.map((j) => a.mean[j]);
  return heatmapSvg({
    values: mean,
    rowLabels: keep.map((j) => `${a.classes[j]} (n=${a.count[j]})`),
    colormap: kindColormap(kind),
    vmin: Math.min(0, ...mean.flat().filter(Number.isFinite)),
    title: `Average indirect effect of ${
      kind === "hidden" ? "a single restored state" : `${win} restored ${KIND_TITLE[kind]} layers`
    } (${opts.traced} facts)`,
    xlabel: kind === "hidden" ? "single restored layer" : `center of interval of ${win} restored layers`,
    colorbarLabel: "AIE",
    cellNote: (r, c) => `± ${a.ci95[keep[r]][c].toFixed(4)} (95% CI)`,
  });
}

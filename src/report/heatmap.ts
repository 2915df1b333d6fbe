/**
 * Hand-written SVG heatmaps in the style of ROME's causal-tracing figures: tokens down, layers across,
 * subject tokens marked with "*", ColorBrewer Purples / Greens / Reds for hidden / MLP / attention,
 * a colour bar, and a tooltip (<title>) with the value of every cell. No dependencies.
 */

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
  /** Colour scale (default: min and max of the values). */
  vmin?: number;
  vmax?: number;
  title: string;
  xlabel: string;
  colorbarLabel: string;
  /** Optional per-cell extra tooltip text (e.g. a confidence interval). */
  cellNote?: (row: number, col: number) => string;
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
  const top = 44, left = labelW, gridW = cols * cell, gridH = rows * cellH;
  const cbX = left + gridW + 24, cbW = 14;
  const width = cbX + cbW + 70, height = top + gridH + 56;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      `font-family="DejaVu Sans, Arial, sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left + gridW / 2}" y="20" text-anchor="middle" font-size="13">${
      escapeXml(spec.title)
    }</text>`,
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

/**
 * ROME-style figure of one trace: restored answer probability per (token, layer), scaled from the
 * corrupted probability (lowest colour) up; subject tokens marked.
 */
export function traceHeatmapSvg(t: {
  kind: string;
  tokens: string[];
  subjectRange: [number, number];
  scores: number[][];
  pCorrupt: number;
  window: number;
  answer: string;
}): string {
  const marked = new Set<number>();
  for (let i = t.subjectRange[0]; i < t.subjectRange[1]; i++) marked.add(i);
  const flat = t.scores.flat();
  return heatmapSvg({
    values: t.scores,
    rowLabels: t.tokens,
    marked,
    colormap: kindColormap(t.kind),
    vmin: Math.min(t.pCorrupt, ...flat),
    vmax: Math.max(...flat),
    title: `Impact of restoring ${KIND_TITLE[t.kind] ?? t.kind} after corrupted input`,
    xlabel: t.kind === "hidden"
      ? "single restored layer"
      : `center of interval of ${t.window} restored ${KIND_TITLE[t.kind]} layers`,
    colorbarLabel: `p(${t.answer.trim()})`,
  });
}

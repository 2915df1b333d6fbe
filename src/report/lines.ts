/**
 * The line figure of ROME's `notebooks/average_causal_effects.ipynb`: one panel per kind (single hidden
 * vector, run of MLP lookups, run of Attn modules), a line per token class with the average indirect
 * effect by layer and a band of its 95% confidence interval (alpha 0.3), tab10 colours in the
 * notebook's order, a shared y axis, the legend in the middle panel. Hand-written SVG.
 */
import type { ClassAverage } from "../locate/average.ts";
import type { TraceKind } from "../locate/trace.ts";
import { escapeXml, textWidth } from "./heatmap.ts";

/** matplotlib's tab10 colours. */
export const TAB10 = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
];

/** The notebook's colour of each token class (its `color_order`). */
const COLOR_ORDER = [0, 1, 2, 4, 5, 3];

function panelTitle(kind: TraceKind, window: number): string {
  if (kind === "hidden") return "Average indirect effect of a single hidden vector";
  return `Average indirect effect of a run of ${window} ${kind === "mlp" ? "MLP lookups" : "Attn modules"}`;
}

/** "Nice" tick values covering [lo, hi]. */
function ticks(lo: number, hi: number, n = 5): number[] {
  const span = hi - lo || 1;
  const raw = span / n, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

/**
 * The AIE line figure of `averages` (kind -> token-class averages, e.g. `trace --facts`' "kinds"). Token
 * classes without samples are left out. `window` is the MLP/attn window, `model` names the x axis.
 */
export function aieLinesSvg(
  averages: Partial<Record<TraceKind, ClassAverage>>,
  opts: { window: number; model?: string },
): string {
  const kinds = (["hidden", "mlp", "attn"] as const).filter((k) => averages[k]);
  if (kinds.length === 0) throw new RangeError("aieLinesSvg: no kind to plot");
  const pw = 300, ph = 190, left = 64, top = 34, gap = 36, bottom = 46;
  let lo = Infinity, hi = -Infinity;
  for (const k of kinds) {
    const a = averages[k]!;
    a.mean.forEach((row, j) => {
      if (a.count[j] === 0) return;
      row.forEach((m, l) => {
        const e = a.ci95[j][l];
        if (Number.isFinite(m - e)) lo = Math.min(lo, m - e);
        if (Number.isFinite(m + e)) hi = Math.max(hi, m + e);
      });
    });
  }
  if (!(hi > lo)) [lo, hi] = [Math.min(lo, 0) || 0, (Number.isFinite(hi) ? hi : 0) + 1e-3];
  const pad = (hi - lo) * 0.05;
  lo -= pad, hi += pad;
  const yt = ticks(lo, hi);
  const titleW = Math.max(...kinds.map((k) => textWidth(panelTitle(k, opts.window), 11)));
  const pwEff = Math.max(pw, Math.ceil(titleW) + 4);
  const width = left + kinds.length * pwEff + (kinds.length - 1) * gap + 16;
  const height = top + ph + bottom;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
    `font-family="DejaVu Sans, Arial, sans-serif" font-size="10">`,
    `<rect width="100%" height="100%" fill="white"/>`,
  ];
  const Y = (v: number) => top + ph - ((v - lo) / (hi - lo)) * ph;
  kinds.forEach((k, p) => {
    const a = averages[k]!;
    const x0 = left + p * (pwEff + gap);
    const L = a.mean[0]?.length ?? 0;
    const X = (l: number) => x0 + (L <= 1 ? pwEff / 2 : (l / (L - 1)) * pwEff);
    out.push(
      `<g class="panel" data-kind="${k}">`,
      `<text x="${x0 + pwEff / 2}" y="${top - 12}" text-anchor="middle" font-size="11">${
        escapeXml(panelTitle(k, opts.window))
      }</text>`,
      `<rect x="${x0}" y="${top}" width="${pwEff}" height="${ph}" fill="none" stroke="#333" stroke-width="0.8"/>`,
    );
    for (const v of yt) {
      out.push(`<line x1="${x0 - 3}" x2="${x0}" y1="${Y(v)}" y2="${Y(v)}" stroke="#333"/>`);
      if (p === 0) {
        out.push(`<text x="${x0 - 5}" y="${Y(v) + 3}" text-anchor="end">${v}</text>`);
      }
    }
    const step = Math.max(1, Math.ceil(L / 8));
    for (let l = 0; l < L; l += step) {
      out.push(
        `<line x1="${X(l)}" x2="${X(l)}" y1="${top + ph}" y2="${top + ph + 3}" stroke="#333"/>`,
        `<text x="${X(l)}" y="${top + ph + 14}" text-anchor="middle">${l}</text>`,
      );
    }
    out.push(
      `<text x="${x0 + pwEff / 2}" y="${top + ph + 32}" text-anchor="middle">${
        escapeXml(`Layer number${opts.model ? ` in ${opts.model}` : ""}`)
      }</text>`,
    );
    a.classes.forEach((c, j) => {
      if (a.count[j] === 0) return;
      const color = TAB10[COLOR_ORDER[j] ?? j % TAB10.length];
      const m = a.mean[j], e = a.ci95[j];
      const upper = m.map((v, l) => `${X(l).toFixed(2)},${Y(v + e[l]).toFixed(2)}`);
      const lower = m.map((v, l) => `${X(l).toFixed(2)},${Y(v - e[l]).toFixed(2)}`).reverse();
      out.push(
        `<polygon points="${
          [...upper, ...lower].join(" ")
        }" fill="${color}" fill-opacity="0.3" stroke="none"/>`,
        `<polyline points="${m.map((v, l) => `${X(l).toFixed(2)},${Y(v).toFixed(2)}`).join(" ")}" ` +
          `fill="none" stroke="${color}" stroke-width="1.5"><title>${
            escapeXml(`${c} (n=${a.count[j]})`)
          }</title></polyline>`,
      );
    });
    // The notebook puts the legend in the middle panel (the only one when a single kind is traced).
    if (p === Math.floor((kinds.length - 1) / 2)) {
      let ly = top + 12;
      a.classes.forEach((c, j) => {
        if (a.count[j] === 0) return;
        const color = TAB10[COLOR_ORDER[j] ?? j % TAB10.length];
        out.push(
          `<line x1="${x0 + 8}" x2="${x0 + 26}" y1="${ly - 3}" y2="${
            ly - 3
          }" stroke="${color}" stroke-width="2"/>`,
          `<text x="${x0 + 30}" y="${ly}">${escapeXml(c[0].toUpperCase() + c.slice(1))}</text>`,
        );
        ly += 13;
      });
    }
    out.push(`</g>`);
  });
  out.push(
    `<text transform="translate(14 ${
      top + ph / 2
    }) rotate(-90)" text-anchor="middle">Average indirect effect on p(o)</text>`,
    `</svg>`,
  );
  return out.join("\n") + "\n";
}

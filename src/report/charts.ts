/**
 * Small self-contained SVG charts (no scripts, no external fonts): a line chart of series over integer
 * x values and a grouped bar chart (also a histogram when there is one group). Values that are null
 * are left out (a gap in a line, no bar).
 */
import { escapeXml } from "./heatmap.ts";

/** Colours of successive series (Tableau 10). */
export const PALETTE = [
  "#4e79a7",
  "#f28e2b",
  "#e15759",
  "#76b7b2",
  "#59a14f",
  "#edc948",
  "#b07aa1",
  "#ff9da7",
];

/** A named series of values, one per x (or per category). */
export interface Series {
  name: string;
  values: Array<number | null>;
}

/** What both charts draw around the plot. */
export interface ChartFrame {
  title: string;
  xLabel: string;
  yLabel: string;
  /** y range; default [min(0, data), max(data)] padded to a round top. */
  yMin?: number;
  yMax?: number;
  width?: number;
  height?: number;
}

const fmt = (
  v: number,
) => (Math.abs(v) >= 100 || v === 0 ? v.toFixed(0) : Number(v.toPrecision(3)).toString());

function yRange(values: Array<number | null>, f: ChartFrame): [number, number] {
  const v = values.filter((x): x is number => x !== null && Number.isFinite(x));
  const lo = f.yMin ?? Math.min(0, ...v);
  let hi = f.yMax ?? Math.max(0, ...v);
  if (!(hi > lo)) hi = lo + 1;
  return [lo, hi];
}

function frame(
  f: ChartFrame,
  W: number,
  H: number,
  m: { l: number; r: number; t: number; b: number },
  y0: number,
  y1: number,
) {
  const ph = H - m.t - m.b;
  const y = (v: number) => m.t + ph * (1 - (v - y0) / (y1 - y0));
  const parts: string[] = [];
  parts.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="white"/>`);
  parts.push(
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="14" font-family="sans-serif">${
      escapeXml(f.title)
    }</text>`,
  );
  for (let i = 0; i <= 4; i++) {
    const v = y0 + ((y1 - y0) * i) / 4;
    parts.push(
      `<line x1="${m.l}" x2="${W - m.r}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#ddd"/>`,
      `<text x="${m.l - 4}" y="${
        (y(v) + 4).toFixed(1)
      }" text-anchor="end" font-size="10" font-family="sans-serif">${fmt(v)}</text>`,
    );
  }
  parts.push(
    `<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${H - m.b}" stroke="black"/>`,
    `<line x1="${m.l}" x2="${W - m.r}" y1="${y(Math.max(y0, Math.min(0, y1)))}" y2="${
      y(Math.max(y0, Math.min(0, y1)))
    }" stroke="black"/>`,
    `<text x="${(m.l + W - m.r) / 2}" y="${
      H - 6
    }" text-anchor="middle" font-size="11" font-family="sans-serif">${escapeXml(f.xLabel)}</text>`,
    `<text transform="translate(12 ${
      m.t + ph / 2
    }) rotate(-90)" text-anchor="middle" font-size="11" font-family="sans-serif">${
      escapeXml(f.yLabel)
    }</text>`,
  );
  return { parts, y };
}

function legend(series: Series[], x: number, y: number): string[] {
  return series.flatMap((s, i) => [
    `<rect x="${x}" y="${y + i * 14 - 8}" width="10" height="10" fill="${PALETTE[i % PALETTE.length]}"/>`,
    `<text x="${x + 14}" y="${y + i * 14 + 1}" font-size="10" font-family="sans-serif">${
      escapeXml(s.name)
    }</text>`,
  ]);
}

/** A line chart of `series` over the x values `x` (points marked; nulls break the line). */
export function lineChartSvg(f: ChartFrame & { x: number[]; series: Series[] }): string {
  const W = f.width ?? 520, H = f.height ?? 300;
  const m = { l: 52, r: 150, t: 28, b: 40 };
  const [y0, y1] = yRange(f.series.flatMap((s) => s.values), f);
  const { parts, y } = frame(f, W, H, m, y0, y1);
  const pw = W - m.l - m.r;
  const n = f.x.length;
  const xp = (i: number) => m.l + (n > 1 ? (pw * i) / (n - 1) : pw / 2);
  f.x.forEach((v, i) =>
    parts.push(
      `<text x="${xp(i).toFixed(1)}" y="${
        H - m.b + 14
      }" text-anchor="middle" font-size="10" font-family="sans-serif">${v}</text>`,
    )
  );
  f.series.forEach((s, k) => {
    const c = PALETTE[k % PALETTE.length];
    let d = "";
    s.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) {
        d += " ";
        return;
      }
      d += `${d === "" || d.endsWith(" ") ? "M" : "L"}${xp(i).toFixed(1)},${y(v).toFixed(1)}`;
      parts.push(`<circle cx="${xp(i).toFixed(1)}" cy="${y(v).toFixed(1)}" r="2.5" fill="${c}"/>`);
    });
    if (d.trim()) parts.push(`<path d="${d.trim()}" fill="none" stroke="${c}" stroke-width="1.5"/>`);
  });
  parts.push(...legend(f.series, W - m.r + 10, m.t + 10));
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">${
    parts.join("")
  }</svg>`;
}

/** A grouped bar chart: one group of bars per category, one bar per series (one series: a histogram). */
export function barChartSvg(f: ChartFrame & { categories: string[]; series: Series[] }): string {
  const W = f.width ?? Math.max(420, 60 + f.categories.length * (14 * f.series.length + 16) + 150);
  const H = f.height ?? 300;
  const m = { l: 52, r: f.series.length > 1 ? 150 : 16, t: 28, b: 56 };
  const [y0, y1] = yRange(f.series.flatMap((s) => s.values), f);
  const { parts, y } = frame(f, W, H, m, y0, y1);
  const pw = W - m.l - m.r;
  const gw = pw / Math.max(1, f.categories.length);
  const bw = Math.max(2, (gw - 8) / Math.max(1, f.series.length));
  const base = y(Math.max(y0, Math.min(0, y1)));
  f.categories.forEach((cat, i) => {
    const gx = m.l + i * gw + 4;
    parts.push(
      `<text x="${(gx + (gw - 8) / 2).toFixed(1)}" y="${
        H - m.b + 14
      }" text-anchor="middle" font-size="10" font-family="sans-serif">${escapeXml(cat)}</text>`,
    );
    f.series.forEach((s, k) => {
      const v = s.values[i];
      if (v === null || v === undefined || !Number.isFinite(v)) return;
      const top = y(v);
      parts.push(
        `<rect x="${(gx + k * bw).toFixed(1)}" y="${Math.min(top, base).toFixed(1)}" width="${
          (bw - 1).toFixed(1)
        }" height="${Math.abs(base - top).toFixed(1)}" fill="${PALETTE[k % PALETTE.length]}"><title>${
          escapeXml(`${s.name} ${cat}: ${fmt(v)}`)
        }</title></rect>`,
      );
    });
  });
  if (f.series.length > 1) parts.push(...legend(f.series, W - m.r + 10, m.t + 10));
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">${
    parts.join("")
  }</svg>`;
}

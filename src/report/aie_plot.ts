/**
 * A hand-written SVG line plot of an average-indirect-effect curve per layer with its 95% CI band, in the
 * style of ROME's `average_causal_effects.ipynb` line plots, with chosen layers shaded. No dependencies.
 */
import { escapeXml } from "./heatmap.ts";

/** What {@link aieLineSvg} draws. */
export interface AieLineSpec {
  /** AIE per layer. */
  mean: number[];
  /** 95% CI half-width per layer. */
  ci95: number[];
  /** Title above the plot. */
  title: string;
  /** Line colour (default ROME's MLP green). */
  color?: string;
  /** Layers to shade (e.g. MEMIT's window). */
  shade?: number[];
  /** Layer to mark with a dot and label (e.g. ROME's). */
  mark?: number;
  /** X-axis label (default "layer"). */
  xlabel?: string;
  /** Y-axis label (default "average indirect effect"). */
  ylabel?: string;
}

const f = (x: number) => (Math.round(x * 100) / 100).toString();

/** Ticks for [lo, hi]: about five round values. */
function ticks(lo: number, hi: number): number[] {
  const span = hi - lo || 1;
  const raw = span / 5, p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((k) => k * p).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

/** The SVG text of the plot (see {@link AieLineSpec}); non-finite values are drawn as 0. */
export function aieLineSvg(spec: AieLineSpec): string {
  const n = spec.mean.length;
  const mean = spec.mean.map((v) => (Number.isFinite(v) ? v : 0));
  const ci = spec.ci95.map((v) => (Number.isFinite(v) ? Math.abs(v) : 0));
  const color = spec.color ?? "#238b45";
  const W = 560, H = 340, ml = 70, mr = 20, mt = 40, mb = 56;
  const pw = W - ml - mr, ph = H - mt - mb;
  let lo = Math.min(0, ...mean.map((v, i) => v - (ci[i] ?? 0)));
  let hi = Math.max(0, ...mean.map((v, i) => v + (ci[i] ?? 0)));
  if (hi - lo < 1e-12) [lo, hi] = [lo - 0.5, hi + 0.5];
  const pad = (hi - lo) * 0.05;
  lo -= pad;
  hi += pad;
  const x = (l: number) => ml + (n === 1 ? pw / 2 : (l / (n - 1)) * pw);
  const y = (v: number) => mt + ((hi - v) / (hi - lo)) * ph;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${escapeXml(spec.title)}</text>`,
  );
  const halfStep = n > 1 ? pw / (n - 1) / 2 : pw / 2;
  for (const l of spec.shade ?? []) {
    if (l < 0 || l >= n) continue;
    const x0 = Math.max(ml, x(l) - halfStep), x1 = Math.min(ml + pw, x(l) + halfStep);
    parts.push(
      `<rect x="${f(x0)}" y="${mt}" width="${f(x1 - x0)}" height="${ph}" fill="#fdd0a2" opacity="0.5"/>`,
    );
  }
  for (const t of ticks(lo, hi)) {
    parts.push(
      `<line x1="${ml}" x2="${ml + pw}" y1="${f(y(t))}" y2="${f(y(t))}" stroke="#ddd"/>`,
      `<text x="${ml - 6}" y="${f(y(t) + 4)}" text-anchor="end">${t}</text>`,
    );
  }
  const step = Math.max(1, Math.ceil(n / 12));
  for (let l = 0; l < n; l += step) {
    parts.push(`<text x="${f(x(l))}" y="${mt + ph + 18}" text-anchor="middle">${l}</text>`);
  }
  parts.push(`<line x1="${ml}" x2="${ml + pw}" y1="${f(y(0))}" y2="${f(y(0))}" stroke="#888"/>`);
  // CI band: upper edge left to right, lower edge back.
  const band = [
    ...mean.map((v, l) => `${f(x(l))},${f(y(v + ci[l]))}`),
    ...mean.map((v, l) => `${f(x(l))},${f(y(v - ci[l]))}`).reverse(),
  ];
  parts.push(`<polygon points="${band.join(" ")}" fill="${color}" opacity="0.2"/>`);
  parts.push(
    `<polyline points="${
      mean.map((v, l) => `${f(x(l))},${f(y(v))}`).join(" ")
    }" fill="none" stroke="${color}" stroke-width="2"/>`,
  );
  mean.forEach((v, l) =>
    parts.push(
      `<circle cx="${f(x(l))}" cy="${f(y(v))}" r="2.5" fill="${color}"><title>layer ${l}: ${
        v.toPrecision(4)
      } ± ${ci[l].toPrecision(3)} (95% CI)</title></circle>`,
    )
  );
  if (spec.mark !== undefined && spec.mark >= 0 && spec.mark < n) {
    const m = spec.mark;
    parts.push(
      `<circle cx="${f(x(m))}" cy="${f(y(mean[m]))}" r="5" fill="none" stroke="black" stroke-width="1.5"/>`,
      `<text x="${f(x(m))}" y="${f(y(mean[m]) - 9)}" text-anchor="middle">peak ${m}</text>`,
    );
  }
  parts.push(
    `<rect x="${ml}" y="${mt}" width="${pw}" height="${ph}" fill="none" stroke="black"/>`,
    `<text x="${ml + pw / 2}" y="${H - 14}" text-anchor="middle">${escapeXml(spec.xlabel ?? "layer")}</text>`,
    `<text transform="translate(16 ${mt + ph / 2}) rotate(-90)" text-anchor="middle">${
      escapeXml(spec.ylabel ?? "average indirect effect")
    }</text>`,
    `</svg>`,
  );
  return parts.join("\n") + "\n";
}

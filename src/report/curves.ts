/**
 * Line plots of sequential-editing curves as self-contained SVG: one plot per metric, one line (and
 * point markers) per method, edits on the x axis, a legend. No external fonts, scripts or styles.
 */
import type { SequentialCurve } from "../evaluate/sequential.ts";

/** One line of a plot. */
export interface Series {
  /** Legend text of the line. */
  label: string;
  /** Points [x, y] in drawing order (edits and value for the curves); non-finite ones are left out. */
  points: [number, number][];
}

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** A readable tick value. */
function fmt(v: number): string {
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e4 || a < 1e-2)) return v.toExponential(1);
  return Number(v.toFixed(a >= 100 ? 0 : a >= 10 ? 1 : 2)).toString();
}

/** The SVG of `series` (points with non-finite values are left out). */
export function linePlotSvg(
  series: Series[],
  opts: { title: string; xLabel?: string; yLabel?: string; yMin?: number; yMax?: number } = { title: "" },
): string {
  const W = 760, H = 400, L = 70, R = 240, T = 40, B = 50;
  const pts = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const x0 = Math.min(0, ...pts.map((p) => p[0]));
  let x1 = Math.max(1, ...pts.map((p) => p[0]));
  let y0 = opts.yMin ?? Math.min(...pts.map((p) => p[1]));
  let y1 = opts.yMax ?? Math.max(...pts.map((p) => p[1]));
  if (!Number.isFinite(y0) || !Number.isFinite(y1)) [y0, y1] = [0, 1];
  if (y1 - y0 < 1e-12) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  if (x1 - x0 < 1e-12) x1 = x0 + 1;
  const pad = (y1 - y0) * 0.05;
  if (opts.yMin === undefined) y0 -= pad;
  if (opts.yMax === undefined) y1 += pad;
  const X = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const Y = (y: number) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(
    `<text x="${(L + W - R) / 2}" y="22" text-anchor="middle" font-size="15">${esc(opts.title)}</text>`,
  );
  // Axes and ticks.
  out.push(
    `<path d="M${L},${T} V${H - B} H${W - R}" fill="none" stroke="#333"/>`,
  );
  for (let i = 0; i <= 5; i++) {
    const yv = y0 + ((y1 - y0) * i) / 5, xv = x0 + ((x1 - x0) * i) / 5;
    out.push(
      `<line x1="${L}" x2="${W - R}" y1="${Y(yv).toFixed(1)}" y2="${Y(yv).toFixed(1)}" stroke="#eee"/>`,
    );
    out.push(`<text x="${L - 6}" y="${(Y(yv) + 4).toFixed(1)}" text-anchor="end">${fmt(yv)}</text>`);
    out.push(`<text x="${X(xv).toFixed(1)}" y="${H - B + 16}" text-anchor="middle">${fmt(xv)}</text>`);
  }
  out.push(
    `<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">${esc(opts.xLabel ?? "edits")}</text>`,
  );
  out.push(
    `<text transform="translate(18,${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">${
      esc(opts.yLabel ?? "")
    }</text>`,
  );
  series.forEach((s, k) => {
    const c = COLORS[k % COLORS.length];
    const p = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (p.length) {
      out.push(
        `<polyline fill="none" stroke="${c}" stroke-width="2" points="${
          p.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(" ")
        }"/>`,
      );
      for (const [x, y] of p) {
        out.push(`<circle cx="${X(x).toFixed(1)}" cy="${Y(y).toFixed(1)}" r="3" fill="${c}"/>`);
      }
    }
    const ly = T + 10 + 18 * k;
    out.push(
      `<line x1="${W - R + 12}" x2="${W - R + 32}" y1="${ly}" y2="${ly}" stroke="${c}" stroke-width="2"/>`,
    );
    out.push(`<text x="${W - R + 38}" y="${ly + 4}">${esc(s.label)}</text>`);
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}

/** The plotted metrics of sequential curves: name, axis label, value of a record, fixed y range. */
export const CURVE_METRICS: {
  name: string;
  label: string;
  value: (r: SequentialCurve["records"][number]) => number | null | undefined;
  range?: [number, number];
}[] = [
  { name: "reliability", label: "reliability", value: (r) => r.metrics.reliability, range: [0, 1] },
  { name: "generalization", label: "generalization", value: (r) => r.metrics.generalization, range: [0, 1] },
  { name: "locality", label: "locality", value: (r) => r.metrics.locality, range: [0, 1] },
  { name: "wild_exact", label: "wild exact match", value: (r) => r.metrics.wild_exact, range: [0, 1] },
  {
    name: "wild_contains",
    label: "wild answer contains target",
    value: (r) => r.metrics.wild_contains,
    range: [0, 1],
  },
  { name: "perplexity", label: "held-out perplexity", value: (r) => r.perplexity },
  {
    name: "delta_norm",
    label: "‖W − W₀‖_F (edited weights, summed)",
    value: (r) => (r.weights.length ? r.weights.reduce((a, w) => a + w.delta_norm, 0) : null),
  },
  {
    name: "weight_norm",
    label: "‖W‖_F (edited weights, summed)",
    value: (r) => (r.weights.length ? r.weights.reduce((a, w) => a + w.norm, 0) : null),
  },
];

/**
 * One SVG per metric that at least one curve has, each curve a line (perplexity starts at the baseline,
 * at 0 edits). Returns file name → SVG text.
 */
export function curveSvgs(curves: SequentialCurve[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of CURVE_METRICS) {
    const series: Series[] = curves.map((c) => {
      const points = c.records.flatMap((r) => {
        const v = m.value(r);
        return typeof v === "number" ? [[r.edits, v] as [number, number]] : [];
      });
      if (m.name === "perplexity" && typeof c.baseline.perplexity === "number") {
        points.unshift([0, c.baseline.perplexity]);
      }
      return { label: c.label, points };
    });
    if (!series.some((s) => s.points.length)) continue;
    out.set(
      `${m.name}.svg`,
      linePlotSvg(series, {
        title: `${m.label} during sequential editing`,
        xLabel: "edits",
        yLabel: m.label,
        yMin: m.range?.[0],
        yMax: m.range?.[1],
      }),
    );
  }
  return out;
}

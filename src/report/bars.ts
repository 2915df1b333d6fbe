/**
 * A grouped bar chart in SVG: groups (metrics) across, one bar per series (method) in each group, an
 * optional tick per bar for a reference value (the pre-edit score). Values in [0, 1] (fractions).
 */
import { escapeXml } from "./heatmap.ts";
import { TAB10 } from "./lines.ts";

/** One series: its name, a value per group (null: absent) and optional reference values. */
export interface BarSeries {
  name: string;
  values: (number | null)[];
  reference?: (number | null)[];
}

/** Renders the chart; `title` on top, `referenceLabel` names the black ticks in the legend. */
export function barChartSvg(
  groups: string[],
  series: BarSeries[],
  opts: { title: string; referenceLabel?: string },
): string {
  const bw = 14, inner = 6, ph = 180, left = 44, top = 34;
  const gw = series.length * bw + inner * 2;
  const pw = Math.max(groups.length * gw, 200);
  const legendH = 14 * (series.length + (opts.referenceLabel ? 1 : 0));
  // Room on the right for the last rotated group label.
  const width = left + pw + 100, height = top + ph + 64 + legendH;
  const Y = (v: number) => top + ph - Math.min(1, Math.max(0, v)) * ph;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
    `font-family="DejaVu Sans, Arial, sans-serif" font-size="10">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left + pw / 2}" y="18" text-anchor="middle" font-size="12">${escapeXml(opts.title)}</text>`,
  ];
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    out.push(
      `<line x1="${left}" x2="${left + pw}" y1="${Y(v)}" y2="${Y(v)}" stroke="#ddd"/>`,
      `<text x="${left - 4}" y="${Y(v) + 3}" text-anchor="end">${v}</text>`,
    );
  }
  groups.forEach((g, gi) => {
    const gx = left + gi * gw + inner;
    series.forEach((s, si) => {
      const v = s.values[gi];
      const x = gx + si * bw;
      if (v !== null && Number.isFinite(v)) {
        out.push(
          `<rect x="${x}" y="${Y(v)}" width="${bw - 2}" height="${top + ph - Y(v)}" fill="${
            TAB10[si % TAB10.length]
          }"><title>${escapeXml(`${s.name} ${g}: ${v.toFixed(4)}`)}</title></rect>`,
        );
      }
      const r = s.reference?.[gi];
      if (r !== null && r !== undefined && Number.isFinite(r)) {
        out.push(
          `<line x1="${x - 1}" x2="${x + bw - 1}" y1="${Y(r)}" y2="${
            Y(r)
          }" stroke="black" stroke-width="2">` +
            `<title>${
              escapeXml(`${s.name} ${g} (${opts.referenceLabel ?? "reference"}): ${r.toFixed(4)}`)
            }</title></line>`,
        );
      }
    });
    const cx = gx + (series.length * bw) / 2;
    out.push(
      `<text transform="translate(${cx} ${top + ph + 10}) rotate(30)" text-anchor="start">${
        escapeXml(g)
      }</text>`,
    );
  });
  out.push(
    `<rect x="${left}" y="${top}" width="${pw}" height="${ph}" fill="none" stroke="#333" stroke-width="0.8"/>`,
  );
  let ly = top + ph + 62;
  series.forEach((s, si) => {
    out.push(
      `<rect x="${left}" y="${ly - 8}" width="10" height="10" fill="${TAB10[si % TAB10.length]}"/>`,
      `<text x="${left + 14}" y="${ly}">${escapeXml(s.name)}</text>`,
    );
    ly += 14;
  });
  if (opts.referenceLabel) {
    out.push(
      `<line x1="${left}" x2="${left + 10}" y1="${ly - 3}" y2="${ly - 3}" stroke="black" stroke-width="2"/>`,
      `<text x="${left + 14}" y="${ly}">${escapeXml(opts.referenceLabel)}</text>`,
    );
  }
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}

/**
 * Self-contained HTML pages: inline CSS, figures as inline SVG, no scripts and no external resources,
 * so a report opens offline and from any folder.
 */

/** Escapes text for HTML. */
export function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** A table cell: text, a number (shown with `digits` decimals) or null (shown as "–"). */
export type Cell = string | number | null | undefined;

/** Formats a number for a table: integers as they are, else `digits` decimals (exponents when tiny or huge). */
export function formatNumber(v: number, digits = 4): string {
  if (!Number.isFinite(v) || Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 10 ** -digits || a >= 1e6) ? v.toExponential(2) : v.toFixed(digits);
}

/** An HTML table of `rows` under `header`. */
export function htmlTable(header: string[], rows: Cell[][], digits = 4): string {
  const cell = (c: Cell) =>
    c === null || c === undefined
      ? `<td class="na">–</td>`
      : typeof c === "number"
      ? `<td class="num">${escapeHtml(formatNumber(c, digits))}</td>`
      : `<td>${escapeHtml(c)}</td>`;
  return [
    `<table>`,
    `<thead><tr>${header.map((h) => `<th>${escapeHtml(h)}</th>`).join("")}</tr></thead>`,
    `<tbody>`,
    ...rows.map((r) => `<tr>${r.map(cell).join("")}</tr>`),
    `</tbody></table>`,
  ].join("\n");
}

/** A figure: an inline SVG document (its XML prolog, if any, dropped) with a caption. */
export function htmlFigure(svg: string, caption: string, file?: string): string {
  const body = svg.replace(/^<\?xml[^>]*\?>\s*/, "").trim();
  const link = file ? ` <a href="${escapeHtml(file)}">${escapeHtml(file)}</a>` : "";
  return `<figure class="plot">${body}<figcaption>${escapeHtml(caption)}${link}</figcaption></figure>`;
}

/** A section: heading and already-built HTML parts. */
export interface Section {
  heading: string;
  parts: string[];
}

/** A whole page. */
export function htmlPage(title: string, intro: string[], sections: Section[]): string {
  return [
    `<!DOCTYPE html>`,
    `<html lang="en"><head><meta charset="utf-8">`,
    `<meta name="viewport" content="width=device-width, initial-scale=1">`,
    `<title>${escapeHtml(title)}</title>`,
    `<style>`,
    `body{font-family:"DejaVu Sans",Arial,sans-serif;margin:24px;color:#222;max-width:1400px}`,
    `h1{font-size:20px}h2{font-size:16px;margin-top:28px;border-bottom:1px solid #ccc}`,
    `table{border-collapse:collapse;margin:8px 0;font-size:13px}`,
    `th,td{border:1px solid #ccc;padding:3px 8px}th{background:#f3f3f3}`,
    `td.num{text-align:right;font-variant-numeric:tabular-nums}td.na{color:#999;text-align:center}`,
    `figure.plot{display:inline-block;margin:8px 16px 8px 0;vertical-align:top}`,
    `figure.plot svg{max-width:100%;height:auto}figcaption{font-size:12px;color:#555}`,
    `p.meta{font-size:13px;color:#444}`,
    `</style></head><body>`,
    `<h1>${escapeHtml(title)}</h1>`,
    ...intro.map((p) => `<p class="meta">${escapeHtml(p)}</p>`),
    ...sections.flatMap((s) => [`<section>`, `<h2>${escapeHtml(s.heading)}</h2>`, ...s.parts, `</section>`]),
    `</body></html>`,
    ``,
  ].join("\n");
}

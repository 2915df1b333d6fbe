/**
 * SVG of a logit lens ({@link LogitLensResult}, src/locate/logit_lens.ts): layers up (the embedding at the
 * bottom, the last layer, the model's own prediction, at the top), input positions across, each cell
 * the top-1 token written in it and coloured by its probability on a 0..1 scale, a tooltip with the
 * top-k (and the target's rank and probability). Helpers from ./heatmap.ts; no dependencies.
 */
import type { LogitLensResult } from "../locate/logit_lens.ts";
import { colorAt, escapeXml, textWidth } from "./heatmap.ts";

/** Options of {@link logitLensSvg}. */
export interface LogitLensSvgOptions {
  /** Title (default "Logit lens: top-1 next token per layer and position"). */
  title?: string;
  /** Colour map of ./heatmap.ts's COLORMAPS (default "Purples"). */
  colormap?: string;
  /** Colour by the target's probability instead of the top-1 token's (needs `result.target`). */
  colorBy?: "top1" | "target";
  /** Characters of a token shown in a cell (default 8; longer tokens end in "…"). */
  maxChars?: number;
}

const clip = (
  s: string,
  n: number,
) => (Array.from(s).length > n ? Array.from(s).slice(0, n - 1).join("") + "…" : s);
const shown = (s: string) => s.replace(/ /g, "␣");

/** Renders a logit lens as a standalone SVG document. */
export function logitLensSvg(r: LogitLensResult, opts: LogitLensSvgOptions = {}): string {
  const [nRows, T] = r.shape;
  const byTarget = opts.colorBy === "target";
  if (byTarget && !r.target) throw new RangeError("colorBy 'target' needs a lens computed with a target");
  const cmap = opts.colormap ?? "Purples";
  const maxChars = opts.maxChars ?? 8;
  const title = opts.title ??
    (byTarget
      ? `Logit lens: top-1 token, colour p(${shown(r.target!.token)})`
      : "Logit lens: top-1 next token per layer and position");
  const cellText = r.topTokens.map((row) => row.map((cell) => clip(shown(cell[0]), maxChars)));
  const colW = Math.max(
    40,
    Math.ceil(
      Math.max(
        ...cellText.flat().map((s) => textWidth(s, 10)),
        ...r.tokens.map((s) => textWidth(clip(shown(s), maxChars), 10)),
      ) + 8,
    ),
  );
  const cellH = 20, labelW = 58, top = 40;
  const gridW = T * colW, gridH = nRows * cellH;
  const cbX = labelW + gridW + 20, cbW = 14;
  const width = Math.ceil(Math.max(cbX + cbW + 48, textWidth(title, 13) + 16));
  const height = top + gridH + 62;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
    `font-family="DejaVu Sans, Arial, sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="13">${escapeXml(title)}</text>`,
  ];
  for (let i = 0; i < nRows; i++) {
    const layer = nRows - 1 - i; // the last layer on top
    const y = top + i * cellH;
    out.push(
      `<text x="${labelW - 6}" y="${y + cellH / 2 + 4}" text-anchor="end">${
        escapeXml(r.layers[layer])
      }</text>`,
    );
    for (let t = 0; t < T; t++) {
      const p1 = r.topProbs[layer][t][0];
      const v = byTarget ? r.target!.prob[layer][t] : p1;
      const fill = colorAt(cmap, v);
      const tops = r.topIds[layer][t].map((_, j) =>
        `${JSON.stringify(r.topTokens[layer][t][j])} ${r.topProbs[layer][t][j].toFixed(4)}`
      ).join(", ");
      const tg = r.target
        ? `; ${JSON.stringify(r.target.token)}: rank ${r.target.rank[layer][t]}, p ${
          r.target.prob[layer][t].toFixed(4)
        }`
        : "";
      const tip = `layer ${r.layers[layer]}, position ${t} (${JSON.stringify(r.tokens[t])}): ${tops}${tg}`;
      const x = labelW + t * colW;
      out.push(
        `<rect x="${x}" y="${y}" width="${colW}" height="${cellH}" fill="${fill}" stroke="white" stroke-width="0.5">` +
          `<title>${escapeXml(tip)}</title></rect>`,
        `<text x="${x + colW / 2}" y="${y + cellH / 2 + 4}" text-anchor="middle" font-size="10" ` +
          `font-family="DejaVu Sans Mono, monospace" fill="${v > 0.55 ? "white" : "black"}">${
            escapeXml(cellText[layer][t])
          }</text>`,
      );
    }
  }
  out.push(
    `<rect x="${labelW}" y="${top}" width="${gridW}" height="${gridH}" fill="none" stroke="#444" stroke-width="0.6"/>`,
  );
  for (let t = 0; t < T; t++) {
    out.push(
      `<text x="${labelW + t * colW + colW / 2}" y="${top + gridH + 14}" text-anchor="middle" ` +
        `font-family="DejaVu Sans Mono, monospace" font-size="10">${
          escapeXml(clip(shown(r.tokens[t]), maxChars))
        }</text>`,
    );
  }
  out.push(
    `<text x="${labelW + gridW / 2}" y="${
      top + gridH + 34
    }" text-anchor="middle">input token (the cell predicts the next one)</text>`,
    `<text x="12" y="${top + gridH / 2}" text-anchor="middle" transform="rotate(-90 12 ${
      top + gridH / 2
    })">layer</text>`,
  );
  const nStops = 20, sh = gridH / nStops;
  for (let i = 0; i < nStops; i++) {
    out.push(
      `<rect x="${cbX}" y="${top + i * sh}" width="${cbW}" height="${sh + 0.5}" fill="${
        colorAt(cmap, 1 - (i + 0.5) / nStops)
      }"/>`,
    );
  }
  out.push(
    `<rect x="${cbX}" y="${top}" width="${cbW}" height="${gridH}" fill="none" stroke="#444" stroke-width="0.6"/>`,
    `<text x="${cbX + cbW + 4}" y="${top + 8}">1</text>`,
    `<text x="${cbX + cbW + 4}" y="${top + gridH}">0</text>`,
    `<text x="${cbX + cbW / 2}" y="${top + gridH + 14}" text-anchor="middle">${
      byTarget ? "p(target)" : "p(top-1)"
    }</text>`,
    `</svg>`,
  );
  return out.join("\n");
}

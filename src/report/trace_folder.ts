/**
 * The contents of `trace --out`: every file of the folder, name -> data.
 *
 * One prompt: `trace.json`, per kind `trace_<kind>.svg` / `.png` (ROME's heatmap) and `trace_<kind>.npz`
 * (ROME's case record, src/report/rome_case.ts), and `report.html`.
 * Many facts (`--facts`): `average.json`, per kind `average_<kind>.svg` / `.png` (the token-class
 * heatmap), `aie_lines.svg` / `.png` (the notebook's line figure with 95% bands), per traced fact and
 * kind ROME's `knowledge_<id><suffix>.npz`, and `report.html`.
 */
import type { ClassAverage } from "../locate/average.ts";
import type { TraceKind } from "../locate/trace.ts";
import { averageHeatmapSvg, traceHeatmapSvg } from "./heatmap.ts";
import { aieLinesSvg } from "./lines.ts";
import { withPngs } from "./png.ts";
import {
  type FactsJson,
  factsReportHtml,
  type Figures,
  type TraceKindJson,
  traceReportHtml,
} from "./reports.ts";
import { encodeRomeCase, type RomeCase, romeCaseFileName } from "./rome_case.ts";

/** Folder contents. */
export type FolderFiles = Record<string, string | Uint8Array>;

/** Options shared by both folders. */
export interface FolderOptions {
  /** Also write a PNG beside every SVG (default true). */
  png?: boolean;
}

/** `--out` of a one-prompt trace: `objs` the JSON objects per kind, `cases` ROME's record per kind. */
export async function singleTraceFolder(
  json: string,
  objs: TraceKindJson[],
  cases: Map<TraceKind, RomeCase>,
  opts: FolderOptions = {},
): Promise<FolderFiles> {
  const files: FolderFiles = { "trace.json": json + "\n" };
  const figures: Figures = [];
  for (const [kind, c] of cases) {
    const svg = traceHeatmapSvg(c);
    files[`trace_${kind}.svg`] = svg;
    files[`trace_${kind}.npz`] = encodeRomeCase(c);
    figures.push({ file: `trace_${kind}.svg`, svg, caption: `${kind}: restored p(answer)` });
  }
  files["report.html"] = traceReportHtml(objs, figures);
  if (opts.png !== false) await withPngs(files);
  return files;
}

/** One traced fact's ROME records, for {@link factsTraceFolder}. */
export interface FactCases {
  id: string | number;
  cases: Map<TraceKind, RomeCase>;
}

/**
 * `--out` of a many-facts trace: `out` the JSON object (its `facts` rows get a `cases` list of the
 * fact's file names), `averages` per kind, `facts` the traced facts' records.
 */
export async function factsTraceFolder(
  out: FactsJson,
  averages: Map<TraceKind, ClassAverage>,
  facts: FactCases[],
  opts: FolderOptions & { window: number } = { window: 10 },
): Promise<FolderFiles> {
  const files: FolderFiles = {};
  const used = new Set<string>();
  const byId = new Map(facts.map((f) => [f.id, f]));
  for (const row of out.facts) {
    const f = byId.get(row.id as string | number);
    if (!f) continue;
    const names: string[] = [];
    for (const [kind, c] of f.cases) {
      let name = romeCaseFileName(f.id, kind);
      // Two ids that differ only in characters a file name cannot hold: the later one gets a number.
      for (let k = 2; used.has(name); k++) name = romeCaseFileName(`${f.id}~${k}`, kind);
      used.add(name);
      files[name] = encodeRomeCase(c);
      names.push(name);
    }
    row.cases = names;
  }
  files["average.json"] = JSON.stringify(out) + "\n";
  const figures: Figures = [];
  const win = Math.min(opts.window, out.layers);
  const lines = aieLinesSvg(Object.fromEntries(averages), { window: win });
  files["aie_lines.svg"] = lines;
  figures.push({ file: "aie_lines.svg", svg: lines, caption: "AIE by layer, 95% confidence bands" });
  for (const [kind, a] of averages) {
    const svg = averageHeatmapSvg(kind, a, { window: win, traced: out.traced });
    files[`average_${kind}.svg`] = svg;
    figures.push({ file: `average_${kind}.svg`, svg, caption: `${kind}: AIE by token class` });
  }
  files["report.html"] = factsReportHtml(out, figures);
  if (opts.png !== false) await withPngs(files);
  return files;
}

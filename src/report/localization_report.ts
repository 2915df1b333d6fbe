/**
 * Figures and the self-contained HTML report of the localization study (Hase et al. 2023): edit success
 * by layer per method, tracing effect by layer, R² bars, and the histogram of the layer where tracing
 * peaks; tables of the regressions and of the per-layer scores. The SVGs are inlined in the HTML.
 */
import type { StudySummary } from "../evaluate/localization/summary.ts";
import { barChartSvg, lineChartSvg } from "./charts.ts";
import { escapeXml } from "./heatmap.ts";

/** The study's figures, by file name (without folder). */
export function localizationFigures(s: StudySummary): Map<string, string> {
  const out = new Map<string, string>();
  const layersAll = Array.from({ length: s.nLayer }, (_, i) => i);
  const objectives = [...new Set(s.scoresByLayer.map((r) => r.objective))];
  for (const objective of objectives) {
    const rows = s.scoresByLayer.filter((r) => r.objective === objective);
    if (rows.length === 0) continue;
    out.set(
      `edit_success_by_layer_${objective}.svg`,
      lineChartSvg({
        title: `Rewrite score by edit layer (${objective})`,
        xLabel: "central edit layer",
        yLabel: "mean rewrite score",
        yMin: 0,
        yMax: 1,
        x: rows[0].layers,
        series: rows.map((r) => ({ name: r.method, values: r.mean.rewrite })),
      }),
    );
  }
  out.set(
    "tracing_by_layer.svg",
    lineChartSvg({
      title: "Tracing effect by layer (mean fraction restored)",
      xLabel: "layer",
      yLabel: "fraction restored",
      yMin: 0,
      x: layersAll,
      series: (["hidden", "mlp", "attn"] as const).flatMap((k) => [
        { name: `${k}, subject last`, values: s.tracingByLayer[k].subjectLast },
        { name: `${k}, max over tokens`, values: s.tracingByLayer[k].maxToken },
      ]),
    }),
  );
  out.set(
    "tracing_peak_layer.svg",
    barChartSvg({
      title: "Layer where the MLP tracing effect peaks",
      xLabel: "layer",
      yLabel: "cases",
      categories: layersAll.map(String),
      series: [{ name: "cases", values: s.peakLayerCounts.mlp }],
    }),
  );
  const cells = s.regressions.filter((r) => r.regressor === "max_token" && r.metric === "rewrite");
  out.set(
    "r2_rewrite.svg",
    barChartSvg({
      title: "R² of the rewrite score",
      xLabel: "method / objective",
      yLabel: "R²",
      yMin: 0,
      yMax: 1,
      categories: cells.map((r) => `${r.method} ${r.objective.replace("_", " ").slice(0, 14)}`),
      series: [
        { name: "layer", values: cells.map((r) => r.r2Layer) },
        { name: "tracing effect", values: cells.map((r) => r.r2Trace) },
        { name: "layer × tracing", values: cells.map((r) => r.r2Both) },
      ],
    }),
  );
  return out;
}

const num = (v: number | null | undefined, d = 3) =>
  v === null || v === undefined || !Number.isFinite(v)
    ? "–"
    : Math.abs(v) < 1e-3 && v !== 0
    ? v.toExponential(2)
    : v.toFixed(d);

/** The HTML report: title, settings, figures (inline), regression and score tables, dropped cases. */
export function localizationHtml(
  s: StudySummary,
  figures: Map<string, string>,
  meta: { model: string; data: string; settings: Record<string, unknown> },
): string {
  const regRows = s.regressions.map((r) =>
    `<tr><td>${r.method}</td><td>${r.objective}</td><td>${r.metric}</td><td>${r.regressor}</td><td>${r.n}</td>` +
    `<td>${num(r.r2Layer)}</td><td>${num(r.r2Trace)}</td><td>${num(r.r2Both)}</td><td>${
      num(r.r2Added)
    }</td>` +
    `<td>${num(r.fTest.f)}</td><td>${r.fTest.df1}, ${r.fTest.df2}</td><td>${num(r.fTest.p)}</td></tr>`
  ).join("\n");
  const scoreRows = s.scoresByLayer.flatMap((r) =>
    r.layers.map((l, i) =>
      `<tr><td>${r.method}</td><td>${r.objective}</td><td>${l}</td><td>${r.n[i]}</td><td>${
        num(r.mean.rewrite[i])
      }</td>` +
      `<td>${num(r.mean.paraphrase[i])}</td><td>${num(r.mean.neighborhood[i])}</td><td>${
        num(r.mean.target[i])
      }</td>` +
      `<td>${num(r.mean.efficacy[i])}</td></tr>`
    )
  ).join("\n");
  const dropped = s.dropped.map((d) =>
    `<li>case ${d.index}${d.case_id !== undefined ? ` (id ${escapeXml(String(d.case_id))})` : ""}: ${
      escapeXml(d.dropped)
    }</li>`
  )
    .join("\n");
  const figs = [...figures].map(([name, svg]) =>
    `<figure>${svg}<figcaption>${escapeXml(name)}</figcaption></figure>`
  )
    .join("\n");
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Localization study</title>
<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;font-size:12px;margin:1em 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eee}figure{display:inline-block;margin:8px}
figcaption{font-size:11px;color:#555}pre{background:#f6f6f6;padding:8px;font-size:11px;white-space:pre-wrap}</style></head>
<body>
<h1>Does localization inform editing? (Hase et al. 2023)</h1>
<p>Model <code>${escapeXml(meta.model)}</code>, data <code>${
    escapeXml(meta.data)
  }</code>: ${s.cases} cases studied,
${s.dropped.length} dropped, ${s.edits} edits. Tracing effect = fraction restored, MLP states; regressor
<code>max_token</code> = the largest fraction restored over the prompt's tokens at the edit layer (the notebook's
<code>max_fraction_restored</code>), <code>subject_last</code> = at the subject's last token.</p>
<pre>${escapeXml(JSON.stringify(meta.settings, null, 1))}</pre>
<h2>Figures</h2>
${figs}
<h2>Regressions</h2>
<table><tr><th>method</th><th>objective</th><th>metric</th><th>regressor</th><th>n</th><th>R² layer</th><th>R² trace</th>
<th>R² both</th><th>added R²</th><th>F</th><th>df</th><th>p</th></tr>
${regRows}
</table>
<h2>Mean scores by layer</h2>
<table><tr><th>method</th><th>objective</th><th>layer</th><th>edits</th><th>rewrite</th><th>paraphrase</th><th>neighborhood</th>
<th>target (hmean)</th><th>efficacy</th></tr>
${scoreRows}
</table>
<p>${s.unsupported.map((u) => `${u.method} cannot run ${u.objective} (not run).`).join(" ")}</p>
<h2>Dropped cases</h2>
<ul>${dropped || "<li>none</li>"}</ul>
</body></html>
`;
}

/**
 * Figures and the self-contained HTML report of `engram study attribution --out DIR`: faithfulness
 * against k beside the random-k baseline, the fine-tuning gain of top-k vs random instances with 95%
 * t intervals, IA vs NA overlap and diversity bars, the findings table and the per-test table. Written
 * from the summary and the test records alone, so a finished folder can be re-rendered.
 *
 * @module
 */
import { writeFileAtomic } from "../io/atomic.ts";
import type { TestRecord } from "../evaluate/attribution/record.ts";
import type { AttributionSummary } from "../evaluate/attribution/summary.ts";
import type { TInterval } from "../evaluate/t_interval.ts";
import { barChartSvg, lineChartSvg, PALETTE } from "./charts.ts";
import { escapeXml } from "./heatmap.ts";
import { escapeHtml, htmlFigure, htmlPage, htmlTable } from "./html.ts";

/** Estimates with 95% intervals as points with whiskers (one per labelled row). */
export function intervalChartSvg(
  rows: Array<{ label: string; ci: TInterval }>,
  opts: { title: string; xLabel: string },
): string {
  const W = 620, rowH = 26, top = 34, left = 250, right = 30, H = top + rows.length * rowH + 40;
  const vals = rows.flatMap((r) => [r.ci.lo ?? r.ci.mean, r.ci.hi ?? r.ci.mean, r.ci.mean])
    .filter((v): v is number => v !== null && Number.isFinite(v));
  let lo = Math.min(0, ...vals), hi = Math.max(0, ...vals);
  if (!(hi > lo)) hi = lo + 1;
  const pad = (hi - lo) * 0.06;
  lo -= pad, hi += pad;
  const x = (v: number) => left + (W - left - right) * (v - lo) / (hi - lo);
  const p: string[] = [
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="13">${escapeXml(opts.title)}</text>`,
    `<line x1="${x(0)}" x2="${x(0)}" y1="${top - 6}" y2="${H - 34}" stroke="#888" stroke-dasharray="3,3"/>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const v = lo + (hi - lo) * i / 4;
    p.push(
      `<line x1="${x(v)}" x2="${x(v)}" y1="${H - 34}" y2="${H - 30}" stroke="black"/>`,
      `<text x="${x(v)}" y="${H - 20}" text-anchor="middle">${Number(v.toPrecision(3))}</text>`,
    );
  }
  p.push(
    `<line x1="${left}" x2="${W - right}" y1="${H - 34}" y2="${H - 34}" stroke="black"/>`,
    `<text x="${(left + W - right) / 2}" y="${H - 4}" text-anchor="middle">${escapeXml(opts.xLabel)}</text>`,
  );
  rows.forEach((r, i) => {
    const y = top + i * rowH + rowH / 2, c = PALETTE[i % PALETTE.length];
    p.push(`<text x="${left - 8}" y="${y + 4}" text-anchor="end">${escapeXml(r.label)}</text>`);
    if (r.ci.lo !== null && r.ci.hi !== null) {
      p.push(
        `<line x1="${x(r.ci.lo)}" x2="${x(r.ci.hi)}" y1="${y}" y2="${y}" stroke="${c}" stroke-width="2"/>`,
        `<line x1="${x(r.ci.lo)}" x2="${x(r.ci.lo)}" y1="${y - 5}" y2="${
          y + 5
        }" stroke="${c}" stroke-width="2"/>`,
        `<line x1="${x(r.ci.hi)}" x2="${x(r.ci.hi)}" y1="${y - 5}" y2="${
          y + 5
        }" stroke="${c}" stroke-width="2"/>`,
      );
    }
    if (r.ci.mean !== null) {
      const t = `${r.label}: ${r.ci.mean.toFixed(4)}` +
        (r.ci.lo !== null ? ` [${r.ci.lo.toFixed(4)}, ${r.ci.hi!.toFixed(4)}] (95% t, n = ${r.ci.n})` : "");
      p.push(
        `<circle cx="${x(r.ci.mean)}" cy="${y}" r="4" fill="${c}"><title>${escapeXml(t)}</title></circle>`,
      );
    }
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ` +
    `font-family="DejaVu Sans, Arial, sans-serif" font-size="10">${p.join("")}</svg>`;
}

/** The report's figures: file name, SVG and caption. */
export function attributionFigures(
  s: AttributionSummary,
): Array<{ file: string; svg: string; caption: string }> {
  const ks = s.faithfulness.map((f) => f.k);
  const series = (get: (f: AttributionSummary["faithfulness"][number]) => number) => ({
    values: s.faithfulness.map(get),
  });
  const kept = lineChartSvg({
    title: "Predictions kept (1 - flips/runs)",
    xLabel: "k (neurons selected)",
    yLabel: "fraction of predictions kept",
    yMin: 0,
    yMax: 1,
    x: ks,
    series: [
      { name: "sufficiency, top-k", ...series((f) => f.sufficiency.kept_predictions) },
      { name: "sufficiency, random k", ...series((f) => f.random_sufficiency.kept_predictions) },
      { name: "comprehensiveness, top-k", ...series((f) => f.comprehensiveness.kept_predictions) },
      { name: "comprehens., random k", ...series((f) => f.random_comprehensiveness.kept_predictions) },
    ],
  });
  const drop = lineChartSvg({
    title: "Mean p(label) - p_blocked(label) (Yu et al.)",
    xLabel: "k (neurons selected)",
    yLabel: "mean probability drop",
    x: ks,
    series: [
      { name: "sufficiency, top-k", ...series((f) => f.sufficiency.prob_drop_mean) },
      { name: "sufficiency, random k", ...series((f) => f.random_sufficiency.prob_drop_mean) },
      { name: "comprehensiveness, top-k", ...series((f) => f.comprehensiveness.prob_drop_mean) },
      { name: "comprehens., random k", ...series((f) => f.random_comprehensiveness.prob_drop_mean) },
    ],
  });
  const ft = s.finetune;
  const finetune = intervalChartSvg(
    [
      { label: "top-k IA instances (over tests)", ci: ft.delta_top },
      { label: `k random instances (over ${ft.seeds.length} seeds)`, ci: ft.delta_random },
      { label: `gain top-k - random (over seeds)`, ci: ft.gain_over_random },
      { label: `gain top-k - random (over tests)`, ci: ft.gain_over_random_tests },
    ],
    { title: "Fine-tuning: change of log p(target), 95% t intervals", xLabel: "delta log p(target)" },
  );
  const o = s.overlap;
  const frac = (n: number) => (o.unique_instances.slots ? n / o.unique_instances.slots : null);
  const overlap = barChartSvg({
    title: "IA vs NA: overlap and diversity",
    xLabel: "",
    yLabel: "value",
    yMin: 0,
    yMax: 1,
    categories: ["instance Jaccard", "neuron Jaccard", "unique / slots", "mean pairwise cos"],
    series: [
      {
        name: "IA (grad-dot)",
        values: [
          o.instance_jaccard.mean,
          o.neuron_jaccard.mean,
          frac(o.unique_instances.ia),
          s.diversity.ia_cos_mean.mean,
        ],
      },
      {
        name: "NA-Instances",
        values: [null, null, frac(o.unique_instances.na_instances), s.diversity.na_instances_cos_mean.mean],
      },
      { name: "random k", values: [null, null, null, s.diversity.random_cos_mean.mean] },
    ],
    width: 640,
  });
  return [
    {
      file: "faithfulness_kept.svg",
      svg: kept,
      caption: "Predictions kept vs k, top-k neurons and random k",
    },
    { file: "faithfulness_drop.svg", svg: drop, caption: "Yu et al.'s mean probability drop vs k" },
    { file: "finetune.svg", svg: finetune, caption: "Fine-tuning on top-k IA instances vs k random ones" },
    {
      file: "overlap_diversity.svg",
      svg: overlap,
      caption: "IA vs NA overlap (Jaccard), unique instances, diversity",
    },
  ];
}

const fx = (
  v: number | null | undefined,
  d = 4,
) => (v === null || v === undefined ? null : Number(v.toFixed(d)));

/** The report page. */
export function attributionReportHtml(s: AttributionSummary, tests: TestRecord[]): string {
  const figs = attributionFigures(s);
  const findings = htmlTable(
    [
      "#",
      "claim (Yu et al. 2024)",
      "statistic",
      "value",
      "threshold",
      "verdict",
      "baseline / CI",
      "secondary reading",
      "value",
      "verdict",
    ],
    s.findings.map((f) => [
      f.id,
      f.claim,
      f.statistic,
      fx(f.value),
      `${f.comparison} ${f.threshold}`,
      f.holds === null ? "n/a" : f.holds ? "holds" : "does not hold",
      f.baseline,
      f.secondary.statistic,
      fx(f.secondary.value),
      f.secondary.holds === null ? "n/a" : f.secondary.holds ? "holds" : "does not hold",
    ]),
  );
  const faith = htmlTable(
    [
      "k",
      "k used (mean)",
      "mode",
      "flips / runs",
      "prob drop",
      "kept predictions",
      "kept prob. ratio",
      "random: flips / runs",
      "random prob drop",
      "random kept pred.",
    ],
    s.faithfulness.flatMap((f) =>
      (["sufficiency", "comprehensiveness"] as const).map((m) => {
        const a = f[m], r = f[m === "sufficiency" ? "random_sufficiency" : "random_comprehensiveness"];
        return [
          f.k,
          fx(f.k_used_mean, 2),
          m,
          `${a.flips} / ${a.runs}`,
          fx(a.prob_drop_mean),
          fx(a.kept_predictions),
          fx(a.kept_probability_ratio),
          `${r.flips} / ${r.runs}`,
          fx(r.prob_drop_mean),
          fx(r.kept_predictions),
        ];
      })
    ),
  );
  const ci = (
    c: TInterval,
  ) => (c.lo === null ? fx(c.mean) : `${c.mean!.toFixed(4)} [${c.lo.toFixed(4)}, ${c.hi!.toFixed(4)}]`);
  const o = s.overlap, ft = s.finetune;
  const overlap = htmlTable(["statistic", "value (mean [95% t interval over tests])"], [
    ["IA precision@k (same fact)", fx(o.ia_precision_at_k)],
    ["NA-Instances precision@k", fx(o.na_instances_precision_at_k)],
    ["instance Jaccard (top-k IA vs NA-Instances)", ci(o.instance_jaccard)],
    ["Spearman (IA vs NA-Instances scores)", ci(o.rank_correlation)],
    ["neuron Jaccard (IA-Neurons vs NA)", ci(o.neuron_jaccard)],
    [
      "pooled neurons: NA unique / IA unique / shared",
      `${o.ia_neurons_pooled.na_unique} / ${o.ia_neurons_pooled.ia_unique} / ${o.ia_neurons_pooled.overlap}`,
    ],
    [
      "unique instances IA / NA-Instances / slots",
      `${o.unique_instances.ia} / ${o.unique_instances.na_instances} / ${o.unique_instances.slots}`,
    ],
    ["diversity IA (mean pairwise cos)", ci(s.diversity.ia_cos_mean)],
    ["diversity NA-Instances", ci(s.diversity.na_instances_cos_mean)],
    ["diversity random k", ci(s.diversity.random_cos_mean)],
  ]);
  const ftTable = htmlTable(["statistic", "mean [95% t interval]"], [
    ["delta log p, top-k IA (over tests)", ci(ft.delta_top)],
    [`delta log p, random k (over seeds ${ft.seeds.join(", ")})`, ci(ft.delta_random)],
    ["gain top-k - random (over seeds)", ci(ft.gain_over_random)],
    ["gain top-k - random (over tests)", ci(ft.gain_over_random_tests)],
    ["per-seed random means", ft.delta_random_by_seed.map((v) => v.toFixed(4)).join(", ")],
  ]);
  const perTest = htmlTable(
    [
      "#",
      "test",
      "p(label)",
      "label = target",
      "coarse neurons",
      "suff. k=1 drop",
      "comp. k=max drop",
      "instance Jaccard",
      "dlogp top-k",
      "dlogp random",
    ],
    tests.map((t) => [
      t.index,
      t.name,
      fx(t.p_label),
      t.label === t.target ? "yes" : "no",
      t.coarse_neurons,
      fx(t.faithfulness[0]?.sufficiency.prob_drop),
      fx(t.faithfulness[t.faithfulness.length - 1]?.comprehensiveness.prob_drop),
      fx(t.overlap.instance_jaccard, 3),
      fx(t.finetune.delta_top),
      fx(t.finetune.delta_random_by_seed.reduce((a, b) => a + b, 0) / t.finetune.delta_random_by_seed.length),
    ]),
  );
  const defs = `<ul>${
    Object.entries(s.definitions).map(([k, v]) => `<li><b>${escapeHtml(k)}</b>: ${escapeHtml(v)}</li>`).join(
      "",
    )
  }</ul>`;
  const settings = `<pre>${escapeHtml(JSON.stringify(s.settings, null, 1))}</pre>`;
  return htmlPage(`Yu et al. 2024 on ${s.model}`, [
    `${s.tests} tests, pool of ${s.pool} training instances, ${s.seconds.toFixed(0)} s; weights ${
      s.fingerprint.slice(0, 16)
    }…`,
    `Schema ${s.schema}. Figures are inline; the same SVGs are in figures/.`,
  ], [
    { heading: "Findings", parts: [findings] },
    {
      heading: "Faithfulness (sufficiency and comprehensiveness)",
      parts: [faith, ...figs.slice(0, 2).map((f) => htmlFigure(f.svg, f.caption, `figures/${f.file}`))],
    },
    {
      heading: "Fine-tuning on influential vs random instances",
      parts: [ftTable, htmlFigure(figs[2].svg, figs[2].caption, `figures/${figs[2].file}`)],
    },
    {
      heading: "IA vs NA: overlap and diversity",
      parts: [overlap, htmlFigure(figs[3].svg, figs[3].caption, `figures/${figs[3].file}`)],
    },
    { heading: "Definitions", parts: [defs] },
    { heading: "Settings", parts: [settings] },
    { heading: "Per test", parts: [perTest] },
  ]);
}

/** Writes `figures/*.svg` and `report.html` into `dir`. */
export async function writeAttributionReport(
  dir: string,
  s: AttributionSummary,
  tests: TestRecord[],
): Promise<void> {
  await Deno.mkdir(`${dir}/figures`, { recursive: true });
  for (const f of attributionFigures(s)) await writeFileAtomic(`${dir}/figures/${f.file}`, f.svg);
  await writeFileAtomic(
    `${dir}/report.html`,
    attributionReportHtml(s, [...tests].sort((a, b) => a.index - b.index)),
  );
}

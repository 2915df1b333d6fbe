// The self-written SVG charts: well-formed, one bar per value, nulls leave gaps, text escaped.
import assert from "node:assert/strict";
import { barChartSvg, lineChartSvg } from "../src/report/charts.ts";

Deno.test("line chart: a null breaks the line, points for every value", () => {
  const svg = lineChartSvg({
    title: "a <b> & c",
    xLabel: "layer",
    yLabel: "score",
    x: [0, 1, 2, 3],
    series: [{ name: "rome", values: [0.1, null, 0.4, 0.5] }, {
      name: "memit",
      values: [0.2, 0.3, 0.1, 0.9],
    }],
  });
  assert.ok(svg.startsWith("<svg") && svg.endsWith("</svg>"));
  assert.ok(svg.includes("a &lt;b&gt; &amp; c"));
  assert.equal((svg.match(/<circle/g) ?? []).length, 7);
  const paths = [...svg.matchAll(/<path d="([^"]+)"/g)].map((m) => m[1]);
  assert.equal(paths.length, 2);
  assert.equal((paths[0].match(/M/g) ?? []).length, 2, "the gap starts a new segment");
  assert.equal((paths[1].match(/M/g) ?? []).length, 1);
});

Deno.test("bar chart: one rect per finite value, heights proportional", () => {
  const svg = barChartSvg({
    title: "R²",
    xLabel: "cell",
    yLabel: "R²",
    yMin: 0,
    yMax: 1,
    categories: ["a", "b", "c"],
    series: [{ name: "layer", values: [0.5, null, 1] }, { name: "trace", values: [0.25, 0.1, Number.NaN] }],
  });
  const bars = [
    ...svg.matchAll(/<rect x="[^"]+" y="[^"]+" width="[^"]+" height="([^"]+)" fill="[^"]+"><title>/g),
  ].map((m) => Number(m[1]));
  assert.equal(bars.length, 4);
  // Category by category, series by series: a/layer 0.5, a/trace 0.25, b/trace 0.1, c/layer 1.
  assert.ok(Math.abs(bars[0] / bars[3] - 0.5) < 0.01, `${bars}`);
  assert.ok(Math.abs(bars[1] / bars[3] - 0.25) < 0.01, `${bars}`);
  assert.ok(Math.abs(bars[2] / bars[3] - 0.1) < 0.01, `${bars}`);
});

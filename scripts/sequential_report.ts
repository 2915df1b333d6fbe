/**
 * Combines sequential-editing runs into one report: `deno run -A scripts/sequential_report.ts OUT DIR...`
 * reads every DIR/<method>/curve.json (the folders `engram eval --mode sequential --every M --out DIR`
 * writes; several runs, e.g. batch methods and ROME, can be merged) and writes OUT/summary.json and one SVG
 * per metric with every method as a line (src/cli/eval_sequential.ts).
 */
import { writeCurveReport } from "../src/cli/eval_sequential.ts";
import type { SequentialCurve } from "../src/evaluate/sequential.ts";

const [out, ...dirs] = Deno.args;
if (!out || dirs.length === 0) {
  console.error("usage: deno run -A scripts/sequential_report.ts OUT DIR [DIR...]");
  Deno.exit(2);
}
const curves: SequentialCurve[] = [];
for (const d of dirs) {
  for await (const e of Deno.readDir(d)) {
    if (!e.isDirectory) continue;
    try {
      curves.push(JSON.parse(await Deno.readTextFile(`${d}/${e.name}/curve.json`)));
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
}
curves.sort((a, b) => a.label.localeCompare(b.label));
await writeCurveReport(out, curves);
console.log(
  `${curves.length} curves: ${curves.map((c) => `${c.label} (${c.records.length} records)`).join(", ")}`,
);

/**
 * `engram bench compare A.json B.json ...`: the figures of several `engram bench --json` records side
 * by side as a markdown table (stdout), and an SVG bar chart of each figure relative to the first record
 * (`--svg FILE`, default bench-compare.svg). Records of another schema are refused with a typed error.
 */
import { InputError } from "../errors.ts";
import { parseFlags } from "./args.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { BENCH_SCHEMA, BENCH_SCHEMA_2 } from "./bench_figures.ts";
import { snakeKeys } from "../schema/common.ts";
import type { BenchOutput } from "../schema/bench_output.ts";

/** What compare reads of a record (an `engram-bench/2` record is converted to snake_case first). */
interface BenchRecord {
  schema: string;
  date: string;
  adapter: { description?: string; vendor?: string };
  host?: { loadavg_start?: number[] };
  figures: BenchOutput["figures"];
}

function readRecord(path: string): BenchRecord {
  let r: BenchRecord;
  try {
    r = JSON.parse(Deno.readTextFileSync(path));
  } catch (e) {
    throw new InputError(`cannot read a bench record: ${(e as Error).message}`, { file: path });
  }
  if (r?.schema === BENCH_SCHEMA_2) r = { ...snakeKeys(r), schema: BENCH_SCHEMA };
  if (r?.schema !== BENCH_SCHEMA) {
    throw new InputError(
      `schema is ${JSON.stringify(r?.schema)}, expected "${BENCH_SCHEMA}" (or "${BENCH_SCHEMA_2}")`,
      {
        file: path,
        field: "schema",
      },
    );
  }
  if (!Array.isArray(r.figures)) {
    throw new InputError("figures is not a list", { file: path, field: "figures" });
  }
  return r;
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** The markdown table: one row per figure name, one column per record (value, same-run ratio). */
export function compareTable(paths: string[], recs: BenchRecord[]): string {
  const names = [...new Set(recs.flatMap((r) => r.figures.map((f) => f.name)))];
  const head = recs.map((r, i) =>
    `${paths[i].split("/").pop()} (${r.adapter.description || r.adapter.vendor || "?"}, load ${
      r.host?.loadavg_start?.[0]?.toFixed(2) ?? "?"
    })`
  );
  const lines = [`| figure | unit | ${head.join(" | ")} |`, `| --- | --- |${" --- |".repeat(recs.length)}`];
  for (const n of names) {
    const fs = recs.map((r) => r.figures.find((f) => f.name === n));
    const unit = fs.find(Boolean)!.unit;
    const cells = fs.map((f) =>
      f ? `${f.value.toPrecision(4)}${f.baseline ? ` (${f.baseline.ratio.toFixed(2)}x)` : ""}` : "–"
    );
    lines.push(`| ${n} | ${unit} | ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}

/** A horizontal bar chart: per figure, each record's value relative to the first record's. */
export function compareSvg(paths: string[], recs: BenchRecord[]): string {
  const names = [...new Set(recs.flatMap((r) => r.figures.map((f) => f.name)))];
  const colors = ["#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377"];
  const barH = 10, gap = 8, left = 330, width = 360;
  const rowH = recs.length * barH + gap;
  const top = 20 + recs.length * 14;
  const h = top + names.length * rowH + 10;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${
      left + width + 80
    }" height="${h}" font-family="sans-serif" font-size="10">`,
  ];
  recs.forEach((_, i) => {
    out.push(`<rect x="10" y="${8 + i * 14}" width="10" height="10" fill="${colors[i % colors.length]}"/>`);
    out.push(`<text x="24" y="${17 + i * 14}">${esc(paths[i].split("/").pop()!)}</text>`);
  });
  // Scale: each figure relative to the first record (higher is better after inverting time units).
  names.forEach((n, j) => {
    const fs = recs.map((r) => r.figures.find((f) => f.name === n));
    const ref = fs.find(Boolean)!;
    const rel = fs.map((f) => (f ? (ref.higher_is_better ? f.value / ref.value : ref.value / f.value) : 0));
    const max = Math.max(1, ...rel);
    const y0 = top + j * rowH;
    out.push(
      `<text x="${left - 6}" y="${y0 + (recs.length * barH) / 2 + 3}" text-anchor="end">${esc(n)} (${
        esc(ref.unit)
      })</text>`,
    );
    fs.forEach((f, i) => {
      if (!f) return;
      const w = (rel[i] / max) * width;
      out.push(
        `<rect x="${left}" y="${y0 + i * barH}" width="${w.toFixed(1)}" height="${barH - 1}" fill="${
          colors[i % colors.length]
        }"/>`,
      );
      out.push(`<text x="${left + w + 3}" y="${y0 + i * barH + 8}">${f.value.toPrecision(3)}</text>`);
    });
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}

/** Runs `engram bench compare`. */
export async function benchCompare(argv: string[]): Promise<void> {
  // Record files are positionals; the flags are parsed strictly from the rest.
  const paths: string[] = [], flags: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith("--")) {
      flags.push(argv[i], ...(argv[i] === "--svg" && i + 1 < argv.length ? [argv[++i]] : []));
    } else paths.push(argv[i]);
  }
  const f = parseFlags("bench compare", flags, { svg: { type: "string" } });
  if (paths.length < 1) {
    throw new InputError("bench compare needs at least one record file", { field: "files" });
  }
  const recs = paths.map(readRecord);
  console.log(compareTable(paths, recs));
  const svg = typeof f.svg === "string" ? f.svg : "bench-compare.svg";
  await writeFileAtomic(svg, compareSvg(paths, recs));
  console.error(`[bench] wrote ${svg}`);
}

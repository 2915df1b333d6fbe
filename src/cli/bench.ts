/**
 * `engram bench`: one schema-versioned record per run (./bench_figures.ts): the adapter (description,
 * backend, limits, features), the Deno and engram versions, the load average, and every figure with its
 * unit and its same-run baseline ratio: matmul GFLOP/s of the autotuned variant against numpy / OpenBLAS
 * (benchmarks/reference/matmul_numpy.py, when python3 and numpy exist) and against the 4x4 kernel, the
 * readback floor against the old flush-then-map, forward passes of the world model against the 4x4
 * kernel, attention, every family against GPT-2, and resident memory at real sizes (./bench_memory.ts).
 * `engram bench compare A.json B.json ...` prints a side-by-side table and writes an SVG chart
 * (./bench_compare.ts).
 */
import { getGpu } from "../gpu/device.ts";
import { chosenVariants, MATMUL_VARIANTS } from "../gpu/matmul.ts";
import { autotuneMatmul } from "../gpu/matmul_tune.ts";
import { measureAttention } from "../gpu/attention.ts";
import { measureReadback } from "../gpu/readback_measure.ts";
import { familyBenchConfig, measureForward } from "../model/measure.ts";
import { type CommandSpec, parseCommand } from "./spec.ts";
import { log as logger } from "./log.ts";
import { ENGRAM_VERSION } from "./version.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { measureMemory } from "./bench_memory.ts";
import {
  BENCH_SCHEMA,
  type Figure,
  figure,
  measureVariants,
  measureWorldForward,
  numpyBaseline,
} from "./bench_figures.ts";
import { benchCompare } from "./bench_compare.ts";
import type { BenchOutput } from "../schema/bench_output.ts";
import { snakeKeys } from "../schema/common.ts";

const SECTIONS = ["matmul", "readback", "world", "attention", "families", "memory"] as const;

/** Flags and help of `engram bench`. */
export const benchSpec: CommandSpec = {
  name: "bench",
  summary:
    "one schema-versioned benchmark record: matmul against numpy, readback floor, forward, attention, memory",
  usage:
    "bench [--quick] [--json] [--out FILE] [--sections matmul,readback,world,attention,families,memory] | " +
    "bench compare A.json B.json ... [--svg FILE]",
  description: `One record per run (schema engram-bench/3): the adapter (description, backend, limits,
    features), the Deno and engram versions, the load average, and every figure with its unit and its
    same-run baseline ratio (matmul against numpy / OpenBLAS when python3 and numpy exist, and against the
    4x4 kernel; the readback floor against flush-then-map; the world forward; attention; every family against
    GPT-2; resident memory at real sizes). \`bench compare\` prints a side-by-side markdown table of records
    and writes an SVG bar chart. Progress goes to stderr.`,
  flags: {
    quick: { type: "boolean", help: "small shapes only (seconds instead of minutes)" },
    json: { type: "boolean", help: "print the record as JSON" },
    out: { type: "string", value: "FILE", help: "also write the JSON record to FILE" },
    sections: {
      type: "string",
      value: "S,..",
      default: "all",
      help: "which sections run: matmul, readback, world, attention, families, memory",
    },
  },
  examples: ["bench --quick --json --out bench.json", "bench compare a.json b.json --svg cmp.svg"],
};

/** Runs the benchmark suite and prints (and optionally writes) the JSON record. */
export async function benchCommand(argv: string[]): Promise<void> {
  if (argv[0] === "compare") return benchCompare(argv.slice(1));
  const f = parseCommand(benchSpec, argv);
  const quick = Boolean(f.quick);
  const want = new Set(typeof f.sections === "string" ? f.sections.split(",") : SECTIONS);
  const gpu = await getGpu();
  const log = (s: string) => logger.info(`${s} (load ${Deno.loadavg()[0].toFixed(2)})`);
  const loadStart = Deno.loadavg();
  const desc = gpu.describe();
  const info = gpu.adapter.info as GPUAdapterInfo & { backend?: string };
  const limits: Record<string, number> = {};
  for (const k in gpu.device.limits) {
    const v = (gpu.device.limits as unknown as Record<string, unknown>)[k];
    if (typeof v === "number") limits[k] = v;
  }
  const adapter = {
    ...desc,
    backend: info.backend ?? null,
    limits,
    features: [...gpu.device.features].sort(),
  };
  log(`adapter: ${adapter.description || adapter.vendor}`);
  const figures: Figure[] = [];
  const raw: Record<string, unknown> = {};

  // The tune runs first (and is recorded) so every later product uses its choices.
  log("matmul autotune ...");
  const tune = await autotuneMatmul(gpu);
  raw.tune = tune;
  const chosen = chosenVariants(gpu);

  if (want.has("matmul")) {
    const shapes: Array<[number, number, number]> = quick
      ? [[128, 128, 128], [286, 384, 96]]
      : [[256, 256, 256], [1024, 1024, 1024], [512, 3072, 768], [512, 768, 3072], [286, 384, 96], [
        286,
        96,
        384,
      ]];
    log("matmul: numpy baseline ...");
    const np = await numpyBaseline(shapes);
    if (np.skipped) log(`numpy baseline skipped: ${np.skipped}`);
    log("matmul: variants ...");
    // The tuned variant, the 4x4 kernel and the wide tiles (the tune record has every variant's time).
    const names = [
      ...new Set([chosen.nn, MATMUL_VARIANTS[0].name, "wide8x8", "wide8x16", "wide16x8", "wide16x16"]),
    ];
    const rows = await measureVariants(
      gpu,
      shapes,
      quick ? [chosen.nn, MATMUL_VARIANTS[0].name] : names,
      quick ? 1 : 2,
    );
    raw.matmul = { numpy: np, rows };
    for (const r of rows) {
      const s = r.shape.join("x");
      const npRow = np.matmul?.find((x) => x.shape.join("x") === s);
      const npBase = npRow
        ? { name: `numpy ${np.blas ?? ""} ${s}`.replace("  ", " "), value: npRow.gflops }
        : undefined;
      figures.push({
        ...figure(`matmul ${s} tuned`, r.gflops[chosen.nn], "GFLOP/s", true, npBase),
        detail: chosen.nn,
      });
      figures.push(
        figure(`matmul ${s} tuned vs 4x4`, r.gflops[chosen.nn], "GFLOP/s", true, {
          name: `matmul ${s} blocked4x4`,
          value: r.gflops[MATMUL_VARIANTS[0].name],
        }),
      );
      figures.push(
        figure(`matmul ${s} blocked4x4`, r.gflops[MATMUL_VARIANTS[0].name], "GFLOP/s", true, npBase),
      );
      if (npRow) figures.push(figure(`matmul ${s} numpy`, npRow.gflops, "GFLOP/s", true));
    }
  }
  if (want.has("readback")) {
    log("readback floor ...");
    const r = await measureReadback(gpu, quick ? 4 : 10);
    raw.readback = r;
    figures.push(figure("empty flush", r.emptyFlushMs, "ms", false));
    figures.push(
      figure("readTensor", r.readTensorMs, "ms", false, { name: "flush then map", value: r.flushThenMapMs }),
    );
    figures.push(
      figure("readTensors of 8", r.readTensorsMs, "ms", false, {
        name: "8 x readTensor",
        value: r.eightReadsMs,
      }),
    );
  }
  if (want.has("world")) {
    log("world model forward ...");
    const w = await measureWorldForward(gpu, quick ? 2 : 8);
    raw.world = w;
    for (const x of w) {
      const n = `world forward ${x.batch[0]}x${x.batch[1]}${
        x.captured ? ` capturing ${x.captured} sites` : ""
      }`;
      figures.push(figure(n, x.tunedMs, "ms", false, { name: `${n} blocked4x4`, value: x.blockedMs }));
    }
  }
  if (want.has("attention")) {
    log("attention ...");
    const attention = await measureAttention(
      gpu,
      quick
        ? [{ B: 1, T: 64, C: 128, nHead: 4 }]
        : [{ B: 1, T: 128, C: 768, nHead: 12 }, { B: 4, T: 64, C: 256, nHead: 4 }],
    );
    raw.attention = attention;
    for (const a of attention) {
      const c = a.config;
      figures.push(figure(`attention B${c.B} T${c.T} C${c.C} H${c.nHead}`, a.gflops, "GFLOP/s", true));
    }
  }
  if (want.has("families")) {
    log("forward ...");
    // Every family at the same sizes; ratios to GPT-2's tokens/s measured in this run.
    const forward = [];
    for (const family of ["gpt2", "llama", "neox", "gptj"] as const) {
      const cfg = quick
        ? familyBenchConfig(family, 2, 64, 4, 1000)
        : familyBenchConfig(family, 4, 256, 8, 8192);
      forward.push(await measureForward(gpu, cfg, quick ? 2 : 4, 32));
    }
    raw.forward = forward;
    const gpt2 = forward[0].tokensPerSecond;
    for (const fw of forward) {
      const c = fw.config;
      figures.push(
        figure(
          `forward ${c.family} ${c.nLayer}x${c.nEmbd} ${fw.tokens} tokens`,
          fw.tokensPerSecond,
          "tokens/s",
          true,
          {
            name: "forward gpt2",
            value: gpt2,
          },
        ),
      );
    }
  }
  if (want.has("memory")) {
    log("memory ...");
    // Resident bytes (host RSS, GPU buffers) against the weights' size, real shapes unless --quick.
    raw.memory = await measureMemory(gpu, { quick, log });
  }
  const camel = {
    engram: ENGRAM_VERSION,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    date: new Date().toISOString(),
    command: ["engram", "bench", ...argv].join(" "),
    host: { cpus: navigator.hardwareConcurrency, loadavgStart: loadStart, loadavgEnd: Deno.loadavg() },
    adapter,
    matmulVariants: chosen,
    figures,
    raw,
  };
  // The measurements are the library's (camelCase); the record is written snake_case.
  const record: BenchOutput = { schema: BENCH_SCHEMA, ...snakeKeys(camel) };
  const text = JSON.stringify(record, null, 2);
  if (typeof f.out === "string") await writeFileAtomic(f.out, text + "\n");
  if (f.json) console.log(text);
  else {
    for (const x of figures) {
      const b = x.baseline
        ? `  (${x.baseline.ratio.toFixed(2)}x ${x.baseline.name}: ${x.baseline.value.toFixed(2)})`
        : "";
      console.log(`${x.name}: ${x.value.toFixed(2)} ${x.unit}${b}  [load ${x.load1.toFixed(2)}]`);
    }
  }
}

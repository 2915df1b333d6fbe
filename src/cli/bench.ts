/**
 * `engram bench`: the same figures as `deno bench` (matmul GFLOP/s with the ratio to the naive kernel,
 * attention, forward tokens/s) and resident memory at real sizes (./bench_memory.ts) as one JSON document that names the adapter, so runs on different
 * machines can be compared side by side.
 */
import { getGpu } from "../gpu/device.ts";
import { measureMatmul } from "../gpu/matmul.ts";
import { measureAttention } from "../gpu/attention.ts";
import { familyBenchConfig, measureForward } from "../model/measure.ts";
import { type CommandSpec, parseCommand } from "./spec.ts";
import { log } from "./log.ts";
import { ENGRAM_VERSION } from "./version.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { measureMemory } from "./bench_memory.ts";

/** Flags and help of `engram bench`. */
export const benchSpec: CommandSpec = {
  name: "bench",
  summary: "matmul / attention / forward-pass throughput and resident memory, with the adapter's description",
  usage: "bench [--quick] [--json] [--out FILE]",
  description: `The figures of deno bench (matmul GFLOP/s with the ratio to the naive kernel, attention,
    forward tokens/s of every family) and resident memory at real sizes, as one report that names the
    adapter, so that runs on different machines can be compared. Progress goes to stderr.`,
  flags: {
    quick: { type: "boolean", help: "small shapes only (seconds instead of minutes)" },
    json: { type: "boolean", help: "print the report as JSON" },
    out: { type: "string", value: "FILE", help: "also write the JSON report to FILE" },
  },
  examples: ["bench --quick --json --out bench.json"],
};

/** Runs the benchmark suite and prints (and optionally writes) the JSON report. */
export async function benchCommand(argv: string[]): Promise<void> {
  const f = parseCommand(benchSpec, argv);
  const quick = Boolean(f.quick);
  const gpu = await getGpu();
  const note = (s: string) => log.info(s);
  const adapter = gpu.describe();
  note(`adapter: ${adapter.description || adapter.vendor}`);
  const mmShapes: Array<[number, number, number]> = quick
    ? [[128, 128, 128], [64, 768, 256]]
    : [[256, 256, 256], [64, 2304, 768], [512, 512, 512]];
  note("matmul ...");
  const matmul = await measureMatmul(gpu, mmShapes);
  note("attention ...");
  const attention = await measureAttention(
    gpu,
    quick
      ? [{ B: 1, T: 64, C: 128, nHead: 4 }]
      : [{ B: 1, T: 128, C: 768, nHead: 12 }, { B: 4, T: 64, C: 256, nHead: 4 }],
  );
  note("forward ...");
  // Every family at the same sizes; ratios to GPT-2's tokens/s measured in this run.
  const forward = [];
  for (const family of ["gpt2", "llama", "neox", "gptj"] as const) {
    const cfg = quick
      ? familyBenchConfig(family, 2, 64, 4, 1000)
      : familyBenchConfig(family, 4, 256, 8, 8192);
    forward.push(await measureForward(gpu, cfg, quick ? 2 : 4, 32));
  }
  const gpt2Rate = forward[0].tokensPerSecond;
  const families = forward.map((f) => ({
    family: f.config.family,
    tokensPerSecond: f.tokensPerSecond,
    ratioToGpt2: f.tokensPerSecond / gpt2Rate,
  }));
  note("memory ...");
  // Resident bytes (host RSS, GPU buffers) against the weights' size, real shapes unless --quick.
  const memory = await measureMemory(gpu, { quick, log: note });
  const report = {
    engram: ENGRAM_VERSION,
    date: new Date().toISOString(),
    deno: Deno.version.deno,
    adapter,
    matmul,
    attention,
    forward,
    families,
    memory,
  };
  const text = JSON.stringify(report, null, 2);
  if (typeof f.out === "string") await writeFileAtomic(f.out, text + "\n");
  if (f.json) console.log(text);
  else {
    for (const m of matmul) console.log(`matmul ${JSON.stringify(m)}`);
    for (const a of attention) console.log(`attention ${JSON.stringify(a)}`);
    for (const fw of forward) console.log(`forward ${JSON.stringify(fw)}`);
    for (const m of memory) console.log(`memory ${JSON.stringify(m)}`);
  }
}

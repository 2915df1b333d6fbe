/**
 * `deno task fuzz [--count N] [--format NAME[,NAME]] [--seed S] [--hang-ms MS] [--memory-mb MB] [--json FILE]`:
 * fuzzes every parser (or those named) with N seeded mutants each, every format in its own worker. A
 * case that does not return within --hang-ms (default 5000) is a hang and one that grows the process
 * by more than --memory-mb (default 1024) a memory blow-up: the worker is stopped and a new one resumes
 * after that case. Prints per-format counts (tried / typed / accepted / wrong / crash / hang / memory),
 * the first findings, and the whole result as JSON (stdout's last line, or --json FILE).
 */
import { parseArgs } from "node:util";
import { emptyStats, type FormatStats, mutantInput, type Outcome, record } from "../src/fuzz/runner.ts";
import { target, TARGETS } from "../src/fuzz/targets.ts";
import type { WorkerJob, WorkerMessage } from "../src/fuzz/worker.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    count: { type: "string", default: "2000" },
    format: { type: "string" },
    seed: { type: "string", default: "1" },
    "hang-ms": { type: "string", default: "5000" },
    "memory-mb": { type: "string", default: "1024" },
    json: { type: "string" },
  },
});
const count = Number(values.count), seed = Number(values.seed);
const hangMs = Number(values["hang-ms"]), memoryBytes = Number(values["memory-mb"]) * 2 ** 20;
for (
  const [k, v] of [["count", count], ["seed", seed], ["hang-ms", hangMs], ["memory-mb", memoryBytes]] as const
) {
  if (!Number.isSafeInteger(v) || v < 0) {
    console.error(`--${k} must be a non-negative integer`);
    Deno.exit(2);
  }
}
const names = values.format ? values.format.split(",") : TARGETS.map((t) => t.name);
for (const n of names) {
  if (!TARGETS.some((t) => t.name === n)) {
    console.error(`unknown format '${n}' (known: ${TARGETS.map((t) => t.name).join(", ")})`);
    Deno.exit(2);
  }
}

/** Runs mutants [0, count) of `format` in workers, restarting after a hang or memory blow-up. */
async function fuzzFormat(format: string): Promise<FormatStats> {
  const stats = emptyStats(format);
  const t0 = performance.now();
  // The parent rebuilds the input of a case it had to stop (the worker could not report it).
  const t = target(format);
  const prepared = await t.setup();
  let next = 0;
  while (next < count) {
    next = await new Promise<number>((resolve) => {
      const w = new Worker(new URL("../src/fuzz/worker.ts", import.meta.url), { type: "module" });
      let current = -1, begun = 0;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const baseline = Deno.memoryUsage().rss;
      const stop = (outcome: Outcome, message: string) => {
        clearTimeout(timer);
        clearInterval(poll);
        w.terminate();
        record(
          stats,
          current,
          outcome,
          message,
          mutantInput(t, prepared, seed, current),
          performance.now() - begun,
          50,
        );
        resolve(current + 1);
      };
      w.onmessage = (ev: MessageEvent<WorkerMessage>) => {
        const m = ev.data;
        if (m.type === "begin") {
          current = m.index;
          begun = performance.now();
          clearTimeout(timer);
          timer = setTimeout(() => stop("hang", `no result after ${hangMs} ms`), hangMs);
        } else if (m.type === "done") {
          clearTimeout(timer);
          const o = (m.ms > hangMs ? "hang" : m.outcome) as Outcome;
          stats.tried++;
          stats[o]++;
          if (o === "typed" && m.message !== undefined) stats.long++;
          if (o !== "typed" && o !== "accepted" && stats.findings.length < 50) {
            stats.findings.push({
              format,
              index: m.index,
              outcome: o,
              message: m.message ?? o,
              input: m.input ?? "",
              ms: Math.round(m.ms),
            });
          }
        } else if (m.type === "finished") {
          clearInterval(poll);
          w.terminate();
          resolve(count);
        }
      };
      w.onerror = (e) => {
        e.preventDefault();
        if (current < 0) current = next;
        stop("crash", `worker died: ${e.message}`);
      };
      const poll = setInterval(() => {
        const grew = Deno.memoryUsage().rss - baseline;
        if (current >= 0 && grew > memoryBytes) {
          stop("memory", `process grew by ${(grew / 2 ** 20).toFixed(0)} MiB`);
        }
      }, 50);
      w.postMessage({ format, seed, start: next, end: count } satisfies WorkerJob);
    });
  }
  await prepared.close?.();
  stats.seconds = (performance.now() - t0) / 1000;
  return stats;
}

const results: FormatStats[] = [];
for (const n of names) {
  const s = await fuzzFormat(n);
  results.push(s);
  console.log(
    `${
      n.padEnd(14)
    } tried ${s.tried}  typed ${s.typed}  accepted ${s.accepted}  wrong ${s.wrong}  crash ${s.crash}  ` +
      `hang ${s.hang}  memory ${s.memory}  long-messages ${s.long}  (${s.seconds.toFixed(1)} s)`,
  );
  for (const f of s.findings.slice(0, 5)) {
    console.log(`  #${f.index} ${f.outcome}: ${f.message}\n     input: ${f.input}`);
  }
}
const out = JSON.stringify({ seed, count, hangMs, results });
if (values.json) await Deno.writeTextFile(values.json, out);
console.log(out);

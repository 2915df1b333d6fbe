/** Synthetic traces, eval results and report folders for report_test and report_browser_test. */
import { join } from "node:path";
import { romeCaseOf } from "../src/report/heatmap.ts";
import { ClassAccumulator } from "../src/locate/average.ts";
import type { TraceResult } from "../src/locate/trace.ts";
import type { MethodEvalResult, Metrics } from "../src/evaluate/edit_metrics.ts";
import { evalReportHtml } from "../src/report/reports.ts";
import { factsTraceFolder, singleTraceFolder } from "../src/report/trace_folder.ts";

/** A tokenizer stand-in: token names and decoding. */
export const tok = {
  tokenString: (id: number) => (id === 0 ? "<bos>" : `w${id}`),
  decode: (ids: number[]) => ids.map((id) => ` w${id}`).join(""),
};

/** A trace of 5 tokens x 3 layers with distinct, non-zero values (seeded). */
export function fakeTrace(seed = 3): TraceResult {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  const T = 5, L = 3, pCorrupt = 0.05 + rnd() * 0.01;
  const grid = () => Array.from({ length: T }, () => Array.from({ length: L }, () => pCorrupt + rnd() * 0.8));
  const traces = (["hidden", "mlp", "attn"] as const).map((kind) => {
    const scores = grid();
    return {
      kind,
      scores,
      effects: scores.map((r) => r.map((v) => v - pCorrupt)),
      window: kind === "hidden" ? 1 : 3,
    };
  });
  return {
    ids: [0, 17, 23, 5, 9, 41],
    promptLength: T,
    subjectRange: [1, 3],
    nLayer: L,
    answer: [41],
    predicted: 41,
    known: true,
    pClean: 0.9,
    pCorrupt,
    metricClean: 0.9,
    metricCorrupt: pCorrupt,
    metric: "prob",
    corruption: { kind: "noise", dist: "gaussian", replace: false },
    totalEffect: 0.9 - pCorrupt,
    noiseStd: 0.1,
    samples: 3,
    seed: 1,
    noiseRng: "numpy",
    targetProb: "first",
    traces,
    stats: { forwards: 1, sequences: 1, seconds: 0 },
  };
}

export const metrics = (x: number): Metrics & { reliability: number } => ({
  reliability: x,
  generalization: x / 2,
  locality: 0.9,
  portability: null,
  fluency: 5.5,
  efficacy_score: x,
  efficacy_magnitude: 0.1,
  paraphrase_score: x,
  paraphrase_magnitude: 0.1,
  neighborhood_score: 0.8,
  neighborhood_magnitude: 0.1,
  score: 0.7,
});

/** A two-request eval result with per-case scores. */
export function fakeEval(): MethodEvalResult {
  const kase = (i: number, rel: number) => ({
    case_id: i,
    subject: `S${i}`,
    target_new: `T${i}`,
    ...metrics(rel),
    portability: i === 0 ? 0.25 : null,
    pre: { ...metrics(0.1), locality: null, fluency: null, portability: i === 0 ? 0.5 : null },
  });
  return {
    method: "rome",
    mode: "single",
    n: 2,
    metrics: metrics(0.75),
    units: {} as MethodEvalResult["units"],
    pre_metrics: { ...metrics(0.1), locality: null, fluency: null },
    timing: { edit_s: 1, eval_s: 2, edit_s_per_request: 0.5 },
    hparams: {},
    warnings: [],
    per_case: [kase(0, 1), kase(1, 0.5)],
  };
}

/** Writes the three kinds of report into `dir` (used by the browser test too); returns their paths. */
export async function writeSampleReports(dir: string, png = false): Promise<Record<string, string>> {
  const r = fakeTrace(13);
  const cases = new Map(r.traces.map((t) => [t.kind, romeCaseOf(r, t.kind, tok)]));
  const objs = r.traces.map((t) => ({
    kind: t.kind,
    tokens: r.ids.slice(0, 5).map(tok.tokenString),
    subject_range: r.subjectRange,
    effects: t.effects,
    p_clean: r.pClean,
    p_corrupt: r.pCorrupt,
    total_effect: r.totalEffect,
    answer: tok.decode(r.answer),
    predicted: "w41",
    known: true,
    window: t.window,
    samples: 3,
    noise_std: 0.1,
  }));
  const single = await singleTraceFolder(JSON.stringify(objs), objs, cases, { png });
  const accs = new Map((["hidden", "mlp", "attn"] as const).map((k) => [k, new ClassAccumulator(3)]));
  const facts = [fakeTrace(1), fakeTrace(2), fakeTrace(4)].map((t, i) => {
    for (const k of t.traces) accs.get(k.kind)!.add(k.scores, t.pCorrupt, i === 2 ? [1, 4] : [1, 3]);
    return { id: `f${i}`, cases: new Map(t.traces.map((k) => [k.kind, romeCaseOf(t, k.kind, tok)])) };
  });
  const averages = new Map([...accs].map(([k, a]) => [k, a.result()]));
  const out = {
    facts_file: "facts.jsonl",
    records: 4,
    traced: 3,
    unknown: 0,
    skipped_invalid: 1,
    pool: "token",
    layers: 3,
    mean_p_clean: 0.9,
    mean_p_corrupt: 0.05,
    mean_total_effect: 0.85,
    noise_std: 0.1,
    samples: 3,
    window: 10,
    kinds: Object.fromEntries(averages),
    facts: [
      ...facts.map((f) => ({ id: f.id, prompt: "p <b>", subject: "s", target: "t", traced: true })),
      { id: "bad", prompt: "x", subject: "y", target: null, traced: false, error: "no subject" },
    ],
  };
  const many = await factsTraceFolder(out, averages, facts, { window: 10, png });
  const paths: Record<string, string> = {};
  for (const [name, files] of [["trace", single], ["facts", many]] as const) {
    await Deno.mkdir(join(dir, name));
    for (const [f, data] of Object.entries(files)) {
      await Deno.writeFile(
        join(dir, name, f),
        typeof data === "string" ? new TextEncoder().encode(data) : data,
      );
    }
    paths[name] = join(dir, name, "report.html");
  }
  paths.eval = join(dir, "eval.html");
  await Deno.writeTextFile(paths.eval, evalReportHtml([fakeEval(), { ...fakeEval(), method: "memit" }]));
  return paths;
}

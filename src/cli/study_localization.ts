/**
 * `engram study localization --model DIR --data FILE --out DIR [--limit N] [--methods rome,memit,ft-1,ft-5]
 * [--objectives all|error_injection,tracing_reversal,fact_erasure,fact_amplification,fact_forcing] [--layers L,L|A-B] [--trace-window 5]
 * [--edit-window 5] [--samples 10] [--noise s3|STD] [--noise-rng numpy|mulberry32] [--seed 1]
 * [--target-prob sequence|first] [--keep-unknown] [--min-pred-prob 0.02] [--hparams FILE|METHOD=FILE,...]
 * [--stats-corpus FILE | --stats FILE[,FILE]] [--bos auto|on|off] [--json]`: Hase et al.'s localization
 * study (src/evaluate/localization/study.ts) on a CounterFact-format file; the --out folder resumes.
 * `--noise s3` is 3 × the std of the token embeddings of the cases' subjects (ROME's basis).
 */
import { InputError } from "../errors.ts";
import { loadModel } from "../model/load.ts";
import { parseLayers } from "../edit/hparams.ts";
import { checkStatsSource, resolveStatsSource, type StatsSource } from "../edit/stats.ts";
import { embeddingStd, NOISE_RNGS, type NoiseRng } from "../locate/patching.ts";
import type { TargetProb } from "../locate/trace.ts";
import {
  type Objective,
  OBJECTIVES,
  STUDY_METHODS,
  type StudyMethod,
} from "../evaluate/localization/objectives.ts";
import { runLocalizationStudy, STUDY_DEFAULTS } from "../evaluate/localization/study.ts";
import { editsPerCase, methodSpec } from "../evaluate/localization/objectives.ts";
import { checkFtOverrides } from "../evaluate/localization/case.ts";
import { bosFlag, intFlag, numFlag, parseFlags, required } from "./args.ts";
import { readEvalRequests } from "./eval.ts";
import { type HparamsByMethod, readHparamsFlag, validateHparams } from "./hparams_flag.ts";
import { type NoiseFlag, parseNoiseFlag } from "./trace.ts";
import { dirname } from "node:path";
import { checkOutputs, realPathOf } from "../io/output_paths.ts";
import { acquireLocks, releaseLocks } from "../io/lock.ts";
import type { EditRequest } from "../prompt/requests.ts";
import { progress } from "./progress.ts";

function list<T extends string>(v: unknown, known: readonly T[], dflt: T[], flag: string): T[] {
  if (typeof v !== "string") return dflt;
  const xs = v.split(",").map((x) => x.trim()).filter((x) => x !== "");
  for (const x of xs) {
    if (!known.includes(x as T)) {
      throw new InputError(`${flag}: unknown value '${x}' (known: ${known.join(", ")})`, { field: flag });
    }
  }
  if (new Set(xs).size !== xs.length) throw new InputError(`${flag} lists a value twice`, { field: flag });
  if (xs.length === 0) throw new InputError(`${flag} is empty`, { field: flag });
  return xs as T[];
}

/** Runs `study localization` (argv after the study name). */
export async function localizationStudyCommand(argv: string[]): Promise<void> {
  const f = parseFlags("study localization", argv, {
    model: { type: "string" },
    data: { type: "string" },
    out: { type: "string" },
    limit: { type: "string" },
    methods: { type: "string" },
    objectives: { type: "string" },
    layers: { type: "string" },
    "trace-window": { type: "string" },
    "edit-window": { type: "string" },
    samples: { type: "string" },
    noise: { type: "string" },
    "noise-rng": { type: "string" },
    seed: { type: "string" },
    "target-prob": { type: "string" },
    "keep-unknown": { type: "boolean" },
    "min-pred-prob": { type: "string" },
    hparams: { type: "string" },
    "stats-corpus": { type: "string" },
    stats: { type: "string" },
    bos: { type: "string" },
    json: { type: "boolean" },
  });
  const modelDir = required(f, "model", "study localization");
  const dataFile = required(f, "data", "study localization");
  const out = required(f, "out", "study localization");
  const methods = list<StudyMethod>(f.methods, STUDY_METHODS, [...STUDY_METHODS], "--methods");
  const objectives = f.objectives === "all"
    ? [...OBJECTIVES]
    : list<Objective>(f.objectives, OBJECTIVES, ["error_injection"], "--objectives");
  const noiseRng = list<NoiseRng>(f["noise-rng"], NOISE_RNGS, [STUDY_DEFAULTS.noiseRng], "--noise-rng")[0];
  const targetProb = list<TargetProb>(
    f["target-prob"],
    ["sequence", "first"],
    [STUDY_DEFAULTS.targetProb],
    "--target-prob",
  )[0];
  const noise = parseNoiseFlag((f.noise as string | undefined) ?? "s3");
  const hparamsBy = await readHparamsFlag(f.hparams as string | undefined, methods);
  const statsSrc = await resolveStatsSource(
    modelDir,
    typeof f["stats-corpus"] === "string" ? f["stats-corpus"] : undefined,
    typeof f.stats === "string" ? f.stats : undefined,
  );
  for (const m of methods) checkStatsSource(methodSpec(m).editor, hparamsBy.get(m)?.hparams, statsSrc);
  const { requests: all } = await readEvalRequests(dataFile);
  const limit = intFlag(f, "limit", all.length, 1, all.length);
  const requests = all.slice(0, limit);
  // --out is never an input (nor inside or around one), and one study writes a folder at a time; an
  // existing folder is resumed (src/evaluate/localization/folder.ts checks it is this study's).
  await checkOutputs([{ path: out, flag: "--out" }], [
    { path: modelDir, flag: "--model" },
    { path: dataFile, flag: "--data" },
    ...[...hparamsBy.values()].filter((e) => e.file).map((e) => ({ path: e.file!, flag: "--hparams" })),
    ...(typeof f["stats-corpus"] === "string" ? [{ path: f["stats-corpus"], flag: "--stats-corpus" }] : []),
    ...(statsSrc.stats ?? []).map((p) => ({ path: p, flag: "--stats" })),
  ]);
  await Deno.mkdir(dirname(await realPathOf(out)), { recursive: true });
  const locks = await acquireLocks([{ path: await realPathOf(out), flag: "--out" }]);
  try {
    await studyWith(
      f,
      modelDir,
      dataFile,
      out,
      requests,
      methods,
      objectives,
      noiseRng,
      targetProb,
      noise,
      hparamsBy,
      statsSrc,
    );
  } finally {
    await releaseLocks(locks);
  }
}

async function studyWith(
  f: Record<string, string | boolean | undefined>,
  modelDir: string,
  dataFile: string,
  out: string,
  requests: EditRequest[],
  methods: StudyMethod[],
  objectives: Objective[],
  noiseRng: NoiseRng,
  targetProb: TargetProb,
  noise: NoiseFlag,
  hparamsBy: HparamsByMethod,
  statsSrc: StatsSource,
): Promise<void> {
  const lm = await loadModel(modelDir, { bos: bosFlag(f) });
  try {
    if (!lm.tokenizer) {
      throw new InputError(`${modelDir} has no tokenizer`, { file: modelDir, field: "--model" });
    }
    const tok = lm.tokenizer, model = lm.model, cfg = model.config;
    const layers = typeof f.layers === "string"
      ? parseLayers(f.layers)
      : Array.from({ length: cfg.nLayer }, (_, i) => i);
    for (const m of methods) {
      const e = hparamsBy.get(m);
      if (!e) continue;
      const editor = methodSpec(m).editor;
      if (editor === "ft") checkFtOverrides(e.hparams, e.file);
      else validateHparams(editor, e.hparams, cfg, e.file);
    }
    let noiseStd: number;
    if ("absolute" in noise) noiseStd = noise.absolute;
    else {
      // ROME's s3 basis (collect_embedding_std): each case's subject tokenized alone.
      const ids = requests.flatMap((r) => tok.encode(r.subject));
      noiseStd = noise.multiple * embeddingStd(model.weights, cfg.nEmbd, ids, model.spec.embed);
    }
    const units = requests.length * (1 + editsPerCase(methods, objectives, layers.length));
    const bar = progress("study localization (traces + edits)", units);
    const res = await runLocalizationStudy(model, tok, requests, {
      out,
      modelName: modelDir,
      dataFile,
      settings: {
        methods,
        objectives,
        layers,
        traceWindow: intFlag(f, "trace-window", STUDY_DEFAULTS.traceWindow, 1),
        editWindow: intFlag(f, "edit-window", STUDY_DEFAULTS.editWindow, 1),
        samples: intFlag(f, "samples", STUDY_DEFAULTS.samples, 1),
        noiseStd,
        seed: intFlag(f, "seed", STUDY_DEFAULTS.seed, 0, 2 ** 32 - 1),
        noiseRng,
        targetProb,
        knownOnly: f["keep-unknown"] !== true,
        minPredProb: numFlag(f, "min-pred-prob", STUDY_DEFAULTS.minPredProb, 0, 1),
      },
      edit: {
        hparams: Object.fromEntries([...hparamsBy].map(([m, e]) => [m, e.hparams])),
        statsCorpus: statsSrc.statsCorpus,
        stats: statsSrc.stats,
      },
      onProgress: (d, _t, text) => bar.update(d, text),
    });
    bar.done();
    const s = res.summary;
    if (f.json) console.log(JSON.stringify(s, null, 2));
    else {
      console.log(
        `${res.resumed ? "resumed" : "new"} study in ${out}: ${s.cases} cases (${res.newCases} run now), ` +
          `${s.dropped.length} dropped, ${s.edits} edits; report: ${out}/report.html`,
      );
      // |v| < 5e-4 prints 0.000 (not -0.000 for an R² a rounding below zero).
      const fx = (v: number | null) => (v === null ? "-" : (Math.abs(v) < 5e-4 ? 0 : v).toFixed(3));
      console.log("method  objective            metric        n   R2 layer  R2 trace  R2 both  added R2  p");
      for (const r of s.regressions.filter((x) => x.regressor === "max_token")) {
        console.log(
          `${r.method.padEnd(7)} ${r.objective.padEnd(20)} ${r.metric.padEnd(12)} ${
            String(r.n).padStart(3)
          }  ${fx(r.r2Layer).padStart(8)}  ${fx(r.r2Trace).padStart(8)}  ${fx(r.r2Both).padStart(7)}  ${
            fx(r.r2Added).padStart(8)
          }  ${fx(r.fTest.p)}`,
        );
      }
      for (const d of s.dropped) console.log(`dropped record ${d.index}: ${d.dropped}`);
      for (const u of s.unsupported) console.log(`not run: ${u.method} cannot run ${u.objective}`);
    }
  } finally {
    lm.model.destroy();
  }
}

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
import { editsPerCase, EMBEDDING_LAYER, methodSpec } from "../evaluate/localization/objectives.ts";
import { checkFtOverrides } from "../evaluate/localization/case.ts";
import { bosFlag, COMMON_FLAGS, intFlag, numFlag, required } from "./args.ts";
import { type CommandSpec, parseCommand } from "./spec.ts";
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

/** Flags and help of `engram study localization`. */
export const localizationStudySpec: CommandSpec = {
  name: "study localization",
  summary: "Hase et al. 2023: does localization (causal tracing) predict where editing succeeds?",
  usage:
    "study localization --model DIR --data FILE --out DIR [--limit N] [--methods rome,memit,ft-1,ft-5] " +
    "[--objectives error_injection,...|all] [--layers L,..] [--trace-window W] [--edit-window W] [--samples N] " +
    "[--noise X|sK] [--seed S] [--keep-unknown] [--hparams M=FILE,...] [--stats-corpus FILE | --stats FILE] " +
    "[--bos auto|on|off] [--json]",
  description: `For each CounterFact-format case: the tracing effect per layer at the subject's last token
    (hidden, MLP, attention), an edit at every layer (or --layers) with each method and objective, scored
    with belief-localization's rewrite score and CounterFact's efficacy, paraphrase and neighborhood scores;
    then linear models of edit success on the tracing effect, the layer (one-hot) and both, with R², the
    added R² of tracing over the layer and its F-test. --out holds per-case JSON (kept: a rerun resumes),
    summary.json, SVG figures and report.html.`,
  flags: {
    model: COMMON_FLAGS.model,
    data: { type: "string", value: "FILE", required: true, help: "CounterFact-format cases" },
    out: { type: "string", value: "DIR", required: true, help: "the study folder (resumed when it exists)" },
    limit: { type: "int", value: "N", default: "all", unit: "cases", help: "study the first N cases" },
    methods: { type: "string", value: "M,..", default: "rome,memit,ft-1,ft-5", help: "editing methods" },
    objectives: {
      type: "string",
      value: "O,..|all",
      default: "error_injection",
      help: "error_injection, tracing_reversal, fact_erasure, fact_amplification, fact_forcing, or all",
    },
    layers: { type: "string", value: "L,..", default: "every layer", help: "layers edited" },
    embeddings: {
      type: "boolean",
      help: "also edit the embeddings (layer -1: FT-1 on the subject's token rows)",
    },
    "trace-window": { type: "int", value: "W", default: 5, unit: "layers", help: "tracing window" },
    "edit-window": { type: "int", value: "W", default: 5, unit: "layers", help: "layers MEMIT / FT-5 edit" },
    samples: { type: "int", value: "N", default: 10, help: "noise samples of the trace" },
    noise: { type: "string", value: "X|sK", default: "s3", help: "noise std (as trace --noise)" },
    "noise-rng": { type: "string", choices: NOISE_RNGS, default: "numpy", help: "noise generator" },
    seed: { type: "int", value: "S", default: 1, help: "seed of the noise" },
    "target-prob": {
      type: "string",
      choices: ["sequence", "first"],
      default: "sequence",
      help: "p(answer): the product over its tokens, or its first token",
    },
    "keep-unknown": { type: "boolean", help: "keep cases the model does not know" },
    "min-pred-prob": {
      type: "number",
      value: "P",
      default: 0.02,
      help: "drop cases whose clean p(target_true) is below P (belief-localization's min_pred_prob)",
    },
    "score-prob": {
      type: "string",
      choices: ["sequence", "mean"],
      default: "sequence",
      help: "P in the scores: product of the answer's token probabilities (the reference), or exp(-mean NLL)",
    },
    "forcing-eval": {
      type: "string",
      choices: ["noised", "clean"],
      default: "noised",
      help: "measure fact_forcing edits with the subject noised (the reference) or on clean prompts",
    },
    hparams: { type: "string", value: "M=FILE,..", help: "hparams per method (as eval --hparams)" },
    "stats-corpus": { type: "string", value: "FILE", help: "corpus of the key statistics (ROME / MEMIT)" },
    stats: { type: "string", value: "FILE[,FILE]", help: "prebuilt key statistics" },
    bos: COMMON_FLAGS.bos,
    json: COMMON_FLAGS.json,
  },
  examples: [
    "study localization --model fixtures/world/model --data fixtures/world/counterfact.json --out out/loc " +
    "--limit 2 --methods ft-1 --layers 0,1",
  ],
};

/** Runs `study localization` (argv after the study name). */
export async function localizationStudyCommand(argv: string[]): Promise<void> {
  const f = parseCommand(localizationStudySpec, argv);
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
    const layers = [
      ...(f.embeddings === true ? [EMBEDDING_LAYER] : []),
      ...(typeof f.layers === "string"
        ? parseLayers(f.layers)
        : Array.from({ length: cfg.nLayer }, (_, i) => i)),
    ];
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
    const units = requests.length * (1 + editsPerCase(methods, objectives, layers));
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
        scoreProb: list<"sequence" | "mean">(
          f["score-prob"],
          ["sequence", "mean"],
          [STUDY_DEFAULTS.scoreProb],
          "--score-prob",
        )[0],
        // Only a study with Fact Forcing records how it is measured (other folders keep their settings).
        ...(objectives.includes("fact_forcing")
          ? {
            forcingEval: list<"noised" | "clean">(
              f["forcing-eval"],
              ["noised", "clean"],
              ["noised"],
              "--forcing-eval",
            )[0],
          }
          : {}),
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
    if (f.json) console.log(JSON.stringify(res.summaryJson, null, 2));
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

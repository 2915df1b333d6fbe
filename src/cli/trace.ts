/**
 * `engram trace`: causal tracing (ROME) of one prompt or of many facts, with ROME-style SVG heatmaps.
 *
 * One prompt: `--json` prints {"schema": "engram-trace/1", "traces": [...]} with one object per kind —
 * {"kind", "tokens", "subject_range" ([a, b), indices into tokens), "layers", "p_clean", "p_corrupt",
 * "effects" ([token][layer] indirect effects p_restored - p_corrupt), "scores" (p_restored),
 * "total_effect", ...}, in the order hidden, mlp, attn for `--kind all` (the default).
 * `--facts FILE` traces many facts and prints the token-class averages (see src/locate/average.ts).
 *
 * Defaults and conventions (documented in the usage text too):
 * - `--bos auto` (the default) does what the model's tokenizer does (src/prompt): HF GPT-2 adds no BOS,
 *   so a trace runs on exactly the ids of ROME's `make_inputs`; the world model's tokenizer config
 *   declares the end-of-text prefix it was trained with. `--bos on|off` forces it.
 * - `--noise s3` (default) is 3 x the std of token-embedding values, measured over all of wte for one
 *   prompt; with --facts over the tokens of every subject in the file, also with --limit (ROME's
 *   collect_embedding_std over the knowns);
 *   `--noise-basis` overrides; `--noise 0.1` is an absolute std.
 * - `--window` (default 10, ROME's) larger than the model is clipped to the model's layers, as ROME's
 *   `trace_important_window` does; a warning says so only when --window was given.
 * - Noise values: `--noise-rng numpy` (default) draws numpy's RandomState(--seed).randn, ROME's exact
 *   noise; `--noise-rng mulberry32` is engram's earlier generator.
 * - The answer is the target's first token (`--target-prob first`, ROME's definition) or the product over
 *   its tokens (`--target-prob sequence`); without --target, the model's own top-1 prediction.
 * - Whether the model knows a fact follows `--known` (src/locate/known.ts): `whole` (default, ROME's:
 *   the decoded top-1 token, trimmed, equals the whole target), `greedy` (the greedy continuation as long
 *   as the target equals it), `first` (top-1 equals the target's first token). An unknown fact is traced
 *   anyway for one prompt ("known": false plus a warning); with --facts it is dropped before tracing
 *   (counted in "skipped_unknown") unless --include-unknown. A known fact is traced on the model's own
 *   greedy tokens, as ROME traces its top-1 `answer_t`.
 * - `--pool token` (default, ROME's notebook) or `prompt` chooses how the facts' averages pool the
 *   middle-subject and further tokens (src/locate/average.ts).
 * - Corruption (src/locate/corruption.ts): `--corruption noise` (default) with `--noise-dist gaussian`
 *   (default, ROME's `s<k>`), `uniform` (ROME's `u<x>`: --noise X is the half-width), `mvn` / `t` (ROME's
 *   `m` / `t<d>`, `--noise-df D`, default 3: a Gaussian fitted to the token embeddings of the
 *   --noise-basis; --noise X multiplies the draws, default 1) and `--noise-replace` (ROME's `--replace`);
 *   or `--corruption tokens` (symmetric token replacement): the subject replaced by `--corrupt-subject S`
 *   (the same token length), or with --facts by another subject of the file with the same token length
 *   (seeded by --seed), a fact without one dropped ("skipped_no_replacement").
 * - `--metric prob` (default, ROME's), `logprob` or `logit-diff` (`--counterfactual C`, its first token;
 *   with --facts a record's own `counterfactual` field wins):
 *   the scores, effects and averages are in the metric's units; p_clean / p_corrupt stay probabilities.
 */
import { InputError } from "../errors.ts";
import { loadHFModel } from "../io/hf_model.ts";
import { commitStaged, stageDir } from "../io/atomic.ts";
import { guardOutputs } from "./outputs.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import { getGpu } from "../gpu/device.ts";
import { CLASS_POOLS, type ClassAverage, type ClassPool } from "../locate/average.ts";
import type {
  ClassAverageOutput,
  TraceFactsOutput,
  TraceKindOutput,
  TraceOutput,
} from "../schema/trace_output.ts";
import { schemaTag } from "../schema/common.ts";
import { traceFacts } from "../locate/trace_facts.ts";
import { readTraceFacts } from "../prompt/facts.ts";
import {
  greedyContinuation,
  greedyLength,
  KNOWN_RULES,
  knownByRule,
  type KnownRule,
} from "../locate/known.ts";
import { embeddingStd, NOISE_RNGS, type NoiseRng } from "../locate/patching.ts";
import { embeddingGaussian, NOISE_DISTS, type NoiseDist, subjectReplacement } from "../locate/corruption.ts";
import { encodeFact, encodeTarget, type FactInput } from "../prompt/encode.ts";
import { type FactWhere, withFieldNames } from "../prompt/errors.ts";
import {
  causalTrace,
  CORRUPTION_KINDS,
  type TargetProb,
  TRACE_KINDS,
  TRACE_METRICS,
  type TraceCorruption,
  type TraceKind,
  type TraceMetric,
  type TraceResult,
} from "../locate/trace.ts";
import { romeCaseOf } from "../report/heatmap.ts";
import { type FactCases, factsTraceFolder, singleTraceFolder } from "../report/trace_folder.ts";
import { bosFlag, choiceFlag, COMMON_FLAGS, FACT_FLAGS, intFlag, required } from "./args.ts";
import { type CommandSpec, parseCommand } from "./spec.ts";
import { log } from "./log.ts";
import { progress } from "./progress.ts";
import { uploadModel, weightsFlag } from "./upload.ts";

/** A parsed `--noise` value: an absolute std, or a multiple of the measured embedding std ("s3"). */
export type NoiseFlag = { absolute: number } | { multiple: number };

/** Parses `--noise`: "s<k>" (k x embedding std) or a plain non-negative number (absolute std). */
export function parseNoiseFlag(v: string): NoiseFlag {
  if (v.trim() === "s") return { multiple: 1 }; // ROME's parse_noise_rule: a bare "s" is factor 1
  const m = /^s(\d+(?:\.\d*)?|\.\d+)$/.exec(v.trim());
  if (m) return { multiple: Number(m[1]) };
  const n = Number(v);
  if (v.trim() !== "" && Number.isFinite(n) && n >= 0) return { absolute: n };
  throw new InputError(
    `--noise must be a number >= 0 (absolute std) or s<k> (k x embedding std), got '${v}'`,
    {
      field: "--noise",
    },
  );
}

/**
 * ROME's other `--noise_level` codes, accepted by `trace --noise` beside s<k> and numbers: `u<x>` (uniform
 * noise of half-width x), `t<d>` (Student t with d degrees of freedom), `m` (multivariate Gaussian); the
 * same as `--noise-dist uniform --noise x`, `--noise-dist t --noise-df d`, `--noise-dist mvn`. Undefined
 * for any other value.
 */
export function romeNoiseRule(v: string): { dist: NoiseDist; noise: string; df?: number } | undefined {
  const t = v.trim();
  if (t === "m") return { dist: "mvn", noise: "1" };
  const m = /^([ut])(\d+(?:\.\d*)?|\.\d+)$/.exec(t);
  if (!m) return undefined;
  return m[1] === "u" ? { dist: "uniform", noise: m[2] } : { dist: "t", noise: "1", df: Number(m[2]) };
}

function warn(msg: string): void {
  log.warn(msg);
}

/** The JSON object of one kind of a single-prompt trace. */
/** The run's fields every kind of a one-prompt trace repeats. */
type TraceExtra = Omit<TraceKindOutput, keyof ReturnType<typeof kindBase>> & Pick<TraceKindOutput, "known">;

function kindJson(
  r: TraceResult,
  i: number,
  tokens: string[],
  tok: Tokenizer,
  extra: TraceExtra,
): TraceKindOutput {
  return { ...kindBase(r, i, tokens, tok), ...extra };
}

function kindBase(r: TraceResult, i: number, tokens: string[], tok: Tokenizer) {
  const t = r.traces[i];
  return {
    tokens: tokens.slice(0, r.promptLength),
    subject_range: r.subjectRange,
    layers: r.nLayer,
    kind: t.kind,
    p_clean: r.pClean,
    p_corrupt: r.pCorrupt,
    effects: t.effects,
    total_effect: r.totalEffect,
    scores: t.scores,
    window: t.window,
    answer_ids: r.answer,
    answer: tok.decode(r.answer),
    predicted: tok.tokenString(r.predicted),
    known: r.known,
    target_prob: r.targetProb,
    samples: r.samples,
    noise_std: r.noiseStd,
    seed: r.seed,
  };
}

/** A token-class average as written (snake_case keys). */
function classAverageJson(a: ClassAverage): ClassAverageOutput {
  return {
    classes: a.classes,
    pool: a.pool,
    mean: a.mean,
    ci95: a.ci95,
    count: a.count,
    prompts: a.prompts,
    low_score: a.lowScore,
  };
}

function peak(grid: number[][]): { token: number; layer: number; value: number } {
  let best = { token: 0, layer: 0, value: -Infinity };
  grid.forEach((row, t) =>
    row.forEach((v, l) => v > best.value && (best = { token: t, layer: l, value: v }))
  );
  return best;
}

/** Flags and help of `engram trace`. */
export const traceSpec: CommandSpec = {
  name: "trace",
  summary: "causal tracing (ROME): restore hidden / MLP / attention states after corrupting the subject",
  usage: 'trace --model DIR (--prompt "..." --subject S [--target T] | --facts FILE [--limit N] ' +
    "[--include-unknown]) [--kind hidden|mlp|attn|all] [--samples N] [--noise X|sK] [--noise-basis wte|subjects] " +
    "[--window W] [--seed S] [--noise-rng numpy|mulberry32] [--known whole|greedy|first] [--pool token|prompt] " +
    "[--target-prob first|sequence] [--bos auto|on|off] [--batch-rows N] [--unbatched] " +
    "[--corruption noise|tokens] [--corrupt-subject S] [--noise-dist gaussian|uniform|mvn|t] [--noise-df D] " +
    "[--noise-replace] [--metric prob|logprob|logit-diff --counterfactual C] [--out DIR] [--json]",
  description: `One prompt: --json prints {"schema": "engram-trace/1", "traces": [one object per kind
    ({"kind", "tokens", "subject_range", "layers", "p_clean", "p_corrupt", "effects" [token][layer], "scores",
    "total_effect", ...}): hidden, mlp, attn for --kind all]}. --facts (known_1000.json or world prompt JSONL)
    prints token-class averages with 95% CIs ("engram-trace-facts/1"; schemas/ has both). Scores are in the
    --metric's units; the JSON names the corruption and the metric.

    Defaults are ROME's: the answer is the target's first token (or the model's prediction); a fact the model
    does not know (--known) is traced anyway for one prompt, dropped with --facts; a window larger than the
    model is clipped to its layers (a warning only when --window was given).`,
  flags: {
    model: COMMON_FLAGS.model,
    prompt: { type: "string", value: '"..."', help: "the prompt traced" },
    subject: { type: "string", value: "S", help: "the subject corrupted, a substring of the prompt" },
    target: { type: "string", value: "T", default: "the model's top-1 prediction", help: "the answer" },
    facts: {
      type: "string",
      value: "FILE",
      help: "trace many facts (ROME's known_1000.json or world prompt JSONL) and average by token class",
    },
    limit: { type: "int", value: "N", default: "all", unit: "facts", help: "trace the first N facts" },
    "include-unknown": { type: "boolean", help: "with --facts, trace facts the model does not know too" },
    known: {
      type: "string",
      choices: KNOWN_RULES,
      default: "whole",
      help: "when the model knows a fact: whole (ROME: the decoded top-1 token is the target), greedy (the " +
        "greedy continuation is the target), first (top-1 is the target's first token)",
    },
    pool: {
      type: "string",
      choices: CLASS_POOLS,
      default: "token",
      help:
        "how the averages pool middle-subject and further tokens: per token (ROME's notebook) or per prompt",
    },
    "noise-rng": {
      type: "string",
      choices: NOISE_RNGS,
      default: "numpy",
      help: "noise generator: numpy's RandomState (ROME's exact noise) or mulberry32 (engram's earlier one)",
    },
    kind: {
      type: "string",
      choices: ["hidden", "mlp", "attn", "all"],
      default: "all",
      help: "states restored",
    },
    samples: { type: "int", value: "N", default: 10, help: "noise samples per restored state" },
    noise: {
      type: "string",
      value: "X|sK|uX|tD|m",
      default: "s3",
      help:
        "noise std: absolute X, or sK = K x the std of the embeddings (--noise-basis); ROME's codes uX, tD, m " +
        "pick --noise-dist uniform / t / mvn",
    },
    "noise-basis": {
      type: "string",
      choices: ["wte", "subjects"],
      default: "wte (subjects with --facts)",
      help: "what sK measures the std over: all of wte, or the tokens of every subject in --facts",
    },
    window: {
      type: "int",
      value: "W",
      default: 10,
      unit: "layers",
      help: "MLP / attention states restored together, centred on each layer (clipped to the model)",
    },
    seed: { type: "int", value: "S", default: 1, help: "seed of the noise" },
    "target-prob": {
      type: "string",
      choices: ["first", "sequence"],
      default: "first",
      help: "p(answer): its first token's probability (ROME) or the product over its tokens",
    },
    bos: COMMON_FLAGS.bos,
    weights: COMMON_FLAGS.weights,
    "prefix-eos": COMMON_FLAGS["prefix-eos"],
    "batch-rows": {
      type: "int",
      value: "N",
      default: 4096,
      unit: "rows",
      help: "most sequences x tokens run in one batched forward",
    },
    unbatched: { type: "boolean", help: "one forward per restored state (slower; the batched path's check)" },
    corruption: {
      type: "string",
      choices: CORRUPTION_KINDS,
      default: "noise",
      help: "how the subject is corrupted: ROME's noise, or symmetric token replacement (Zhang & Nanda 2024)",
    },
    "corrupt-subject": {
      type: "string",
      value: "S",
      default: "with --facts: a same-length subject of the file",
      help: "--corruption tokens: the subject put in place of the prompt's (the same token length)",
    },
    "noise-dist": {
      type: "string",
      choices: NOISE_DISTS,
      default: "gaussian",
      help:
        "ROME's noise rules: gaussian (s<k>), uniform (u<x>: --noise X is the half-width), mvn (m) and t " +
        "(t<d>): a Gaussian fitted to the --noise-basis embeddings, --noise X multiplies (default 1)",
    },
    "noise-df": { type: "int", value: "D", default: 3, help: "degrees of freedom of --noise-dist t" },
    "noise-replace": {
      type: "boolean",
      help: "set the subject's token embeddings to the noise instead of adding it (ROME's --replace)",
    },
    metric: {
      type: "string",
      choices: TRACE_METRICS,
      default: "prob",
      help: "what is restored: the answer's probability (ROME's), its log-probability, or the logit " +
        "difference of the answer's and --counterfactual's first tokens",
    },
    counterfactual: {
      type: "string",
      value: "C",
      help: "the counterfactual answer of --metric logit-diff (with --facts: for records without their own " +
        "`counterfactual` field)",
    },
    out: {
      type: "string",
      value: "DIR",
      help: "write trace.json, trace_KIND.{svg,png,npz} (ROME's case record) and report.html to DIR; with " +
        "--facts average.json, average_KIND.{svg,png}, aie_lines.{svg,png}, knowledge_ID[_KIND].npz, report.html",
    },
    json: COMMON_FLAGS.json,
  },
  examples: [
    'trace --model fixtures/world/model --prompt "Narnux Zava was born in" --subject "Narnux Zava" --out out/trace',
    "trace --model fixtures/world/model --facts fixtures/world/train_prompts.jsonl --limit 60 --kind all --window 1",
  ],
};

/** Entry point of `engram trace`. */
export async function traceCommand(argv: string[]): Promise<void> {
  const f = parseCommand(traceSpec, argv);
  const modelDir = required(f, "model", "trace");
  const kindFlag = choiceFlag(f, "kind", ["hidden", "mlp", "attn", "all"] as const, "all");
  const kinds: TraceKind[] = kindFlag === "all" ? [...TRACE_KINDS] : [kindFlag];
  const samples = intFlag(f, "samples", 10, 1, 10000);
  const window = intFlag(f, "window", 10, 1, 100000);
  const seed = intFlag(f, "seed", 1, 0, 2 ** 32 - 1);
  const maxRows = intFlag(f, "batch-rows", 4096, 1, 1 << 24);
  const targetProb = choiceFlag(f, "target-prob", ["first", "sequence"] as const, "first") as TargetProb;
  const bos = bosFlag(f);
  const knownRule: KnownRule = choiceFlag(f, "known", KNOWN_RULES, "whole");
  const pool: ClassPool = choiceFlag(f, "pool", CLASS_POOLS, "token");
  const noiseRng: NoiseRng = choiceFlag(f, "noise-rng", NOISE_RNGS, "numpy");
  const corruptionKind = choiceFlag(
    f,
    "corruption",
    CORRUPTION_KINDS,
    f["corrupt-subject"] !== undefined ? "tokens" : "noise",
  );
  if (corruptionKind === "noise" && f["corrupt-subject"] !== undefined) {
    throw new InputError("--corrupt-subject is symmetric token replacement: it takes --corruption tokens", {
      field: "--corrupt-subject",
    });
  }
  if (corruptionKind === "tokens") {
    for (const k of ["noise", "noise-dist", "noise-df", "noise-replace", "noise-rng", "noise-basis"]) {
      if (f[k] !== undefined) {
        throw new InputError(`--${k} does not apply to --corruption tokens`, { field: `--${k}` });
      }
    }
  }
  // ROME's codes u<x>, t<d>, m in --noise stand for --noise-dist (and --noise-df); not both.
  const rule = typeof f.noise === "string" ? romeNoiseRule(f.noise) : undefined;
  if (rule && (f["noise-dist"] !== undefined || f["noise-df"] !== undefined)) {
    throw new InputError(
      `--noise ${f.noise} is ROME's code for --noise-dist ${rule.dist}: give one or the other`,
      { field: "--noise" },
    );
  }
  const noiseDist: NoiseDist = rule?.dist ?? choiceFlag(f, "noise-dist", NOISE_DISTS, "gaussian");
  const fitted = noiseDist === "mvn" || noiseDist === "t";
  if (f["noise-df"] !== undefined && noiseDist !== "t") {
    throw new InputError("--noise-df is the degrees of freedom of --noise-dist t", { field: "--noise-df" });
  }
  const noiseDf = rule?.df ?? (f["noise-df"] === undefined ? 3 : Number(f["noise-df"]));
  if (!(Number.isFinite(noiseDf) && noiseDf > 2)) {
    throw new InputError(`t noise needs degrees of freedom > 2, got '${rule ? f.noise : f["noise-df"]}'`, {
      field: rule ? "--noise" : "--noise-df",
    });
  }
  const noise = parseNoiseFlag(rule?.noise ?? (f.noise as string | undefined) ?? (fitted ? "1" : "s3"));
  if (fitted && "multiple" in noise) {
    throw new InputError(
      `--noise s<k> does not apply to --noise-dist ${noiseDist}: its scale is the fitted covariance ` +
        `(--noise X multiplies the draws, 1 by default)`,
      { field: "--noise" },
    );
  }
  const metric: TraceMetric = choiceFlag(f, "metric", TRACE_METRICS, "prob");
  const factsFile = f.facts as string | undefined;
  // With --facts a record's own `counterfactual` field may stand in for --counterfactual.
  if (
    metric !== "logit-diff" ? f.counterfactual !== undefined : f.counterfactual === undefined && !factsFile
  ) {
    throw new InputError(
      "--counterfactual is needed with --metric logit-diff (with --facts: or a counterfactual field per " +
        "record), and only there",
      { field: "--counterfactual" },
    );
  }
  if (
    factsFile !== undefined && (f.prompt !== undefined || f.subject !== undefined || f.target !== undefined)
  ) {
    throw new InputError("give either --facts or --prompt/--subject/--target, not both", {
      field: "--facts",
    });
  }
  const basis = choiceFlag(f, "noise-basis", ["wte", "subjects"] as const, factsFile ? "subjects" : "wte");
  let prompt = "", subject = "";
  if (factsFile === undefined) {
    prompt = required(f, "prompt", "trace");
    subject = required(f, "subject", "trace");
  }

  const outDir = f.out as string | undefined;
  // --out is written as one folder at the end (staged, then renamed): a killed trace leaves no partial
  // --out. It replaces an earlier engram output or an empty folder, never a folder engram did not write.
  const guard = await guardOutputs("trace", [{ path: outDir, flag: "--out" }], [
    { path: modelDir, flag: "--model" },
    { path: factsFile, flag: "--facts" },
  ], { overwrite: true });
  try {
    await traceWith(f, outDir, {
      modelDir,
      kindFlag,
      kinds,
      samples,
      window,
      seed,
      maxRows,
      targetProb,
      bos,
      knownRule,
      pool,
      noiseRng,
      noise,
      factsFile,
      basis,
      prompt,
      subject,
      corruptionKind,
      noiseDist,
      noiseDf,
      metric,
    });
  } finally {
    await guard.release();
  }
}

/** Writes the `--out` folder `dir` holding `files` (see traceCommand). */
async function writeOut(dir: string, files: Record<string, string | Uint8Array>): Promise<void> {
  await commitStaged([await stageDir(dir, files, { kind: "trace", flag: "--out" })], { overwrite: true });
}

/** The parsed trace flags (see traceCommand). */
interface TraceSettings {
  modelDir: string;
  kindFlag: TraceKind | "all";
  kinds: TraceKind[];
  samples: number;
  window: number;
  seed: number;
  maxRows: number;
  targetProb: TargetProb;
  bos: ReturnType<typeof bosFlag>;
  knownRule: KnownRule;
  pool: ClassPool;
  noiseRng: NoiseRng;
  noise: NoiseFlag;
  factsFile: string | undefined;
  basis: "wte" | "subjects";
  prompt: string;
  subject: string;
  corruptionKind: (typeof CORRUPTION_KINDS)[number];
  noiseDist: NoiseDist;
  noiseDf: number;
  metric: TraceMetric;
}

async function traceWith(
  f: Record<string, string | boolean | undefined>,
  outDir: string | undefined,
  o: TraceSettings,
): Promise<void> {
  const {
    modelDir,
    kinds,
    samples,
    window,
    seed,
    maxRows,
    targetProb,
    bos,
    knownRule,
    pool,
    noiseRng,
    noise,
    factsFile,
    basis,
    prompt,
    subject,
    corruptionKind,
    noiseDist,
    noiseDf,
    metric,
  } = o;
  const hf = await loadHFModel(modelDir, { bos });
  const tok = hf.tokenizer;
  if (!tok) throw new InputError(`${modelDir} has no tokenizer files`, { file: modelDir, field: "--model" });
  const prefixEos = tok.bosId !== undefined;
  // One encoding for every command (src/prompt): BOS policy, subject span, target spacing, context check.
  const encodeOpts = (where?: FactWhere) => ({
    nPositions: hf.config.nPositions,
    appendTarget: targetProb === "sequence",
    where,
  });
  const encode = (fact: FactInput, where?: FactWhere) => {
    const e = encodeFact(tok, fact, encodeOpts(where));
    const ids = e.ids.slice(0, e.promptLength);
    return {
      ids,
      tokens: ids.map((id) => tok.tokenString(id)),
      subjectRange: e.subjectRange,
      answer: e.target,
    };
  };
  const L = hf.config.nLayer;
  // ROME clips the window silently; say so only when the user chose the window.
  if (window > L && kinds.some((k) => k !== "hidden")) {
    const msg = `--window ${window} is larger than the model's ${L} layers; clipped to ${L}`;
    // The default window (ROME's 10) is clipped on every small model: only --log-level debug says so.
    if (f.window !== undefined) warn(msg);
    else log.debug(`${msg} (the default window)`);
  }
  const model = uploadModel(await getGpu(), hf, weightsFlag(f));
  const C = hf.config.nEmbd;
  const noiseStdFor = (subjects: string[]): number => {
    if ("absolute" in noise) return noise.absolute;
    const ids = basis === "wte" ? undefined : subjects.flatMap((s) => tok.encode(s));
    return noise.multiple * embeddingStd(hf.weights, C, ids, model.spec.embed);
  };
  const counterfactual = metric === "logit-diff" && f.counterfactual !== undefined
    ? withFieldNames({ target: "--counterfactual" }, () => encodeTarget(tok, String(f.counterfactual))[0])
    : undefined;
  const common = {
    samples,
    window,
    seed,
    noiseRng,
    targetProb,
    maxRows,
    batched: !f.unbatched,
    kinds,
    metric,
    counterfactual,
  };
  // The noise corruption for the subjects `subjects` (the --noise-basis of s<k> and of the mvn / t fit).
  const noiseCorruption = (subjects: string[]): TraceCorruption => {
    const corruption: TraceCorruption = { kind: "noise", dist: noiseDist, replace: !!f["noise-replace"] };
    if (noiseDist === "t") corruption.df = noiseDf;
    if (noiseDist === "mvn" || noiseDist === "t") {
      const ids = basis === "wte" ? undefined : subjects.flatMap((s) => tok.encode(s));
      corruption.fit = embeddingGaussian(hf.weights, C, ids, model.spec.embed);
    }
    return corruption;
  };
  const corruptionJson = (r: TraceResult, replacement?: string): TraceKindOutput["corruption"] =>
    r.corruption.kind === "tokens"
      ? { ...r.corruption, subject: replacement ?? null }
      : { ...r.corruption, noise_rng: noiseRng };
  const metricJson = (r: TraceResult) => ({
    metric: r.metric,
    counterfactual: (f.counterfactual as string | undefined) ?? null,
    counterfactual_id: r.counterfactual ?? null,
    metric_clean: r.metricClean,
    metric_corrupt: r.metricCorrupt,
  });

  try {
    if (factsFile === undefined) {
      const input = withFieldNames(
        FACT_FLAGS,
        () => encode({ prompt, subject, target: f.target as string | undefined }),
      );
      const answer = input.answer;
      if (answer && answer.length > 1 && targetProb === "first") {
        warn(
          `target '${f.target}' is ${answer.length} tokens; scoring its first token (use --target-prob sequence for all)`,
        );
      }
      const tokens = corruptionKind === "tokens";
      const replacement = f["corrupt-subject"] as string | undefined;
      if (tokens && replacement === undefined) {
        throw new InputError(
          "--corruption tokens on one prompt needs --corrupt-subject S (a subject of the same token length)",
          { field: "--corrupt-subject" },
        );
      }
      const corruption: TraceCorruption = tokens
        ? {
          kind: "tokens",
          ids: subjectReplacement(
            tok,
            { prompt, subject, target: f.target as string | undefined },
            replacement!,
            encodeOpts(),
            "--corrupt-subject",
          ),
        }
        : noiseCorruption([subject]);
      const noiseStd = tokens ? 0 : noiseStdFor([subject]);
      const noiseLabel = noiseDist === "gaussian"
        ? "std"
        : `${noiseDist}${noiseDist === "t" ? `(${noiseDf})` : ""} scale`;
      let bar: ReturnType<typeof progress> | undefined;
      const r = await causalTrace(model, input.ids, input.subjectRange, {
        ...common,
        noiseStd,
        corruption,
        answer,
        onProgress: (d, t) => (bar ??= progress("trace (sequences)", t)).update(d),
      });
      bar?.done();
      let known = r.known;
      if (answer) {
        const k = greedyLength(knownRule, answer);
        const greedy = k === 1 ? [r.predicted] : await greedyContinuation(model, input.ids, k, "--target");
        known = knownByRule(knownRule, tok, greedy, f.target as string, answer);
        if (!known) {
          warn(
            `the model does not know this fact (--known ${knownRule}): its greedy answer is ` +
              `'${tok.decode(greedy)}', the target '${f.target}' (traced anyway)`,
          );
        }
      }
      const extra: TraceExtra = {
        ids: input.ids,
        prompt,
        subject,
        target: (f.target as string | undefined) ?? null,
        known,
        known_rule: knownRule,
        noise_rng: noiseRng,
        corruption: corruptionJson(r, replacement),
        ...metricJson(r),
        bos: prefixEos,
        batched: !f.unbatched,
        forwards: r.stats.forwards,
        seconds: r.stats.seconds,
      };
      const objs = r.traces.map((_, i) => kindJson(r, i, input.tokens, tok, extra));
      const doc: TraceOutput = { schema: schemaTag("trace", 1), traces: objs };
      const json = JSON.stringify(doc);
      if (outDir) {
        const cases = new Map(r.traces.map((t) => [t.kind, romeCaseOf(r, t.kind, tok)]));
        await writeOut(outDir, await singleTraceFolder(json, objs, cases));
      }
      if (f.json) console.log(json);
      else {
        console.log(
          `prompt: ${JSON.stringify(prompt)}  subject: ${JSON.stringify(subject)} tokens [${r.subjectRange}]`,
        );
        console.log(
          `answer ${JSON.stringify(tok.decode(r.answer))}${
            known ? "" : ` (not known by --known ${knownRule})`
          }: ` + (r.metric === "prob"
            ? ""
            : `${r.metric} clean ${r.metricClean.toFixed(4)} corrupt ${r.metricCorrupt.toFixed(4)}  `) +
            `p_clean ${r.pClean.toFixed(4)}  p_corrupt ${r.pCorrupt.toFixed(4)}  total effect ${
              r.totalEffect.toFixed(4)
            }  ` +
            `(${
              tokens
                ? `subject replaced by ${JSON.stringify(replacement)}`
                : `noise ${noiseLabel} ${noiseStd.toPrecision(3)}${f["noise-replace"] ? " (replacing)" : ""}`
            }, ${r.samples} samples, ${r.stats.forwards} forwards, ${r.stats.seconds.toFixed(2)} s)`,
        );
        for (const t of r.traces) {
          const p = peak(t.effects);
          console.log(
            `${t.kind}: peak indirect effect ${p.value.toFixed(4)} at token ${p.token} ` +
              `(${JSON.stringify(input.tokens[p.token])}) layer ${p.layer}`,
          );
        }
        if (outDir) {
          console.log(`wrote ${outDir}/trace.json, report.html and trace_{${kinds.join(",")}}.{svg,png,npz}`);
        }
      }
      return;
    }

    // Many facts: the library's workflow (src/locate/trace_facts.ts), printed and written here.
    const all = await readTraceFacts(factsFile);
    const limit = intFlag(f, "limit", all.length, 1, all.length);
    const facts = all.slice(0, limit);
    const tokens = corruptionKind === "tokens";
    const factCases: FactCases[] = []; // ROME's per-case records, for --out
    let invalidWarnings = 0;
    const bar = progress(`trace ${facts.length} facts`, facts.length);
    const ft = await traceFacts(model, tok, facts, {
      kinds,
      samples,
      window,
      seed,
      noiseRng,
      targetProb,
      maxRows,
      batched: !f.unbatched,
      metric,
      counterfactual,
      noise,
      // ROME measures the s3 noise over the subjects of the whole facts file, whatever is traced.
      noiseFacts: all,
      noiseBasis: basis,
      corruption: tokens ? { kind: "tokens", subject: f["corrupt-subject"] as string | undefined } : {
        kind: "noise",
        dist: noiseDist,
        replace: !!f["noise-replace"],
        ...(noiseDist === "t" ? { df: noiseDf } : {}),
      },
      corruptSubjectField: "--corrupt-subject",
      known: knownRule,
      includeUnknown: !!f["include-unknown"],
      pool,
      file: factsFile,
      onFact: (done, _total, traced) => bar.update(done, `traced ${traced}`),
      onInvalid: (fact, e) => {
        invalidWarnings++;
        if (invalidWarnings <= 3) warn(`fact ${fact.id} skipped: ${e.message}`);
      },
      onTraced: (fact, r) => {
        if (outDir) {
          factCases.push({
            id: fact.id,
            cases: new Map(r.traces.map((t) => [t.kind, romeCaseOf(r, t.kind, tok)])),
          });
        }
      },
    }).finally(() => bar.done());
    const acc = ft.averages;
    const traced = ft.traced;
    const skipped = { unknown: ft.unknown, first_token_only: ft.unknownFirstTokenOnly, invalid: ft.invalid };
    const perFact = ft.facts.map((o, i) => ({
      id: o.id,
      prompt: facts[i].prompt,
      subject: facts[i].subject,
      target: facts[i].target ?? null,
      ...(o.known !== undefined ? { known: o.known, greedy: o.greedy } : {}),
      ...(o.reason !== undefined ? { reason: o.reason } : {}),
      ...(o.corruptSubject !== undefined && o.traced ? { corrupt_subject: o.corruptSubject } : {}),
      ...(o.counterfactual !== undefined ? { counterfactual: o.counterfactual } : {}),
      ...(o.traced
        ? {
          p_clean: o.pClean,
          p_corrupt: o.pCorrupt,
          metric_clean: o.metricClean,
          metric_corrupt: o.metricCorrupt,
          predicted: o.predicted,
        }
        : {}),
      traced: o.traced,
      ...(o.error !== undefined ? { error: o.error } : {}),
    }));
    const kindsOut: TraceFactsOutput["kinds"] = {};
    for (const [k, a] of acc) kindsOut[k] = classAverageJson(a);
    const out: TraceFactsOutput = {
      schema: schemaTag("trace-facts", 1),
      facts_file: factsFile,
      records: facts.length,
      traced,
      known_rule: knownRule,
      include_unknown: !!f["include-unknown"],
      skipped_unknown: f["include-unknown"] ? 0 : ft.unknown,
      unknown: ft.unknown,
      unknown_first_token_only: ft.unknownFirstTokenOnly,
      skipped_invalid: ft.invalid,
      pool,
      without_target: ft.withoutTarget,
      layers: L,
      mean_p_clean: ft.meanPClean,
      mean_p_corrupt: ft.meanPCorrupt,
      mean_total_effect: ft.meanMetricClean - ft.meanMetricCorrupt,
      metric,
      counterfactual: (f.counterfactual as string | undefined) ?? null,
      counterfactual_id: counterfactual ?? null,
      mean_metric_clean: ft.meanMetricClean,
      mean_metric_corrupt: ft.meanMetricCorrupt,
      corruption: tokens
        ? {
          kind: "tokens",
          subject: (f["corrupt-subject"] as string | undefined) ?? null,
          drawn: f["corrupt-subject"] === undefined,
        }
        : ft.corruption?.kind === "noise"
        ? { ...ft.corruption, noise_rng: noiseRng }
        : undefined,
      skipped_no_replacement: ft.noReplacement,
      noise_std: ft.noiseStd,
      noise_basis: "absolute" in noise ? "absolute" : basis,
      samples,
      window,
      seed,
      noise_rng: noiseRng,
      target_prob: targetProb,
      bos: prefixEos,
      forwards: ft.forwards,
      seconds: ft.seconds,
      kinds: kindsOut,
      facts: perFact,
    };
    const json = JSON.stringify(out);
    if (outDir) await writeOut(outDir, await factsTraceFolder(out, acc, factCases, { window }));
    if (f.json) console.log(json);
    else {
      console.log(
        `traced ${traced} of ${facts.length} facts (${skipped.unknown} not known by --known ${knownRule}` +
          `${
            f["include-unknown"] ? ", traced anyway" : " dropped"
          }, ${skipped.first_token_only} of them with ` +
          `the right first token; ${skipped.invalid} invalid); mean p_clean ${
            out.mean_p_clean.toFixed(4)
          }, ` +
          `p_corrupt ${out.mean_p_corrupt.toFixed(4)}`,
      );
      console.log(`classes pooled by ${pool}${pool === "token" ? " (ROME's notebook)" : ""}; n = samples`);
      for (const [k, res] of acc) {
        console.log(`${k}: AIE by token class (max over layers):`);
        res.classes.forEach((c, j) => {
          const p = peak([res.mean[j]]);
          console.log(`  ${c.padEnd(24)} n=${res.count[j]}  max ${p.value.toFixed(4)} at layer ${p.layer}`);
        });
      }
      if (outDir) {
        console.log(
          `wrote ${outDir}/average.json, report.html, aie_lines.svg and average_{${kinds.join(",")}}.svg ` +
            `(PNGs beside them) and ROME's knowledge_<id>.npz per fact`,
        );
      }
    }
  } finally {
    model.destroy();
  }
}

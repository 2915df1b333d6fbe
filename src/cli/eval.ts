/**
 * `engram eval --method M[,M2,...] --model DIR --data FILE [--limit N] [--mode single|sequential|batch]
 * [--hparams FILE|JSON|M=FILE,M2=FILE] [--stats-corpus FILE | --stats FILE[,FILE]] [--fluency-len N]
 * [--fluency-top-k K] [--seed S] [--bos auto|on|off] [--wild] [--json] [--table FILE] [--out FILE]
 * [--format engram|easyedit] [--report FILE]`: edits the model with each method
 * on the data set's requests (EasyEdit CounterFact / MEND zsRE / ROME CounterFact JSON), measures
 * KnowEdit's and CounterFact's metrics (src/evaluate/edit_metrics.ts) and restores the model. Every
 * hparams file is checked before any work; --out and --table are rewritten (atomically) as soon as each
 * method finishes. The input model folder is never written. `--mode sequential --every M` runs the
 * sequential-editing curve instead (src/cli/eval_sequential.ts: `--ppl-text FILE`, `--out DIR`, resumable;
 * a method `NAME+nas` or `--nas` switches NAS on). `--wild` adds the wild scores (src/evaluate/wild.ts).
 *
 * `--format easyedit` writes --out in EasyEdit's `all_metrics` layout (src/evaluate/easyedit_format.ts;
 * per-request scores are collected for it): the list for one method, `{method: list}` for several.
 * With --out, a self-contained HTML report is written too: `--report FILE`, by default --out with its
 * extension replaced by `.html`.
 */
import { InputError } from "../errors.ts";
import { getGpu } from "../gpu/device.ts";
import { configFromHF, loadHFModel } from "../io/hf_model.ts";
import { getEditor } from "../edit/editors.ts";
import { checkLayers, parseLayers } from "../edit/hparams.ts";
import { type EditRequest, parseRequestRecord, parseRequests } from "../prompt/requests.ts";
import { type EditMode, evaluateMethod, type MethodEvalResult } from "../evaluate/edit_metrics.ts";
import {
  type EvalRunResult,
  markdownTable,
  resultsJson,
  writeResultsJson,
  writeTable,
} from "../evaluate/report.ts";
import { checkStatsSource, resolveStatsSource } from "../edit/stats.ts";
import { bosFlag, COMMON_FLAGS, intFlag, required } from "./args.ts";
import { type CommandSpec, parseCommand } from "./spec.ts";
import { log } from "./log.ts";
import { readHparamsFlag, validateHparams } from "./hparams_flag.ts";
import { progress } from "./progress.ts";
import { guardOutputs } from "./outputs.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { easyEditCases } from "../evaluate/easyedit_format.ts";
import { evalReportHtml } from "../report/reports.ts";
import type { EvalSequentialOutput } from "../schema/eval_sequential_output.ts";
import { schemaTag } from "../schema/common.ts";

/** The default `--report` of `--out FILE`: FILE with its extension replaced by ".html". */
export function reportPathFor(out: string): string {
  const m = /^(.*[^/])\.[^./]+$/.exec(out);
  const html = m ? `${m[1]}.html` : `${out}.report.html`;
  return html === out ? `${m![1]}.report.html` : html;
}

/** --out in EasyEdit's layout: the all_metrics list of one method, {method: list} for several. */
function easyEditJson(results: MethodEvalResult[], requests: EditRequest[]): string {
  const lists = results.map((r) => [r.method, easyEditCases(r, requests)] as const);
  return JSON.stringify(lists.length === 1 ? lists[0][1] : Object.fromEntries(lists), null, 2);
}
import { evalSequential, parseMethodSpec } from "./eval_sequential.ts";
import { readPerplexityText } from "../evaluate/perplexity.ts";
import { uploadModel, weightsFlag } from "./upload.ts";

/**
 * Reads edit requests for evaluation. As EasyEdit's ZsreDataset, MEND zsRE records with an empty `alt`
 * are skipped (their count is returned); every other record must parse (errors name record and field).
 */
export async function readEvalRequests(file: string): Promise<{ requests: EditRequest[]; skipped: number }> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new InputError(`cannot read data: ${(e as Error).message}`, { file, field: "--data" });
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return { requests: parseRequests(text, file), skipped: 0 }; // JSON lines, or a parse error naming the line
  }
  const list = Array.isArray(data) ? data : [data];
  if (list.length === 0) throw new InputError("data file holds no records", { file, field: "--data" });
  const requests: EditRequest[] = [];
  let skipped = 0;
  list.forEach((r, i) => {
    const rec = r as Record<string, unknown>;
    if (
      rec && typeof rec === "object" && "src" in rec && typeof rec.alt === "string" && rec.alt.trim() === ""
    ) {
      skipped++;
      return;
    }
    requests.push(parseRequestRecord(r, i, file));
  });
  if (requests.length === 0) {
    throw new InputError(`all ${skipped} records have an empty 'alt'`, { file, field: "alt" });
  }
  return { requests, skipped };
}

/** Flags and help of `engram eval`. */
export const evalSpec: CommandSpec = {
  name: "eval",
  summary: "edit with each method and measure EasyEdit's and CounterFact's metrics (KnowEdit-style table)",
  usage: "eval --method M[,M2,...] --model DIR --data FILE [--limit N] [--mode single|sequential|batch] " +
    "[--batch-size N] [--layers L] [--hparams FILE|JSON|M=FILE,M2=FILE] [--bos auto|on|off] [--fluency-len N] " +
    "[--fluency-top-k K] [--seed S] [--stats-corpus FILE | --stats FILE[,FILE]] [--per-case] [--table FILE] " +
    "[--out FILE] [--format engram|easyedit] [--report FILE] [--wild] [--json] | --mode sequential --every M " +
    "[--batch-size B] [--ppl-text FILE] [--nas] [--nas-samples K] --out DIR",
  description:
    `Edits the model with each method (ft-l, ft, kn, rome, memit, alphaedit, emmet) on the data set's
    requests (EasyEdit CounterFact, MEND zsRE or ROME CounterFact JSON) and measures reliability,
    generalization, locality, portability, fluency (in bits; EasyEdit prints x100) and CounterFact's ES / PS /
    NS, restoring the model after each. Every hparams file is checked before any work; --out and --table are
    rewritten as each method finishes. The input model folder is never written. --json and --out print one
    {"schema": "engram-eval/1", "results": [one per method]} document (schemas/engram-eval.json).`,
  flags: {
    method: { type: "string", value: "M[,M2,...]", required: true, help: "edit methods, comma-separated" },
    model: COMMON_FLAGS.model,
    data: { type: "string", value: "FILE", required: true, help: "the data set (JSON or JSONL records)" },
    limit: { type: "int", value: "N", default: "all", unit: "records", help: "evaluate the first N records" },
    mode: {
      type: "string",
      choices: ["single", "sequential", "batch"],
      default: "single",
      help: "single: each request on the unedited model; sequential: edits accumulate; batch: --batch-size " +
        "requests per edit",
    },
    "batch-size": { type: "int", value: "N", default: "--limit", help: "requests per edit of --mode batch" },
    layers: {
      type: "string",
      value: "L,..",
      default: "the method's",
      help: "layers to edit, comma-separated",
    },
    hparams: {
      type: "string",
      value: "FILE|JSON|M=FILE,...",
      help: "hyper-parameters: one file or inline JSON for every method, or METHOD=FILE pairs",
    },
    "stats-corpus": {
      type: "string",
      value: "FILE",
      help: 'corpus of the key statistics C = E[kk^T] of ROME / MEMIT (JSONL with "text", or plain text)',
    },
    stats: {
      type: "string",
      value: "FILE[,FILE]",
      help: "prebuilt key statistics: ROME's *_mom2_100000.npz, engram .safetensors, or folders of them",
    },
    bos: COMMON_FLAGS.bos,
    weights: COMMON_FLAGS.weights,
    "prefix-eos": COMMON_FLAGS["prefix-eos"],
    "fluency-tokens": {
      type: "int",
      value: "N",
      unit: "tokens",
      help: "the older fluency length: N new tokens (instead of --fluency-len)",
    },
    "fluency-len": {
      type: "int",
      value: "N",
      default: 100,
      unit: "tokens",
      help: "fluency generation length, prompt included (ROME's max_out_len)",
    },
    "fluency-top-k": {
      type: "int",
      value: "K",
      default: 5,
      help: "top-k sampling of the fluency generation",
    },
    seed: { type: "int", value: "S", default: 0, help: "seed of the fluency sampling" },
    "per-case": { type: "boolean", help: "keep every request's metrics in the results" },
    table: { type: "string", value: "FILE", help: "write a KnowEdit-style Markdown table to FILE" },
    out: {
      type: "string",
      value: "FILE",
      help: "write the results as JSON to FILE (and an HTML report beside it)",
    },
    format: {
      type: "string",
      choices: ["engram", "easyedit"],
      default: "engram",
      help:
        "layout of --out: engram's results, or EasyEdit's per-request metric dicts (pre/post, rewrite_acc, ...)",
    },
    report: {
      type: "string",
      value: "FILE",
      default: "OUT.html",
      help: "where the self-contained HTML report of --out goes",
    },
    wild: {
      type: "boolean",
      help: "also score greedy answers without teacher forcing (Yang et al. 2025: wild_exact, wild_contains)",
    },
    every: {
      type: "int",
      value: "M",
      unit: "edits",
      help: "--mode sequential: a record every M edits (reliability, generalization, locality on the facts " +
        "edited so far, perplexity, weight norms; SVG curves) in --out DIR; a rerun resumes",
    },
    "ppl-text": {
      type: "string",
      value: "FILE",
      help: "held-out text of the sequential records' perplexity",
    },
    "ppl-lines": { type: "int", value: "N", unit: "lines", help: "lines of --ppl-text used" },
    nas: { type: "boolean", help: "NAS norm anchoring for every method (a method NAME+nas does it for one)" },
    "nas-samples": {
      type: "int",
      value: "K",
      help: "requests whose mean solved value norm is NAS's reference (default: the first batch)",
    },
    json: COMMON_FLAGS.json,
  },
  examples: [
    "eval --method rome,memit,ft-l --hparams rome=fixtures/world/model/hparams/rome.json," +
    "memit=fixtures/world/model/hparams/memit.json --model fixtures/world/model " +
    "--data fixtures/world/counterfact.json --limit 50 --table out/edits.md --out out/edits.json",
  ],
};

/** Runs `eval`. */
export async function evalCommand(argv: string[]): Promise<void> {
  const f = parseCommand(evalSpec, argv);
  const format = f.format ?? "engram";
  if (format !== "engram" && format !== "easyedit") {
    throw new InputError(`--format must be engram or easyedit, got '${f.format}'`, { field: "--format" });
  }
  if (typeof f.report === "string" && typeof f.out !== "string") {
    throw new InputError("--report needs --out", { field: "--report" });
  }
  if (typeof f.out === "string" && f.report === undefined) f.report = reportPathFor(f.out);
  const methods = required(f, "method", "eval").split(",").map((m) => m.trim());
  const base = (m: string) => parseMethodSpec(m).method;
  for (const m of methods) getEditor(base(m)); // unknown method: lists the known ones
  if (new Set(methods).size !== methods.length) {
    throw new InputError(`--method lists a method twice`, { field: "--method" });
  }
  const mode = (f.mode ?? "single") as EditMode;
  if (!["single", "sequential", "batch"].includes(mode)) {
    throw new InputError(`--mode must be single, sequential or batch, got '${f.mode}'`, { field: "--mode" });
  }
  const bos = bosFlag(f);
  const layers = typeof f.layers === "string" ? parseLayers(f.layers) : undefined;
  const hparamsBy = await readHparamsFlag(f.hparams as string | undefined, [
    ...new Set([...methods, ...methods.map(base)]),
  ]);
  const hpOf = (m: string) => hparamsBy.get(m) ?? hparamsBy.get(base(m));
  const sequentialCurve = mode === "sequential" && f.every !== undefined;
  if (f.every !== undefined && !sequentialCurve) {
    throw new InputError("--every applies to --mode sequential", { field: "--every" });
  }
  if (f["fluency-tokens"] !== undefined && f["fluency-len"] !== undefined) {
    throw new InputError("give --fluency-len (ROME's max_out_len) or the older --fluency-tokens, not both", {
      field: "--fluency-tokens",
    });
  }
  // ROME's max_out_len counts the prompt; --fluency-tokens N (engram's older flag) means N new tokens.
  const fluencyTokens = f["fluency-tokens"] !== undefined
    ? intFlag(f, "fluency-tokens", 100, 0, 100000)
    : undefined;
  const fluencyMaxLen = intFlag(f, "fluency-len", 100, 0, 100000);
  const fluencyTopK = intFlag(f, "fluency-top-k", 5, 1, 1 << 30);
  const fluencySeed = intFlag(f, "seed", 0, 0, 2 ** 32 - 1);
  const dataFile = required(f, "data", "eval");
  const modelDir = required(f, "model", "eval");
  const statsSrc = await resolveStatsSource(
    modelDir,
    typeof f["stats-corpus"] === "string" ? f["stats-corpus"] : undefined,
    typeof f.stats === "string" ? f.stats : undefined,
  );
  for (const m of methods) checkStatsSource(base(m), hpOf(m)?.hparams, statsSrc);
  const { requests: all, skipped } = await readEvalRequests(dataFile);
  const limit = intFlag(f, "limit", all.length, 1, all.length);
  const editBatchSize = intFlag(f, "batch-size", sequentialCurve ? 1 : limit, 1, limit);
  const requests = all.slice(0, limit);
  if (skipped) log.info(`skipped ${skipped} records with an empty 'alt' (as EasyEdit does)`);

  // Check every method's hparams against the model's config before loading weights or editing.
  let cfgText: string | undefined;
  try {
    cfgText = await Deno.readTextFile(`${modelDir}/config.json`);
  } catch {
    cfgText = undefined; // loadHFModel reports the missing or unreadable model below
  }
  if (cfgText !== undefined) {
    let cfgJson: unknown;
    try {
      cfgJson = JSON.parse(cfgText);
    } catch {
      cfgJson = undefined;
    }
    if (cfgJson !== undefined) {
      const cfg = configFromHF(cfgJson, `${modelDir}/config.json`);
      if (layers) checkLayers(layers, cfg);
      for (const m of methods) {
        const e = hpOf(m);
        if (e) validateHparams(base(m), e.hparams, cfg, e.file);
      }
    }
  }
  // --out and --table never touch an input; one eval per output file at a time.
  const guard = await guardOutputs("eval", [
    { path: f.out as string | undefined, flag: "--out" },
    { path: f.table as string | undefined, flag: "--table" },
    { path: f.report as string | undefined, flag: "--report" },
  ], [
    { path: modelDir, flag: "--model" },
    { path: dataFile, flag: "--data" },
    ...methods.map((m) => ({ path: hpOf(m)?.file, flag: "--hparams" })),
    { path: f["ppl-text"] as string | undefined, flag: "--ppl-text" },
    { path: f["stats-corpus"] as string | undefined, flag: "--stats-corpus" },
    { path: statsSrc.declared?.file, flag: "the corpus of engram_stats.json" },
    ...(statsSrc.stats ?? []).map((p) => ({ path: p, flag: "--stats" })),
  ], sequentialCurve ? { folders: true } : { files: true });
  try {
    if (sequentialCurve) {
      const every = intFlag(f, "every", 1, 1, limit);
      const pplTexts = typeof f["ppl-text"] === "string"
        ? await readPerplexityText(f["ppl-text"], intFlag(f, "ppl-lines", 256, 1, 1 << 30))
        : undefined;
      const hf = await loadHFModel(modelDir, { bos });
      if (!hf.tokenizer) {
        throw new InputError(`${modelDir} has no tokenizer files`, { file: modelDir, field: "--model" });
      }
      const curves = await evalSequential(methods, hf.config, hf.weights, hf.tokenizer, requests, {
        every,
        batchSize: editBatchSize,
        editOptions: (m) => ({
          layers,
          statsCorpus: statsSrc.statsCorpus,
          stats: statsSrc.stats,
          hparams: { ...(hpOf(m)?.hparams ?? {}), ...(f.nas ? { nas: true } : {}) },
        }),
        pplTexts,
        wild: Boolean(f.wild),
        nasSamples: f["nas-samples"] !== undefined ? intFlag(f, "nas-samples", 1, 1, limit) : undefined,
        out: typeof f.out === "string" ? f.out : undefined,
        meta: { data: dataFile, model: modelDir, ppl_text: f["ppl-text"] },
        weightDtypes: weightsFlag(f) === "auto" ? hf.dtypes : undefined,
      });
      if (f.json) {
        // The curves as runSequential returns them (snake_case), under the schema's name.
        const out = { schema: schemaTag("eval-sequential", 1), curves } as EvalSequentialOutput;
        console.log(JSON.stringify(out, null, 2));
      } else {
        for (const c of curves) {
          for (const r of c.records) {
            const m = r.metrics;
            console.log(
              `${c.label} ${r.edits}: reliability ${m.reliability?.toFixed(3)} generalization ${
                m.generalization?.toFixed(3)
              } locality ${m.locality?.toFixed(3)} perplexity ${r.perplexity?.toFixed(3) ?? "–"}`,
            );
          }
        }
      }
      return;
    }
    await evalWith(f, methods, mode, modelDir, dataFile, requests, layers, hparamsBy, statsSrc, {
      bos,
      editBatchSize,
      fluencyMaxLen,
      fluencyTokens,
      fluencyTopK,
      fluencySeed,
    });
  } finally {
    await guard.release();
  }
}

async function evalWith(
  f: Record<string, string | boolean | undefined>,
  methods: string[],
  mode: EditMode,
  modelDir: string,
  dataFile: string,
  requests: EditRequest[],
  layers: number[] | undefined,
  hparamsBy: Awaited<ReturnType<typeof readHparamsFlag>>,
  statsSrc: Awaited<ReturnType<typeof resolveStatsSource>>,
  o: {
    bos: ReturnType<typeof bosFlag>;
    editBatchSize: number;
    fluencyMaxLen: number;
    fluencyTokens: number | undefined;
    fluencyTopK: number;
    fluencySeed: number;
  },
): Promise<void> {
  const { bos, editBatchSize, fluencyMaxLen, fluencyTokens, fluencyTopK, fluencySeed } = o;
  const hf = await loadHFModel(modelDir, { bos });
  if (!hf.tokenizer) {
    throw new InputError(`${modelDir} has no tokenizer files`, { file: modelDir, field: "--model" });
  }
  const tokenizer = hf.tokenizer;
  const model = uploadModel(await getGpu(), hf, weightsFlag(f));
  // The editors and the metrics encode prompts with the tokenizer's BOS policy, decided at load.
  const usePrefix = tokenizer.bosId !== undefined;
  const results: EvalRunResult[] = [];
  const save = async () => {
    if (typeof f.table === "string") {
      await writeTable(f.table, results, { includePre: true, title: dataFile });
    }
    if (typeof f.out === "string") {
      if (f.format === "easyedit") await writeFileAtomic(f.out, easyEditJson(results, requests) + "\n");
      else await writeResultsJson(f.out, results);
    }
    if (typeof f.report === "string") {
      await writeFileAtomic(f.report, evalReportHtml(results, `engram eval: ${dataFile}`));
    }
  };
  try {
    for (const method of methods) {
      const bar = progress(`eval ${method} (${mode})`, requests.length);
      const spec = parseMethodSpec(method);
      const hpEntry = hparamsBy.get(method) ?? hparamsBy.get(spec.method);
      const res = await evaluateMethod(model, tokenizer, spec.method, requests, {
        mode,
        editBatchSize,
        fluencyMaxLen,
        fluencyTokens,
        fluencyTopK,
        fluencySeed,
        perCase: Boolean(f["per-case"]) || f.format === "easyedit",
        wild: Boolean(f.wild),
        edit: {
          layers,
          statsCorpus: statsSrc.statsCorpus,
          stats: statsSrc.stats,
          hparams: spec.nas || f.nas ? { ...(hpEntry?.hparams ?? {}), nas: true } : hpEntry?.hparams,
        },
        onProgress: (d, _t, text) => bar.update(d, text),
      });
      bar.done();
      results.push({
        ...res,
        method,
        ...{
          data: dataFile,
          model: modelDir,
          bos: usePrefix,
          hparams_file: hpEntry?.file,
        },
        ...{
          fluency_settings: {
            max_out_len: fluencyMaxLen,
            new_tokens: fluencyTokens,
            top_k: fluencyTopK,
            seed: fluencySeed,
          },
        },
      });
      await save(); // each method's results are on disk as soon as it finishes
    }
  } finally {
    model.destroy();
  }
  if (f.json) console.log(JSON.stringify(resultsJson(results), null, 2));
  else {
    console.log(markdownTable(results, { includePre: true }));
    for (const r of results) {
      console.log(
        `${r.method}: ${r.timing.edit_s_per_request.toFixed(2)} s per edit, ${
          r.timing.eval_s.toFixed(1)
        } s measuring`,
      );
      for (const w of r.warnings) console.log(`  warning: ${w}`);
    }
  }
}

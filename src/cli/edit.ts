/**
 * `engram edit --method rome|memit|alphaedit|emmet|ft|ft-l|kn --model DIR (--requests FILE | --prompt "{} is located in" --subject S
 * --target T [--ground-truth G]) [--layers 3,4] [--hparams FILE] [--stats-corpus FILE | --stats FILE[,FILE]]
 * [--stats-dir DIR] --out DIR [--log DIR] [--overwrite] [--save-f32] [--bos auto|on|off] [--json]`: edits a copy of the model and writes it to
 * --out (atomically), with the edit log in --log (default OUT.editlog) for `engram revert`. Each tensor
 * is written in the dtype of the source file (an F16/BF16 model stays F16/BF16: the edited weights are
 * rounded to it, and the model measured after the edit and the log's checksums are the rounded ones);
 * --save-f32 writes every tensor as F32 instead. ROME and MEMIT
 * need key statistics: a corpus (--stats-corpus, or the one the model folder declares in engram_stats.json)
 * or prebuilt files (--stats: ROME's *_mom2_100000.npz or engram .safetensors, or folders of them). It
 * prints, before and after the edit, p(target_new) and p(ground truth) on each request's prompt
 * (full-target probabilities) and the rank of target_new's first token, and warns when target_new did not
 * become the top prediction (src/evaluate/edit_check.ts).
 */
import { InputError } from "../errors.ts";
import { hfModelFiles, loadHFModel, savedDtype } from "../io/hf_model.ts";
import { roundToDtype } from "../io/safetensors.ts";
import { commitStaged, discardStaged, type StagedDir, stageDir } from "../io/atomic.ts";
import { EDIT_LINK, modelCopyFiles } from "../io/model_folder.ts";
import { getGpu } from "../gpu/device.ts";
import { TransformerModel } from "../model/transformer.ts";
import { applyEdit, editorNames } from "../edit/editors.ts";
import { applyComputed, type EditOptions } from "../edit/apply.ts";
import { alphaEditCompute, alphaEditHparams } from "../edit/alphaedit.ts";
import { ALPHAEDIT_STATE_FILE, alphaEditStateFile, priorAlphaEditState } from "../edit/alphaedit_state.ts";
import { parseLayers, readHparamsFile } from "../edit/hparams.ts";
import { validateHparams } from "./hparams_flag.ts";
import { editLogFiles } from "../edit/log.ts";
import { editLinkText } from "../edit/edit_link.ts";
import { type EditRequest, normalizeRequest, readRequests } from "../prompt/requests.ts";
import { withFieldNames } from "../prompt/errors.ts";
import { bosPrefix } from "../prompt/encode.ts";
import { resolveStatsSource } from "../edit/stats.ts";
import { fmtP, notTopWarning, requestStanding } from "../evaluate/edit_check.ts";
import { evaluateEdit } from "../evaluate/evaluate_edit.ts";
import { easyEditCasesOfEdit } from "../evaluate/easyedit_format.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { bosFlag, COMMON_FLAGS, FACT_FLAGS, required } from "./args.ts";
import { type CommandSpec, parseCommand } from "./spec.ts";
import { log } from "./log.ts";
import { progress } from "./progress.ts";
import { guardOutputs } from "./outputs.ts";
import type { EditOutput } from "../schema/edit_output.ts";
import { schemaTag, snakeKeys } from "../schema/common.ts";

/** Flags and help of `engram edit`. */
export const editSpec: CommandSpec = {
  name: "edit",
  summary:
    "rewrite facts (ROME, MEMIT, AlphaEdit, EMMET, FT, FT-L, KN); writes the edited model and an edit log",
  usage: "edit --method rome|memit|alphaedit|emmet|ft|ft-l|kn --model DIR (--requests FILE | " +
    '--prompt "{} is in" --subject S --target T [--ground-truth G]) [--layers L,..] [--hparams FILE] ' +
    "[--stats-corpus FILE | --stats FILE[,FILE]] [--stats-dir DIR] [--limit N] --out DIR [--log DIR] " +
    "[--overwrite] [--save-f32] [--reset-state] [--metrics-out FILE] [--bos auto|on|off] [--json]",
  description: `Edits a copy of the model and writes it to --out, with the edit log (default OUT.editlog) that
    engram revert undoes it with; the log is put in place first, so no edited model is ever without it. Each
    tensor keeps its file's dtype (an F16 / BF16 edit is rounded to it) unless --save-f32. Prints
    p(target_new) (the product over its tokens), its first token's rank and p(ground truth) before and after,
    and warns when target_new is not the top prediction afterwards. ROME and MEMIT need key statistics:
    --stats-corpus, --stats, or the corpus the model folder declares in engram_stats.json.`,
  flags: {
    method: {
      type: "string",
      required: true,
      choices: editorNames(),
      help: "the edit method",
    },
    model: COMMON_FLAGS.model,
    requests: {
      type: "string",
      value: "FILE",
      help: "edit requests (JSON / JSONL: prompt with {}, subject, target_new, ground_truth)",
    },
    prompt: { type: "string", value: '"{} is in"', help: "one request's prompt; {} marks the subject" },
    subject: { type: "string", value: "S", help: "one request's subject" },
    target: { type: "string", value: "T", help: "one request's new target (target_new)" },
    "ground-truth": {
      type: "string",
      value: "G",
      help: "one request's current answer (measured, not needed)",
    },
    layers: {
      type: "string",
      value: "L,..",
      default: "the method's",
      help: "layers to edit, comma-separated",
    },
    hparams: { type: "string", value: "FILE", help: "hyper-parameters (JSON) over the method's defaults" },
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
    "stats-dir": { type: "string", value: "DIR", help: "cache folder of computed key statistics" },
    limit: { type: "int", value: "N", help: "edit only the first N requests of --requests" },
    out: { type: "string", value: "DIR", required: true, help: "where the edited model is written" },
    log: { type: "string", value: "DIR", default: "OUT.editlog", help: "where the edit log is written" },
    overwrite: { type: "boolean", help: "replace output folders engram wrote before" },
    "save-f32": { type: "boolean", help: "write every tensor as float32 instead of its file's dtype" },
    "metrics-out": {
      type: "string",
      value: "FILE",
      help: "measure each request before and after the edit with eval's metrics and write EasyEdit's " +
        "per-request dicts (pre/post, rewrite_acc, rephrase_acc, locality, portability, fluency) to FILE",
    },
    "reset-state": {
      type: "boolean",
      help: "AlphaEdit: start from K_p K_pᵀ = 0 even when --model is an earlier AlphaEdit edit's output " +
        "(by default its log's saved state is continued)",
    },
    bos: COMMON_FLAGS.bos,
    json: COMMON_FLAGS.json,
  },
  examples: [
    "edit --method rome --model fixtures/world/model --hparams fixtures/world/model/hparams/rome.json " +
    '--prompt "{} was born in" --subject "Narnux Zava" --target Sunmere --ground-truth Frostwick --out out/edited',
  ],
};

/** Runs `edit`. */
export async function editCommand(argv: string[]): Promise<void> {
  const f = parseCommand(editSpec, argv);
  const method = required(f, "method", "edit");
  const bos = bosFlag(f);
  if (!editorNames().includes(method)) {
    throw new InputError(`unknown --method '${method}' (known: ${editorNames().join(", ")})`, {
      field: "--method",
    });
  }
  const modelDir = required(f, "model", "edit");
  const out = required(f, "out", "edit");
  const logDir = typeof f.log === "string" ? f.log : out.replace(/\/+$/, "") + ".editlog";
  let requests: EditRequest[];
  if (typeof f.requests === "string") {
    if (
      f.prompt !== undefined || f.subject !== undefined || f.target !== undefined ||
      f["ground-truth"] !== undefined
    ) {
      throw new InputError("give either --requests FILE or --prompt/--subject/--target, not both", {
        field: "--requests",
      });
    }
    requests = await readRequests(f.requests);
    if (typeof f.limit === "string") {
      const n = Number(f.limit);
      if (!Number.isInteger(n) || n < 1) {
        throw new InputError(`--limit must be a positive integer, got '${f.limit}'`, { field: "--limit" });
      }
      requests = requests.slice(0, n);
    }
  } else {
    const prompt = required(f, "prompt", "edit"), subject = required(f, "subject", "edit");
    const target = typeof f.target === "string" ? f.target : "";
    if (target.trim() === "") {
      throw new InputError("edit: --target is required and must not be empty", { field: "--target" });
    }
    const gt = typeof f["ground-truth"] === "string" && f["ground-truth"].trim() !== ""
      ? f["ground-truth"]
      : undefined;
    requests = [
      withFieldNames(
        FACT_FLAGS,
        () => normalizeRequest({ prompt, subject, target_new: target, ground_truth: gt }, "--prompt"),
      ),
    ];
  }
  const layers = typeof f.layers === "string" ? parseLayers(f.layers) : undefined;
  const hparams = typeof f.hparams === "string" ? await readHparamsFile(f.hparams) : undefined;
  if (hparams !== undefined && (typeof hparams !== "object" || hparams === null || Array.isArray(hparams))) {
    throw new InputError("hparams must be a JSON object", { file: f.hparams as string });
  }
  const statsSrc = await resolveStatsSource(
    modelDir,
    typeof f["stats-corpus"] === "string" ? f["stats-corpus"] : undefined,
    typeof f.stats === "string" ? f.stats : undefined,
  );
  // No early statistics check: the editor validates its hparams first, then asks for statistics
  // (layerStats names --stats-corpus) before any long work.
  // Outputs never touch an input; locked for this run; refused early when they exist (unless
  // --overwrite of an engram output).
  const guard = await guardOutputs("edit", [
    { path: out, flag: "--out" },
    { path: logDir, flag: "--log" },
    ...(typeof f["metrics-out"] === "string" ? [{ path: f["metrics-out"], flag: "--metrics-out" }] : []),
  ], [
    { path: modelDir, flag: "--model" },
    { path: f.requests as string | undefined, flag: "--requests" },
    { path: f.hparams as string | undefined, flag: "--hparams" },
    { path: f["stats-corpus"] as string | undefined, flag: "--stats-corpus" },
    { path: f["stats-dir"] as string | undefined, flag: "--stats-dir" },
    { path: statsSrc.declared?.file, flag: "the corpus of engram_stats.json" },
    ...(statsSrc.stats ?? []).map((p) => ({ path: p, flag: "--stats" })),
  ], { overwrite: Boolean(f.overwrite) });
  try {
    await editAndSave(f, method, modelDir, out, logDir, requests, layers, hparams, statsSrc, bos);
  } finally {
    await guard.release();
  }
}

async function editAndSave(
  f: Record<string, string | boolean | undefined>,
  method: string,
  modelDir: string,
  out: string,
  logDir: string,
  requests: EditRequest[],
  layers: number[] | undefined,
  hparams: unknown,
  statsSrc: Awaited<ReturnType<typeof resolveStatsSource>>,
  bos: ReturnType<typeof bosFlag>,
): Promise<void> {
  const hf = await loadHFModel(modelDir, { bos });
  if (!hf.tokenizer) throw new InputError(`${modelDir} has no tokenizer files`, { field: "--model" });
  // The editor checks the hparams again; checked here first so that an error names the file.
  if (hparams !== undefined && typeof f.hparams === "string") {
    validateHparams(method, hparams as Record<string, unknown>, hf.config, f.hparams);
  }
  // F16 / BF16 weights stay 16-bit on the GPU (FT / FT-L work on f32 copies of the layers they train),
  // except with --save-f32, whose float32 edit must not be rounded in memory.
  const weightDtypes = f["save-f32"] ? undefined : hf.dtypes;
  const model = TransformerModel.create(await getGpu(), hf.config, hf.weights, { weightDtypes });
  // Measure on the prompts the editor sees: the model's BOS policy, or the hparams' explicit prefix_eos.
  const override = (hparams as Record<string, unknown> | undefined)?.prefix_eos;
  const prefix = bosPrefix(hf.tokenizer, typeof override === "boolean" ? override : undefined);
  const before = await requestStanding(model, hf.tokenizer, requests, { prefix });
  const bars = new Map<string, ReturnType<typeof progress>>();
  const t0 = performance.now();
  const editOpts: EditOptions = {
    layers,
    hparams: hparams as Record<string, unknown> | undefined,
    statsCorpus: statsSrc.statsCorpus,
    stats: statsSrc.stats,
    statsDir: typeof f["stats-dir"] === "string" ? f["stats-dir"] : undefined,
    onProgress: (phase, done, total) => {
      let bar = bars.get(phase);
      if (!bar) bars.set(phase, bar = progress(`${method} ${phase}`, total));
      bar.update(done);
      if (done >= total) bar.done();
    },
    onWarning: (m: string) => log.warn(m),
  };
  const extraLogFiles: Record<string, Uint8Array> = {};
  let applied;
  if (method === "alphaedit") {
    // AlphaEdit's state travels in the edit log (src/edit/alphaedit_state.ts): continued from the log of
    // the AlphaEdit edit that produced --model, zero for any other model (or with --reset-state).
    const hp = alphaEditHparams(model, editOpts);
    const prior = f["reset-state"]
      ? { note: "--reset-state: AlphaEdit starts from K_p K_pᵀ = 0" }
      : await priorAlphaEditState(modelDir, hf.weights, {
        nInner: hf.config.nInner,
        layers: hp.layers,
        nullspaceThreshold: hp.nullspace_threshold,
      });
    log.info(prior.note);
    const r = await alphaEditCompute(model, hf.tokenizer, requests, editOpts, prior.state);
    const file = await alphaEditStateFile(r.state);
    extraLogFiles[ALPHAEDIT_STATE_FILE] = file.bytes;
    r.computed.info.prior_edits = prior.state?.edits ?? 0;
    r.computed.info.alphaedit_state = { ...file.info, ...(prior.log ? { resumed_from: prior.log } : {}) };
    applied = applyComputed(model, r.computed, { onWarning: (m) => log.warn(m) });
  } else applied = await applyEdit(model, hf.tokenizer, method, requests, editOpts);
  const { result } = applied;
  const secs = (performance.now() - t0) / 1000;
  const save = { dtypes: hf.dtypes, forceF32: Boolean(f["save-f32"]) };
  // The edited weights as the saved file holds them (an F16/BF16 source is written back in its dtype):
  // the standing measured after the edit, the log's edited checksums and the file then agree, so
  // `revert --check` and `revert` accept the reloaded model.
  for (const name of result.weights) {
    const dtype = savedDtype(save, name);
    if (dtype === "F32") continue;
    const data = model.weights.get(name)!.data;
    const saved = roundToDtype(data, dtype);
    let overflow = 0;
    for (let i = 0; i < saved.length; i++) {
      if (Number.isFinite(data[i]) && !Number.isFinite(saved[i])) overflow++;
    }
    if (overflow > 0) {
      // Infinite weights make a model whose every later forward is NaN: refuse rather than save it.
      throw new InputError(
        `the edit gives ${overflow} value(s) beyond the ${dtype} range (largest ${
          dtype === "F16" ? 65504 : "3.39e38"
        }), which the ${dtype} file would hold as infinity; nothing written (--save-f32 writes float32)`,
        { file: modelDir, field: name },
      );
    }
    model.setWeight(name, saved);
  }
  const after = await requestStanding(model, hf.tokenizer, requests, { prefix });
  const standing = before.map((b, i) => ({ prompt: b.prompt, before: b, after: after[i] }));
  // Measured on the weights as saved, with eval's metric code and defaults (the tokenizer's BOS policy).
  let metrics: string | undefined;
  if (typeof f["metrics-out"] === "string") {
    const { pre, post } = await evaluateEdit(model, hf.tokenizer, applied, requests);
    metrics = JSON.stringify(easyEditCasesOfEdit(pre, post, requests, secs), null, 2) + "\n";
  }
  const notTop = after.map((a, i) => notTopWarning(i, a)).filter((w): w is string => w !== null);
  for (const w of notTop) log.warn(w);
  // The edited model and its log are one unit: both staged beside their targets, then the log goes in
  // place first and the model second, so no edited model is ever without its log (a kill between the two
  // renames leaves a log without a model, which is harmless).
  const modelFiles = await hfModelFiles(out, {
    config: hf.config,
    weights: model.weights,
    tokenizerFrom: modelDir,
    activationFunction: hf.activationFunction,
    baseConfig: hf.hfConfig,
    otherFiles: await modelCopyFiles(modelDir, out),
    ...save,
  });
  const logFiles = {
    ...await editLogFiles(result, requests, model.weights, { source: modelDir, edited: out }),
    ...extraLogFiles,
  };
  modelFiles[EDIT_LINK] = await editLinkText(out, logDir, logFiles["log.json"] as string, method);
  const staged: StagedDir[] = [];
  try {
    staged.push(await stageDir(logDir, logFiles, { kind: "edit log", flag: "--log" }));
    staged.push(await stageDir(out, modelFiles, { kind: "edited model", flag: "--out" }));
  } catch (e) {
    await discardStaged(staged);
    throw e;
  }
  await commitStaged(staged, { overwrite: Boolean(f.overwrite) });
  if (metrics !== undefined) await writeFileAtomic(f["metrics-out"] as string, metrics);
  const summary = {
    method,
    model: modelDir,
    out,
    log: logDir,
    requests: requests.length,
    weights: result.weights,
    seconds: secs,
    warnings: [...result.warnings, ...notTop],
    /** p = full-target probability (product over target tokens); rank = first token's rank (1 = top). */
    standing,
  };
  if (f.json) {
    // The editor's report is the library's (camelCase): written snake_case (schemas/engram-edit.json).
    const json: EditOutput = { schema: schemaTag("edit", 1), ...summary, info: snakeKeys(result.info) };
    console.log(JSON.stringify(json, null, 2));
  } else {
    const shown = standing.slice(0, 20);
    for (const [i, s] of shown.entries()) {
      const t = (x: { p: number; rank: number }) => `${fmtP(x.p)} (rank ${x.rank})`;
      console.log(`request ${i}: ${s.prompt}`);
      console.log(
        `  p(target_new '${s.before.target_new.answer}'): ${t(s.before.target_new)} -> ${
          t(s.after.target_new)
        }`,
      );
      if (s.before.ground_truth && s.after.ground_truth) {
        console.log(
          `  p(ground truth '${s.before.ground_truth.answer}'): ${fmtP(s.before.ground_truth.p)} -> ${
            fmtP(s.after.ground_truth.p)
          }`,
        );
      }
    }
    if (standing.length > shown.length) {
      console.log(`(${standing.length - shown.length} more requests: see --json)`);
    }
    console.log("p: full-target probability (product over the target's tokens); rank: of its first token");
    console.log(
      `${method}: ${requests.length} request(s) edited in ${secs.toFixed(1)}s; changed ${
        result.weights.join(", ")
      }`,
    );
    console.log(
      `edited model: ${out}\nedit log:     ${logDir}  (undo: engram revert --model ${out} --log ${logDir} --out DIR)`,
    );
  }
}

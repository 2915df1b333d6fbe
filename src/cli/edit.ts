/**
 * `engram edit --method rome|memit|ft|ft-l|kn --model DIR (--requests FILE | --prompt "{} is located in" --subject S
 * --target T) [--layers 3,4] [--hparams FILE] [--stats-corpus FILE] [--stats-dir DIR] --out DIR
 * [--log DIR] [--overwrite] [--bos auto|on|off] [--json]`: edits a copy of the model and writes it to --out (atomically),
 * with the edit log in --log (default OUT.editlog) for `engram revert`.
 */
import { InputError } from "../errors.ts";
import { loadHFModel, saveHFModel } from "../io/hf_model.ts";
import { getGpu } from "../gpu/device.ts";
import { GPT2Model } from "../model/gpt2.ts";
import { applyEdit, editorNames } from "../edit/editors.ts";
import { parseLayers, readHparamsFile } from "../edit/hparams.ts";
import { writeEditLog } from "../edit/log.ts";
import { type EditRequest, normalizeRequest, readRequests } from "../prompt/requests.ts";
import { withFieldNames } from "../prompt/errors.ts";
import { bosFlag, FACT_FLAGS, parseFlags, required } from "./args.ts";
import { progress } from "./progress.ts";

/** Runs `edit`. */
export async function editCommand(argv: string[]): Promise<void> {
  const f = parseFlags("edit", argv, {
    method: { type: "string" },
    model: { type: "string" },
    requests: { type: "string" },
    prompt: { type: "string" },
    subject: { type: "string" },
    target: { type: "string" },
    layers: { type: "string" },
    hparams: { type: "string" },
    "stats-corpus": { type: "string" },
    "stats-dir": { type: "string" },
    limit: { type: "string" },
    out: { type: "string" },
    log: { type: "string" },
    overwrite: { type: "boolean" },
    bos: { type: "string" },
    json: { type: "boolean" },
  });
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
    if (f.prompt !== undefined || f.subject !== undefined || f.target !== undefined) {
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
    requests = [
      withFieldNames(FACT_FLAGS, () => normalizeRequest({ prompt, subject, target_new: target }, "--prompt")),
    ];
  }
  const layers = typeof f.layers === "string" ? parseLayers(f.layers) : undefined;
  const hparams = typeof f.hparams === "string" ? await readHparamsFile(f.hparams) : undefined;
  if (hparams !== undefined && (typeof hparams !== "object" || hparams === null || Array.isArray(hparams))) {
    throw new InputError("hparams must be a JSON object", { file: f.hparams as string });
  }
  const hf = await loadHFModel(modelDir, { bos });
  if (!hf.tokenizer) throw new InputError(`${modelDir} has no tokenizer files`, { field: "--model" });
  const model = GPT2Model.create(await getGpu(), hf.config, hf.weights);
  const bars = new Map<string, ReturnType<typeof progress>>();
  const t0 = performance.now();
  const { result } = await applyEdit(model, hf.tokenizer, method, requests, {
    layers,
    hparams: hparams as Record<string, unknown> | undefined,
    statsCorpus: typeof f["stats-corpus"] === "string" ? f["stats-corpus"] : undefined,
    statsDir: typeof f["stats-dir"] === "string" ? f["stats-dir"] : undefined,
    onProgress: (phase, done, total) => {
      let bar = bars.get(phase);
      if (!bar) bars.set(phase, bar = progress(`${method} ${phase}`, total));
      bar.update(done);
      if (done >= total) bar.done();
    },
    onWarning: (m) => console.error(`engram edit: warning: ${m}`),
  });
  const secs = (performance.now() - t0) / 1000;
  await saveHFModel(out, {
    config: hf.config,
    weights: model.weights,
    tokenizerFrom: modelDir,
    activationFunction: hf.activationFunction,
    extraConfig: Object.fromEntries(
      Object.entries(hf.hfConfig).filter(([k]) =>
        ["bos_token_id", "eos_token_id", "model_type", "architectures"].includes(k)
      ),
    ),
  }, { overwrite: Boolean(f.overwrite) });
  await writeEditLog(logDir, result, requests, model.weights, { source: modelDir, edited: out }, {
    overwrite: Boolean(f.overwrite),
  });
  const summary = {
    method,
    model: modelDir,
    out,
    log: logDir,
    requests: requests.length,
    weights: result.weights,
    seconds: secs,
    warnings: result.warnings,
  };
  if (f.json) console.log(JSON.stringify({ ...summary, info: result.info }, null, 2));
  else {
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

/**
 * `engram eval --method M[,M2,...] --model DIR --data FILE [--limit N] [--mode single|sequential|batch]
 * [--bos auto|on|off] [--json] [--table FILE] [--out FILE]`: edits the model with each method on the data set's requests
 * (EasyEdit CounterFact / MEND zsRE / ROME CounterFact JSON), measures KnowEdit's and CounterFact's
 * metrics (src/evaluate/edit_metrics.ts) and restores the model. The input model folder is never written.
 */
import { ConfigError, InputError } from "../errors.ts";
import { getGpu } from "../gpu/device.ts";
import { loadHFModel } from "../io/hf_model.ts";
import { GPT2Model } from "../model/gpt2.ts";
import { getEditor } from "../edit/editors.ts";
import { parseLayers, readHparamsFile } from "../edit/hparams.ts";
import { type EditRequest, parseRequestRecord, parseRequests } from "../prompt/requests.ts";
import { type EditMode, evaluateMethod, type MethodEvalResult } from "../evaluate/edit_metrics.ts";
import { markdownTable, resultsJson, writeResultsJson, writeTable } from "../evaluate/report.ts";
import { bosFlag, intFlag, parseFlags, required } from "./args.ts";
import { progress } from "./progress.ts";

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

async function hparamsFlag(v: string | undefined): Promise<Record<string, unknown> | undefined> {
  if (v === undefined) return undefined;
  let o: unknown;
  if (v.trim().startsWith("{")) {
    try {
      o = JSON.parse(v);
    } catch (e) {
      throw new ConfigError(`--hparams is not valid JSON: ${(e as Error).message}`, { field: "--hparams" });
    }
  } else o = await readHparamsFile(v);
  if (typeof o !== "object" || o === null || Array.isArray(o)) {
    throw new ConfigError("hparams must be a JSON object", { field: "--hparams" });
  }
  return o as Record<string, unknown>;
}

/** Runs `eval`. */
export async function evalCommand(argv: string[]): Promise<void> {
  const f = parseFlags("eval", argv, {
    method: { type: "string" },
    model: { type: "string" },
    data: { type: "string" },
    limit: { type: "string" },
    mode: { type: "string" },
    "batch-size": { type: "string" },
    layers: { type: "string" },
    hparams: { type: "string" },
    bos: { type: "string" },
    "prefix-eos": { type: "string" },
    "fluency-tokens": { type: "string" },
    "per-case": { type: "boolean" },
    table: { type: "string" },
    out: { type: "string" },
    json: { type: "boolean" },
  });
  const methods = required(f, "method", "eval").split(",").map((m) => m.trim());
  for (const m of methods) getEditor(m); // unknown method: lists the known ones
  if (new Set(methods).size !== methods.length) {
    throw new InputError(`--method lists a method twice`, { field: "--method" });
  }
  const mode = (f.mode ?? "single") as EditMode;
  if (!["single", "sequential", "batch"].includes(mode)) {
    throw new InputError(`--mode must be single, sequential or batch, got '${f.mode}'`, { field: "--mode" });
  }
  const bos = bosFlag(f);
  const layers = typeof f.layers === "string" ? parseLayers(f.layers) : undefined;
  const hparams = await hparamsFlag(f.hparams as string | undefined);
  const fluencyTokens = intFlag(f, "fluency-tokens", 100, 0, 100000);
  const dataFile = required(f, "data", "eval");
  const modelDir = required(f, "model", "eval");
  const { requests: all, skipped } = await readEvalRequests(dataFile);
  const limit = intFlag(f, "limit", all.length, 1, all.length);
  const editBatchSize = intFlag(f, "batch-size", limit, 1, limit);
  const requests = all.slice(0, limit);
  if (skipped) console.error(`eval: skipped ${skipped} records with an empty 'alt' (as EasyEdit does)`);

  const hf = await loadHFModel(modelDir, { bos });
  if (!hf.tokenizer) {
    throw new InputError(`${modelDir} has no tokenizer files`, { file: modelDir, field: "--model" });
  }
  const tokenizer = hf.tokenizer;
  const model = GPT2Model.create(await getGpu(), hf.config, hf.weights);
  // The editors and the metrics encode prompts with the tokenizer's BOS policy, decided at load.
  const usePrefix = tokenizer.bosId !== undefined;
  const results: MethodEvalResult[] = [];
  try {
    for (const method of methods) {
      const bar = progress(`eval ${method} (${mode})`, requests.length);
      const res = await evaluateMethod(model, tokenizer, method, requests, {
        mode,
        editBatchSize,
        fluencyTokens,
        perCase: Boolean(f["per-case"]),
        edit: { layers, hparams: hparams as Record<string, unknown> | undefined },
        onProgress: (d, _t, text) => bar.update(d, text),
      });
      bar.done();
      results.push({ ...res, ...{ data: dataFile, model: modelDir, bos: usePrefix } });
    }
  } finally {
    model.destroy();
  }
  if (typeof f.table === "string") await writeTable(f.table, results, { includePre: true, title: dataFile });
  if (typeof f.out === "string") await writeResultsJson(f.out, results);
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

/**
 * `engram revert --model EDITED --log LOGDIR --out DIR [--force] [--overwrite]`: writes the model with
 * the edited weights put back to their exact original values from the edit log. The reverted folder
 * keeps the edited folder's other files (tokenizer, generation_config.json, engram_stats.json with its
 * corpus path rewritten, unknown config.json fields) and its tensors' dtypes: the revert of an edited
 * BF16/F16 model gives the source's tensors byte for byte.
 *
 * `engram revert --check --model EDITED [--log LOGDIR]`: checks that an edited model has its edit log
 * (the one its engram_edit.json names, or LOGDIR) and that its weights are the ones the edit produced;
 * exits 1 with the reason otherwise (an edited model without its log cannot be reverted).
 */
import { hfModelFiles, loadHFModel } from "../io/hf_model.ts";
import { commitStaged, stageDir } from "../io/atomic.ts";
import { modelCopyFiles } from "../io/model_folder.ts";
import { readEditLog, revertWeights } from "../edit/log.ts";
import { checkEditedModel } from "../edit/edit_link.ts";
import { parseFlags, required } from "./args.ts";
import { guardOutputs } from "./outputs.ts";
import { InputError } from "../errors.ts";

/** Runs `revert`. */
export async function revertCommand(argv: string[]): Promise<void> {
  const f = parseFlags("revert", argv, {
    model: { type: "string" },
    log: { type: "string" },
    out: { type: "string" },
    force: { type: "boolean" },
    overwrite: { type: "boolean" },
    check: { type: "boolean" },
    json: { type: "boolean" },
  });
  const modelDir = required(f, "model", "revert");
  if (f.check) {
    if (f.out !== undefined) throw new InputError("--check writes nothing: drop --out", { field: "--out" });
    const hf = await loadHFModel(modelDir);
    const c = await checkEditedModel(modelDir, hf.weights, f.log as string | undefined);
    if (f.json) console.log(JSON.stringify({ model: modelDir, ok: true, ...c }));
    else console.log(`ok: ${modelDir} has its ${c.method} edit log ${c.log} (${c.weights.join(", ")})`);
    return;
  }
  const logDir = required(f, "log", "revert");
  const out = required(f, "out", "revert");
  const guard = await guardOutputs("revert", [{ path: out, flag: "--out" }], [
    { path: modelDir, flag: "--model" },
    { path: logDir, flag: "--log" },
  ], { overwrite: Boolean(f.overwrite) });
  try {
    const log = await readEditLog(logDir);
    const hf = await loadHFModel(modelDir);
    const names = await revertWeights(hf.weights, log, {
      force: Boolean(f.force),
      file: modelDir,
      logFile: `${logDir}/log.json`,
    });
    const files = await hfModelFiles(out, {
      config: hf.config,
      weights: hf.weights,
      tokenizerFrom: hf.tokenizer ? modelDir : undefined,
      activationFunction: hf.activationFunction,
      baseConfig: hf.hfConfig,
      // engram_edit.json is not copied: the reverted model is no longer the edited one.
      otherFiles: await modelCopyFiles(modelDir, out),
      // Each tensor in the edited file's dtype: the originals came from it, so re-encoding is exact.
      dtypes: hf.dtypes,
    });
    await commitStaged([await stageDir(out, files, { kind: "reverted model", flag: "--out" })], {
      overwrite: Boolean(f.overwrite),
    });
    console.log(`reverted ${log.json.method} edit of ${names.join(", ")} -> ${out}`);
  } finally {
    await guard.release();
  }
}

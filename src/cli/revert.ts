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
import { COMMON_FLAGS, required } from "./args.ts";
import { type CommandSpec, parseCommand } from "./spec.ts";
import { guardOutputs } from "./outputs.ts";
import { InputError } from "../errors.ts";
import type { RevertCheckOutput } from "../schema/edit_output.ts";
import { schemaTag } from "../schema/common.ts";

/** Flags and help of `engram revert`. */
export const revertSpec: CommandSpec = {
  name: "revert",
  summary: "restore the original weights bit for bit from an edit log; --check: an edited model has its log",
  usage: "revert --model EDITED --log LOGDIR --out DIR [--force] [--overwrite] | " +
    "revert --check --model EDITED [--log LOGDIR] [--json]",
  description: `The reverted folder keeps the edited folder's other files (tokenizer, generation config,
    config.json fields) and each tensor's dtype. --check verifies that the edited model still has the log
    it was written with (the one its engram_edit.json names, or --log) and that its weights are the ones the
    edit produced; it exits 1 with the reason otherwise.`,
  flags: {
    model: { type: "string", value: "EDITED", required: true, help: "the edited model folder" },
    log: { type: "string", value: "LOGDIR", help: "the edit log (engram edit writes OUT.editlog)" },
    out: { type: "string", value: "DIR", help: "where the reverted model is written" },
    force: {
      type: "boolean",
      help: "revert even when the weights are not the ones the log's edit produced",
    },
    overwrite: { type: "boolean", help: "replace an output folder engram wrote before" },
    check: { type: "boolean", help: "only check that the edited model has its log; writes nothing" },
    json: COMMON_FLAGS.json,
  },
  examples: [
    "revert --model out/edited --log out/edited.editlog --out out/restored",
    "revert --check --model out/edited",
  ],
};

/** Runs `revert`. */
export async function revertCommand(argv: string[]): Promise<void> {
  const f = parseCommand(revertSpec, argv);
  const modelDir = required(f, "model", "revert");
  if (f.check) {
    if (f.out !== undefined) throw new InputError("--check writes nothing: drop --out", { field: "--out" });
    const hf = await loadHFModel(modelDir);
    const c = await checkEditedModel(modelDir, hf.weights, f.log as string | undefined);
    const json: RevertCheckOutput = { schema: schemaTag("revert-check", 1), model: modelDir, ok: true, ...c };
    if (f.json) console.log(JSON.stringify(json));
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

/**
 * `engram revert --model EDITED --log LOGDIR --out DIR [--force] [--overwrite]`: writes the model with
 * the edited weights put back to their exact original values from the edit log.
 */
import { loadHFModel, saveHFModel } from "../io/hf_model.ts";
import { readEditLog, revertWeights } from "../edit/log.ts";
import { parseFlags, required } from "./args.ts";

/** Runs `revert`. */
export async function revertCommand(argv: string[]): Promise<void> {
  const f = parseFlags("revert", argv, {
    model: { type: "string" },
    log: { type: "string" },
    out: { type: "string" },
    force: { type: "boolean" },
    overwrite: { type: "boolean" },
  });
  const modelDir = required(f, "model", "revert");
  const logDir = required(f, "log", "revert");
  const out = required(f, "out", "revert");
  const log = await readEditLog(logDir);
  const hf = await loadHFModel(modelDir);
  const names = await revertWeights(hf.weights, log, { force: Boolean(f.force), file: modelDir });
  await saveHFModel(out, {
    config: hf.config,
    weights: hf.weights,
    tokenizerFrom: hf.tokenizer ? modelDir : undefined,
    activationFunction: hf.activationFunction,
    extraConfig: Object.fromEntries(
      Object.entries(hf.hfConfig).filter(([k]) =>
        ["bos_token_id", "eos_token_id", "model_type", "architectures"].includes(k)
      ),
    ),
  }, { overwrite: Boolean(f.overwrite) });
  console.log(`reverted ${log.json.method} edit of ${names.join(", ")} -> ${out}`);
}

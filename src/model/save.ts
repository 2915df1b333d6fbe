/**
 * Saving a loaded model, edited or not, as a Hugging Face folder the way `engram edit --out` writes one:
 * the source folder's config.json fields, tokenizer files and other files kept, each weight in the dtype
 * it was read in (F16/BF16 rounded to nearest even), one model.safetensors.
 */
import { saveHFModel } from "../io/hf_model.ts";
import { modelCopyFiles } from "../io/model_folder.ts";
import type { LoadedModel } from "./load.ts";

/** Options of {@link saveModel}. */
export interface SaveModelOptions {
  /** Replace an existing folder (default false: an existing `dir` is an error). */
  overwrite?: boolean;
  /** Write every weight as F32, whatever dtype the source had. */
  forceF32?: boolean;
}

/**
 * Writes `lm` (its current weights: an applied edit is saved) to the new folder `dir`; `loadModel(dir)`
 * gives it back. The folder is written atomically (staged beside it, then renamed).
 */
export async function saveModel(dir: string, lm: LoadedModel, opts: SaveModelOptions = {}): Promise<void> {
  const src = lm.source;
  await saveHFModel(dir, {
    config: lm.model.config,
    weights: lm.model.weights,
    tokenizerFrom: lm.tokenizer ? lm.dir : undefined,
    activationFunction: src?.activationFunction,
    baseConfig: src?.hfConfig,
    dtypes: src?.dtypes,
    forceF32: opts.forceF32,
    otherFiles: await modelCopyFiles(lm.dir, dir),
  }, { overwrite: opts.overwrite });
}

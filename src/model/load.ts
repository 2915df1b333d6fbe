/** Loads a Hugging Face GPT-2 folder onto the GPU: weights, config and tokenizer. */
import { getGpu } from "../gpu/device.ts";
import { loadHFModel } from "../io/hf_model.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import { InputError } from "../errors.ts";
import { GPT2Model } from "./gpt2.ts";

/** A model on the GPU plus its tokenizer (absent when the folder has no tokenizer files). */
export interface LoadedModel {
  model: GPT2Model;
  tokenizer?: Tokenizer;
  dir: string;
}

/** Reads `dir` (config.json, model.safetensors, tokenizer files) and uploads the weights. */
export async function loadModel(dir: string): Promise<LoadedModel> {
  const hf = await loadHFModel(dir);
  const gpu = await getGpu();
  return { model: GPT2Model.create(gpu, hf.config, hf.weights), tokenizer: hf.tokenizer, dir };
}

/** Token ids for `text` (via the tokenizer) or explicit ids; validates against the model. */
export function promptIds(lm: LoadedModel, text: string | undefined, ids: number[] | undefined): number[] {
  let out: number[];
  if (ids !== undefined) out = ids;
  else {
    if (text === undefined) throw new InputError("give a prompt with --text or --ids", { field: "--text" });
    if (text.length === 0) throw new InputError("empty prompt", { field: "--text" });
    if (!lm.tokenizer) {
      throw new InputError(
        `${lm.dir} has no tokenizer files (tokenizer.json or vocab.json + merges.txt); use --ids`,
        {
          field: "--text",
        },
      );
    }
    out = lm.tokenizer.encode(text);
  }
  lm.model.checkBatch([out]);
  return out;
}

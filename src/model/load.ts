/** Loads a Hugging Face GPT-2 folder onto the GPU: weights, config and tokenizer. */
import { getGpu } from "../gpu/device.ts";
import { type HFModel, loadHFModel } from "../io/hf_model.ts";
import type { BosMode, Tokenizer } from "../io/tokenizer.ts";
import { TransformerModel } from "./transformer.ts";
import { EngramError, InputError } from "../errors.ts";

/** A model on the GPU plus its tokenizer (absent when the folder has no tokenizer files). */
export interface LoadedModel {
  /** The model on the GPU. */
  model: TransformerModel;
  /** The folder's tokenizer; its `bosId` is the BOS policy decided at load (see {@link LoadModelOptions}). */
  tokenizer?: Tokenizer;
  /** The folder (or file) the model was loaded from. */
  dir: string;
  /** What saving the model back needs from its source (src/model/save.ts): config.json, activation, dtypes. */
  source?: Pick<HFModel, "hfConfig" | "activationFunction" | "dtypes">;
}

/** Options of {@link loadModel}. */
export interface LoadModelOptions {
  /** BOS policy of every prompt encoded with the model's tokenizer (default "auto": the tokenizer's own convention). */
  bos?: BosMode;
  /** Refuse a folder without tokenizer files (a typed error naming it); the result's tokenizer is then set. */
  requireTokenizer?: boolean;
  /**
   * GPU storage of the weights: "auto" (default) keeps F16 / BF16 weights of the file in 16 bits on the
   * GPU (matmul weights and embeddings; computed in f32, see `CreateModelOptions.weightDtypes`), "f32"
   * decodes every weight to f32 on the GPU (the behaviour before 16-bit storage). An F32 file is f32
   * either way.
   */
  weightDtype?: "auto" | "f32";
}

/** A {@link LoadedModel} whose folder had a tokenizer ({@link LoadModelOptions.requireTokenizer}). */
export interface LoadedModelWithTokenizer extends LoadedModel {
  /** The folder's tokenizer. */
  tokenizer: Tokenizer;
}

/**
 * Reads `dir` (config.json, model.safetensors, tokenizer files) and uploads the weights. With
 * `requireTokenizer: true` the result's `tokenizer` is typed as present (no `lm.tokenizer!` needed).
 */
export function loadModel(
  dir: string,
  opts: LoadModelOptions & { requireTokenizer: true },
): Promise<LoadedModelWithTokenizer>;
/** Reads `dir` (config.json, model.safetensors, tokenizer files, when present) and uploads the weights. */
export function loadModel(dir: string, opts?: LoadModelOptions): Promise<LoadedModel>;
export async function loadModel(dir: string, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  const storage = opts.weightDtype ?? "auto";
  if (storage !== "auto" && storage !== "f32") {
    throw new InputError(`weightDtype must be "auto" or "f32", got '${storage}'`, { field: "weightDtype" });
  }
  const hf = await loadHFModel(dir, { bos: opts.bos });
  if (opts.requireTokenizer && hf.tokenizer === undefined) {
    throw new EngramError(
      "tokenizer",
      "the model folder has no tokenizer (tokenizer.json, tokenizer.model, or vocab.json + merges.txt)",
      { file: dir },
    );
  }
  const gpu = await getGpu();
  const source = { hfConfig: hf.hfConfig, activationFunction: hf.activationFunction, dtypes: hf.dtypes };
  const model = TransformerModel.create(gpu, hf.config, hf.weights, {
    weightDtypes: storage === "auto" ? hf.dtypes : undefined,
  });
  return { model, tokenizer: hf.tokenizer, dir, source };
}

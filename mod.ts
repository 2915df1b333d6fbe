/**
 * engram — find where a transformer language model keeps a fact, explain it and edit it, on any GPU
 * WebGPU reaches. This module is the library entry point.
 *
 * @example
 * ```ts
 * import { loadModel } from "./mod.ts";
 * const lm = await loadModel("fixtures/models/fake-gpt2");
 * const ids = lm.tokenizer!.encode("The Eiffel Tower is in");
 * const { logprobs, captured } = await lm.model.forward([ids], { hooks: { capture: ["mlp_post.0"] } });
 * ```
 */
export * from "./src/errors.ts";
export { getGpu, Gpu } from "./src/gpu/device.ts";
export type { AdapterDescription } from "./src/gpu/device.ts";
export { createTensor, GpuTensor, readTensor, writeTensor } from "./src/gpu/tensor.ts";
export type { GPT2Config, HostTensor, WeightMap } from "./src/model/config.ts";
export { gpt2WeightShapes } from "./src/model/config.ts";
export { GPT2Model } from "./src/model/gpt2.ts";
export type { ForwardOptions, ForwardResult } from "./src/model/gpt2.ts";
export { hookSiteNames, siteWidth } from "./src/model/hooks.ts";
export type { EditSpec, Hooks, PatchSpec } from "./src/model/hooks.ts";
export { loadModel, promptIds } from "./src/model/load.ts";
export type { LoadedModel } from "./src/model/load.ts";
export { generate, pickToken } from "./src/model/generate.ts";
export type { GenerateOptions, GenerateResult } from "./src/model/generate.ts";
export { randomConfig, randomGPT2 } from "./src/model/random.ts";
export { loadHFModel, saveHFModel } from "./src/io/hf_model.ts";
export { loadTokenizer } from "./src/io/tokenizer.ts";
export type { Tokenizer } from "./src/io/tokenizer.ts";
export { parseSafetensors, readSafetensors, serializeSafetensors, writeSafetensors } from "./src/io/safetensors.ts";
export { gpt2ForwardRef } from "./src/reference/gpt2.ts";

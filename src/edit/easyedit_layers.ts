/**
 * The edit layers of zjunlp/EasyEdit's published ROME and MEMIT files (`hparams/ROME/*.yaml`,
 * `hparams/MEMIT/*.yaml`, commit 14cea8245f06715684592ab55184939b99d70784), for the architectures engram
 * loads, with the shape of the checkpoint each file names (its Hugging Face config). Files for
 * architectures engram does not load (Baichuan, ChatGLM, InternLM, Qwen-7B v1, Qwen3.5) are left out.
 *
 * A model matches a file by family (and, in the Llama family, where Llama, Mistral and Qwen2 share one
 * family, by `architectures[0]`), layer count and hidden size, and also by MLP width: Llama-2-7B and
 * Llama-3-8B agree in the other three and EasyEdit has separate files for them.
 */
import type { Family, ModelConfig } from "../model/config.ts";

/** One EasyEdit file and the checkpoint shape it was written for. */
export interface EasyEditFile {
  /** Path in zjunlp/EasyEdit. */
  file: string;
  /** The editing method the file configures. */
  method: "ROME" | "MEMIT";
  /** The checkpoint its `model_name` names. */
  model: string;
  /** Model family the checkpoint loads as (`ModelConfig.family`). */
  family: Family;
  /** Llama family only: HF `architectures[0]`. */
  architecture?: string;
  /** Number of transformer blocks (HF `n_layer` / `num_hidden_layers`). */
  nLayer: number;
  /** Hidden size (HF `n_embd` / `hidden_size`). */
  nEmbd: number;
  /** MLP width (HF `n_inner` / `intermediate_size`). */
  nInner: number;
  /** The file's `layers`. */
  layers: number[];
}

const GPT2_XL = { family: "gpt2", nLayer: 48, nEmbd: 1600, nInner: 6400 } as const;
const GPTJ = { family: "gptj", nLayer: 28, nEmbd: 4096, nInner: 16384 } as const;
const LLAMA2_7B = {
  family: "llama",
  architecture: "LlamaForCausalLM",
  nLayer: 32,
  nEmbd: 4096,
  nInner: 11008,
};
const LLAMA3_8B = {
  family: "llama",
  architecture: "LlamaForCausalLM",
  nLayer: 32,
  nEmbd: 4096,
  nInner: 14336,
};
const LLAMA32_3B = {
  family: "llama",
  architecture: "LlamaForCausalLM",
  nLayer: 28,
  nEmbd: 3072,
  nInner: 8192,
};
const MISTRAL_7B = {
  family: "llama",
  architecture: "MistralForCausalLM",
  nLayer: 32,
  nEmbd: 4096,
  nInner: 14336,
};
const QWEN2_7B = {
  family: "llama",
  architecture: "Qwen2ForCausalLM",
  nLayer: 28,
  nEmbd: 3584,
  nInner: 18944,
};
const MEMIT_4_8 = [4, 5, 6, 7, 8];

/** EasyEdit's files (see the module doc). EasyEdit has no MEMIT file for Llama-3-8B. */
export const EASYEDIT_FILES: ReadonlyArray<EasyEditFile> = [
  { file: "hparams/ROME/gpt2-xl.yaml", method: "ROME", model: "gpt2-xl", ...GPT2_XL, layers: [17] },
  {
    file: "hparams/MEMIT/gpt2-xl.yaml",
    method: "MEMIT",
    model: "gpt2-xl",
    ...GPT2_XL,
    layers: [13, 14, 15, 16, 17],
  },
  { file: "hparams/ROME/gpt-j-6B.yaml", method: "ROME", model: "gpt-j-6B", ...GPTJ, layers: [5] },
  {
    file: "hparams/MEMIT/gpt-j-6B.yaml",
    method: "MEMIT",
    model: "gpt-j-6B",
    ...GPTJ,
    layers: [3, 4, 5, 6, 7, 8],
  },
  { file: "hparams/ROME/llama-7b.yaml", method: "ROME", model: "llama-2-7b-chat", ...LLAMA2_7B, layers: [5] },
  {
    file: "hparams/MEMIT/llama-7b.yaml",
    method: "MEMIT",
    model: "llama-2-7b",
    ...LLAMA2_7B,
    layers: MEMIT_4_8,
  },
  { file: "hparams/ROME/llama3-8b.yaml", method: "ROME", model: "Llama-3-8B", ...LLAMA3_8B, layers: [5] },
  { file: "hparams/ROME/llama3.2-3b.yaml", method: "ROME", model: "Llama3.2-3B", ...LLAMA32_3B, layers: [5] },
  {
    file: "hparams/MEMIT/llama3.2-3b.yaml",
    method: "MEMIT",
    model: "llama-3.2-3b",
    ...LLAMA32_3B,
    layers: MEMIT_4_8,
  },
  {
    file: "hparams/ROME/mistral-7b.yaml",
    method: "ROME",
    model: "Mistral-7B-v0.1",
    ...MISTRAL_7B,
    layers: [5],
  },
  {
    file: "hparams/MEMIT/mistral-7b.yaml",
    method: "MEMIT",
    model: "Mistral-7B-v0.1",
    ...MISTRAL_7B,
    layers: MEMIT_4_8,
  },
  { file: "hparams/ROME/qwen2-7b.yaml", method: "ROME", model: "Qwen2-7B", ...QWEN2_7B, layers: [5] },
  { file: "hparams/MEMIT/qwen2-7b.yaml", method: "MEMIT", model: "Qwen2-7B", ...QWEN2_7B, layers: MEMIT_4_8 },
  { file: "hparams/ROME/qwen2.5-7b.yaml", method: "ROME", model: "Qwen2.5-7B", ...QWEN2_7B, layers: [5] },
  {
    file: "hparams/MEMIT/qwen2.5-7b.yaml",
    method: "MEMIT",
    model: "Qwen2.5-7B",
    ...QWEN2_7B,
    layers: MEMIT_4_8,
  },
] as EasyEditFile[];

/**
 * EasyEdit's files of `method` that match `cfg` (family, architecture in the Llama family, layer count,
 * hidden size, MLP width); empty when EasyEdit publishes none for this shape. Several files may match
 * (Qwen2-7B and Qwen2.5-7B share a shape); they are returned in table order.
 */
export function easyEditFiles(cfg: ModelConfig, method: "ROME" | "MEMIT"): EasyEditFile[] {
  const family = cfg.family ?? "gpt2";
  return EASYEDIT_FILES.filter((f) =>
    f.method === method && f.family === family &&
    (f.family !== "llama" || f.architecture === cfg.architecture) &&
    f.nLayer === cfg.nLayer && f.nEmbd === cfg.nEmbd && f.nInner === cfg.nInner
  );
}

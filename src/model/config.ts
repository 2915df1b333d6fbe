/**
 * Architecture hyper-parameters of every model family engram runs, and the host-side weight types.
 *
 * One {@link ModelConfig} describes GPT-2, the Llama family (Llama, Mistral, Qwen2, Qwen3), GPT-NeoX /
 * Pythia and GPT-J: the family-specific fields are optional and default to GPT-2's choices, so a GPT-2
 * configuration is just its seven core numbers. {@link resolveConfig} fills the defaults once, and
 * the model layer works on the resolved form.
 *
 * Weight names are the Hugging Face checkpoint names with the base-model prefix stripped
 * (`transformer.` for GPT-2 and GPT-J, `model.` for the Llama family, `gpt_neox.` for NeoX); the heads
 * keep theirs (`lm_head.*`, `embed_out.weight`). See ./families/ for each family's names and layouts.
 */
import { ConfigError } from "../errors.ts";
import type { RopeConfig } from "./rope.ts";

/** The model families engram implements (./families/). */
export type Family = "gpt2" | "llama" | "neox" | "gptj";

/** The MLP non-linearity: GELU (tanh approximation or exact erf), or SiLU gating (SwiGLU). */
export type Activation = "gelu_tanh" | "gelu_erf" | "silu";

/**
 * How the attention and MLP branches meet the residual stream:
 * - "none": sequential, x += attn(ln_1 x); x += mlp(ln_2 x) (GPT-2, Llama, NeoX without parallel residual);
 * - "two_norms": x += attn(ln_1 x) + mlp(ln_2 x) (NeoX / Pythia's use_parallel_residual);
 * - "one_norm": x += attn(ln_1 x) + mlp(ln_1 x) (GPT-J).
 */
export type ParallelResidual = "none" | "two_norms" | "one_norm";

/** Architecture hyper-parameters (Hugging Face `config.json` names in comments). */
export interface ModelConfig {
  /** n_layer / num_hidden_layers */
  nLayer: number;
  /** n_head / num_attention_heads */
  nHead: number;
  /** n_embd / hidden_size (model width C) */
  nEmbd: number;
  /** vocab_size (V) */
  vocabSize: number;
  /** n_positions / max_position_embeddings (maximum context) */
  nPositions: number;
  /** MLP width: n_inner (4 * n_embd when null) / intermediate_size */
  nInner: number;
  /** layer_norm_epsilon / rms_norm_eps / layer_norm_eps */
  layerNormEpsilon: number;
  /** Model family (default "gpt2"). */
  family?: Family;
  /** The checkpoint's `architectures[0]` (default GPT2LMHeadModel for GPT-2). */
  architecture?: string;
  /** num_key_value_heads (default nHead: multi-head attention). */
  nKvHead?: number;
  /** head_dim (default nEmbd / nHead). */
  headDim?: number;
  /** Layer norm with bias (GPT-2, NeoX, GPT-J) or RMS norm (Llama family). Default "layernorm". */
  norm?: "layernorm" | "rmsnorm";
  /** MLP non-linearity (default "gelu_tanh"); "silu" means a gated MLP (gate_proj, up_proj). */
  activation?: Activation;
  /** Rotary position embeddings; absent: learned absolute positions (GPT-2's wpe). */
  rope?: RopeConfig;
  /** Default "none". */
  parallelResidual?: ParallelResidual;
  /** Biases on the q, k, v projections (GPT-2, NeoX, Qwen2; Llama's attention_bias). */
  qkvBias?: boolean;
  /** Bias on the attention output projection. */
  attnOutBias?: boolean;
  /** Biases on the MLP projections. */
  mlpBias?: boolean;
  /** Bias on the output head (GPT-J's lm_head). Default false. */
  headBias?: boolean;
  /** Per-head RMS norm of q and k before rotary (Qwen3's q_norm / k_norm). Default false. */
  qkNorm?: boolean;
  /** Sliding-window attention (Mistral / Qwen2 sliding_window): query t sees keys s with t - s < window. */
  slidingWindow?: number;
}

/** A {@link ModelConfig} with every default filled in (what the model layer reads). */
export interface ResolvedConfig extends Required<Omit<ModelConfig, "rope" | "slidingWindow">> {
  /** Rotary position embeddings; absent: learned positions. */
  rope?: RopeConfig;
  /** Sliding-window size; absent: full causal attention. */
  slidingWindow?: number;
}

/** The architecture a configuration without `architecture` is taken to be, per family. */
const DEFAULT_ARCHITECTURE: Record<Family, string> = {
  gpt2: "GPT2LMHeadModel",
  llama: "LlamaForCausalLM",
  neox: "GPTNeoXForCausalLM",
  gptj: "GPTJForCausalLM",
};

const GPT2_DEFAULTS = {
  family: "gpt2",
  architecture: "GPT2LMHeadModel",
  norm: "layernorm",
  activation: "gelu_tanh",
  parallelResidual: "none",
  qkvBias: true,
  attnOutBias: true,
  mlpBias: true,
  headBias: false,
  qkNorm: false,
} as const;

/**
 * Fills the defaults of `c` and checks that the sizes fit together (heads divide the width, kv heads
 * divide heads, rotary dims fit a head). Throws {@link ConfigError} naming the field otherwise.
 */
export function resolveConfig(c: ModelConfig, file = "config"): ResolvedConfig {
  const nKvHead = c.nKvHead ?? c.nHead;
  const headDim = c.headDim ?? c.nEmbd / c.nHead;
  const r: ResolvedConfig = {
    ...GPT2_DEFAULTS,
    architecture: DEFAULT_ARCHITECTURE[c.family ?? "gpt2"],
    ...stripUndefined(c),
    nKvHead,
    headDim,
  } as ResolvedConfig;
  for (const f of ["nLayer", "nHead", "nEmbd", "vocabSize", "nPositions", "nInner"] as const) {
    if (!Number.isSafeInteger(r[f]) || r[f] <= 0) {
      throw new ConfigError(`${f} must be a positive integer, got ${r[f]}`, { file, field: f });
    }
  }
  if (!Number.isSafeInteger(headDim) || headDim <= 0) {
    throw new ConfigError(
      `head size ${headDim} (nEmbd ${c.nEmbd} / nHead ${c.nHead}) is not a positive integer`,
      {
        file,
        field: "headDim",
      },
    );
  }
  if (!Number.isSafeInteger(nKvHead) || nKvHead <= 0 || r.nHead % nKvHead !== 0) {
    throw new ConfigError(`${nKvHead} key/value heads do not divide ${r.nHead} attention heads`, {
      file,
      field: "nKvHead",
    });
  }
  if (r.rope && (r.rope.dim <= 0 || r.rope.dim % 2 !== 0 || r.rope.dim > headDim)) {
    throw new ConfigError(
      `rotary dimension ${r.rope.dim} must be even and at most the head size ${headDim}`,
      {
        file,
        field: "rope.dim",
      },
    );
  }
  if (r.family === "gpt2" && (r.rope || nKvHead !== r.nHead || headDim * r.nHead !== r.nEmbd)) {
    throw new ConfigError("GPT-2 has learned positions and nHead * headDim = nEmbd", {
      file,
      field: "family",
    });
  }
  if (r.slidingWindow !== undefined && !(Number.isSafeInteger(r.slidingWindow) && r.slidingWindow > 0)) {
    throw new ConfigError(`sliding window must be a positive integer, got ${r.slidingWindow}`, {
      file,
      field: "slidingWindow",
    });
  }
  if (!(r.layerNormEpsilon > 0)) {
    throw new ConfigError(`norm epsilon must be positive, got ${r.layerNormEpsilon}`, {
      file,
      field: "layerNormEpsilon",
    });
  }
  return r;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** A host-side float32 tensor: row-major data plus shape. */
export interface HostTensor {
  /** Dimensions, outermost first. */
  shape: number[];
  /** Values, row-major. */
  data: Float32Array;
  /**
   * A tensor read from a 16-bit (F16 / BF16) file whose float32 {@link data} has not been decoded yet
   * (it decodes on first read): its stored bit patterns, one per element. Uploading to 16-bit GPU storage
   * of the same dtype takes them as they are, so a 16-bit model that is only run never holds a float32
   * copy of its weights on the host. Undefined once `data` has been read (it may have been written
   * since) and for every other tensor.
   */
  readonly undecoded16?: Undecoded16;
}

/** The stored 16-bit patterns of a host tensor ({@link HostTensor.undecoded16}). */
export interface Undecoded16 {
  /** The file dtype. */
  dtype: "F16" | "BF16";
  /** One pattern per element, row-major. */
  bits: Uint16Array;
}

/** Weights keyed by engram name (see the module comment). A tied head has no head tensor of its own. */
export type WeightMap = Map<string, HostTensor>;

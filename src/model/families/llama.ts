/**
 * The Llama family (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM): rotary
 * positions, RMS norms, grouped-query attention with separate q/k/v projections, and a SwiGLU MLP
 * down(silu(gate x) · up x). Qwen2 adds q/k/v biases, Qwen3 per-head q_norm/k_norm; Mistral a
 * sliding window. All weights are nn.Linear [out, in].
 */
import type { ResolvedConfig } from "../config.ts";
import type { FamilySpec, LayerSpec, LinearSpec } from "./spec.ts";

/** The Llama family's names (HF's without `model.`). */
export const LLAMA: FamilySpec = {
  family: "llama",
  prefix: "model.",
  blockPrefix: "layers.",
  embed: "embed_tokens.weight",
  finalNorm: { weight: "norm.weight" },
  head: "lm_head.weight",
  tiedHeadAllowed: true,
  ignored: /^layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/,
  layer(c: ResolvedConfig, l: number): LayerSpec {
    const p = `layers.${l}.`, C = c.nEmbd, I = c.nInner, D = c.headDim;
    const lin = (name: string, i: number, o: number, bias: boolean): LinearSpec => ({
      weight: p + name + ".weight",
      bias: bias ? p + name + ".bias" : undefined,
      layout: "linear",
      in: i,
      out: o,
    });
    return {
      ln1: { weight: p + "input_layernorm.weight" },
      ln2: { weight: p + "post_attention_layernorm.weight" },
      qkv: [
        lin("self_attn.q_proj", C, c.nHead * D, c.qkvBias),
        lin("self_attn.k_proj", C, c.nKvHead * D, c.qkvBias),
        lin("self_attn.v_proj", C, c.nKvHead * D, c.qkvBias),
      ],
      qkvLayout: "blocked",
      qNorm: c.qkNorm ? { weight: p + "self_attn.q_norm.weight" } : undefined,
      kNorm: c.qkNorm ? { weight: p + "self_attn.k_norm.weight" } : undefined,
      o: lin("self_attn.o_proj", c.nHead * D, C, c.attnOutBias),
      gate: lin("mlp.gate_proj", C, I, c.mlpBias),
      up: lin("mlp.up_proj", C, I, c.mlpBias),
      down: lin("mlp.down_proj", I, C, c.mlpBias),
    };
  },
};

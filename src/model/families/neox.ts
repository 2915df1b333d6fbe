/**
 * GPT-NeoX / Pythia (GPTNeoXForCausalLM): layer norms, rotary on the first rotary_pct of each head,
 * a fused query_key_value projection whose output is per head [q k v], a GELU MLP, an untied
 * `embed_out` head, and (use_parallel_residual) attention and MLP side by side from two norms.
 */
import type { ResolvedConfig } from "../config.ts";
import type { FamilySpec, LayerSpec, LinearSpec } from "./spec.ts";

/** GPT-NeoX's names (HF's without `gpt_neox.`). */
export const NEOX: FamilySpec = {
  family: "neox",
  prefix: "gpt_neox.",
  blockPrefix: "layers.",
  embed: "embed_in.weight",
  finalNorm: { weight: "final_layer_norm.weight", bias: "final_layer_norm.bias" },
  head: "embed_out.weight",
  tiedHeadAllowed: false,
  ignored: /^layers\.\d+\.attention\.(bias|masked_bias|rotary_emb\.inv_freq)$/,
  layer(c: ResolvedConfig, l: number): LayerSpec {
    const p = `layers.${l}.`, C = c.nEmbd, I = c.nInner;
    const lin = (name: string, i: number, o: number, bias: boolean): LinearSpec => ({
      weight: p + name + ".weight",
      bias: bias ? p + name + ".bias" : undefined,
      layout: "linear",
      in: i,
      out: o,
    });
    return {
      ln1: { weight: p + "input_layernorm.weight", bias: p + "input_layernorm.bias" },
      ln2: { weight: p + "post_attention_layernorm.weight", bias: p + "post_attention_layernorm.bias" },
      qkv: [lin("attention.query_key_value", C, 3 * C, c.qkvBias)],
      qkvLayout: "neox",
      o: lin("attention.dense", C, C, c.attnOutBias),
      up: lin("mlp.dense_h_to_4h", C, I, c.mlpBias),
      down: lin("mlp.dense_4h_to_h", I, C, c.mlpBias),
    };
  },
};

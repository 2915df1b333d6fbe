/**
 * GPT-J (GPTJForCausalLM): one ln_1 feeding attention and MLP in parallel, interleaved rotary on the
 * first rotary_dim of each head, q/k/v/out projections without biases, a GELU MLP (fc_in, fc_out),
 * and an untied lm_head with a bias. Weights are nn.Linear [out, in].
 */
import type { ResolvedConfig } from "../config.ts";
import type { FamilySpec, LayerSpec, LinearSpec } from "./spec.ts";

/** GPT-J's names (HF's without `transformer.`). */
export const GPTJ: FamilySpec = {
  family: "gptj",
  prefix: "transformer.",
  blockPrefix: "h.",
  embed: "wte.weight",
  finalNorm: { weight: "ln_f.weight", bias: "ln_f.bias" },
  head: "lm_head.weight",
  headBias: "lm_head.bias",
  tiedHeadAllowed: false,
  ignored: /^h\.\d+\.attn\.(bias|masked_bias|rotary_emb\.inv_freq|embed_positions)$/,
  layer(c: ResolvedConfig, l: number): LayerSpec {
    const p = `h.${l}.`, C = c.nEmbd, I = c.nInner;
    const lin = (name: string, i: number, o: number, bias: boolean): LinearSpec => ({
      weight: p + name + ".weight",
      bias: bias ? p + name + ".bias" : undefined,
      layout: "linear",
      in: i,
      out: o,
    });
    return {
      ln1: { weight: p + "ln_1.weight", bias: p + "ln_1.bias" },
      qkv: [
        lin("attn.q_proj", C, C, false),
        lin("attn.k_proj", C, C, false),
        lin("attn.v_proj", C, C, false),
      ],
      qkvLayout: "blocked",
      o: lin("attn.out_proj", C, C, false),
      up: lin("mlp.fc_in", C, I, true),
      down: lin("mlp.fc_out", I, C, true),
    };
  },
};

/**
 * GPT-2 (GPT2LMHeadModel): learned positions, pre-norm blocks with layer norms, one fused c_attn
 * projection, a GELU MLP, and Conv1D weights stored [in, out]. The head is tied to wte unless the
 * checkpoint carries `lm_head.weight`.
 */
import type { ResolvedConfig } from "../config.ts";
import type { FamilySpec, LayerSpec } from "./spec.ts";

/** GPT-2's names (HF's without `transformer.`). */
export const GPT2: FamilySpec = {
  family: "gpt2",
  prefix: "transformer.",
  blockPrefix: "h.",
  embed: "wte.weight",
  positions: "wpe.weight",
  finalNorm: { weight: "ln_f.weight", bias: "ln_f.bias" },
  head: "lm_head.weight",
  tiedHeadAllowed: true,
  ignored: /^h\.\d+\.attn\.(bias|masked_bias)$/,
  layer(c: ResolvedConfig, l: number): LayerSpec {
    const p = `h.${l}.`, C = c.nEmbd, I = c.nInner;
    const conv = (name: string, i: number, o: number) => ({
      weight: p + name + ".weight",
      bias: p + name + ".bias",
      layout: "conv1d" as const,
      in: i,
      out: o,
    });
    return {
      ln1: { weight: p + "ln_1.weight", bias: p + "ln_1.bias" },
      ln2: { weight: p + "ln_2.weight", bias: p + "ln_2.bias" },
      qkv: [conv("attn.c_attn", C, 3 * C)],
      qkvLayout: "blocked",
      o: conv("attn.c_proj", C, C),
      up: conv("mlp.c_fc", C, I),
      down: conv("mlp.c_proj", I, C),
    };
  },
};

/**
 * GPT-2 hyper-parameters and the canonical weight names engram uses internally.
 *
 * Canonical names are Hugging Face's GPT-2 names without the `transformer.` prefix. Linear weights
 * keep HF's Conv1D layout, [in, out] row-major, so `y = x @ W + b`.
 */

/** GPT-2 architecture hyper-parameters (Hugging Face `config.json` names in comments). */
export interface GPT2Config {
  /** n_layer */
  nLayer: number;
  /** n_head */
  nHead: number;
  /** n_embd (model width C) */
  nEmbd: number;
  /** vocab_size (V) */
  vocabSize: number;
  /** n_positions (maximum context) */
  nPositions: number;
  /** n_inner, or 4 * n_embd when null */
  nInner: number;
  /** layer_norm_epsilon */
  layerNormEpsilon: number;
}

/** A host-side float32 tensor: row-major data plus shape. */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** GPT-2 weights keyed by canonical name (see {@link gpt2WeightShapes}). `lm_head.weight` is absent when tied to wte. */
export type WeightMap = Map<string, HostTensor>;

/** Every canonical tensor name of a GPT-2 model and its expected shape. */
export function gpt2WeightShapes(c: GPT2Config): Map<string, number[]> {
  const C = c.nEmbd, I = c.nInner;
  const m = new Map<string, number[]>();
  m.set("wte.weight", [c.vocabSize, C]);
  m.set("wpe.weight", [c.nPositions, C]);
  for (let l = 0; l < c.nLayer; l++) {
    const p = `h.${l}.`;
    m.set(p + "ln_1.weight", [C]);
    m.set(p + "ln_1.bias", [C]);
    m.set(p + "attn.c_attn.weight", [C, 3 * C]);
    m.set(p + "attn.c_attn.bias", [3 * C]);
    m.set(p + "attn.c_proj.weight", [C, C]);
    m.set(p + "attn.c_proj.bias", [C]);
    m.set(p + "ln_2.weight", [C]);
    m.set(p + "ln_2.bias", [C]);
    m.set(p + "mlp.c_fc.weight", [C, I]);
    m.set(p + "mlp.c_fc.bias", [I]);
    m.set(p + "mlp.c_proj.weight", [I, C]);
    m.set(p + "mlp.c_proj.bias", [C]);
  }
  m.set("ln_f.weight", [C]);
  m.set("ln_f.bias", [C]);
  return m;
}

/**
 * What a model family declares: its weight names, their layouts, and which norms and projections a
 * block uses. The generic block (../transformer.ts, ../backward.ts) runs any family from this.
 */
import type { Family, ResolvedConfig } from "../config.ts";

/**
 * Storage of a projection's weight: "conv1d" is GPT-2's Conv1D [in, out] (y = x W + b); "linear" is
 * nn.Linear's [out, in] (y = x Wᵀ + b).
 */
export type LinearLayout = "conv1d" | "linear";

/** One projection: weight name, optional bias name, layout and sizes. */
export interface LinearSpec {
  /** Weight name. */
  weight: string;
  /** Bias name, when the projection has one. */
  bias?: string;
  /** Storage of the weight. */
  layout: LinearLayout;
  /** Input width. */
  in: number;
  /** Output width. */
  out: number;
}

/** A layer norm (weight and bias) or an RMS norm (weight only). */
export interface NormSpec {
  /** Scale (gamma) name. */
  weight: string;
  /** Shift (beta) name; absent for RMS norms. */
  bias?: string;
}

/** The weights of block `l` and how its attention input is laid out. */
export interface LayerSpec {
  /** Norm before attention (and, when `ln2` is absent, before the MLP too: GPT-J). */
  ln1: NormSpec;
  /** Norm before the MLP; absent when `ln1` feeds both branches. */
  ln2?: NormSpec;
  /**
   * The q, k, v projections: one fused projection whose output already has the attention layout
   * (GPT-2's c_attn, NeoX's query_key_value), or three (q, k, v) that the model fuses on the GPU by
   * stacking their output rows (all "linear").
   */
  qkv: LinearSpec[];
  /** Layout of the fused q/k/v row: "blocked" (all q heads, all k heads, all v heads) or "neox" (per head q k v). */
  qkvLayout: "blocked" | "neox";
  /** Per-head RMS norm of q (Qwen3). */
  qNorm?: NormSpec;
  /** Per-head RMS norm of k (Qwen3). */
  kNorm?: NormSpec;
  /** Attention output projection. */
  o: LinearSpec;
  /** MLP input projection (c_fc, up_proj, dense_h_to_4h, fc_in). */
  up: LinearSpec;
  /** Gate projection of a gated MLP (gate_proj). */
  gate?: LinearSpec;
  /** MLP output projection (c_proj, down_proj, dense_4h_to_h, fc_out): what ROME, MEMIT, FT-L and KN edit. */
  down: LinearSpec;
}

/** A model family: names of the non-block weights and the block's {@link LayerSpec}. */
export interface FamilySpec {
  /** The family's name. */
  family: Family;
  /** Checkpoint prefix of the base model, stripped at load and put back at save. */
  prefix: string;
  /** Prefix of block l's names is `${blockPrefix}${l}.` ("h." or "layers."). */
  blockPrefix: string;
  /** Token embedding [V, C]. */
  embed: string;
  /** Learned positions [nPositions, C], for families without rotary. */
  positions?: string;
  /** Final norm before the head. */
  finalNorm: NormSpec;
  /** Output head [V, C]; a checkpoint without it ties the head to `embed` (when the family allows). */
  head: string;
  /** Output-head bias [V] (GPT-J). */
  headBias?: string;
  /** Whether the head may be tied to the embedding (not NeoX, whose embed_out is always separate). */
  tiedHeadAllowed: boolean;
  /** Names of block `l` under config `c`. */
  layer(c: ResolvedConfig, l: number): LayerSpec;
  /** Buffers real checkpoints carry beside the weights (causal masks, rotary caches), ignored by name. */
  ignored: RegExp;
}

/** Shape of a projection's weight in its layout. */
export function linearShape(p: LinearSpec): number[] {
  return p.layout === "conv1d" ? [p.in, p.out] : [p.out, p.in];
}

/**
 * Every weight of a model of family `spec` and its shape, in checkpoint order: embeddings, blocks,
 * final norm, head. The head appears only when `untiedHead` (and always for families that cannot tie).
 */
export function familyWeightShapes(
  spec: FamilySpec,
  c: ResolvedConfig,
  untiedHead: boolean,
): Map<string, number[]> {
  const C = c.nEmbd;
  const m = new Map<string, number[]>();
  m.set(spec.embed, [c.vocabSize, C]);
  if (spec.positions) m.set(spec.positions, [c.nPositions, C]);
  const norm = (n: NormSpec | undefined, width: number) => {
    if (!n) return;
    m.set(n.weight, [width]);
    if (n.bias) m.set(n.bias, [width]);
  };
  const lin = (p: LinearSpec | undefined) => {
    if (!p) return;
    m.set(p.weight, linearShape(p));
    if (p.bias) m.set(p.bias, [p.out]);
  };
  for (let l = 0; l < c.nLayer; l++) {
    const s = spec.layer(c, l);
    norm(s.ln1, C);
    s.qkv.forEach(lin);
    norm(s.qNorm, c.headDim);
    norm(s.kNorm, c.headDim);
    lin(s.o);
    norm(s.ln2, C);
    lin(s.gate);
    lin(s.up);
    lin(s.down);
  }
  norm(spec.finalNorm, C);
  if (untiedHead || !spec.tiedHeadAllowed) {
    m.set(spec.head, [c.vocabSize, C]);
    if (spec.headBias) m.set(spec.headBias, [c.vocabSize]);
  } else if (spec.headBias) m.set(spec.headBias, [c.vocabSize]);
  return m;
}

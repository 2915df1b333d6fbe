/**
 * Float64 twin of ROME's key statistics (`layer_stats`, `SecondMoment`): C = Σ k kᵀ / count over every
 * token of every sequence, k = the input of the MLP output projection (hook `mlp_post.L`: GPT-2's
 * post-GELU c_proj input, Llama's silu(gate)·up, NeoX's and GPT-J's post-GELU), computed with the
 * float64 forward of any family {@link transformerForwardRef}.
 */
import type { ModelConfig, WeightMap } from "../model/config.ts";
import { transformerForwardRef } from "./transformer.ts";

/** C = E[k kᵀ] at `layer` over all tokens of `seqs`, row-major [nInner, nInner], and the token count. */
export function secondMomentRef(
  cfg: ModelConfig,
  weights: WeightMap,
  seqs: number[][],
  layer: number,
): { mom2: Float64Array; count: number } {
  const I = cfg.nInner;
  const site = `mlp_post.${layer}`;
  const mom2 = new Float64Array(I * I);
  let count = 0;
  for (const ids of seqs) {
    const k = transformerForwardRef(cfg, weights, ids, { capture: [site] }).sites.get(site)!;
    for (let t = 0; t < ids.length; t++) {
      const o = t * I;
      for (let a = 0; a < I; a++) {
        const ka = k[o + a];
        for (let b = 0; b < I; b++) mom2[a * I + b] += ka * k[o + b];
      }
    }
    count += ids.length;
  }
  for (let i = 0; i < mom2.length; i++) mom2[i] /= count;
  return { mom2, count };
}

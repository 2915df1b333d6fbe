/**
 * The model families engram runs, as an explicit map from family name to its {@link FamilySpec}.
 *
 * @example
 * ```ts
 * import { familySpec } from "./mod.ts";
 * import { resolveConfig } from "../config.ts";
 * const cfg = resolveConfig({ nLayer: 2, nHead: 2, nEmbd: 8, vocabSize: 11, nPositions: 16, nInner: 32, layerNormEpsilon: 1e-5 });
 * console.log(familySpec(cfg).layer(cfg, 1).down.weight); // "h.1.mlp.c_proj.weight"
 * ```
 */
import { type Family, type ModelConfig, resolveConfig } from "../config.ts";
import { GPT2 } from "./gpt2.ts";
import { GPTJ } from "./gptj.ts";
import { LLAMA } from "./llama.ts";
import { NEOX } from "./neox.ts";
import type { FamilySpec } from "./spec.ts";

export type { FamilySpec, LayerSpec, LinearLayout, LinearSpec, NormSpec } from "./spec.ts";
import { familyWeightShapes } from "./spec.ts";
export { familyWeightShapes, linearShape } from "./spec.ts";

/** Every family, by name. */
export const FAMILIES: ReadonlyMap<Family, FamilySpec> = new Map<Family, FamilySpec>([
  ["gpt2", GPT2],
  ["llama", LLAMA],
  ["neox", NEOX],
  ["gptj", GPTJ],
]);

/** The family of a configuration (GPT-2 when `family` is absent). */
export function familySpec(c: Pick<ModelConfig, "family">): FamilySpec {
  return FAMILIES.get(c.family ?? "gpt2")!;
}

/** Every weight of a model with config `c` and its shape (the head only when `untiedHead`). */
export function weightShapes(c: ModelConfig, untiedHead = false): Map<string, number[]> {
  const r = resolveConfig(c);
  return familyWeightShapes(familySpec(r), r, untiedHead);
}

/**
 * Named hook sites of the GPT-2 forward pass and the ways to read or overwrite them.
 *
 * Site names (per layer L, 0-based):
 * - `embed`          [T, C]      token + position embeddings
 * - `resid_pre.L`    [T, C]      residual stream entering block L (same tensor as `resid_post.(L-1)`)
 * - `attn_out.L`     [T, C]      attention output after c_proj, before it is added to the residual
 * - `mlp_post.L`     [T, inner]  MLP neuron activations after GELU
 * - `mlp_out.L`      [T, C]      MLP output after c_proj, before it is added to the residual
 * - `resid_post.L`   [T, C]      residual stream leaving block L
 * - `ln_f`           [T, C]      final layer norm output
 * With a batch of B sequences every site is [B, T, width], rows ordered b * T + t.
 */
import { InputError } from "../errors.ts";
import type { ModelConfig } from "./config.ts";

/** The kinds of hook site; a full name is `kind` or `kind.layer`. */
export type SiteKind = "embed" | "resid_pre" | "attn_out" | "mlp_post" | "mlp_out" | "resid_post" | "ln_f";

/** All hook-site names of a model with `nLayer` layers, in execution order. */
export function hookSiteNames(nLayer: number): string[] {
  const out = ["embed"];
  for (let l = 0; l < nLayer; l++) {
    out.push(`resid_pre.${l}`, `attn_out.${l}`, `mlp_post.${l}`, `mlp_out.${l}`, `resid_post.${l}`);
  }
  out.push("ln_f");
  return out;
}

/** Width (values per token) of a hook site. Throws {@link InputError} for an unknown site. */
export function siteWidth(config: ModelConfig, site: string): number {
  const m = /^(embed|ln_f)$|^(resid_pre|attn_out|mlp_post|mlp_out|resid_post)\.(\d+)$/.exec(site);
  if (!m) {
    throw new InputError(
      `unknown hook site '${site}' (expected embed, ln_f, or resid_pre|attn_out|mlp_post|mlp_out|resid_post.<layer>)`,
      { field: "site" },
    );
  }
  if (m[3] !== undefined) {
    const layer = Number(m[3]);
    if (layer >= config.nLayer) {
      throw new InputError(`hook site '${site}': layer ${layer} out of range (model has ${config.nLayer})`, {
        field: "site",
      });
    }
    if (m[2] === "mlp_post") return config.nInner;
  }
  return config.nEmbd;
}

/**
 * Overwrites rows of a site with given values ("set"), on the GPU, before downstream use.
 * `rows` are [batchIndex, tokenIndex] pairs; `values` holds rows.length × width floats, row-major.
 */
export interface PatchSpec {
  site: string;
  rows: Array<[number, number]>;
  values: Float32Array;
}

/**
 * Arbitrary host-side edit of a site: the whole site [B, T, width] is read back, passed to `fn`
 * (which mutates it in place), and written again. General but slow: prefer {@link PatchSpec}.
 */
export interface EditSpec {
  site: string;
  fn: (values: Float32Array, B: number, T: number, width: number) => void;
}

/** Hooks for one forward pass. */
export interface Hooks {
  /** Sites whose values to return, [B, T, width] each. */
  capture?: Iterable<string>;
  patch?: PatchSpec[];
  edit?: EditSpec[];
}

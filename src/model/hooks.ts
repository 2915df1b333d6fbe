/**
 * Named hook sites of the forward pass, the same for every family, and the ways to read or overwrite them.
 *
 * Site names (per layer L, 0-based; C model width, I MLP width, H heads of size D):
 * - `embed`          [T, C]      token (+ learned position) embeddings
 * - `resid_pre.L`    [T, C]      residual stream entering block L (same tensor as `resid_post.(L-1)`)
 * - `attn_pattern.L` [H, T, T]   attention probabilities (capture only)
 * - `head_out.L`     [T, H·D]    per-head attention outputs, concatenated, before the output projection
 * - `attn_out.L`     [T, C]      attention output after the output projection, before the residual add
 * - `mlp_post.L`     [T, I]      input of the MLP's output projection: gelu(fc) in GPT-2, silu(gate)·up in Llama
 * - `mlp_out.L`      [T, C]      MLP output after its output projection, before the residual add
 * - `resid_post.L`   [T, C]      residual stream leaving block L
 * - `ln_f`           [T, C]      final norm output
 * With a batch of B sequences every site is [B, T, width], rows ordered b * T + t (`attn_pattern.L` is
 * [B, H, T, T]).
 */
import { InputError } from "../errors.ts";
import { type ModelConfig, resolveConfig } from "./config.ts";

/** The kinds of hook site; a full name is `kind` or `kind.layer`. */
export type SiteKind =
  | "embed"
  | "resid_pre"
  | "attn_pattern"
  | "head_out"
  | "attn_out"
  | "mlp_post"
  | "mlp_out"
  | "resid_post"
  | "ln_f";

/**
 * All per-token hook-site names of a model with `nLayer` layers, in execution order (`attn_pattern.L`,
 * which is not per token, is left out; see {@link siteWidth}).
 */
export function hookSiteNames(nLayer: number): string[] {
  const out = ["embed"];
  for (let l = 0; l < nLayer; l++) {
    out.push(
      `resid_pre.${l}`,
      `head_out.${l}`,
      `attn_out.${l}`,
      `mlp_post.${l}`,
      `mlp_out.${l}`,
      `resid_post.${l}`,
    );
  }
  out.push("ln_f");
  return out;
}

/**
 * Width (values per token) of a hook site. Throws {@link InputError} for an unknown site, and for
 * `attn_pattern.L` used other than for capture (its width is then H·T per query row, reported as 0).
 */
export function siteWidth(
  config: ModelConfig,
  site: string,
  use: "capture" | "patch" | "edit" = "capture",
): number {
  const m = /^(embed|ln_f)$|^(resid_pre|attn_pattern|head_out|attn_out|mlp_post|mlp_out|resid_post)\.(\d+)$/
    .exec(site);
  if (!m) {
    throw new InputError(
      `unknown hook site '${site}' (expected embed, ln_f, or resid_pre|attn_pattern|head_out|attn_out|mlp_post|mlp_out|resid_post.<layer>)`,
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
    const c = resolveConfig(config);
    if (m[2] === "mlp_post") return config.nInner;
    if (m[2] === "head_out") return c.nHead * c.headDim;
    if (m[2] === "attn_pattern") {
      if (use !== "capture") {
        throw new InputError(`hook site '${site}' can be captured but not patched or edited`, {
          field: "site",
        });
      }
      return 0;
    }
  }
  return config.nEmbd;
}

/**
 * A captured hook site with its shape: `[B, T, width]` (batch, positions, the site's width), or
 * `[B, H, T, T]` for `attn_pattern.L`. `data` is row-major over `shape`.
 */
export interface SiteTensor {
  /** The values, row-major over `shape`. */
  data: Float32Array;
  /** `[B, T, width]`, or `[B, H, T, T]` for attention probabilities. */
  shape: number[];
}

/**
 * Overwrites rows of a site with given values ("set"), on the GPU, before downstream use.
 * `rows` are [batchIndex, tokenIndex] pairs; `values` holds rows.length × width floats, row-major.
 */
export interface PatchSpec {
  /** Hook site name. */
  site: string;
  /** [batchIndex, tokenIndex] of each overwritten row. */
  rows: Array<[number, number]>;
  /** rows.length × width values, row-major. */
  values: Float32Array;
}

/**
 * Arbitrary host-side edit of a site: the whole site [B, T, width] is read back, passed to `fn`
 * (which mutates it in place), and written again. General but slow: prefer {@link PatchSpec}.
 */
export interface EditSpec {
  /** Hook site name. */
  site: string;
  /** Mutates the site's values [B, T, width] in place. */
  fn: (values: Float32Array, B: number, T: number, width: number) => void;
}

/** Hooks for one forward pass. */
export interface Hooks {
  /** Sites whose values to return, [B, T, width] each. */
  capture?: Iterable<string>;
  /** Rows overwritten on the GPU. */
  patch?: PatchSpec[];
  /** Host-side edits of whole sites. */
  edit?: EditSpec[];
}

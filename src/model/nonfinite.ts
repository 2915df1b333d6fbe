/**
 * The typed error of a forward pass whose log-probabilities are not finite. The forward checks its
 * log-probabilities on the GPU (src/gpu/nonfinite.ts, one dispatch); only on failure does it run the
 * batch again with every hook site captured to name the first site, in execution order, that holds a
 * NaN or an infinity, and scan the weights for the first non-finite one.
 */
import { EngramError } from "../errors.ts";

/** A forward pass produced NaN or ±Inf. `site` is the first hook site holding one ("logits" if none did). */
export class NonFiniteError extends EngramError {
  /** First non-finite hook site in execution order, e.g. "mlp_post.3", or "logits". */
  readonly site: string;
  /** The first weight tensor holding a non-finite value, if any. */
  readonly weight?: string;

  constructor(message: string, site: string, weight?: string) {
    super("nonfinite", message, { field: site });
    this.site = site;
    this.weight = weight;
  }
}

/** Describes the non-finite value `v` found at flat index `i` of a [rows, width] site. */
export function describeNonFinite(v: number, i: number, width: number, T: number): string {
  const row = Math.floor(i / width);
  const what = Number.isNaN(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf";
  return `${what} at sequence ${Math.floor(row / T)}, position ${row % T}, index ${i % width}`;
}

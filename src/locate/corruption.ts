/**
 * Corruptions of causal tracing (src/locate/trace.ts), beside ROME's default Gaussian noise:
 *
 * - ROME's other noise rules (kmeng01/rome `experiments/causal_trace.py`, `--noise_level`):
 *   - `gaussian` (`s<k>` or a number): scale · N(0, 1), numpy `RandomState(seed).randn` ({@link subjectNoise});
 *   - `uniform` (`u<x>`): scale · U(−1, 1), numpy `RandomState(seed).uniform(-1, 1, shape)`;
 *   - `mvn` (`m`): draws of a multivariate Gaussian N(μ, Σ) fitted to token embeddings, x ↦ A·x + μ with
 *     A Aᵀ = Σ applied to the same `randn` draws (ROME: `make_generator_transform`, A = V·diag(√s) from
 *     the SVD of Σ);
 *   - `t` (`t<d>`): the `mvn` draw times √((d − 2) / u) with one u ~ χ²(d) per (sample, token), drawn
 *     by numpy `RandomState(seed + 1).chisquare(d)` (ROME: RandomState(2), its seed 1 + 1), so the
 *     variance matches Σ (`collect_embedding_tdist`). The mean is scaled with the draw, as ROME's is.
 *   - `replace` (ROME's `--replace`): the subject's token embedding is set to the noise instead of
 *     having it added (learned positions are still added, as GPT-2's `wpe` follows `wte`).
 * - Symmetric token replacement (Zhang & Nanda, ICLR 2024): the subject's tokens are replaced by those of
 *   another subject of the same token length, and the corrupted run is an ordinary forward on those ids
 *   ({@link subjectReplacement}).
 */
import { InputError } from "../errors.ts";
import type { WeightMap } from "../model/config.ts";
import type { TransformerModel } from "../model/transformer.ts";
import type { PatchSpec } from "../model/hooks.ts";
import { mulberry32 } from "../model/generate.ts";
import { symmetricEigen } from "../numeric/eigen.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import { encodeFact, type EncodeFactOptions, type FactInput } from "../prompt/encode.ts";
import { FactError } from "../prompt/errors.ts";
import { NumpyRandomState } from "./numpy_random.ts";
import { embeddingRow, type NoiseRng, subjectNoise } from "./patching.ts";

/** Distribution of the subject noise: ROME's `s<k>` / number, `u<x>`, `m` and `t<d>` rules. */
export type NoiseDist = "gaussian" | "uniform" | "mvn" | "t";

/** The noise distributions, default first. */
export const NOISE_DISTS: readonly NoiseDist[] = ["gaussian", "uniform", "mvn", "t"];

/** A Gaussian fitted to token embeddings: mean μ [C] and a factor A [C, C] (row-major) with A Aᵀ = Σ. */
export interface EmbeddingGaussian {
  /** Mean μ of the embedding rows [C]. */
  mean: Float64Array;
  /** Factor A [C, C], row-major, with A Aᵀ = Σ. */
  factor: Float64Array;
}

/**
 * Mean and covariance (n − 1 denominator, as ROME's `Covariance.covariance()`) of the token-embedding
 * rows wte[id] over `ids` (with repetition), or over every row when `ids` is undefined, in float64; the
 * factor is V·diag(√max(λ, 0)) from the symmetric eigendecomposition Σ = V diag(λ) Vᵀ.
 */
export function embeddingGaussian(
  weights: WeightMap,
  nEmbd: number,
  ids?: Iterable<number>,
  embed = "wte.weight",
): EmbeddingGaussian {
  const wte = weights.get(embed);
  if (!wte) throw new InputError("missing weight", { field: embed });
  const C = nEmbd, V = wte.data.length / C;
  const rows = ids ? [...ids] : Array.from({ length: V }, (_, i) => i);
  if (rows.length < 2) {
    throw new InputError(`fitting the embedding Gaussian needs at least 2 tokens, got ${rows.length}`, {
      field: "noise",
    });
  }
  const mean = new Float64Array(C);
  for (const id of rows) {
    if (!(Number.isInteger(id) && id >= 0 && id < V)) {
      throw new InputError(`token id ${id} out of range`, { field: "noise" });
    }
    for (let c = 0; c < C; c++) mean[c] += wte.data[id * C + c];
  }
  for (let c = 0; c < C; c++) mean[c] /= rows.length;
  const cov = new Float64Array(C * C);
  const d = new Float64Array(C);
  for (const id of rows) {
    for (let c = 0; c < C; c++) d[c] = wte.data[id * C + c] - mean[c];
    for (let i = 0; i < C; i++) {
      const di = d[i];
      for (let j = 0; j <= i; j++) cov[i * C + j] += di * d[j];
    }
  }
  for (let i = 0; i < C; i++) {
    for (let j = 0; j <= i; j++) {
      const v = cov[i * C + j] / (rows.length - 1);
      cov[i * C + j] = v;
      cov[j * C + i] = v;
    }
  }
  const eig = symmetricEigen(cov, C);
  // vectors are rows: A[i][j] = v_j[i] · √λ_j.
  const factor = new Float64Array(C * C);
  for (let j = 0; j < C; j++) {
    const s = Math.sqrt(Math.max(0, eig.values[j]));
    for (let i = 0; i < C; i++) factor[i * C + j] = eig.vectors[j * C + i] * s;
  }
  return { mean, factor };
}

/** How the noise is drawn: see the module doc. */
export interface NoiseSpec {
  /** Distribution (default "gaussian"). */
  dist?: NoiseDist;
  /** Multiplies the draws: the std (gaussian), the half-width (uniform), 1 for ROME's mvn / t. */
  scale: number;
  /** Seed of the draws (numpy: `RandomState(seed)`); `t`'s chi-square draws use seed + 1. */
  seed: number;
  /** Generator of the N(0, 1) / U(0, 1) draws (default numpy, ROME's). */
  rng?: NoiseRng;
  /** Degrees of freedom of `t` (default 3, ROME's `collect_embedding_tdist`); must exceed 2. */
  df?: number;
  /** The fitted Gaussian of `mvn` and `t`. */
  fit?: EmbeddingGaussian;
}

/** Checks a noise spec's distribution, degrees of freedom and fit (typed errors naming the field). */
export function checkNoiseSpec(spec: NoiseSpec, width: number): void {
  const dist = spec.dist ?? "gaussian";
  if (!NOISE_DISTS.includes(dist)) {
    throw new InputError(`noise distribution must be one of ${NOISE_DISTS.join(", ")}, got '${dist}'`, {
      field: "noiseDist",
    });
  }
  if (dist === "t") {
    const df = spec.df ?? 3;
    if (!(Number.isFinite(df) && df > 2)) {
      throw new InputError(`t noise needs degrees of freedom > 2 (its variance), got ${df}`, {
        field: "noiseDf",
      });
    }
  }
  if (dist === "mvn" || dist === "t") {
    const f = spec.fit;
    if (!f || f.mean.length !== width || f.factor.length !== width * width) {
      throw new InputError(`${dist} noise needs a fitted embedding Gaussian of width ${width}`, {
        field: "noiseFit",
      });
    }
  }
}

/**
 * Noise values [sample][token][channel] (float64) for `samples` corrupted copies of `nTokens` subject
 * tokens of width `width` under `spec` (see the module doc). The gaussian rule is {@link subjectNoise}.
 */
export function corruptionNoise(
  samples: number,
  nTokens: number,
  width: number,
  spec: NoiseSpec,
): Float64Array {
  checkNoiseSpec(spec, width);
  const dist = spec.dist ?? "gaussian", rng = spec.rng ?? "numpy";
  const n = samples * nTokens * width;
  if (dist === "gaussian") return subjectNoise(samples, nTokens, width, spec.scale, spec.seed, rng);
  if (dist === "uniform") {
    const out = new Float64Array(n);
    if (rng === "numpy") {
      const rs = new NumpyRandomState(spec.seed);
      for (let i = 0; i < n; i++) out[i] = spec.scale * rs.uniform(-1, 1);
    } else {
      const r = mulberry32(spec.seed);
      for (let i = 0; i < n; i++) out[i] = spec.scale * (2 * r() - 1);
    }
    return out;
  }
  const x = subjectNoise(samples, nTokens, width, 1, spec.seed, rng);
  const { mean, factor } = spec.fit!;
  const df = spec.df ?? 3;
  const chi = dist === "t" ? new NumpyRandomState((spec.seed + 1) >>> 0) : undefined;
  const out = new Float64Array(n);
  for (let r = 0; r < samples * nTokens; r++) {
    const f = chi ? Math.sqrt((df - 2) / chi.chisquare(df)) : 1;
    const o = r * width;
    for (let i = 0; i < width; i++) {
      let s = mean[i];
      for (let j = 0; j < width; j++) s += factor[i * width + j] * x[o + j];
      out[o + i] = spec.scale * f * s;
    }
  }
  return out;
}

/**
 * The `embed` patch of a noise corruption: batch row `batchRows[i]` gets noise sample `sampleOf(i)` on
 * the subject's tokens, added to the clean embedding or (`replace`) in place of the token embedding
 * (learned positions kept).
 */
export function noisePatch(
  model: TransformerModel,
  ids: number[],
  subjectRange: [number, number],
  noise: Float64Array,
  batchRows: number[],
  sampleOf: (i: number) => number,
  replace: boolean,
): PatchSpec {
  const C = model.config.nEmbd;
  const [a, b] = subjectRange;
  const n = b - a;
  const samples = noise.length / (n * C);
  const base = Array.from({ length: n }, (_, j) => {
    if (!replace) return embeddingRow(model.weights, C, ids[a + j], a + j, model.spec);
    const out = new Float32Array(C);
    const wpe = model.spec.positions ? model.weights.get(model.spec.positions)!.data : undefined;
    if (wpe) out.set(wpe.subarray((a + j) * C, (a + j + 1) * C));
    return out;
  });
  const rows: Array<[number, number]> = [];
  const values = new Float32Array(batchRows.length * n * C);
  batchRows.forEach((row, i) => {
    const s = sampleOf(i);
    if (!(Number.isInteger(s) && s >= 0 && s < samples)) {
      throw new InputError(`noise sample ${s} out of range (have ${samples})`, { field: "noise" });
    }
    for (let j = 0; j < n; j++) {
      rows.push([row, a + j]);
      const o = (rows.length - 1) * C, no = (s * n + j) * C;
      for (let c = 0; c < C; c++) values[o + c] = base[j][c] + noise[no + c];
    }
  });
  return { site: "embed", rows, values };
}

/**
 * Checks replacement subject ids for a subject of `subjectLength` tokens: a typed error naming `field`
 * and both lengths when they differ.
 */
export function checkReplacementIds(ids: number[], subjectLength: number, vocabSize: number, field: string) {
  if (ids.length !== subjectLength) {
    throw new InputError(
      `the replacement subject has ${ids.length} tokens, the subject ${subjectLength}: symmetric token ` +
        `replacement needs the same token length`,
      { field },
    );
  }
  for (const id of ids) {
    if (!(Number.isInteger(id) && id >= 0 && id < vocabSize)) {
      throw new InputError(`replacement token id ${id} out of range [0, ${vocabSize})`, { field });
    }
  }
}

/**
 * The replacement subject's token ids for symmetric token replacement: `fact`'s prompt with `other` in
 * place of the subject, encoded exactly as `fact` is (`opts`). Throws {@link InputError} naming `field`
 * with both token lengths when `other` has another token length, or when the tokens around the subject
 * change (a merge across the subject's edge), since positions would then not line up.
 */
export function subjectReplacement(
  tok: Tokenizer,
  fact: FactInput,
  other: string,
  opts: EncodeFactOptions,
  field = "corrupt_subject",
): number[] {
  const clean = encodeFact(tok, fact, opts);
  let template = fact.prompt;
  if (!template.includes("{}")) {
    const at = template.indexOf(fact.subject);
    template = template.slice(0, at) + "{}" + template.slice(at + fact.subject.length);
  }
  if (other === "") throw new InputError("the replacement subject is empty", { field });
  const rep = encodeFact(tok, { prompt: template, subject: other }, { ...opts, appendTarget: false });
  const [a, b] = clean.subjectRange, [ra, rb] = rep.subjectRange;
  if (rb - ra !== b - a) {
    throw new FactError(
      `replacement subject '${other}' has ${rb - ra} tokens, the subject '${fact.subject}' ${b - a}: ` +
        `symmetric token replacement needs the same token length`,
      { field, file: opts.where?.file, record: opts.where?.record },
    );
  }
  const same = ra === a && rep.promptLength === clean.promptLength &&
    clean.ids.slice(0, clean.promptLength).every((id, t) => (t >= a && t < b) || rep.ids[t] === id);
  if (!same) {
    throw new FactError(
      `replacing '${fact.subject}' by '${other}' changes tokens outside the subject (the tokenizer merges ` +
        `across its edge)`,
      { field, file: opts.where?.file, record: opts.where?.record },
    );
  }
  return rep.ids.slice(ra, rb);
}

/**
 * Replacement subjects drawn from data: for the subject `subject`, the candidates of the same token
 * length (`byLength`, subject → its token length in its own prompt) other than itself, in an order
 * shuffled by a mulberry32 stream seeded by (seed, key): deterministic for a seed and a fact.
 */
export function replacementCandidates(
  subject: string,
  length: number,
  byLength: Map<string, number>,
  seed: number,
  key: number,
): string[] {
  const out = [...byLength].filter(([s, n]) => n === length && s !== subject).map(([s]) => s);
  const r = mulberry32((Math.imul(key + 1, 0x9e3779b1) ^ seed) >>> 0);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

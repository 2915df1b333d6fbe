/**
 * Activation patching: copy the values of any hook site at chosen positions from one run (the source)
 * into another (the target) and read how the target's next-token distribution changes.
 *
 * A run is a prompt plus optional hooks, so the three usual directions are:
 * - clean -> corrupted: source `{ids}`, target `{ids, hooks: corruptionHooks(...)}`;
 * - corrupted -> clean: source `{ids, hooks: corruptionHooks(...)}`, target `{ids}`;
 * - prompt A -> prompt B: source `{ids: a}`, target `{ids: b}` with `sourcePositions` mapping positions.
 *
 * Also here: the subject-noise corruption of causal tracing (Gaussian noise added to the input
 * embeddings of the subject tokens) and the embedding-std estimate its scale defaults to.
 */
import { InputError, ShapeError } from "../errors.ts";
import type { WeightMap } from "../model/config.ts";
import type { TransformerModel } from "../model/transformer.ts";
import { type Hooks, type PatchSpec, type SiteTensor, siteWidth } from "../model/hooks.ts";
import { mulberry32 } from "../model/generate.ts";
import { NumpyRandomState } from "./numpy_random.ts";

/** One forward run: a token sequence and optional hooks (e.g. a corruption). */
export interface RunSpec {
  /** Token ids of the run. */
  ids: number[];
  /** Hooks of the run (e.g. a corruption's patches). */
  hooks?: Hooks;
}

/** Which site values to carry over: site name, target positions and (optionally) source positions. */
export interface SitePatch {
  /** Hook site to copy (e.g. `mlp_out.5`). */
  site: string;
  /** Positions in the target run to overwrite. */
  positions: number[];
  /** Positions in the source run to read (default: the same as `positions`). */
  sourcePositions?: number[];
}

/** Result of {@link patchActivations}. */
export interface PatchResult {
  /** Next-token log-probabilities after the source's last token. */
  sourceLogprobs: Float32Array;
  /** Next-token log-probabilities of the target run without the patch. */
  targetLogprobs: Float32Array;
  /** Next-token log-probabilities of the target run with the patch. */
  patchedLogprobs: Float32Array;
  /** Source values of each patched site, shape [1, T_source, width]. */
  sourceValues: Map<string, SiteTensor>;
  /** Sites captured from the patched run (opts.capture), shape [1, T_target, width]. */
  captured: Map<string, SiteTensor>;
}

/** Runs `run` once and returns its last-position log-probabilities and the captured sites ([1, T, width] each). */
export async function captureRun(
  model: TransformerModel,
  run: RunSpec,
  sites: Iterable<string>,
): Promise<{ logprobs: Float32Array; values: Map<string, SiteTensor> }> {
  const capture = new Set([...(run.hooks?.capture ?? []), ...sites]);
  const r = await model.forward([run.ids], { hooks: { ...run.hooks, capture } });
  return { logprobs: r.logprobs[0], values: r.captured };
}

/**
 * Builds patch specs that write `values` ([T_source * width] per site, from a source run) at `patches`'
 * positions of batch row `batchRow` of a target run. Throws {@link InputError} for positions outside
 * either sequence and {@link ShapeError} for mismatched lengths.
 */
export function sitePatchSpecs(
  model: TransformerModel,
  patches: SitePatch[],
  values: Map<string, SiteTensor>,
  sourceLen: number,
  targetLen: number,
  batchRow = 0,
): PatchSpec[] {
  const out: PatchSpec[] = [];
  for (const p of patches) {
    const width = siteWidth(model.config, p.site);
    const src = p.sourcePositions ?? p.positions;
    if (src.length !== p.positions.length) {
      throw new ShapeError(`sourcePositions has ${src.length} entries, positions ${p.positions.length}`, {
        field: p.site,
      });
    }
    const v = values.get(p.site)?.data;
    if (!v || v.length !== sourceLen * width) {
      throw new ShapeError(`no source values of ${sourceLen} x ${width} for site`, { field: p.site });
    }
    const data = new Float32Array(p.positions.length * width);
    p.positions.forEach((t, i) => {
      const s = src[i];
      if (!(Number.isInteger(s) && s >= 0 && s < sourceLen)) {
        throw new InputError(`source position ${s} outside the source's ${sourceLen} tokens`, {
          field: p.site,
        });
      }
      if (!(Number.isInteger(t) && t >= 0 && t < targetLen)) {
        throw new InputError(`position ${t} outside the target's ${targetLen} tokens`, { field: p.site });
      }
      data.set(v.subarray(s * width, (s + 1) * width), i * width);
    });
    out.push({ site: p.site, rows: p.positions.map((t) => [batchRow, t] as [number, number]), values: data });
  }
  return out;
}

/**
 * Patches the sites in `patches` from the `source` run into the `target` run (any hook site, any
 * positions, e.g. `mlp_out.3` at the subject's last token). The target's own hooks run first at each
 * site, then the patch overwrites; `opts.capture` lists sites to return from the patched run.
 */
export async function patchActivations(
  model: TransformerModel,
  source: RunSpec,
  target: RunSpec,
  patches: SitePatch[],
  opts: { capture?: string[] } = {},
): Promise<PatchResult> {
  if (patches.length === 0) {
    throw new InputError("nothing to patch: give at least one site", { field: "patches" });
  }
  const sites = [...new Set(patches.map((p) => p.site))];
  const src = await captureRun(model, source, sites);
  const base = await model.forward([target.ids], { hooks: target.hooks });
  const specs = sitePatchSpecs(model, patches, src.values, source.ids.length, target.ids.length);
  const hooks: Hooks = {
    ...target.hooks,
    patch: [...(target.hooks?.patch ?? []), ...specs],
    capture: [...(target.hooks?.capture ?? []), ...(opts.capture ?? [])],
  };
  const patched = await model.forward([target.ids], { hooks });
  const sourceValues = new Map<string, SiteTensor>();
  for (const s of sites) sourceValues.set(s, src.values.get(s)!);
  return {
    sourceLogprobs: src.logprobs,
    targetLogprobs: base.logprobs[0],
    patchedLogprobs: patched.logprobs[0],
    sourceValues,
    captured: patched.captured,
  };
}

/**
 * Clean input embedding row wte[id] (+ wpe[pos] with learned positions) in float32, exactly as the GPU
 * embedding kernel computes it. `names` are the family's embedding names (default GPT-2's).
 */
export function embeddingRow(
  weights: WeightMap,
  nEmbd: number,
  id: number,
  pos: number,
  names: { embed: string; positions?: string } = { embed: "wte.weight", positions: "wpe.weight" },
): Float32Array {
  const wte = weights.get(names.embed)!.data;
  const wpe = names.positions ? weights.get(names.positions)!.data : undefined;
  const out = new Float32Array(nEmbd);
  for (let c = 0; c < nEmbd; c++) out[c] = wte[id * nEmbd + c] + (wpe ? wpe[pos * nEmbd + c] : 0);
  return out;
}

/**
 * Scalar standard deviation (n - 1 denominator) of the token-embedding values wte[id] over `ids` (with
 * repetition, as ROME's `collect_embedding_std` concatenates the subjects' embeddings), or over every row
 * of wte when `ids` is undefined.
 */
export function embeddingStd(
  weights: WeightMap,
  nEmbd: number,
  ids?: Iterable<number>,
  embed = "wte.weight",
): number {
  const wte = weights.get(embed);
  if (!wte) throw new ShapeError("missing weight", { field: embed });
  const V = wte.data.length / nEmbd;
  const rows = ids ? [...ids] : Array.from({ length: V }, (_, i) => i);
  if (rows.length === 0) {
    throw new InputError("no tokens to measure the embedding std over", { field: "noise" });
  }
  let n = 0, mean = 0, m2 = 0; // Welford
  for (const id of rows) {
    if (!(Number.isInteger(id) && id >= 0 && id < V)) {
      throw new InputError(`token id ${id} out of range`, { field: "noise" });
    }
    for (let c = 0; c < nEmbd; c++) {
      const x = wte.data[id * nEmbd + c];
      n++;
      const d = x - mean;
      mean += d / n;
      m2 += d * (x - mean);
    }
  }
  return Math.sqrt(m2 / Math.max(1, n - 1));
}

/** Generator of the tracing noise: numpy's `RandomState` (ROME's) or engram's earlier mulberry32. */
export type NoiseRng = "numpy" | "mulberry32";

/** The noise generators, default first. */
export const NOISE_RNGS: readonly NoiseRng[] = ["numpy", "mulberry32"];

/**
 * Gaussian noise for `samples` corrupted copies of `nTokens` subject tokens of width `width`, laid out
 * [sample][token][channel], float64 values std * N(0, 1). With `rng` "numpy" (default) they are
 * `std * numpy.random.RandomState(seed).randn(samples, nTokens, width)`, the values ROME's
 * `trace_with_patch` adds (it re-creates RandomState(1) on every call, so every restoration sees the same
 * corruption); "mulberry32" draws them by Box–Muller from a mulberry32 stream seeded with `seed`.
 */
export function subjectNoise(
  samples: number,
  nTokens: number,
  width: number,
  std: number,
  seed: number,
  rng: NoiseRng = "numpy",
): Float64Array {
  const n = samples * nTokens * width;
  if (rng === "numpy") {
    const out = new NumpyRandomState(seed).randn(n);
    for (let i = 0; i < n; i++) out[i] *= std;
    return out;
  }
  if (rng !== "mulberry32") throw new InputError(`unknown noise generator '${rng}'`, { field: "noiseRng" });
  const r = mulberry32(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(r(), 1e-300), v = r();
    const rad = Math.sqrt(-2 * Math.log(u));
    out[i] = std * rad * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = std * rad * Math.sin(2 * Math.PI * v);
  }
  return out;
}

/**
 * Hooks that corrupt batch rows `batchRows` (default [0]) of a run of `ids`: the `embed` rows of the
 * subject tokens [a, b) become clean embedding + noise of sample `sample0 + i` for batch row i
 * (`noise` from {@link subjectNoise}, [samples][b - a][C]).
 */
export function corruptionHooks(
  model: TransformerModel,
  ids: number[],
  subjectRange: [number, number],
  noise: Float64Array,
  opts: { batchRows?: number[]; sample0?: number } = {},
): Hooks {
  return {
    patch: [corruptionPatch(model, ids, subjectRange, noise, opts.batchRows ?? [0], opts.sample0 ?? 0)],
  };
}

/** The `embed` patch of {@link corruptionHooks}: batch row `batchRows[i]` gets noise sample `sample0 + i`. */
export function corruptionPatch(
  model: TransformerModel,
  ids: number[],
  subjectRange: [number, number],
  noise: Float64Array,
  batchRows: number[],
  sample0 = 0,
  sampleOf?: (i: number) => number,
): PatchSpec {
  const C = model.config.nEmbd;
  const [a, b] = subjectRange;
  const n = b - a;
  if (!(a >= 0 && b <= ids.length && n > 0)) {
    throw new InputError(`subject range [${a}, ${b}) outside the prompt's ${ids.length} tokens`, {
      field: "subject",
    });
  }
  const samples = noise.length / (n * C);
  const clean = Array.from(
    { length: n },
    (_, j) => embeddingRow(model.weights, C, ids[a + j], a + j, model.spec),
  );
  const rows: Array<[number, number]> = [];
  const values = new Float32Array(batchRows.length * n * C);
  batchRows.forEach((row, i) => {
    const s = sampleOf ? sampleOf(i) : sample0 + i;
    if (!(Number.isInteger(s) && s >= 0 && s < samples)) {
      throw new InputError(`noise sample ${s} out of range (have ${samples})`, { field: "noise" });
    }
    for (let j = 0; j < n; j++) {
      rows.push([row, a + j]);
      const o = (rows.length - 1) * C, no = (s * n + j) * C;
      for (let c = 0; c < C; c++) values[o + c] = clean[j][c] + noise[no + c];
    }
  });
  return { site: "embed", rows, values };
}

/**
 * Subject noise for every forward of a computation (Hase et al. 2023's Fact Forcing runs the whole edit,
 * and its evaluation, inside a hook that adds fresh Gaussian noise to the subject's input embeddings on
 * every forward: belief-localization `experiments/evaluate.py: get_subject_noising_function`,
 * `experiments/py/eval_utils_counterfact.py: test_batch_prediction`).
 *
 * The noise itself is causal tracing's: draw k of a {@link SubjectNoiser} is `subjectNoise(1, n, C, std,
 * seed + k, rng)` (src/locate/patching.ts) and it is applied by `corruptionPatch` (the subject's `embed`
 * rows become clean embedding + noise). Draws are numbered in the order rows ask for them, so a fixed
 * sequence of calls gives fixed noise.
 */
import type { PatchSpec } from "../model/hooks.ts";
import type { TransformerModel } from "../model/transformer.ts";
import { corruptionPatch, type NoiseRng, subjectNoise } from "./patching.ts";

/** The subject noise of a computation: std, first seed, generator. */
export interface SubjectNoiseSpec {
  /** Std of the Gaussian noise added to each subject embedding value. */
  std: number;
  /** Seed of draw 0 (draw k uses seed + k). */
  seed: number;
  /** Generator (default "numpy", tracing's). */
  rng?: NoiseRng;
}

/** One batch row to noise: its token ids, the subject's tokens [a, b) in them, and its row in the batch. */
export interface NoisedRow {
  /** The row's token ids (the clean embeddings are read at them). */
  ids: number[];
  /** The subject's tokens [a, b) in `ids` (empty: the row stays clean). */
  subjectRange: [number, number];
  /** The row's index in the batch. */
  row: number;
}

/** Hands out fresh subject noise draws and builds the `embed` patches that apply them. */
export class SubjectNoiser {
  private k = 0;

  /** A noiser whose first draw is seeded with `spec.seed`. */
  constructor(readonly spec: SubjectNoiseSpec) {}

  /** Draws handed out so far. */
  get draws(): number {
    return this.k;
  }

  /** The values of draw `k` for `nTokens` tokens of width `width` ([nTokens][width], std included). */
  static draw(spec: SubjectNoiseSpec, k: number, nTokens: number, width: number): Float64Array {
    return subjectNoise(1, nTokens, width, spec.std, (spec.seed + k) >>> 0, spec.rng ?? "numpy");
  }

  /**
   * The `embed` patch noising the subject tokens of every row of `rows`, each with the next draw, as a
   * list of zero or one patch (rows whose subject range is empty stay clean, as the reference skips
   * prompts without the subject).
   */
  patches(model: TransformerModel, rows: NoisedRow[]): PatchSpec[] {
    const drawn = rows.filter((r) => r.subjectRange[1] > r.subjectRange[0]).map((r) => ({
      ...r,
      draw: this.k++,
    }));
    return SubjectNoiser.patchRows(model, this.spec, drawn);
  }

  /** The `embed` patch (zero or one) giving each row draw `row.draw` of `spec` on its subject tokens. */
  static patchRows(
    model: TransformerModel,
    spec: SubjectNoiseSpec,
    rows: Array<NoisedRow & { draw: number }>,
  ): PatchSpec[] {
    const C = model.config.nEmbd;
    const parts = rows.map((r) => {
      const noise = SubjectNoiser.draw(spec, r.draw, r.subjectRange[1] - r.subjectRange[0], C);
      return corruptionPatch(model, r.ids, r.subjectRange, noise, [r.row], 0);
    });
    const values = new Float32Array(parts.reduce((a, p) => a + p.values.length, 0));
    let o = 0;
    for (const p of parts) {
      values.set(p.values, o);
      o += p.values.length;
    }
    return parts.length ? [{ site: "embed", rows: parts.flatMap((p) => p.rows), values }] : [];
  }
}

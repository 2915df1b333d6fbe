/**
 * Edits in two steps, as ROME's `execute_rome` / `apply_rome_to_model` split them:
 *
 * 1. An {@link Editor} computes additive weight deltas and leaves the model as it found it. Editors that
 *    must see their own earlier changes while computing (ROME's later requests, MEMIT's later layers, KN's
 *    later requests) change weights only through {@link ScratchWeights}, which puts every original back
 *    bit for bit before the editor returns or throws.
 * 2. {@link applyDeltas} is the one place that changes weights for good: it checks every delta before
 *    writing any, records the exact originals, writes each weight through one setter
 *    (`TransformerModel.setWeight`, which keeps the host and GPU copies equal), puts the originals back if a
 *    write fails half-way, and collects warnings. {@link restoreWeights} and `engram revert` write through
 *    the same setter.
 *
 * The editors themselves are listed in src/edit/editors.ts.
 */
import type { SubjectNoiseSpec } from "../locate/subject_noiser.ts";
import { InputError, ShapeError } from "../errors.ts";
import type { HostTensor, WeightMap } from "../model/config.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import type { TransformerModel } from "../model/transformer.ts";
import type { EditRequest } from "./requests.ts";
import type { StatsCorpus } from "./stats.ts";

/** Options every editor accepts. */
export interface EditOptions {
  /** Layers to edit (overrides the hparams' `layers`). */
  layers?: number[];
  /** Hyper-parameter overrides (a parsed JSON object, like EasyEdit's YAML). */
  hparams?: Record<string, unknown>;
  /** Progress of the long phases (statistics, optimisation, updates). */
  onProgress?: (phase: string, done: number, total: number) => void;
  /** Non-fatal conditions the user should know about (e.g. a regularised covariance). */
  onWarning?: (message: string) => void;
  /**
   * Statistics corpus (a file, or a file with its framing); required by ROME / MEMIT unless `stats` is
   * given or the hparams' `mom2_dataset` names a file. There is no default corpus (src/edit/stats.ts).
   */
  statsCorpus?: string | StatsCorpus;
  /** Prebuilt key statistics: ROME `.npz` or engram `.safetensors` files, or folders of them. */
  stats?: string[];
  /** Cache folder of computed statistics. */
  statsDir?: string;
  /**
   * Hase et al. 2023's objectives for the editors that optimise a δ (ROME, and MEMIT / AlphaEdit / EMMET
   * through src/edit/kv_layers.ts; the others ignore it): `loss` "prob" is Fact Erasure's exp(−NLL), and
   * `noise` runs every forward of the edit with fresh subject noise (Fact Forcing; src/edit/compute_v.ts).
   */
  objective?: { loss?: "nll" | "prob"; noise?: SubjectNoiseSpec };
}

/** What an editor computed, without applying it. */
export interface EditDeltas {
  /** The editing method that computed the deltas. */
  method: string;
  /** Additive change of each weight (same shape as the weight), in the order the editor first changed it. */
  deltas: Map<string, HostTensor>;
  /** Method-specific tensors worth keeping (rank-one factors, keys, deltas), for the edit log. */
  tensors: Map<string, HostTensor>;
  /** The hyper-parameters used, after defaults and overrides. */
  hparams: Record<string, unknown>;
  /** Method-specific details (layers, losses, statistics files, regularisation). */
  info: Record<string, unknown>;
  /** The editor's warnings (e.g. a target that stayed below the top). */
  warnings: string[];
}

/** What an applied edit did. */
export interface EditResult {
  /** The editing method. */
  method: string;
  /** Names of the weights changed, in the order first changed. */
  weights: string[];
  /** Exact values of those weights before the edit (copies). */
  originals: Map<string, HostTensor>;
  /** Method-specific tensors worth keeping (rank-one factors, deltas, keys), for the edit log. */
  tensors: Map<string, HostTensor>;
  /** The hyper-parameters used, after defaults and overrides. */
  hparams: Record<string, unknown>;
  /** Method-specific details (layers, losses, statistics files, regularisation). */
  info: Record<string, unknown>;
  /** The editor's warnings, then those of applying the deltas. */
  warnings: string[];
}

/** An editing method: computes deltas for `requests` and leaves `model` exactly as it found it. */
export type Editor = (
  model: TransformerModel,
  tokenizer: Tokenizer,
  requests: EditRequest[],
  opts: EditOptions,
) => Promise<EditDeltas>;

/** Where weights are read and written: a model (host + GPU) or a host-only weight map. */
export interface WeightTarget {
  /** The weight `name`, or undefined when the model has none. */
  get(name: string): HostTensor | undefined;
  /** Writes `data` as weight `name` (host and GPU together for a model). */
  set(name: string, data: Float32Array): void;
}

/** A loaded model's weights, written through `TransformerModel.setWeight` (host and GPU together). */
export function modelWeights(model: TransformerModel): WeightTarget {
  return { get: (n) => model.weights.get(n), set: (n, d) => model.setWeight(n, d) };
}

/** Host-only weights (e.g. a model folder being reverted without a GPU). */
export function hostWeights(weights: WeightMap): WeightTarget {
  return {
    get: (n) => weights.get(n),
    set: (n, d) => {
      const t = weights.get(n);
      if (!t) throw new ShapeError("no such weight", { field: n });
      t.data.set(d);
    },
  };
}

/** `orig + delta`, rounded once to float32: the edited value, wherever it is computed. */
export function addDelta(orig: Float32Array, delta: ArrayLike<number>): Float32Array {
  const out = new Float32Array(orig.length);
  for (let i = 0; i < out.length; i++) out[i] = orig[i] + delta[i];
  return out;
}

/** What {@link applyDeltas} changed. */
export interface AppliedDeltas {
  /** Weights written, in the deltas' order. */
  weights: string[];
  /** Their exact values before (copies). */
  originals: Map<string, HostTensor>;
  /** Warnings of applying (e.g. a non-finite weight after the edit). */
  warnings: string[];
}

/**
 * Applies additive `deltas` to `target`: every delta is checked (the weight exists, same shape, finite
 * values) before any weight is written; the originals are copied; each weight becomes `orig + delta`
 * ({@link addDelta}; a model's weight kept in 16 bits on the GPU is then rounded to its dtype by
 * `TransformerModel.setWeight`, host copy included). If a write fails, the weights already written are
 * restored and the error rethrown. Warns about a delta that changes nothing (all zero, or too small to move
 * any stored value: float32, or the 16-bit dtype of such a weight).
 */
export function applyDeltas(
  target: WeightTarget,
  deltas: Map<string, HostTensor>,
  opts: { onWarning?: (m: string) => void } = {},
): AppliedDeltas {
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    opts.onWarning?.(m);
  };
  for (const [name, d] of deltas) {
    const w = target.get(name);
    if (!w) throw new InputError(`model has no weight '${name}'`, { field: name });
    if (
      d.data.length !== w.data.length || d.shape.length !== w.shape.length ||
      d.shape.some((x, i) => x !== w.shape[i])
    ) {
      throw new ShapeError(`delta has shape [${d.shape}], the weight [${w.shape}]`, { field: name });
    }
    for (let i = 0; i < d.data.length; i++) {
      if (!Number.isFinite(d.data[i])) {
        throw new InputError(`the edit computed a non-finite change (${d.data[i]}) at index ${i}`, {
          field: name,
        });
      }
    }
  }
  const originals = new Map<string, HostTensor>();
  const written: string[] = [];
  try {
    for (const [name, d] of deltas) {
      const w = target.get(name)!;
      const orig = Float32Array.from(w.data);
      originals.set(name, { shape: [...w.shape], data: orig });
      target.set(name, addDelta(orig, d.data));
      written.push(name);
      // Counted on what was stored: a weight kept in 16 bits on the GPU is set rounded to its dtype.
      const now = target.get(name)!.data;
      let moved = 0;
      for (let i = 0; i < now.length; i++) if (now[i] !== orig[i]) moved++;
      if (moved === 0) {
        warn(
          `the edit leaves '${name}' unchanged (its delta is zero or below the resolution of its storage)`,
        );
      }
    }
  } catch (e) {
    for (const name of written) target.set(name, originals.get(name)!.data);
    throw e;
  }
  return { weights: [...originals.keys()], originals, warnings };
}

/** Puts back exact original weight values through `target`'s setter. */
export function restoreWeights(target: WeightTarget, originals: Map<string, HostTensor>): void {
  for (const [name, t] of originals) target.set(name, t.data);
}

/**
 * Weights an editor changes while it computes — later ROME requests and KN requests see the earlier ones,
 * later MEMIT layers see the earlier layers' updates — always put back exactly by {@link restore} (call
 * it in a `finally`). Values are set as `original + delta` with {@link addDelta}, so what the editor sees
 * is what {@link applyDeltas} will produce.
 */
export class ScratchWeights {
  private readonly originals = new Map<string, Float32Array>();

  constructor(private readonly model: TransformerModel) {}

  /** The exact value of `name` before this scratch changed it. */
  original(name: string): Float32Array {
    const o = this.originals.get(name);
    if (o) return o;
    const w = this.model.weights.get(name);
    if (!w) throw new InputError(`model has no weight '${name}'`, { field: name });
    return w.data;
  }

  /** Sets `name` to its original value plus `delta` (host and GPU). */
  setDelta(name: string, delta: ArrayLike<number>): void {
    const w = this.model.weights.get(name);
    if (!w) throw new InputError(`model has no weight '${name}'`, { field: name });
    if (!this.originals.has(name)) this.originals.set(name, Float32Array.from(w.data));
    this.model.setWeight(name, addDelta(this.originals.get(name)!, delta));
  }

  /** Puts every changed weight back to its exact original value. */
  restore(): void {
    for (const [name, o] of this.originals) this.model.setWeight(name, o);
    this.originals.clear();
  }
}

/** An applied in-memory edit. */
export interface AppliedEdit {
  /** What the edit did. */
  result: EditResult;
  /** Restores every changed weight to its exact original value. */
  restore(): void;
}

/** Applies an editor's computed `deltas` to `model` ({@link applyDeltas}) and returns the handle. */
export function applyComputed(
  model: TransformerModel,
  computed: EditDeltas,
  opts: { onWarning?: (m: string) => void } = {},
): AppliedEdit {
  const target = modelWeights(model);
  const applied = applyDeltas(target, computed.deltas, opts);
  const result: EditResult = {
    method: computed.method,
    weights: applied.weights,
    originals: applied.originals,
    tensors: computed.tensors,
    hparams: computed.hparams,
    info: computed.info,
    warnings: [...computed.warnings, ...applied.warnings],
  };
  return { result, restore: () => restoreWeights(target, applied.originals) };
}

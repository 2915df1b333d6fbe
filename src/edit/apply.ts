/**
 * The editor registry and in-memory edits. An {@link Editor} changes some weights of a loaded model in
 * place (host `model.weights` and the GPU copy, via `syncWeight`) and reports the exact original values
 * of every weight it changed, so an edit can always be undone bit for bit ({@link applyEdit}'s
 * `restore()`, and `engram revert` from the saved log).
 *
 * Editors register by name with {@link registerEditor}; src/edit/editors.ts imports every editor module
 * so that the registry is complete wherever it is imported.
 */
import { InputError } from "../errors.ts";
import type { HostTensor } from "../model/config.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import type { GPT2Model } from "../model/gpt2.ts";
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
}

/** What an editor did. */
export interface EditResult {
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
  warnings: string[];
}

/** An editing method. Mutates `model` and returns what it changed. */
export type Editor = (
  model: GPT2Model,
  tokenizer: Tokenizer,
  requests: EditRequest[],
  opts: EditOptions,
) => Promise<EditResult>;

const registry = new Map<string, Editor>();

/** Registers an editing method under `name` (e.g. "rome", "memit", "ft"). */
export function registerEditor(name: string, editor: Editor): void {
  registry.set(name, editor);
}

/** The registered editor `name`, or an {@link InputError} listing the known ones. */
export function getEditor(name: string): Editor {
  const e = registry.get(name);
  if (!e) {
    throw new InputError(`unknown edit method '${name}' (known: ${editorNames().join(", ")})`, {
      field: "--method",
    });
  }
  return e;
}

/** Names of the registered editors. */
export function editorNames(): string[] {
  return [...registry.keys()].sort();
}

/**
 * Records the original value of `name` in `originals` unless already there. Editors call this before
 * changing a weight for the first time.
 */
export function keepOriginal(
  model: GPT2Model,
  name: string,
  originals: Map<string, HostTensor>,
  order: string[],
): void {
  if (originals.has(name)) return;
  const w = model.weights.get(name);
  if (!w) throw new InputError(`model has no weight '${name}'`, { field: name });
  originals.set(name, { shape: [...w.shape], data: Float32Array.from(w.data) });
  order.push(name);
}

/** `delta.NAME` = current − original host values of each named weight, for the edit log. */
export function weightDeltas(
  model: GPT2Model,
  originals: Map<string, HostTensor>,
  names: string[],
): Map<string, HostTensor> {
  const tensors = new Map<string, HostTensor>();
  for (const n of names) {
    const w = model.weights.get(n)!, o = originals.get(n)!;
    const d = new Float32Array(w.data.length);
    for (let i = 0; i < d.length; i++) d[i] = w.data[i] - o.data[i];
    tensors.set(`delta.${n}`, { shape: [...w.shape], data: d });
  }
  return tensors;
}

/** Puts back exact original weight values (host and GPU). */
export function restoreWeights(model: GPT2Model, originals: Map<string, HostTensor>): void {
  for (const [name, t] of originals) {
    model.weights.get(name)!.data.set(t.data);
    model.syncWeight(name);
  }
}

/** An applied in-memory edit. */
export interface AppliedEdit {
  result: EditResult;
  /** Restores every changed weight to its exact original value. */
  restore(): void;
}

/**
 * Edits `model` in memory with the registered method and returns a handle whose `restore()` undoes the
 * edit exactly. If the editor fails, the model is left as it was.
 */
export async function applyEdit(
  model: GPT2Model,
  tokenizer: Tokenizer,
  method: string,
  requests: EditRequest[],
  opts: EditOptions = {},
): Promise<AppliedEdit> {
  const editor = getEditor(method);
  if (requests.length === 0) throw new InputError("no edit requests", { field: "requests" });
  // Safety net: snapshot everything an editor might touch cheaply is impossible in general, so editors
  // restore on their own failures; here we only guard against a partial result.
  const result = await editor(model, tokenizer, requests, opts);
  return { result, restore: () => restoreWeights(model, result.originals) };
}

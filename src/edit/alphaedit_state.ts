/**
 * AlphaEdit's sequential state (null-space basis U and K_p K_pᵀ per edited layer, src/edit/alphaedit.ts
 * {@link AlphaEditState}) in an edit log folder, so that `engram edit --method alphaedit` on a model an
 * earlier AlphaEdit edit produced continues that edit's state (the issue's "saved edit state (P, K_p K_pᵀ)
 * lets sequential editing resume"), while an unedited model starts from zero (EasyEdit#613 leaked it).
 *
 * File `alphaedit_state.safetensors` (float64, `F64`): per layer L the tensors `layer.L.basis` [rank, I]
 * (P = UᵀU), `layer.L.eigenvalues` [I] (C's, ascending) and `layer.L.kpkp` [I, I]; the log's
 * `info.alphaedit_state` describes it (file, SHA-256 of its bytes, dtype, edits so far, MLP width I,
 * layers, τ, ranks). Loading checks the checksum, the description against the file and both against the
 * model and hparams of the new edit; every mismatch is an {@link InputError} naming the file and field.
 */
import { join } from "node:path";
import { InputError, SafetensorsError } from "../errors.ts";
import { excerpt, kindOf } from "../io/excerpt.ts";
import { isJsonObject, own } from "../io/strict_json.ts";
import { parseSafetensors } from "../io/safetensors.ts";
import { EDIT_LINK } from "../io/model_folder.ts";
import type { WeightMap } from "../model/config.ts";
import type { AlphaEditLayerState, AlphaEditState } from "./alphaedit.ts";
import { checkEditedModel, sha256Bytes } from "./edit_link.ts";
import { readEditLog } from "./log.ts";

/** Name of the state file in a log folder. */
export const ALPHAEDIT_STATE_FILE = "alphaedit_state.safetensors";

/** The log's `info.alphaedit_state`: what the state file holds. */
export interface AlphaEditStateInfo {
  /** The state file's name in the log folder ({@link ALPHAEDIT_STATE_FILE}). */
  file: string;
  /** SHA-256 (hex) of the state file's bytes, checked on load. */
  sha256: string;
  /** Element type of every tensor: float64. */
  dtype: "F64";
  /** Requests edited into K_p K_pᵀ (this edit and every earlier one it continues). */
  edits: number;
  /** MLP width I (d_k) the state is for. */
  n_inner: number;
  /** Edited layers, in the hparams' order. */
  layers: number[];
  /** τ the bases were computed with. */
  nullspace_threshold: number;
  /** Null-space rank per layer (rows of `layer.L.basis`). */
  ranks: number[];
  /** The log folder whose state this edit continued (absent when it started from zero). */
  resumed_from?: string;
}

/** The state file's bytes (safetensors, F64 tensors, 8-byte aligned) and its description. */
export async function alphaEditStateFile(
  state: AlphaEditState,
): Promise<{ bytes: Uint8Array; info: AlphaEditStateInfo }> {
  const I = state.nInner;
  const tensors: { name: string; shape: number[]; data: Float64Array }[] = [];
  for (const layer of state.layers) {
    const l = state.perLayer.get(layer)!;
    tensors.push({ name: `layer.${layer}.basis`, shape: [l.rank, I], data: l.basis });
    tensors.push({ name: `layer.${layer}.eigenvalues`, shape: [I], data: l.eigenvalues });
    tensors.push({ name: `layer.${layer}.kpkp`, shape: [I, I], data: l.kpkp });
  }
  const header: Record<string, unknown> = {
    __metadata__: { format: "engram-alphaedit-state", edits: String(state.edits) },
  };
  let off = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: "F64", shape: t.shape, data_offsets: [off, off + t.data.byteLength] };
    off += t.data.byteLength;
  }
  let hjson = JSON.stringify(header);
  hjson += " ".repeat((8 - ((8 + hjson.length) % 8)) % 8); // data starts 8-byte aligned
  const hbytes = new TextEncoder().encode(hjson);
  const bytes = new Uint8Array(8 + hbytes.length + off);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(hbytes.length), true);
  bytes.set(hbytes, 8);
  let at = 8 + hbytes.length;
  for (const t of tensors) {
    const dv = new DataView(bytes.buffer, at, t.data.byteLength);
    for (let i = 0; i < t.data.length; i++) dv.setFloat64(i * 8, t.data[i], true);
    at += t.data.byteLength;
  }
  return {
    bytes,
    info: {
      file: ALPHAEDIT_STATE_FILE,
      sha256: await sha256Bytes(bytes),
      dtype: "F64",
      edits: state.edits,
      n_inner: I,
      layers: [...state.layers],
      nullspace_threshold: state.nullspaceThreshold,
      ranks: state.layers.map((l) => state.perLayer.get(l)!.rank),
    },
  };
}

/** What the new edit expects a state to be made for. */
export interface AlphaEditStateExpect {
  /** The model's MLP width. */
  nInner: number;
  /** The layers the new edit's hparams edit. */
  layers: number[];
  /** The new edit's τ. */
  nullspaceThreshold: number;
}

/**
 * Reads the state of log folder `logDir` (whose log.json `info` is `info`), checked as the module comment
 * says against `expect`.
 */
export async function readAlphaEditState(
  logDir: string,
  info: Record<string, unknown>,
  expect: AlphaEditStateExpect,
): Promise<AlphaEditState> {
  const jf = join(logDir, "log.json");
  const at = "info.alphaedit_state";
  const d = own(info, "alphaedit_state");
  const bad = (field: string, what: string, got: unknown) =>
    new InputError(`${what}, got ${kindOf(got)} ${excerpt(got)}`, { file: jf, field: `${at}${field}` });
  if (!isJsonObject(d)) {
    throw new InputError(
      "this AlphaEdit log holds no saved state (K_p K_pᵀ), so the edit cannot continue it; " +
        "--reset-state starts from zero (earlier edits then lose their protection)",
      { file: jf, field: at },
    );
  }
  const file = own(d, "file"), sha = own(d, "sha256"), dtype = own(d, "dtype"), edits = own(d, "edits");
  const nInner = own(d, "n_inner"), layers = own(d, "layers"), tau = own(d, "nullspace_threshold");
  if (file !== ALPHAEDIT_STATE_FILE) throw bad(".file", `must be "${ALPHAEDIT_STATE_FILE}"`, file);
  if (typeof sha !== "string" || !/^[0-9a-f]{64}$/.test(sha)) {
    throw bad(".sha256", "must be 64 hex digits", sha);
  }
  if (dtype !== "F64") throw bad(".dtype", 'must be "F64"', dtype);
  if (typeof edits !== "number" || !Number.isSafeInteger(edits) || edits < 0) {
    throw bad(".edits", "must be a non-negative integer", edits);
  }
  if (typeof nInner !== "number" || !Number.isSafeInteger(nInner) || nInner < 1) {
    throw bad(".n_inner", "must be a positive integer", nInner);
  }
  if (!Array.isArray(layers) || !layers.every((l) => Number.isSafeInteger(l) && l >= 0)) {
    throw bad(".layers", "must be a list of layer indices", layers);
  }
  if (typeof tau !== "number" || !(tau > 0)) {
    throw bad(".nullspace_threshold", "must be a positive number", tau);
  }
  // Against the new edit: another model width, other layers, another τ cannot continue this state.
  if (nInner !== expect.nInner) {
    throw new InputError(
      `the saved AlphaEdit state is for MLP width (d_k) ${nInner}; this model's is ${expect.nInner} ` +
        "(another model): --reset-state starts from zero",
      { file: jf, field: `${at}.n_inner` },
    );
  }
  const sameLayers = layers.length === expect.layers.length && layers.every((l, i) => l === expect.layers[i]);
  if (!sameLayers) {
    throw new InputError(
      `the saved AlphaEdit state is for layers [${layers}]; this edit's hparams edit [${expect.layers}]: ` +
        "use the same layers, or --reset-state to start from zero",
      { file: jf, field: `${at}.layers` },
    );
  }
  if (tau !== expect.nullspaceThreshold) {
    throw new InputError(
      `the saved AlphaEdit state has nullspace_threshold ${tau}; this edit's is ${expect.nullspaceThreshold}: ` +
        "use the same τ, or --reset-state to start from zero",
      { file: jf, field: `${at}.nullspace_threshold` },
    );
  }
  const sf = join(logDir, ALPHAEDIT_STATE_FILE);
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(sf);
  } catch (e) {
    throw new InputError(`cannot read the saved AlphaEdit state: ${(e as Error).message}`, {
      file: sf,
      field: `${at}.file`,
    });
  }
  if ((await sha256Bytes(bytes)) !== sha) {
    throw new InputError(`does not match the checksum in log.json (${at}.sha256): changed since?`, {
      file: sf,
      field: "sha256",
    });
  }
  let parsed;
  try {
    parsed = parseSafetensors(bytes, sf);
  } catch (e) {
    if (e instanceof SafetensorsError) throw new InputError(e.message, { file: sf, field: "header" });
    throw e;
  }
  const I = nInner;
  const perLayer = new Map<number, AlphaEditLayerState>();
  for (const layer of layers) {
    const get = (name: string, rows?: number) => {
      const t = parsed.tensors.get(`layer.${layer}.${name}`);
      const want = name === "basis" ? undefined : name === "eigenvalues" ? [I] : [I, I];
      if (
        !t || t.dtype !== "F64" ||
        (want
          ? t.shape.length !== want.length || t.shape.some((x, i) => x !== want[i])
          : t.shape.length !== 2 ||
            t.shape[1] !== I || (rows !== undefined && t.shape[0] !== rows))
      ) {
        throw new InputError(
          `tensor layer.${layer}.${name} missing or not F64 of shape ${want ? `[${want}]` : `[rank, ${I}]`}`,
          { file: sf, field: `layer.${layer}.${name}` },
        );
      }
      const out = new Float64Array(t.numel);
      const dv = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
      for (let i = 0; i < out.length; i++) out[i] = dv.getFloat64(i * 8, true);
      return { shape: t.shape, data: out };
    };
    const basis = get("basis");
    perLayer.set(layer, {
      basis: basis.data,
      rank: basis.shape[0],
      eigenvalues: get("eigenvalues").data,
      kpkp: get("kpkp").data,
    });
  }
  return { nInner: I, layers: [...layers], nullspaceThreshold: tau, edits, perLayer };
}

/**
 * The AlphaEdit state an edit of model folder `modelDir` (weights `weights`) continues: the state in the
 * log of the AlphaEdit edit that produced the folder (found through its {@link EDIT_LINK}; the weights must
 * be exactly the ones that edit wrote), or undefined for a model no edit wrote or one another method edited
 * last (`note` says which). A missing or mismatched state is an {@link InputError}.
 */
export async function priorAlphaEditState(
  modelDir: string,
  weights: WeightMap,
  expect: AlphaEditStateExpect,
): Promise<{ state?: AlphaEditState; log?: string; note: string }> {
  try {
    await Deno.stat(join(modelDir, EDIT_LINK));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
      return { note: "the model is not an edited model: AlphaEdit starts from K_p K_pᵀ = 0" };
    }
    throw e;
  }
  const check = await checkEditedModel(modelDir, weights);
  if (check.method !== "alphaedit") {
    return {
      note: `the model was last edited by ${check.method}, not AlphaEdit: AlphaEdit starts from K_p K_pᵀ = 0`,
    };
  }
  const log = await readEditLog(check.log);
  const state = await readAlphaEditState(check.log, log.json.info, expect);
  return {
    state,
    log: check.log,
    note: `continuing the AlphaEdit state of ${check.log} (${state.edits} earlier edit(s) in K_p K_pᵀ)`,
  };
}

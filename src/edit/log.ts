/**
 * The edit log: everything needed to understand and undo an edit. A log folder holds
 *   log.json              method, requests, layers, hparams, info, warnings, the edited weights with the
 *                         SHA-256 of their original and edited bytes, and the model folders involved;
 *   original.safetensors  the exact original values of every edited weight (what `revert` puts back);
 *   factors.safetensors   the method's tensors (ROME: u and right per request; MEMIT: X and resid per
 *                         layer, whose product is the weight delta).
 * Folders are written atomically.
 */
import { join } from "node:path";
import { InputError } from "../errors.ts";
import { writeDirAtomic } from "../io/atomic.ts";
import { excerpt, kindOf } from "../io/excerpt.ts";
import { isJsonObject, own, parseStrictJson } from "../io/strict_json.ts";
import { snakeKeys } from "../schema/common.ts";
import { readSafetensors, serializeSafetensors } from "../io/safetensors.ts";
import type { HostTensor, WeightMap } from "../model/config.ts";
import { type EditResult, hostWeights, restoreWeights, type WeightTarget } from "./apply.ts";
import type { EditRequest } from "./requests.ts";

/** Version of the log layout. */
export const EDIT_LOG_VERSION = 1;

/** SHA-256 (hex) of a float32 array's bytes. */
export async function sha256F32(d: Float32Array): Promise<string> {
  const h = new Uint8Array(
    await crypto.subtle.digest(
      "SHA-256",
      new Uint8Array(d.buffer as ArrayBuffer, d.byteOffset, d.byteLength),
    ),
  );
  return Array.from(h, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The JSON part of a log. */
export interface EditLogJson {
  /** `engram-edit-log/1` (absent in logs written before the JSON convention; read all the same). */
  schema?: string;
  /** Format version of the log. */
  version: number;
  /** The editing method (rome, memit, ...). */
  method: string;
  /** When the edit was made (ISO 8601). */
  created: string;
  /** The folder of the model that was edited. */
  source_model?: string;
  /** The folder the edited model was written to. */
  edited_model?: string;
  /** The requests edited, as given. */
  requests: EditRequest[];
  /** The hyper-parameters used, after defaults and overrides. */
  hparams: Record<string, unknown>;
  /** Method-specific details (layers, losses, statistics files). */
  info: Record<string, unknown>;
  /** Warnings of the editor and of applying its deltas. */
  warnings: string[];
  /** Each changed weight with its shape and the SHA-256 of its bytes before and after the edit. */
  weights: Array<{ name: string; shape: number[]; original_sha256: string; edited_sha256: string }>;
}

/** Writes the log of `result` (applied to `edited` weights) into the new folder `dir`. */
export async function writeEditLog(
  dir: string,
  result: EditResult,
  requests: EditRequest[],
  edited: WeightMap,
  paths: { source?: string; edited?: string } = {},
  opts: { overwrite?: boolean } = {},
): Promise<void> {
  await writeDirAtomic(dir, await editLogFiles(result, requests, edited, paths), {
    ...opts,
    kind: "edit log",
    flag: "--log",
  });
}

/**
 * The files of the log folder of `result` (name -> content), for callers that stage the log together
 * with the edited model (src/cli/edit.ts).
 */
export async function editLogFiles(
  result: EditResult,
  requests: EditRequest[],
  edited: WeightMap,
  paths: { source?: string; edited?: string } = {},
): Promise<Record<string, Uint8Array | string>> {
  const weights = [];
  for (const name of result.weights) {
    const o = result.originals.get(name)!;
    weights.push({
      name,
      shape: o.shape,
      original_sha256: await sha256F32(o.data),
      edited_sha256: await sha256F32(edited.get(name)!.data),
    });
  }
  const json: EditLogJson = {
    schema: "engram-edit-log/1",
    version: EDIT_LOG_VERSION,
    method: result.method,
    created: new Date().toISOString(),
    source_model: paths.source,
    edited_model: paths.edited,
    requests,
    hparams: result.hparams,
    // snake_case like every engram document (the editors' own reports may use camelCase keys).
    info: snakeKeys(result.info),
    warnings: result.warnings,
    weights,
  };
  const files: Record<string, Uint8Array | string> = {
    "log.json": JSON.stringify(json, null, 2) + "\n",
    "original.safetensors": serializeSafetensors(result.originals, { method: result.method }),
  };
  if (result.tensors.size > 0) {
    files["factors.safetensors"] = serializeSafetensors(result.tensors, { method: result.method });
  }
  return files;
}

/** A read log: its JSON and the original tensors. */
export interface EditLog {
  /** The log's JSON part. */
  json: EditLogJson;
  /** The original values of every changed weight. */
  originals: Map<string, HostTensor>;
}

const SHA256 = /^[0-9a-f]{64}$/;

/** Checks the parsed log.json `v` field by field; errors name `file` and the field. */
function checkLogJson(v: unknown, file: string): EditLogJson {
  const bad = (field: string, what: string, got: unknown) =>
    new InputError(`${what}, got ${kindOf(got)} ${excerpt(got)}`, { file, field });
  if (!isJsonObject(v)) throw bad("", "not an engram edit log: must hold a JSON object", v);
  const version = own(v, "version");
  if (typeof version !== "number") {
    throw bad("version", "not an engram edit log: version must be a number", version);
  }
  if (version !== EDIT_LOG_VERSION) {
    throw new InputError(`not an engram edit log of version ${EDIT_LOG_VERSION} (version ${version})`, {
      file,
      field: "version",
    });
  }
  const method = own(v, "method");
  if (typeof method !== "string") throw bad("method", "must be a string", method);
  const weights = own(v, "weights");
  if (!Array.isArray(weights)) throw bad("weights", "must be an array", weights);
  const seen = new Set<string>();
  const out: EditLogJson["weights"] = [];
  weights.forEach((w, i) => {
    const at = `weights[${i}]`;
    if (!isJsonObject(w)) throw bad(at, "must be an object", w);
    const name = own(w, "name");
    if (typeof name !== "string" || name === "") throw bad(`${at}.name`, "must be a weight name", name);
    if (seen.has(name)) {
      throw new InputError(`weight '${excerpt(name)}' is listed twice`, { file, field: `${at}.name` });
    }
    seen.add(name);
    const shape = own(w, "shape");
    if (
      !Array.isArray(shape) || shape.length > 8 ||
      !shape.every((d) => typeof d === "number" && Number.isSafeInteger(d) && d >= 0)
    ) {
      throw bad(`${at}.shape`, "must be a list of at most 8 non-negative integers", shape);
    }
    for (const k of ["original_sha256", "edited_sha256"]) {
      const h = own(w, k);
      if (typeof h !== "string" || !SHA256.test(h)) throw bad(`${at}.${k}`, "must be 64 hex digits", h);
    }
    out.push({
      name,
      shape: shape as number[],
      original_sha256: own(w, "original_sha256") as string,
      edited_sha256: own(w, "edited_sha256") as string,
    });
  });
  for (const k of ["source_model", "edited_model", "created"]) {
    const x = own(v, k);
    if (x !== undefined && typeof x !== "string") throw bad(k, "must be a string", x);
  }
  const requests = own(v, "requests");
  if (requests !== undefined && !Array.isArray(requests)) throw bad("requests", "must be an array", requests);
  for (const k of ["hparams", "info"]) {
    const x = own(v, k);
    if (x !== undefined && !isJsonObject(x)) throw bad(k, "must be an object", x);
  }
  const warnings = own(v, "warnings");
  if (warnings !== undefined && (!Array.isArray(warnings) || !warnings.every((x) => typeof x === "string"))) {
    throw bad("warnings", "must be a list of strings", warnings);
  }
  return {
    version,
    method,
    created: (own(v, "created") as string | undefined) ?? "",
    source_model: own(v, "source_model") as string | undefined,
    edited_model: own(v, "edited_model") as string | undefined,
    requests: (requests ?? []) as EditRequest[],
    hparams: (own(v, "hparams") ?? {}) as Record<string, unknown>,
    info: (own(v, "info") ?? {}) as Record<string, unknown>,
    warnings: (warnings ?? []) as string[],
    weights: out,
  };
}

/**
 * Reads a log folder. log.json is parsed strictly (src/io/strict_json.ts: depth limit, duplicate keys,
 * no prototype) and checked field by field; each original tensor must be in original.safetensors with the
 * logged shape and checksum. Errors are {@link InputError}s naming the file and field.
 */
export async function readEditLog(dir: string): Promise<EditLog> {
  const jf = join(dir, "log.json");
  let text: string;
  try {
    text = await Deno.readTextFile(jf);
  } catch (e) {
    throw new InputError(`cannot read the edit log: ${(e as Error).message}`, { file: jf });
  }
  const json = checkLogJson(parseStrictJson(text, { file: jf, maxDepth: 64 }), jf);
  const sf = join(dir, "original.safetensors");
  const st = await readSafetensors(sf);
  const originals = new Map<string, HostTensor>();
  for (const w of json.weights) {
    const t = st.tensors.get(w.name);
    if (!t) {
      throw new InputError(`original values of ${excerpt(w.name, 80)} missing`, { file: sf, field: w.name });
    }
    if (t.shape.length !== w.shape.length || t.shape.some((d, i) => d !== w.shape[i])) {
      throw new InputError(
        `original values of '${w.name}' have shape [${t.shape}], log.json says [${w.shape}]`,
        { file: sf, field: w.name },
      );
    }
    const data = Float32Array.from(t.data);
    if ((await sha256F32(data)) !== w.original_sha256) {
      throw new InputError(`original values of '${w.name}' do not match the checksum in log.json`, {
        file: sf,
        field: w.name,
      });
    }
    originals.set(w.name, { shape: [...t.shape], data });
  }
  return { json, originals };
}

/**
 * Puts the log's original tensors back: into a host weight map, or through a {@link WeightTarget} such
 * as `modelWeights(model)` (host and GPU together) — the same setter edits and restores use. Checks every
 * weight before writing any, and refuses, naming the weight, when the current values are not the ones
 * the edit produced (wrong log, or edited since) unless `force`.
 */
export async function revertWeights(
  weights: WeightMap | WeightTarget,
  log: EditLog,
  opts: { force?: boolean; file?: string; logFile?: string } = {},
): Promise<string[]> {
  const target = weights instanceof Map ? hostWeights(weights) : weights;
  if (log.json.weights.length === 0) {
    // Writing the model unchanged would look like a successful revert of a still-edited model.
    throw new InputError("the edit log holds no weights: there is nothing to revert", {
      file: opts.logFile,
      field: "weights",
    });
  }
  for (const w of log.json.weights) {
    const cur = target.get(w.name);
    if (!cur) {
      throw new InputError(`model has no weight '${w.name}' named in the log`, {
        file: opts.file,
        field: w.name,
      });
    }
    if (cur.data.length !== log.originals.get(w.name)!.data.length) {
      throw new InputError(`weight '${w.name}' has a different size than in the log`, {
        file: opts.file,
        field: w.name,
      });
    }
    if (!opts.force && (await sha256F32(cur.data)) !== w.edited_sha256) {
      throw new InputError(
        `weight '${w.name}' is not the one this log's edit produced (wrong --log, or edited again); use --force to revert anyway`,
        { file: opts.file, field: w.name },
      );
    }
  }
  const names = log.json.weights.map((w) => w.name);
  restoreWeights(target, new Map(names.map((n) => [n, log.originals.get(n)!])));
  return names;
}

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
  version: number;
  method: string;
  created: string;
  source_model?: string;
  edited_model?: string;
  requests: EditRequest[];
  hparams: Record<string, unknown>;
  info: Record<string, unknown>;
  warnings: string[];
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
    version: EDIT_LOG_VERSION,
    method: result.method,
    created: new Date().toISOString(),
    source_model: paths.source,
    edited_model: paths.edited,
    requests,
    hparams: result.hparams,
    info: result.info,
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
  await writeDirAtomic(dir, files, opts);
}

/** A read log: its JSON and the original tensors. */
export interface EditLog {
  json: EditLogJson;
  originals: Map<string, HostTensor>;
}

/** Reads a log folder; errors name the file and field. */
export async function readEditLog(dir: string): Promise<EditLog> {
  const jf = join(dir, "log.json");
  let json: EditLogJson;
  try {
    json = JSON.parse(await Deno.readTextFile(jf));
  } catch (e) {
    throw new InputError(`cannot read the edit log: ${(e as Error).message}`, { file: jf });
  }
  if (json?.version !== EDIT_LOG_VERSION || !Array.isArray(json.weights)) {
    throw new InputError(`not an engram edit log (version ${json?.version})`, { file: jf, field: "version" });
  }
  const sf = join(dir, "original.safetensors");
  const st = await readSafetensors(sf);
  const originals = new Map<string, HostTensor>();
  for (const w of json.weights) {
    const t = st.tensors.get(w.name);
    if (!t) throw new InputError(`original values of '${w.name}' missing`, { file: sf, field: w.name });
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
  opts: { force?: boolean; file?: string } = {},
): Promise<string[]> {
  const target = weights instanceof Map ? hostWeights(weights) : weights;
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

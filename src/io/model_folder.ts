/**
 * The rest of a model folder: what a saved copy of a model (an edited or reverted model) keeps besides
 * config.json and model.safetensors. Every other plain file at the folder's top level is copied as it is
 * (generation_config.json, tokenizer files, README, PROVENANCE, ...), except weight files of other
 * formats, engram's own markers, and `engram_stats.json`, whose relative corpus path is rewritten for the
 * new folder by the caller (src/edit/stats.ts writeStatsDeclaration). Subfolders (training checkpoints)
 * are not copied: they are not part of the model and can be large.
 */
import { isAbsolute, join, relative, resolve } from "node:path";
import { EngramError } from "../errors.ts";
import { OUTPUT_MARKER } from "./atomic.ts";
import { isJsonObject, parseStrictJson } from "./strict_json.ts";

/** The statistics declaration of a model folder (src/edit/stats.ts reads it). */
const STATS_FILE = "engram_stats.json";

/** The record in an edited model folder that names its edit log ({@link EditLink}). */
export const EDIT_LINK = "engram_edit.json";

/** Files of a model folder that are never copied as they are. */
const NOT_COPIED = new Set([
  "config.json",
  "model.safetensors",
  "engram_stats.json",
  OUTPUT_MARKER,
  EDIT_LINK,
  "model.safetensors.index.json",
  "pytorch_model.bin",
  "pytorch_model.bin.index.json",
  "tf_model.h5",
  "flax_model.msgpack",
]);

/** Largest file copied (a bigger stray file is more likely weights than metadata). */
const MAX_COPY_BYTES = 64 << 20;

/**
 * The plain top-level files of model folder `dir` that a copy keeps (see the module comment), by name.
 * Errors name the file.
 */
export async function otherModelFiles(dir: string): Promise<Record<string, Uint8Array>> {
  const out: Record<string, Uint8Array> = {};
  // A model given as one file (GGUF) has no folder files to keep.
  if (await isFile(dir)) return out;
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (e) {
    throw new EngramError("io", `cannot list the model folder: ${(e as Error).message}`, { file: dir });
  }
  for (const e of entries) {
    if (!e.isFile || NOT_COPIED.has(e.name) || e.name.endsWith(".safetensors")) continue;
    if (e.name.endsWith(".lock") || e.name.includes(".tmp-")) continue;
    const p = join(dir, e.name);
    try {
      const st = await Deno.stat(p);
      if (st.size > MAX_COPY_BYTES) continue;
      out[e.name] = await Deno.readFile(p);
    } catch (err) {
      throw new EngramError("io", `cannot read: ${(err as Error).message}`, { file: p, cause: err });
    }
  }
  return out;
}

/**
 * `fromDir`'s engram_stats.json rewritten for a copy of the model in `toDir`: a relative corpus path is
 * made relative to `toDir`, every other field is kept. Undefined when `fromDir` has none.
 */
export async function statsDeclarationFor(fromDir: string, toDir: string): Promise<string | undefined> {
  if (await isFile(fromDir)) return undefined;
  const file = join(fromDir, STATS_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw new EngramError("io", `cannot read: ${(e as Error).message}`, { file, cause: e });
  }
  const o = parseStrictJson(text, { file, maxDepth: 8 });
  if (!isJsonObject(o)) return text; // src/edit/stats.ts reports it when it is used
  const corpus = o.corpus;
  if (typeof corpus === "string" && corpus !== "" && !isAbsolute(corpus)) {
    o.corpus = relative(resolve(toDir), resolve(fromDir, corpus));
  }
  return JSON.stringify(o, null, 2) + "\n";
}

/** Everything a copy of model folder `fromDir` in `toDir` keeps besides config.json and the weights. */
export async function modelCopyFiles(
  fromDir: string,
  toDir: string,
): Promise<Record<string, Uint8Array | string>> {
  const files: Record<string, Uint8Array | string> = await otherModelFiles(fromDir);
  const stats = await statsDeclarationFor(fromDir, toDir);
  if (stats !== undefined) files[STATS_FILE] = stats;
  return files;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

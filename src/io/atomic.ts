/**
 * Atomic file and folder writes: readers see either the old content or the complete new content,
 * never a half-written file or folder.
 *
 * A file is written to a temporary sibling (`<path>.tmp-<random>`), flushed to disk and renamed over
 * the target. A folder is assembled in a temporary sibling folder and renamed into place.
 */
import { basename, dirname, join } from "node:path";
import { EngramError } from "../errors.ts";

/** A short random suffix for temporary names. */
function randomSuffix(): string {
  const b = crypto.getRandomValues(new Uint8Array(6));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function toBytes(data: Uint8Array | string): Uint8Array {
  return typeof data === "string" ? new TextEncoder().encode(data) : data;
}

async function removeQuietly(path: string, recursive = false): Promise<void> {
  try {
    await Deno.remove(path, { recursive });
  } catch {
    // already gone or never created
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Writes all of `bytes` to a new file at `path` (which must not exist) and fsyncs it. */
async function writeNewFile(path: string, bytes: Uint8Array): Promise<void> {
  const f = await Deno.open(path, { write: true, createNew: true });
  try {
    let off = 0;
    while (off < bytes.length) off += await f.write(bytes.subarray(off));
    await f.sync();
  } finally {
    f.close();
  }
}

function ioError(what: string, path: string, e: unknown): EngramError {
  if (e instanceof EngramError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new EngramError("io", `${what}: ${msg}`, { file: path, cause: e });
}

/**
 * Writes `data` to `path` atomically: into `path + ".tmp-<random>"` in the same folder, fsync, then
 * rename over `path`. On failure the temporary file is removed and `path` is untouched.
 * Throws {@link EngramError} (code "io") naming the path when the write fails.
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp-${randomSuffix()}`;
  try {
    await writeNewFile(tmp, toBytes(data));
    await Deno.rename(tmp, path);
  } catch (e) {
    await removeQuietly(tmp);
    throw ioError("cannot write file", path, e);
  }
}

/** Options of {@link writeDirAtomic}. */
export interface WriteDirOptions {
  /** Replace `dir` if it already exists (default false: refuse with code "exists"). */
  overwrite?: boolean;
}

/**
 * Creates folder `dir` holding exactly `files` (plain file names -> content), atomically: the files are
 * written and fsynced in a temporary sibling folder, which is then renamed to `dir`. If `dir` exists,
 * throws {@link EngramError} with code "exists" unless `overwrite` is true, in which case the old folder
 * is moved aside, replaced, and then deleted (restored if the replacement fails). The parent folder is
 * created if needed. Never leaves a half-written `dir`; temporary folders are removed on failure.
 */
export async function writeDirAtomic(
  dir: string,
  files: Record<string, Uint8Array | string>,
  opts: WriteDirOptions = {},
): Promise<void> {
  for (const name of Object.keys(files)) {
    if (name === "" || name === "." || name === ".." || name.includes("/") || name.includes("\\")) {
      throw new EngramError("io", "file names must be plain names without folders", {
        file: dir,
        field: name,
      });
    }
  }
  const target = dir.replace(/\/+$/, "") || dir;
  if (!opts.overwrite && await exists(target)) {
    throw new EngramError("exists", "already exists (pass overwrite to replace it)", { file: target });
  }
  const parent = dirname(target);
  try {
    await Deno.mkdir(parent, { recursive: true });
  } catch (e) {
    throw ioError("cannot create parent folder", parent, e);
  }
  const tmp = join(parent, `.${basename(target)}.tmp-${randomSuffix()}`);
  try {
    await Deno.mkdir(tmp);
    for (const [name, data] of Object.entries(files)) await writeNewFile(join(tmp, name), toBytes(data));
  } catch (e) {
    await removeQuietly(tmp, true);
    throw ioError("cannot write folder", target, e);
  }

  if (!(await exists(target))) {
    try {
      await Deno.rename(tmp, target);
      return;
    } catch (e) {
      await removeQuietly(tmp, true);
      throw ioError("cannot move folder into place (did it appear meanwhile?)", target, e);
    }
  }
  if (!opts.overwrite) {
    await removeQuietly(tmp, true);
    throw new EngramError("exists", "already exists (pass overwrite to replace it)", { file: target });
  }
  // Replace: move the old one aside, move the new one in, then delete the old one.
  const old = join(parent, `.${basename(target)}.old-${randomSuffix()}`);
  try {
    await Deno.rename(target, old);
  } catch (e) {
    await removeQuietly(tmp, true);
    throw ioError("cannot move the existing folder aside", target, e);
  }
  try {
    await Deno.rename(tmp, target);
  } catch (e) {
    await Deno.rename(old, target).catch(() => {});
    await removeQuietly(tmp, true);
    throw ioError("cannot move folder into place", target, e);
  }
  await removeQuietly(old, true);
}

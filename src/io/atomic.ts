/**
 * Atomic file and folder writes: readers see either the old content or the complete new content,
 * never a half-written file or folder.
 *
 * A file is written to a temporary sibling (`<path>.tmp-<random>`), flushed to disk and renamed over
 * the target. A folder is assembled in a temporary sibling folder (`.<name>.tmp-<random>`) and renamed
 * into place; several folders that belong together (an edited model and its edit log) are all staged
 * first and then renamed in a chosen order ({@link stageDir}, {@link commitStaged}).
 *
 * Every folder written here holds a marker file, {@link OUTPUT_MARKER}. Replacing an existing folder
 * (`overwrite`) is allowed only when it holds the marker (engram wrote it) or is empty: a folder engram
 * did not write is never deleted. The old folder is moved aside (`.<name>.old-<random>`) and deleted only
 * after the new one is in place. Between those two renames a reader finds no folder at all, never a
 * half-swapped one (POSIX has no atomic exchange of two folders).
 */
import { basename, dirname, join } from "node:path";
import { EngramError } from "../errors.ts";
import { envOverride } from "./permissions.ts";

/** Name of the marker file in every folder engram writes; `overwrite` replaces only such folders. */
export const OUTPUT_MARKER = ".engram-output";

/** A short random suffix for temporary names. */
export function randomSuffix(): string {
  const b = crypto.getRandomValues(new Uint8Array(6));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * File content produced in pieces (a multi-gigabyte safetensors file is never one buffer): `size` bytes
 * in all, yielded by `chunks()`. A writer checks the total against `size`.
 */
export interface StreamedContent {
  /** Total bytes the chunks add up to. */
  readonly size: number;
  /** The content, in order; each call starts again from the beginning. */
  chunks(): Iterable<Uint8Array>;
}

/** What a file of a written folder holds: bytes, text (UTF-8), or {@link StreamedContent}. */
export type FileContent = Uint8Array | string | StreamedContent;

function isStreamed(data: FileContent): data is StreamedContent {
  return typeof data !== "string" && !(data instanceof Uint8Array);
}

/** The whole content as one buffer (for small files and tests; a writer streams {@link StreamedContent}). */
export function contentBytes(data: FileContent): Uint8Array {
  if (!isStreamed(data)) return toBytes(data);
  const out = new Uint8Array(data.size);
  let off = 0;
  for (const c of data.chunks()) {
    out.set(c, off);
    off += c.length;
  }
  return out;
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

/** The lstat of `path`, or undefined when nothing is there. */
export async function lstatOrUndefined(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/** Writes all of `data` to a new file at `path` (which must not exist) and fsyncs it. */
async function writeNewFile(path: string, data: FileContent): Promise<void> {
  const f = await Deno.open(path, { write: true, createNew: true });
  try {
    let total = 0;
    for (const bytes of isStreamed(data) ? data.chunks() : [toBytes(data)]) {
      let off = 0;
      while (off < bytes.length) off += await f.write(bytes.subarray(off));
      total += bytes.length;
    }
    if (isStreamed(data) && total !== data.size) {
      throw new EngramError("io", `wrote ${total} bytes of a file declared as ${data.size}`, { file: path });
    }
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
export async function writeFileAtomic(path: string, data: FileContent): Promise<void> {
  const tmp = `${path}.tmp-${randomSuffix()}`;
  try {
    await writeNewFile(tmp, data);
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
  /** What the folder is, recorded in its marker (e.g. "model", "edit log"). */
  kind?: string;
  /** Flag that named the folder (e.g. "--out"), for error messages. */
  flag?: string;
}

/** `dir` without trailing slashes. */
function clean(dir: string): string {
  return dir.replace(/\/+$/, "") || dir;
}

/**
 * Why the existing `target` may not be replaced, or undefined when it may: absent, an empty folder, or a
 * folder holding {@link OUTPUT_MARKER}. Files and unmarked folders are never replaced.
 */
export async function replaceRefusal(target: string): Promise<string | undefined> {
  const st = await lstatOrUndefined(target);
  if (!st) return undefined;
  if (!st.isDirectory) {
    return `is ${
      st.isSymlink ? "a symbolic link" : "a file"
    }, not a folder engram wrote; engram does not replace it`;
  }
  if (await lstatOrUndefined(join(target, OUTPUT_MARKER))) return undefined;
  for await (const _ of Deno.readDir(target)) {
    return `was not written by engram (it has no ${OUTPUT_MARKER} file), so engram never deletes it: ` +
      `choose another folder or remove it yourself`;
  }
  return undefined; // empty: nothing to lose
}

/**
 * Throws when `target` exists and may not be replaced: code "exists" without `overwrite`, code
 * "not-engram" when it is not a folder engram wrote (see {@link replaceRefusal}).
 */
export async function checkReplaceable(target: string, overwrite: boolean, flag?: string): Promise<void> {
  const st = await lstatOrUndefined(target);
  if (!st) return;
  if (!overwrite) {
    throw new EngramError("exists", "already exists (pass --overwrite to replace it)", {
      file: target,
      field: flag,
    });
  }
  const why = await replaceRefusal(target);
  if (why) throw new EngramError("not-engram", why, { file: target, field: flag });
}

/** A folder assembled under a temporary name beside its target ({@link stageDir}). */
export interface StagedDir {
  target: string;
  tmp: string;
  flag?: string;
}

function checkNames(dir: string, files: Record<string, unknown>): void {
  for (const name of Object.keys(files)) {
    if (name === "" || name === "." || name === ".." || name.includes("/") || name.includes("\\")) {
      throw new EngramError("io", "file names must be plain names without folders", {
        file: dir,
        field: name,
      });
    }
  }
}

/** The marker file's content. */
export function markerText(kind: string): string {
  // The id tells two outputs at one path apart (a reader notices a swap even when inodes are reused).
  return JSON.stringify({
    written_by: "engram",
    kind,
    created: new Date().toISOString(),
    id: randomSuffix(),
  }) +
    "\n";
}

/**
 * Writes `files` (plain names -> content, each fsynced) plus {@link OUTPUT_MARKER} into a new temporary
 * sibling of `dir` (`.<name>.tmp-<random>`; the parent is created if needed) and returns it for
 * {@link commitStaged}. On failure nothing is left behind and the error (code "io") names `dir`.
 */
export async function stageDir(
  dir: string,
  files: Record<string, FileContent>,
  opts: { kind?: string; flag?: string } = {},
): Promise<StagedDir> {
  checkNames(dir, files);
  const target = clean(dir);
  const parent = dirname(target);
  try {
    await Deno.mkdir(parent, { recursive: true });
  } catch (e) {
    throw ioError("cannot create parent folder", parent, e);
  }
  const tmp = join(parent, `.${basename(target)}.tmp-${randomSuffix()}`);
  try {
    await Deno.mkdir(tmp);
    for (const [name, data] of Object.entries(files)) {
      if (name !== OUTPUT_MARKER) await writeNewFile(join(tmp, name), data);
    }
    await writeNewFile(
      join(tmp, OUTPUT_MARKER),
      files[OUTPUT_MARKER] ?? markerText(opts.kind ?? "output"),
    );
  } catch (e) {
    await removeQuietly(tmp, true);
    throw ioError("cannot write folder", target, e);
  }
  return { target, tmp, flag: opts.flag };
}

/** Removes a staged folder that will not be committed. */
export async function discardStaged(staged: StagedDir[]): Promise<void> {
  for (const s of staged) await removeQuietly(s.tmp, true);
}

/**
 * Test hook of the kill test (tests/kill_test.ts): milliseconds to pause after each committed rename, from
 * the environment variable ENGRAM_TEST_COMMIT_PAUSE_MS (default 0), so that a kill can land between them.
 */
function commitPauseMs(): number {
  // Without --allow-env for it the variable is unset: no pause.
  const v = Number(envOverride("ENGRAM_TEST_COMMIT_PAUSE_MS") ?? 0);
  return Number.isFinite(v) && v > 0 ? Math.min(v, 60_000) : 0;
}

/**
 * Renames the staged folders into place, in the given order (an edit commits its log before its model,
 * so no edited model is ever without its log). Existing targets are first checked
 * ({@link checkReplaceable}) and all moved aside, in reverse order, before any new one goes in: at every
 * moment each target holds its complete old folder, nothing, or its complete new folder, and a later
 * target never holds its new folder while an earlier one holds its old (a kill cannot pair the new log
 * with the old model). The old folders are deleted only after all new ones are in place. On failure
 * everything is rolled back (new folders removed, old ones put back) and the error names the target.
 */
export async function commitStaged(staged: StagedDir[], opts: { overwrite?: boolean } = {}): Promise<void> {
  for (const s of staged) {
    try {
      await checkReplaceable(s.target, Boolean(opts.overwrite), s.flag);
    } catch (e) {
      await discardStaged(staged);
      throw e;
    }
  }
  const olds = new Map<StagedDir, string>();
  const committed: StagedDir[] = [];
  const rollback = async () => {
    for (const s of committed.reverse()) await removeQuietly(s.target, true);
    for (const [s, old] of olds) await Deno.rename(old, s.target).catch(() => {});
    await discardStaged(staged);
  };
  let current = staged[0]?.target ?? "";
  try {
    for (const s of [...staged].reverse()) {
      current = s.target;
      if (await lstatOrUndefined(s.target)) {
        const old = join(dirname(s.target), `.${basename(s.target)}.old-${randomSuffix()}`);
        await Deno.rename(s.target, old);
        olds.set(s, old);
      }
    }
    for (const s of staged) {
      current = s.target;
      await Deno.rename(s.tmp, s.target);
      committed.push(s);
      const pause = commitPauseMs();
      if (pause > 0) await new Promise((r) => setTimeout(r, pause));
    }
  } catch (e) {
    await rollback();
    throw ioError("cannot move folder into place", current, e);
  }
  for (const old of olds.values()) await removeQuietly(old, true);
}

/**
 * Creates folder `dir` holding exactly `files` (plain file names -> content) and {@link OUTPUT_MARKER},
 * atomically ({@link stageDir} then {@link commitStaged}). If `dir` exists, throws {@link EngramError}
 * with code "exists" unless `overwrite` is true; a folder engram did not write is never replaced (code
 * "not-engram"). The parent folder is created if needed. Never leaves a half-written `dir`; temporary
 * folders are removed on failure.
 */
export async function writeDirAtomic(
  dir: string,
  files: Record<string, FileContent>,
  opts: WriteDirOptions = {},
): Promise<void> {
  checkNames(dir, files);
  await checkReplaceable(clean(dir), Boolean(opts.overwrite), opts.flag);
  const s = await stageDir(dir, files, opts);
  await commitStaged([s], opts);
}

/**
 * Leftovers of a killed writer of `target`: its temporary (`.<name>.tmp-*`) and set-aside
 * (`.<name>.old-*`) siblings. Call it only while holding `target`'s lock (src/io/lock.ts).
 */
export async function leftovers(target: string): Promise<{ tmp: string[]; old: string[] }> {
  const t = clean(target), parent = dirname(t), base = basename(t);
  const out = { tmp: [] as string[], old: [] as string[] };
  try {
    for await (const e of Deno.readDir(parent)) {
      if (e.name.startsWith(`.${base}.tmp-`)) out.tmp.push(join(parent, e.name));
      else if (e.name.startsWith(`.${base}.old-`)) out.old.push(join(parent, e.name));
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw ioError("cannot list", parent, e);
  }
  return out;
}

/**
 * Tidies what a writer of `target` killed mid-write left: its temporary folders (never committed, so
 * never complete) are removed. Folders an interrupted commit had set aside (`.<name>.old-*`, complete
 * earlier outputs) are kept, never deleted or guessed back into place: the notes name them. Returns one
 * sentence per finding. Call it only while holding `target`'s lock.
 */
export async function recoverLeftovers(target: string): Promise<string[]> {
  const { tmp, old } = await leftovers(target);
  const notes: string[] = [];
  for (const p of tmp) {
    await removeQuietly(p, true);
    notes.push(`removed ${p}, a partial output of an interrupted run`);
  }
  for (const p of old) {
    notes.push(
      `kept ${p}: the previous ${basename(clean(target))}, set aside by an interrupted run ` +
        `(move it back or delete it yourself)`,
    );
  }
  return notes;
}

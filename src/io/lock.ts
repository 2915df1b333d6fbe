/**
 * Output locks: one writer per output path. A writer creates `<target>.lock` with `createNew` (atomic:
 * of two writers exactly one succeeds), holding its pid, host and a random token, and removes it when it
 * is done. The second writer refuses (code "locked") naming the pid, rather than waiting: an engram run
 * can take minutes and a silent wait looks like a hang.
 *
 * A lock whose pid is no longer running on this host (a run killed with -9) is stale and is broken: it is
 * renamed to a unique name, re-read, and deleted only if it still holds the stale content (so two runs
 * breaking it at once cannot delete a fresh lock). On systems without /proc, and where Deno denies it (any
 * run without --allow-all: Deno grants /proc to no narrower permission), a lock is never judged stale.
 */
import { EngramError } from "../errors.ts";
import { lstatOrUndefined, randomSuffix } from "./atomic.ts";
import { isPermissionDenied } from "./permissions.ts";

/** A held lock; {@link OutputLock.release} removes its file. */
export interface OutputLock {
  path: string;
  release(): Promise<void>;
}

interface LockBody {
  pid: number;
  host: string;
  token: string;
  started: string;
}

function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "";
  }
}

/** True unless the lock's pid is known to be gone (this host, /proc present, /proc/<pid> absent). */
async function holderAlive(body: LockBody | undefined, mtime: Date | null): Promise<boolean> {
  if (!body) {
    // Unreadable: a writer killed between creating and filling the file. Stale once it is old.
    return mtime !== null && Date.now() - mtime.getTime() < 10_000;
  }
  if (body.host !== hostname()) return true;
  if (body.pid === Deno.pid) return true;
  try {
    if (!(await lstatOrUndefined("/proc/self"))) return true;
    return (await lstatOrUndefined(`/proc/${body.pid}`)) !== undefined;
  } catch (e) {
    // Deno grants /proc only with --allow-all: under a permission set the holder cannot be checked, so
    // the lock is kept (never broken on a guess); `rm OUT.lock` frees it when its writer is known dead.
    if (isPermissionDenied(e)) return true;
    throw e;
  }
}

function parseBody(text: string): LockBody | undefined {
  try {
    const o = JSON.parse(text);
    if (typeof o?.pid === "number" && typeof o.token === "string") return o as LockBody;
  } catch { /* partial */ }
  return undefined;
}

/**
 * Creates `path` holding `text`, failing with AlreadyExists if it exists. The content is written to a
 * private file first and hard-linked into place, so the lock never exists empty (a kill between creating
 * and filling it would leave a lock that looks live); where hard links are not supported, createNew.
 */
async function createWithContent(path: string, text: string): Promise<void> {
  const tmp = `${path}.${randomSuffix()}.tmp`;
  let linked = false;
  try {
    await Deno.writeTextFile(tmp, text, { createNew: true });
    await Deno.link(tmp, path);
    linked = true;
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) throw e;
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
  if (linked) return;
  const f = await Deno.open(path, { write: true, createNew: true });
  try {
    await f.write(new TextEncoder().encode(text));
  } finally {
    f.close();
  }
}

/**
 * Takes the lock of output `target` (a file or folder path), or throws {@link EngramError} code "locked"
 * naming `flag` and the pid of the run holding it. Breaks stale locks of dead processes.
 */
export async function acquireLock(target: string, flag?: string): Promise<OutputLock> {
  const path = `${target.replace(/\/+$/, "")}.lock`;
  const body: LockBody = {
    pid: Deno.pid,
    host: hostname(),
    token: randomSuffix(),
    started: new Date().toISOString(),
  };
  const text = JSON.stringify(body) + "\n";
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      await createWithContent(path, text);
      return {
        path,
        release: async () => {
          // Remove only our own lock (a stale-breaker may have replaced it).
          try {
            if (parseBody(await Deno.readTextFile(path))?.token === body.token) await Deno.remove(path);
          } catch { /* already gone */ }
        },
      };
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) {
        throw new EngramError("io", `cannot create lock file: ${(e as Error).message}`, {
          file: path,
          field: flag,
          cause: e,
        });
      }
    }
    let held: string, st: Deno.FileInfo;
    try {
      held = await Deno.readTextFile(path);
      st = await Deno.lstat(path);
    } catch {
      continue; // released meanwhile: try again
    }
    const other = parseBody(held);
    if (await holderAlive(other, st.mtime)) {
      throw new EngramError(
        "locked",
        `another engram run (pid ${other?.pid ?? "?"}${other?.started ? `, since ${other.started}` : ""}) ` +
          `is writing this output; wait for it to finish (or remove ${path} if that run is gone)`,
        { file: target, field: flag },
      );
    }
    // Stale: move it away under a unique name and check that what we moved is what we judged stale.
    const aside = `${path}.stale-${randomSuffix()}`;
    try {
      await Deno.rename(path, aside);
    } catch {
      continue;
    }
    const moved = await Deno.readTextFile(aside).catch(() => "");
    if (moved === held) await Deno.remove(aside).catch(() => {});
    else {
      // We moved a fresh lock of a live run: put it back (link fails if a lock exists again).
      await Deno.link(aside, path).catch(() => {});
      await Deno.remove(aside).catch(() => {});
    }
  }
  throw new EngramError("locked", "could not take the lock (it keeps changing)", {
    file: target,
    field: flag,
  });
}

/** Takes the locks of several outputs (in a fixed order), releasing those taken if one fails. */
export async function acquireLocks(targets: Array<{ path: string; flag?: string }>): Promise<OutputLock[]> {
  const sorted = [...targets].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const held: OutputLock[] = [];
  try {
    for (const t of sorted) held.push(await acquireLock(t.path, t.flag));
  } catch (e) {
    for (const l of held) await l.release();
    throw e;
  }
  return held;
}

/** Releases locks from {@link acquireLocks}. */
export async function releaseLocks(locks: OutputLock[]): Promise<void> {
  for (const l of locks) await l.release();
}

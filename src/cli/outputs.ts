/**
 * What every writing command does before any long work (src/io/output_paths.ts, atomic.ts, lock.ts):
 * refuse outputs that are, contain or lie inside an input; take each output's lock (a second writer of
 * the same path refuses); repair what an interrupted run left beside the outputs; and refuse an existing
 * output without `--overwrite`, or one engram did not write even with it.
 */
import { dirname } from "node:path";
import { EngramError } from "../errors.ts";
import { log } from "./log.ts";
import { checkReplaceable, recoverLeftovers } from "../io/atomic.ts";
import { acquireLocks, type OutputLock, releaseLocks } from "../io/lock.ts";
import { checkOutputs, type NamedPath, realPathOf } from "../io/output_paths.ts";

/** Held output locks; release them when the command ends (also on error). */
export interface OutputGuard {
  release(): Promise<void>;
}

/** Options of {@link guardOutputs}. */
export interface GuardOptions {
  /** `--overwrite` given. */
  overwrite?: boolean;
  /** Outputs that are files rewritten in place (eval --out FILE): existing ones are not refused. */
  files?: boolean;
  /** Outputs that are folders resumed in place (eval --mode sequential --every --out DIR): existing ones are kept. */
  folders?: boolean;
  /** Prints a note (default: the logger's info, on stderr, prefixed with the command). */
  note?: (msg: string) => void;
}

/**
 * Checks and locks `outputs` of `command` against its `inputs` (see the module comment). Entries with
 * an undefined or empty path are skipped.
 */
export async function guardOutputs(
  command: string,
  outputs: Array<{ path?: string; flag: string }>,
  inputs: Array<{ path?: string; flag: string }>,
  opts: GuardOptions = {},
): Promise<OutputGuard> {
  const present = (xs: Array<{ path?: string; flag: string }>): NamedPath[] =>
    xs.filter((x): x is NamedPath => typeof x.path === "string" && x.path !== "");
  const outs = present(outputs);
  await checkOutputs(outs, present(inputs));
  const real = await Promise.all(outs.map(async (o) => ({ path: await realPathOf(o.path), flag: o.flag })));
  // The lock file lies beside the output: its parent must exist (a typed error when it cannot be made).
  for (const o of real) {
    try {
      await Deno.mkdir(dirname(o.path), { recursive: true });
    } catch (e) {
      throw new EngramError("io", `cannot create the folder of ${o.flag}: ${(e as Error).message}`, {
        file: dirname(o.path),
        field: o.flag,
        cause: e,
      });
    }
  }
  const locks: OutputLock[] = await acquireLocks(real);
  const note = opts.note ?? ((m: string) => log.info(m, command));
  try {
    for (const o of real) {
      for (const n of await recoverLeftovers(o.path)) note(n);
      if (opts.folders) continue;
      if (!opts.files) await checkReplaceable(o.path, Boolean(opts.overwrite), o.flag);
      else if ((await Deno.lstat(o.path).catch(() => undefined))?.isDirectory) {
        throw new EngramError("input", "is a folder; this flag names a file", {
          file: o.path,
          field: o.flag,
        });
      }
    }
  } catch (e) {
    await releaseLocks(locks);
    throw e;
  }
  return { release: () => releaseLocks(locks) };
}

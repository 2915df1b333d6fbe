/**
 * Deno permissions as typed errors. engram runs under a permission set (deno.json "permissions"), or
 * under whatever flags a user gives `deno run`; a denied permission must read as a user error naming the
 * permission, the path or variable and the flag that grants it, never as an uncaught NotCapable with a
 * stack. Environment variables that are only overrides fall back to their default when they cannot be
 * read ({@link envOverride}); one that a default needs ({@link envRequired}) is an error.
 */
import { EngramError } from "../errors.ts";

/** The permissions Deno checks (see `deno run --help`). */
export type PermissionName = Deno.PermissionName;

// A template literal: tests/outside_repo_test.ts scans the sources for quoted specifiers after `import`.
const NAMES = new Set<string>(["read", "write", "env", "sys", "run", "net", "ffi", `import`]);

/** A permission Deno denied: `permission` ("env", "write", ...) for `target` (a path, variable, host). */
export class PermissionError extends EngramError {
  /** The denied permission (undefined only when Deno's message did not name one). */
  readonly permission: PermissionName | undefined;
  /** The path, variable or host it was denied for ("" when Deno did not say). */
  readonly target: string;
  /** The `deno run` flag that grants it, e.g. `--allow-env=HOME` ("" when the permission is unknown). */
  readonly flag: string;
  /**
   * A denied `permission` for `target`; `why` says what engram needed it for, `hint` another way out.
   * An unknown permission (undefined) quotes `opts.denoMessage`, Deno's own words.
   */
  constructor(
    permission: PermissionName | undefined,
    target: string,
    opts: { why?: string; hint?: string; cause?: unknown; denoMessage?: string } = {},
  ) {
    const flag = permission ? grantFlag(permission, target) : "";
    const what = target ? `${permission} access to ${JSON.stringify(target)}` : `${permission} access`;
    const why = opts.why ? ` (${opts.why})` : "";
    const hint = opts.hint ? `, or ${opts.hint}` : "";
    const set = "(`deno task engram` grants engram's permission set)";
    super(
      "permission",
      permission
        ? `permission denied: needs ${what}${why}; run with ${flag}${hint} ${set}`
        : `permission denied: ${opts.denoMessage ?? "unknown permission"}${why}${hint} ${set}`,
      { cause: opts.cause },
    );
    this.permission = permission;
    this.target = target;
    this.flag = flag;
  }
}

/** The flag granting `permission` for `target` alone (read/write of a path, one variable, one host). */
export function grantFlag(permission: PermissionName, target: string): string {
  // Targets with a comma or spaces cannot be written as one flag value; the whole permission then.
  return target && !/[,\s]/.test(target) && !target.startsWith("<")
    ? `--allow-${permission}=${target}`
    : `--allow-${permission}`;
}

/** True for Deno's denied-permission errors (NotCapable in Deno 2, PermissionDenied before it). */
export function isPermissionDenied(e: unknown): boolean {
  const errors = Deno.errors as Record<string, unknown>;
  for (const name of ["NotCapable", "PermissionDenied"]) {
    const cls = errors[name];
    if (typeof cls === "function" && e instanceof (cls as new () => Error)) {
      // PermissionDenied is also the OS's EACCES (a file mode), which is not a Deno permission: only
      // Deno's own message ("Requires ... access") counts.
      return name === "NotCapable" || /\bRequires \w+ access\b/.test((e as Error).message);
    }
  }
  return false;
}

/**
 * The typed error for a denied Deno permission, or undefined when `e` is something else (already an
 * EngramError, a bug, an I/O failure). Parses Deno's message: `Requires env access to "HOME", run again
 * with the --allow-env flag`. The CLI's top level calls this on anything a command throws, so that a
 * permission denied anywhere ends as one line, exit 1.
 */
export function permissionError(
  e: unknown,
  opts: { why?: string; hint?: string } = {},
): PermissionError | undefined {
  if (e instanceof PermissionError) return e;
  if (!isPermissionDenied(e)) return undefined;
  const msg = (e as Error).message;
  const m = /\bRequires (\w+) access(?: to (?:"([^"]*)"|([^,]+?)))?(?:,|$)/.exec(msg);
  const perm = m && NAMES.has(m[1]) ? m[1] as PermissionName : undefined;
  if (!perm) return new PermissionError(undefined, "", { ...opts, cause: e, denoMessage: msg });
  return new PermissionError(perm, (m![2] ?? m![3] ?? "").trim(), { ...opts, cause: e });
}

/** Runs `fn`; a denied permission becomes a {@link PermissionError} with `opts`, anything else passes. */
export async function withPermissions<T>(
  fn: () => Promise<T>,
  opts: { why?: string; hint?: string } = {},
): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw permissionError(e, opts) ?? e;
  }
}

/**
 * An environment variable that only overrides a default: its value, or undefined when it is unset or
 * cannot be read (no --allow-env for it), so that the default applies.
 */
export function envOverride(name: string): string | undefined {
  try {
    // Asked only when granted: on a terminal a bare Deno.env.get of a variable outside the permission set
    // prompts (a checkpoint write of `engram train -P` stopped on such a prompt until answered).
    if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") return undefined;
    return Deno.env.get(name);
  } catch (e) {
    if (isPermissionDenied(e)) return undefined;
    throw e;
  }
}

/**
 * An environment variable a default depends on (HOME for the cache folder): its value or undefined when
 * unset; a denied read is a {@link PermissionError} saying `why` and `hint`.
 */
export function envRequired(name: string, opts: { why?: string; hint?: string } = {}): string | undefined {
  try {
    return Deno.env.get(name);
  } catch (e) {
    throw permissionError(e, opts) ?? e;
  }
}

/** `fn()`'s value, or undefined when it needs a --allow-sys Deno denied (host memory, hostname). */
export function sysOptional<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (e) {
    if (isPermissionDenied(e)) return undefined;
    throw e;
  }
}

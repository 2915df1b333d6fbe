/**
 * The command line's logger: notes, warnings and debug lines go to stderr (never stdout, which holds a
 * command's result) as `engram CMD: warning: ...`, filtered by `--log-level` and `--quiet`, and with
 * `--log-file FILE` are also appended to FILE with their time. Progress bars (./progress.ts) ask
 * {@link progressEnabled} and are silenced by `--quiet`.
 */
import { InputError } from "../errors.ts";

/** Message severities, least severe first. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
/** A message severity. */
export type LogLevel = typeof LOG_LEVELS[number];

/** Logger settings (the global flags). */
export interface LogConfig {
  /** The command named in each line (`engram trace: ...`). */
  command?: string;
  /** Least severe level printed to stderr and to the file (default info). */
  level?: LogLevel;
  /** Print only errors to stderr, no progress. */
  quiet?: boolean;
  /** File every message at `level` or above is appended to. */
  file?: string;
}

let config: Required<Omit<LogConfig, "file">> & { file?: string } = {
  command: "",
  level: "info",
  quiet: false,
};

/** Parses a `--log-level` value. */
export function parseLogLevel(v: string): LogLevel {
  if (!(LOG_LEVELS as readonly string[]).includes(v)) {
    throw new InputError(`--log-level must be one of ${LOG_LEVELS.join(", ")}, got '${v}'`, {
      field: "--log-level",
    });
  }
  return v as LogLevel;
}

/** Sets the logger's settings for this run (src/cli.ts calls it once per command). */
export function configureLog(c: LogConfig): void {
  config = { command: c.command ?? "", level: c.level ?? "info", quiet: Boolean(c.quiet), file: c.file };
}

/** Restores the defaults (info to stderr, no file). */
export function resetLog(): void {
  configureLog({});
}

/** Whether progress lines are shown (not with --quiet). */
export function progressEnabled(): boolean {
  return !config.quiet;
}

const rank = (l: LogLevel) => LOG_LEVELS.indexOf(l);

function emit(level: LogLevel, msg: string, command?: string): void {
  if (rank(level) < rank(config.level)) return;
  const cmd = config.command || command;
  const who = cmd ? `engram ${cmd}` : "engram";
  const tag = level === "warn" ? "warning: " : level === "info" ? "" : `${level}: `;
  if (!config.quiet || level === "error") console.error(`${who}: ${tag}${msg}`);
  if (config.file) {
    try {
      Deno.writeTextFileSync(
        config.file,
        `${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${who}: ${msg}\n`,
        { append: true },
      );
    } catch (e) {
      // A log file that cannot be written must not stop the command; say so once.
      const file = config.file;
      config.file = undefined;
      console.error(`${who}: warning: cannot write --log-file ${file}: ${(e as Error).message}`);
    }
  }
}

/**
 * The logger: `log.warn("...")` prints `engram CMD: warning: ...` to stderr. `command` names the
 * command where the CLI has not configured one (a library caller).
 */
export const log = {
  debug: (msg: string, command?: string): void => emit("debug", msg, command),
  info: (msg: string, command?: string): void => emit("info", msg, command),
  warn: (msg: string, command?: string): void => emit("warn", msg, command),
  error: (msg: string, command?: string): void => emit("error", msg, command),
};

/**
 * One declaration per command from which both its flag parser (node:util parseArgs options) and its
 * `--help` text are made, so the two cannot drift: {@link parseCommand} accepts exactly the flags of a
 * {@link CommandSpec} and {@link commandHelp} lists exactly them.
 */
import { parseArgs as nodeParseArgs } from "node:util";
import { InputError } from "../errors.ts";

/**
 * How a flag's value is read. `int` and `number` values are checked for their syntax when parsed (a
 * range, where there is one, is checked by the command); every other value arrives as a string.
 */
export type FlagType = "string" | "boolean" | "int" | "number";

/** One flag of a command. */
export interface FlagSpec {
  type: FlagType;
  /** What the flag does, one sentence (no trailing period needed). */
  help: string;
  /** The value's placeholder in the help (`DIR`, `FILE`, `N`); default from the type. */
  value?: string;
  /** The default the command applies when the flag is absent, as shown in the help. */
  default?: string | number | boolean;
  /** Unit of the value (`tokens`, `bytes`, `s`). */
  unit?: string;
  /**
   * The values a string flag takes: shown in the help; a near miss is refused with a suggestion when
   * parsed, any other value is left to the command's own check. List every value the command accepts.
   */
  choices?: readonly string[];
  /** The flag may be given several times (its value is then a list). */
  multiple?: boolean;
  short?: string;
  /** A required flag (marked in the help; the command checks it). */
  required?: boolean;
}

/** A command: its name, what it does, its flags and examples. */
export interface CommandSpec {
  name: string;
  /** One line: what the command does (the global usage lists it). */
  summary: string;
  /** The synopsis after `engram `, e.g. `predict --model DIR (--text "..." | --ids 1,2,3) [flags]`. */
  usage: string;
  /** Further paragraphs for `--help` (defaults, conventions, output format). */
  description?: string;
  flags: Record<string, FlagSpec>;
  /** Complete command lines after `engram `. */
  examples: string[];
}

/** Parsed flag values: a string, a boolean, a list (multiple), or undefined when absent. */
export type FlagValues = Record<string, string | boolean | undefined>;

/** node:util parseArgs options of a spec. */
export function parseOptions(
  spec: CommandSpec,
): Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }> {
  const o: Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }> = {};
  for (const [name, f] of Object.entries(spec.flags)) {
    o[name] = { type: f.type === "boolean" ? "boolean" : "string" };
    if (f.short) o[name].short = f.short;
    if (f.multiple) o[name].multiple = true;
  }
  return o;
}

/** Levenshtein distance (insertions, deletions, substitutions; a swap of neighbours counts 1). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/**
 * The known names closest to `name` (at most 3, nearest first): within an edit distance of a third of
 * the name (at least 1, at most 3), or names that start with it.
 */
export function suggest(name: string, known: Iterable<string>): string[] {
  const limit = Math.min(3, Math.max(1, Math.floor(name.length / 3)));
  const scored = [...known]
    .map((k) => ({ k, d: k.startsWith(name) && name.length >= 2 ? 0.5 : editDistance(name, k) }))
    .filter((x) => x.d <= limit)
    .sort((x, y) => x.d - y.d || x.k.localeCompare(y.k));
  return scored.slice(0, 3).map((x) => x.k);
}

/** " (did you mean --text?)" for `name` among `known`, or "". */
export function didYouMean(name: string, known: Iterable<string>, prefix = ""): string {
  const s = suggest(name, known);
  if (s.length === 0) return "";
  return `; did you mean ${s.map((x) => prefix + x).join(" or ")}?`;
}

/** An unknown flag or a flag value of the wrong type: a user error naming the flag. */
export class FlagError extends InputError {
  constructor(message: string, flag?: string) {
    super(message, flag === undefined ? {} : { field: flag });
  }
}

let probe: ((spec: CommandSpec, values: FlagValues) => void) | undefined;

/** Thrown by {@link parseCommand} under {@link probeParse}: the parse succeeded, nothing ran. */
export class ParseProbe extends Error {
  constructor(readonly spec: CommandSpec, readonly values: FlagValues) {
    super(`parsed ${spec.name}`);
  }
}

/**
 * Runs `fn` (a command's entry point) so that its {@link parseCommand} stops right after parsing by
 * throwing a {@link ParseProbe} with the spec and values (tests check that each command parses with
 * its registered spec). Returns the probe, or undefined when `fn` finished without parsing.
 */
export async function probeParse(fn: () => Promise<unknown>): Promise<ParseProbe | undefined> {
  probe = (spec, values) => {
    throw new ParseProbe(spec, values);
  };
  try {
    await fn();
    return undefined;
  } catch (e) {
    if (e instanceof ParseProbe) return e;
    throw e;
  } finally {
    probe = undefined;
  }
}

/**
 * Parses `argv` strictly against `spec`: unknown flags (with the nearest known ones), stray
 * positionals, missing values and values of the wrong type are {@link FlagError}s naming the flag.
 */
export function parseCommand(spec: CommandSpec, argv: string[]): FlagValues {
  const known = Object.keys(spec.flags);
  const help = `engram ${spec.name} --help lists its flags`;
  let values: FlagValues;
  try {
    values = nodeParseArgs({ args: argv, options: parseOptions(spec), strict: true, allowPositionals: false })
      .values as FlagValues;
  } catch (e) {
    const msg = (e as Error).message.split("\n")[0];
    const code = (e as { code?: string }).code;
    const opt = /'(-{1,2}[^' ]+)/.exec(msg)?.[1];
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && opt) {
      const bare = opt.replace(/^-+/, "").split("=")[0];
      throw new FlagError(`unknown flag ${opt}${didYouMean(bare, known, "--")} (${help})`, opt);
    }
    if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
      const arg = /'([^']*)'/.exec(msg)?.[1] ?? "";
      throw new FlagError(
        `unexpected argument '${arg}': every value follows its flag (${help})`,
      );
    }
    if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && opt) {
      const flag = opt.split(" ")[0];
      const f = spec.flags[flag.replace(/^-+/, "")];
      if (f?.type === "boolean") throw new FlagError(`${flag} takes no value`, flag);
      if (/ambiguous/.test(msg)) {
        throw new FlagError(
          `${flag} needs a value; one that starts with '-' is written ${flag}=VALUE`,
          flag,
        );
      }
      throw new FlagError(`${flag} needs a value (${valueName(f)})`, flag);
    }
    throw new FlagError(msg, opt ?? spec.name);
  }
  for (const [name, f] of Object.entries(spec.flags)) {
    const v = values[name];
    if (v === undefined || f.type === "boolean") continue;
    for (const x of Array.isArray(v) ? v as string[] : [v as string]) {
      if (f.type !== "string") checkType(name, f.type, x);
      else if (f.choices && !f.choices.includes(x)) {
        // A near miss gets a suggestion here; anything else is left to the command's own message.
        const hint = didYouMean(x, f.choices);
        if (hint) {
          throw new FlagError(
            `--${name} must be one of ${f.choices.join(", ")}, got '${x}'${hint}`,
            `--${name}`,
          );
        }
      }
    }
  }
  probe?.(spec, values);
  return values;
}

function checkType(name: string, type: "int" | "number", v: string): void {
  const s = v.trim();
  const ok = type === "int" ? /^-?\d+$/.test(s) : s !== "" && Number.isFinite(Number(s));
  if (!ok) {
    throw new FlagError(
      `--${name} must be ${type === "int" ? "an integer" : "a number"}, got '${v}'`,
      `--${name}`,
    );
  }
}

function valueName(f: FlagSpec | undefined): string {
  if (!f) return "VALUE";
  if (f.value) return f.value;
  if (f.choices) return f.choices.join("|");
  return f.type === "int" ? "N" : f.type === "number" ? "X" : "VALUE";
}

const TYPE_NAMES: Record<FlagType, string> = {
  string: "text",
  boolean: "switch",
  int: "integer",
  number: "number",
};

/** Wraps `text` to `width` columns; lines after the first are indented by `indent` spaces (not counted). */
function wrap(
  text: string,
  width: number,
  indent: number,
  words = text.split(/\s+/).filter((w) => w !== ""),
): string {
  const lines: string[] = [];
  let line = "";
  for (const w of words) {
    if (line !== "" && line.length + 1 + w.length > width) {
      lines.push(line);
      line = w;
    } else line = line === "" ? w : `${line} ${w}`;
  }
  if (line !== "") lines.push(line);
  return lines.join("\n" + " ".repeat(indent));
}

/** A synopsis's words: an optional `[--flag VALUE]` group or a quoted value kept as one word. */
function synopsisWords(text: string): string[] {
  const out: string[] = [];
  let depth = 0, quoted = false;
  for (const w of text.split(/\s+/).filter((x) => x !== "")) {
    if (depth > 0 || quoted) out[out.length - 1] += ` ${w}`;
    else out.push(w);
    for (const ch of w) {
      if (ch === '"') quoted = !quoted;
      else if (!quoted) depth += ch === "[" ? 1 : ch === "]" ? -1 : 0;
    }
  }
  return out;
}

/**
 * One flag's help line(s): name and value, what it does, then its type (integer, number, text, switch,
 * choice), whether it is required, its default with its unit, and whether it repeats.
 */
export function flagLine(name: string, f: FlagSpec, width = 110): string {
  const left = `  --${name}${f.short ? `, -${f.short}` : ""}${
    f.type === "boolean" ? "" : ` ${valueName(f)}`
  }`;
  const col = 30;
  // Choices shown as the placeholder (`--kind hidden|mlp|attn|all`) are not listed twice.
  const choiceType = f.value ? `one of ${f.choices?.join(", ")}` : "choice";
  const extra: string[] = [f.choices && f.type === "string" ? choiceType : TYPE_NAMES[f.type]];
  if (f.required) extra.push("required");
  if (f.default !== undefined) extra.push(`default ${f.default}${f.unit ? ` ${f.unit}` : ""}`);
  else if (f.unit) extra.push(`in ${f.unit}`);
  if (f.multiple) extra.push("repeatable");
  const body = `${f.help} (${extra.join("; ")})`;
  const pad = left.length + 1 >= col ? `${left}\n${" ".repeat(col)}` : left.padEnd(col);
  return pad + wrap(body, width - col, col);
}

/** Global flags every command accepts, before or after its name (parsed by src/cli.ts). */
export const GLOBAL_FLAGS: Record<string, FlagSpec> = {
  quiet: {
    type: "boolean",
    short: "q",
    help: "print only errors and the result: no progress, notes or warnings",
  },
  "log-level": {
    type: "string",
    choices: ["debug", "info", "warn", "error"],
    default: "info",
    help: "the least severe message printed to stderr and written to --log-file",
  },
  "log-file": { type: "string", value: "FILE", help: "also append every message (with its time) to FILE" },
  adapter: {
    type: "string",
    choices: ["default", "high-performance", "low-power", "fallback", "cpu"],
    default: "default",
    help: "the WebGPU adapter: default (= high-performance), low-power, fallback (forceFallbackAdapter), " +
      "cpu (the first software adapter: llvmpipe, lavapipe, SwiftShader, WARP); `engram info --adapters` lists them",
  },
  help: { type: "boolean", short: "h", help: "print this help" },
};

/** The `--help` text of a command, made from its spec. */
export function commandHelp(spec: CommandSpec, width = 110): string {
  const out: string[] = [];
  out.push(
    `engram ${spec.name} — ${spec.summary}`,
    "",
    `usage: ${wrap("", width - 7, 7, synopsisWords(`engram ${spec.usage}`))}`,
    "",
  );
  if (spec.description) {
    for (const p of spec.description.trim().split(/\n\s*\n/)) out.push(wrap(p, width, 0), "");
  }
  out.push("flags:");
  for (const [name, f] of Object.entries(spec.flags)) out.push(flagLine(name, f, width));
  out.push("", "global flags (before or after the command):");
  for (const [name, f] of Object.entries(GLOBAL_FLAGS)) out.push(flagLine(name, f, width));
  if (spec.examples.length) {
    out.push("", spec.examples.length > 1 ? "examples:" : "example:");
    for (const e of spec.examples) out.push(`  engram ${e}`);
  }
  return out.join("\n");
}

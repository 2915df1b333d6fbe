/** Command-line parsing helpers: node:util parseArgs with errors turned into {@link InputError}. */
import { InputError } from "../errors.ts";
import { type FlagSpec, type FlagType, parseCommand } from "./spec.ts";
import type { BosMode } from "../io/tokenizer.ts";
import { parseBosMode } from "../prompt/bos.ts";

/** Option declarations as node:util parseArgs takes them. */
export type OptionSpec = Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }>;

/**
 * Parses `argv` strictly (unknown flags, with the nearest known ones, and stray positionals are user
 * errors). Commands declare a {@link CommandSpec} (./spec.ts) and call parseCommand, which also makes
 * their `--help`; this form takes bare parseArgs options.
 */
export function parseFlags(
  command: string,
  argv: string[],
  options: OptionSpec,
): Record<string, string | boolean | undefined> {
  const flags = Object.fromEntries(
    Object.entries(options).map(([k, o]) => [k, { ...o, type: o.type as FlagType, help: "" }]),
  );
  return parseCommand({ name: command, summary: "", usage: command, flags, examples: [] }, argv);
}

/** A required string flag. */
export function required(flags: Record<string, unknown>, name: string, command: string): string {
  const v = flags[name];
  if (typeof v !== "string" || v === "") {
    // The CLI prefixes the command's name (`engram predict: error: ...`): the message does not repeat it.
    void command;
    throw new InputError(`--${name} is required`, { field: `--${name}` });
  }
  return v;
}

/** An integer flag within [min, max], or the default when absent. */
export function intFlag(
  flags: Record<string, unknown>,
  name: string,
  dflt: number,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const v = flags[name];
  if (v === undefined) return dflt;
  const n = Number(v);
  if (typeof v !== "string" || !/^-?\d+$/.test(v.trim()) || n < min || n > max) {
    throw new InputError(`--${name} must be an integer in [${min}, ${max}], got '${v}'`, {
      field: `--${name}`,
    });
  }
  return n;
}

/** A finite number flag within [min, max], or the default when absent. */
export function numFlag(
  flags: Record<string, unknown>,
  name: string,
  dflt: number,
  min = -Infinity,
  max = Infinity,
): number {
  const v = flags[name];
  if (v === undefined) return dflt;
  const n = Number(v);
  if (typeof v !== "string" || v.trim() === "" || !Number.isFinite(n) || n < min || n > max) {
    throw new InputError(`--${name} must be a number in [${min}, ${max}], got '${v}'`, {
      field: `--${name}`,
    });
  }
  return n;
}

/** Parses "1,2,3" into token ids (range is checked later against the model). */
export function parseIds(s: string): number[] {
  const parts = s.split(",").map((p) => p.trim());
  if (parts.length === 0 || parts.some((p) => !/^\d+$/.test(p))) {
    throw new InputError(`--ids must be comma-separated non-negative integers, got '${s}'`, {
      field: "--ids",
    });
  }
  return parts.map(Number);
}

/**
 * The `--bos auto|on|off` flag (default auto: the model's tokenizer convention). `legacyOff` names an
 * older boolean flag that means `--bos off` (e.g. "no-prefix"); giving both is an error.
 */
export function bosFlag(flags: Record<string, unknown>, legacyOff?: string): BosMode {
  // `--prefix-eos auto|on|off` (trace, eval) is the older spelling of `--bos`.
  if (flags["prefix-eos"] !== undefined) {
    if (flags.bos !== undefined) {
      throw new InputError("give --bos or its older spelling --prefix-eos, not both", {
        field: "--prefix-eos",
      });
    }
    return parseBosMode(flags["prefix-eos"], "--prefix-eos");
  }
  const mode = parseBosMode(flags.bos, "--bos");
  if (legacyOff !== undefined && flags[legacyOff] === true) {
    if (flags.bos !== undefined && mode !== "off") {
      throw new InputError(`--${legacyOff} contradicts --bos ${mode}`, { field: `--${legacyOff}` });
    }
    return "off";
  }
  return mode;
}

/** The `bos` option declaration every text-encoding command takes. */
export const BOS_OPTION = { bos: { type: "string" } } as const;

/** CLI flags of the fact fields, for {@link withFieldNames} (src/prompt/errors.ts). */
export const FACT_FLAGS: Record<string, string> = {
  prompt: "--prompt",
  subject: "--subject",
  target: "--target",
  target_new: "--target",
  text: "--text",
  ids: "--ids",
};

/** Flag specs several commands share (./spec.ts). */
export const COMMON_FLAGS = {
  model: {
    type: "string",
    value: "DIR",
    required: true,
    help: "the model: a Hugging Face folder of any family (sharded, F32 / F16 / BF16) or a llama .gguf file",
  },
  bos: {
    type: "string",
    choices: ["auto", "on", "off"],
    default: "auto",
    help: "BOS token before the prompt: auto does what the model's tokenizer does, on / off force it",
  },
  "prefix-eos": {
    type: "string",
    choices: ["auto", "on", "off"],
    help: "the older spelling of --bos",
  },
  json: { type: "boolean", help: "print the result as JSON on stdout" },
  weights: {
    type: "string",
    choices: ["auto", "f32"],
    default: "auto",
    help:
      "GPU storage of the weights: auto keeps a file's F16 / BF16 matmul and embedding weights in 16 bits " +
      "(about half the memory; computed in f32, an edit is stored rounded to the weight's dtype), f32 decodes them",
  },
} as const satisfies Record<string, FlagSpec>;

/** A string flag restricted to `choices`, or the default (every command with a choice flag). */
export function choiceFlag<T extends string>(
  f: Record<string, unknown>,
  name: string,
  choices: readonly T[],
  dflt: T,
): T {
  const v = f[name];
  if (v === undefined) return dflt;
  if (typeof v !== "string" || !choices.includes(v as T)) {
    throw new InputError(`--${name} must be one of ${choices.join(", ")}, got '${v}'`, {
      field: `--${name}`,
    });
  }
  return v as T;
}

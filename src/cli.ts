/**
 * engram command line. `engram <command> --help` prints a command's flags, defaults and examples, made
 * from the same spec that parses them (src/cli/spec.ts). Global flags (--quiet, --log-level, --log-file,
 * --adapter, --help, --version) go before or after the command's name.
 * User errors (EngramError) print one line and exit 1 with no stack trace; anything else is a bug.
 */
import { EngramError } from "./errors.ts";
import { permissionError } from "./io/permissions.ts";
import { predictCommand, predictSpec } from "./cli/predict.ts";
import { generateCommand, generateSpec } from "./cli/generate.ts";
import { infoCommand, infoSpec } from "./cli/info.ts";
import { benchCommand, benchSpec } from "./cli/bench.ts";
import { demoCommand, demoSpec } from "./cli/demo.ts";
import { trainCommand, trainSpec } from "./cli/train.ts";
import { accuracyCommand, accuracySpec } from "./cli/accuracy.ts";
import { neuronsCommand, neuronsSpec } from "./cli/neurons.ts";
import { attributeCommand, attributeSpec } from "./cli/attribute.ts";
import { studyCommand, studySpec } from "./cli/study.ts";
import { localizationStudySpec } from "./cli/study_localization.ts";
import { editCommand, editSpec } from "./cli/edit.ts";
import { revertCommand, revertSpec } from "./cli/revert.ts";
import { evalCommand, evalSpec } from "./cli/eval.ts";
import { traceCommand, traceSpec } from "./cli/trace.ts";
import { atpCommand, atpSpec } from "./cli/atp.ts";
import { logitLensCommand, logitLensSpec } from "./cli/logit_lens.ts";
import { recommendLayersCommand, recommendLayersSpec } from "./cli/recommend_layers.ts";
import { versionCommand, versionSpec, versionText } from "./cli/version.ts";
import { commandHelp, type CommandSpec, didYouMean, FlagError, flagLine, GLOBAL_FLAGS } from "./cli/spec.ts";
import { configureLog, LOG_LEVELS, type LogLevel, resetLog } from "./cli/log.ts";
import { ADAPTER_CHOICES, type AdapterChoice, setAdapterChoice } from "./gpu/device.ts";

/** A command: its spec (flags, help) and its entry point, which parses argv with that spec. */
export interface Command {
  spec: CommandSpec;
  run: (argv: string[]) => Promise<void>;
  /** Specs of subcommands named by the first argument (`study localization`), for their --help. */
  subcommands?: Record<string, CommandSpec>;
}

/** Every command, in the order the usage lists them. */
export const commands: Record<string, Command> = {
  predict: { spec: predictSpec, run: predictCommand },
  generate: { spec: generateSpec, run: generateCommand },
  bench: { spec: benchSpec, run: benchCommand },
  train: { spec: trainSpec, run: trainCommand },
  accuracy: { spec: accuracySpec, run: accuracyCommand },
  eval: { spec: evalSpec, run: evalCommand },
  edit: { spec: editSpec, run: editCommand },
  revert: { spec: revertSpec, run: revertCommand },
  neurons: { spec: neuronsSpec, run: neuronsCommand },
  attribute: { spec: attributeSpec, run: attributeCommand },
  study: { spec: studySpec, run: studyCommand, subcommands: { localization: localizationStudySpec } },
  trace: { spec: traceSpec, run: traceCommand },
  atp: { spec: atpSpec, run: atpCommand },
  "logit-lens": { spec: logitLensSpec, run: logitLensCommand },
  "recommend-layers": { spec: recommendLayersSpec, run: recommendLayersCommand },
  info: { spec: infoSpec, run: infoCommand },
  demo: { spec: demoSpec, run: demoCommand },
  version: { spec: versionSpec, run: versionCommand },
};

const NOTES =
  `outputs (--out, --log, --table) are never an input, a folder holding one or a folder inside one;
--overwrite replaces only folders engram wrote (they hold .engram-output), the old one deleted only after
the new one is complete; OUT.lock makes a second writer of one output refuse.

every command that encodes text (predict, generate, accuracy, demo, eval, edit, trace, neurons, attribute,
study, atp) takes --bos auto|on|off: auto (default) does what the model's tokenizer does (HF GPT-2: no BOS;
the world model's tokenizer_config.json: end-of-text first), on / off force it.

Deno picks the WebGPU backend (Vulkan, else OpenGL, on Linux); DENO_WEBGPU_BACKEND=vulkan|gl forces one,
--adapter chooses among its adapters, and engram info says which one runs (backend and driver).`;

/** The global usage: every command's summary (from its spec), the global flags and notes. */
export function usage(): string {
  const w = Math.max(...Object.keys(commands).map((c) => c.length)) + 2;
  const lines = [
    "engram — locate, explain and edit facts in transformer language models (Deno + WebGPU)",
    "",
    "usage: engram [global flags] <command> [flags]",
    "       engram <command> --help    a command's flags with their types, defaults and units, and examples",
    "",
    "commands:",
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(w)}${c.spec.summary}`),
    "",
    "global flags (before or after the command):",
    ...Object.entries(GLOBAL_FLAGS).map(([n, f]) => flagLine(n, f)),
    "  --version                   engram's and Deno's versions",
    "",
    NOTES,
  ];
  return lines.join("\n");
}

/** The global flags of a command line, and what is left of it. */
interface GlobalFlags {
  quiet: boolean;
  level: LogLevel;
  file?: string;
  adapter: AdapterChoice;
  help: boolean;
  version: boolean;
}

/**
 * Takes the global flags out of `args`, wherever they stand (before `--` only). Values are checked:
 * a bad one is a {@link FlagError} naming the flag (with the nearest choice).
 */
export function splitGlobalFlags(args: string[]): { globals: GlobalFlags; rest: string[] } {
  const g: GlobalFlags = { quiet: false, level: "info", adapter: "default", help: false, version: false };
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--") {
      rest.push(...args.slice(i));
      break;
    }
    if (a === "--quiet" || a === "-q") g.quiet = true;
    else if (a === "--help" || a === "-h") g.help = true;
    else if (a === "--version") g.version = true;
    else {
      const m = /^--(log-level|log-file|adapter)(?:=(.*))?$/.exec(a);
      if (!m) {
        rest.push(a);
        continue;
      }
      let v = m[2];
      if (v === undefined) {
        v = args[i + 1];
        if (v === undefined || v.startsWith("--")) {
          throw new FlagError(`--${m[1]} needs a value`, `--${m[1]}`);
        }
        i++;
      }
      if (m[1] === "log-file") g.file = v;
      else {
        const choices: readonly string[] = m[1] === "log-level" ? LOG_LEVELS : ADAPTER_CHOICES;
        if (!choices.includes(v)) {
          throw new FlagError(
            `--${m[1]} must be one of ${choices.join(", ")}, got '${v}'${didYouMean(v, choices)}`,
            `--${m[1]}`,
          );
        }
        if (m[1] === "log-level") g.level = v as LogLevel;
        else g.adapter = v as AdapterChoice;
      }
    }
  }
  return { globals: g, rest };
}

/**
 * The one line a user error prints: without a `field '--x': ` prefix when the message starts with the
 * flag (or is a flag error, which names it), and without the command's name repeated
 * (`engram predict: error: predict: ...`).
 */
export function errorLine(e: EngramError, cmd: string): string {
  const strip = (x: string) => {
    for (const p of [`${cmd}: `, `${cmd} attribution: `]) {
      if (cmd && x.startsWith(p)) return x.slice(p.length);
    }
    return x;
  };
  const prefix = `field '${e.field}': `;
  if (!e.field?.startsWith("-") || !e.message.startsWith(prefix)) return strip(e.message);
  const rest = strip(e.message.slice(prefix.length));
  return e instanceof FlagError || rest.startsWith(e.field) ? rest : prefix + rest;
}

/** Runs the CLI with `args`; returns the process exit code. */
export async function main(args: string[]): Promise<number> {
  let split: ReturnType<typeof splitGlobalFlags>;
  try {
    split = splitGlobalFlags(args);
  } catch (e) {
    if (!(e instanceof EngramError)) throw e;
    console.error(`engram: error: ${errorLine(e, "")}`);
    return 1;
  }
  const { globals, rest } = split;
  const [cmd, ...argv] = rest;
  if (globals.version) {
    console.log(versionText());
    return 0;
  }
  if (cmd === undefined || cmd === "help") {
    const about = cmd === "help" ? argv[0] : undefined;
    if (about !== undefined && commands[about]) console.log(commandHelp(commands[about].spec));
    else if (about !== undefined) return unknownCommand(about);
    else console.log(usage());
    return cmd === undefined && !globals.help ? 2 : 0;
  }
  const command = commands[cmd];
  if (!command) return unknownCommand(cmd);
  if (globals.help) {
    console.log(commandHelp(command.subcommands?.[argv[0]] ?? command.spec));
    return 0;
  }
  configureLog({ command: cmd, level: globals.level, quiet: globals.quiet, file: globals.file });
  setAdapterChoice(globals.adapter);
  try {
    await command.run(argv);
    return 0;
  } catch (e) {
    if (e instanceof EngramError) {
      const line = errorLine(e, cmd);
      console.error(`engram ${cmd}: error: ${line}`);
      if (globals.file) {
        try {
          Deno.writeTextFileSync(globals.file, `${new Date().toISOString()} ERROR engram ${cmd}: ${line}\n`, {
            append: true,
          });
        } catch { /* the error itself is printed above */ }
      }
      return 1;
    }
    // A permission Deno refused (a run narrower than the permission set): one line, no stack trace.
    const denied = permissionError(e);
    if (denied) {
      console.error(`engram ${cmd}: error: ${errorLine(denied, cmd)}`);
      return 1;
    }
    throw e;
  } finally {
    resetLog();
    setAdapterChoice("default");
  }
}

function unknownCommand(cmd: string): number {
  console.error(
    `engram: unknown command '${cmd}'${didYouMean(cmd, Object.keys(commands))} ` +
      "(engram --help lists the commands)",
  );
  return 2;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}

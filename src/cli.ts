/**
 * engram command line. `deno task engram <command> --help` lists a command's flags.
 * User errors (EngramError) print one line and exit 1 with no stack trace; anything else is a bug.
 */
import { EngramError } from "./errors.ts";
import { predictCommand } from "./cli/predict.ts";
import { generateCommand } from "./cli/generate.ts";
import { infoCommand } from "./cli/info.ts";
import { benchCommand } from "./cli/bench.ts";
import { demoCommand } from "./cli/demo.ts";
import { trainCommand } from "./cli/train.ts";
import { accuracyCommand } from "./cli/accuracy.ts";

const USAGE = `engram — locate, explain and edit facts in transformer language models (Deno + WebGPU)

usage: engram <command> [flags]

commands:
  predict   --model DIR (--text "..." | --ids 1,2,3) [--top K] [--json]
            next-token log-probabilities of the last position
  generate  --model DIR (--text "..." | --ids 1,2,3) [--max-tokens N] [--temperature T] [--top-k K] [--seed S] [--json]
            greedy (temperature 0, default) or sampled continuation
  bench     [--json] [--quick] [--out FILE]
            matmul / attention / forward-pass throughput with the adapter's description
  train     --config FILE [--overwrite] [--max-steps N] [--json]
            train a GPT-2 from a JSONL corpus (AdamW, checkpoints, progress line)
  accuracy  --model DIR (--world DIR | --prompts FILE) [--limit N] [--json]
            top-1 recall of facts (training prompts, held-out paraphrases, two-hop)
  info      the WebGPU adapter and its limits
  demo      run the bundled model end to end and check it against the float64 CPU reference
`;

const commands: Record<string, (argv: string[]) => Promise<void>> = {
  predict: predictCommand,
  generate: generateCommand,
  bench: benchCommand,
  info: infoCommand,
  demo: demoCommand,
  train: trainCommand,
  accuracy: accuracyCommand,
};

/** Runs the CLI with `args`; returns the process exit code. */
export async function main(args: string[]): Promise<number> {
  const [cmd, ...rest] = args;
  if (cmd === undefined || cmd === "help" || cmd === "--help" || cmd === "-h") {
    console.log(USAGE);
    return cmd === undefined ? 2 : 0;
  }
  const run = commands[cmd];
  if (!run) {
    console.error(`engram: unknown command '${cmd}'\n\n${USAGE}`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(USAGE);
    return 0;
  }
  try {
    await run(rest);
    return 0;
  } catch (e) {
    if (e instanceof EngramError) {
      console.error(`engram ${cmd}: error: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}

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
import { neuronsCommand } from "./cli/neurons.ts";
import { attributeCommand } from "./cli/attribute.ts";
import { studyCommand } from "./cli/study.ts";
import { editCommand } from "./cli/edit.ts";
import { revertCommand } from "./cli/revert.ts";
import { evalCommand } from "./cli/eval.ts";
import { traceCommand } from "./cli/trace.ts";
import { atpCommand } from "./cli/atp.ts";

const USAGE = `engram — locate, explain and edit facts in transformer language models (Deno + WebGPU)

usage: engram <command> [flags]

commands:
  predict   --model DIR (--text "..." | --ids 1,2,3) [--top K] [--json]
            next-token log-probabilities of the last position
  generate  --model DIR (--text "..." | --ids 1,2,3) [--max-tokens N] [--temperature T] [--top-k K] [--seed S] [--json]
            greedy (temperature 0, default) or sampled continuation
  bench     [--json] [--quick] [--out FILE] [--sections matmul,readback,world,attention,families,memory] | bench compare A.json B.json ... [--svg FILE]
            matmul / attention / forward-pass throughput with the adapter's description
  train     --config FILE [--overwrite] [--max-steps N] [--json] | --config FILE --clean
            train a GPT-2 from a JSONL corpus (AdamW, checkpoints, progress line); --clean removes the work
            folders of interrupted runs
  accuracy  --model DIR (--world DIR | --prompts FILE) [--limit N] [--json]
            top-1 recall of facts (training prompts, held-out paraphrases, two-hop)
  eval      --method M[,M2,...] --model DIR --data FILE [--limit N] [--mode single|sequential|batch] [--batch-size N]
            [--layers L] [--hparams FILE|JSON|M=FILE,M2=FILE] [--bos auto|on|off] [--fluency-len N]
            [--fluency-top-k K] [--seed S] [--stats-corpus FILE | --stats FILE[,FILE]] [--per-case]
            [--table FILE] [--out FILE] [--json]
            edit with each method (ft-l, ft, kn, rome, memit, alphaedit, emmet) and measure reliability, generalization, locality,
            portability, fluency and CounterFact's ES/PS/NS; KnowEdit-style table with --table
  edit      --method rome|memit|alphaedit|emmet|ft|ft-l|kn --model DIR (--requests FILE | --prompt "{} is in" --subject S --target T
            [--ground-truth G]) [--layers L,..] [--hparams FILE] [--stats-corpus FILE | --stats FILE[,FILE]]
            [--stats-dir DIR] [--limit N] --out DIR
            [--log DIR] [--overwrite] [--save-f32] [--bos auto|on|off] [--json]
            rewrite facts (ROME, MEMIT, AlphaEdit, EMMET, FT, FT-L, KN); writes the edited model and an edit log (default OUT.editlog);
            prints p(target_new), p(ground truth) and target_new's rank before -> after, warns when it is not on top
  revert    --model EDITED --log LOGDIR --out DIR [--force] [--overwrite] | --check --model EDITED [--log LOGDIR]
            restore the original weights bit for bit from an edit log; --check: the edited model has its log
  neurons   --model DIR --prompt "..." [--prompt "..."] --target T [--steps N] [--threshold R] [--share S] [--ks 2,100] [--json]
            knowledge neurons by integrated gradients of p(target); suppress/amplify; sufficiency/comprehensiveness
  attribute --model DIR --train FILE --prompt "..." --target T --method grad-dot|grad-cos|tracin [--checkpoints DIR]
            [--top K] [--limit N] [--candidates IDS|@FILE] [--json]
            most influential training instances (per-example gradients of the MLP c_proj weights)
  study     attribution --model DIR --train FILE --prompts FILE [--tests N] [--pool N] [--k K] [--json]
            IA vs NA overlap and fine-tuning on top-k influential vs random instances
  trace     --model DIR (--prompt "..." --subject S [--target T] | --facts FILE [--limit N] [--include-unknown])
            [--kind hidden|mlp|attn|all] [--samples N] [--noise X|sK] [--noise-basis wte|subjects] [--window W]
            [--seed S] [--noise-rng numpy|mulberry32] [--known whole|greedy|first] [--pool token|prompt]
            [--target-prob first|sequence] [--bos auto|on|off] [--batch-rows N] [--unbatched]
            [--out DIR] [--json]
            causal tracing (ROME): restore hidden / MLP / attention states after corrupting the subject;
            --json prints one object per kind, a JSON array of [hidden, mlp, attn] for --kind all (default);
            --facts (known_1000.json or world prompt JSONL) prints token-class averages with 95% CIs;
            --out writes trace.json + trace_KIND.svg (average.json + average_KIND.svg with --facts).
            Defaults: 10 samples, noise s3 = 3 x std of wte (of the subjects' tokens with --facts), window 10
            (clipped to the model), seed 1 (numpy RandomState, ROME's noise), --known whole (ROME: the decoded
            top-1 token equals the whole target, else the fact is dropped), --pool token (ROME's notebook),
            answer = the target's first token (or the model's prediction)
  atp       --model DIR --prompt "..." --subject S --target T [--corrupt-prompt "..." | --noise X|sK] [--seed S]
            [--metric prob|logprob|logit-diff --counterfactual C] [--sites resid_pre,attn_out,...] [--per-neuron]
            [--qk-fix] [--grad-drop] [--star] [--top K] [--bos auto|on|off] [--json]
            attribution patching (AtP; AtP* = --star: QK fix + GradDrop) of every node at every layer and position
  info      the WebGPU adapter and its limits
  demo      run the bundled model end to end and check it against the float64 CPU reference

outputs (--out, --log, --table) are never an input, a folder holding one or a folder inside one;
--overwrite replaces only folders engram wrote (they hold .engram-output), the old one deleted only after
the new one is complete; OUT.lock makes a second writer of one output refuse.

every command that encodes text (predict, generate, accuracy, demo, eval, edit, trace, neurons, attribute,
study) takes --bos auto|on|off: auto (default) does what the model's tokenizer does (HF GPT-2: no BOS; the
world model's tokenizer_config.json: end-of-text first), on / off force it.
`;

const commands: Record<string, (argv: string[]) => Promise<void>> = {
  predict: predictCommand,
  generate: generateCommand,
  bench: benchCommand,
  info: infoCommand,
  demo: demoCommand,
  train: trainCommand,
  accuracy: accuracyCommand,
  neurons: neuronsCommand,
  attribute: attributeCommand,
  study: studyCommand,
  edit: editCommand,
  revert: revertCommand,
  eval: evalCommand,
  trace: traceCommand,
  atp: atpCommand,
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

/**
 * `engram study attribution --model DIR --train FILE --prompts FILE [--tests N] [--pool N] [--k K]
 * [--method grad-dot|grad-cos] [--steps N] [--points linspace|left] [--activation pre|post]
 * [--threshold R] [--no-strict] [--top-neurons N] [--ia-cutoff N] [--ddof 0|1] [--ft-steps N] [--lr X]
 * [--draws N] [--seed S] [--train-loss answer|all] [--bos auto|on|off] [--no-prefix] [--json] [--stride N]
 * [--ks 1,10,100] [--faith-ranking coarse|all] [--faith-draws N] [--seeds N] [--out DIR [--overwrite|--resume]]`: Yu et al.'s study
 * (src/cli/study_attribution.ts runs it; defaults are Yu et al.'s) on the first --tests prompts of a JSONL
 * file of {"prompt", "answer"[, "subject", "relation"]} records. The candidate pool is every training
 * instance whose `subject` is a test prompt's subject (when both files have subjects) plus --pool random
 * instances (seeded); precision@k counts top instances stating the same (subject, relation) fact.
 */
import { InputError } from "../errors.ts";
import { COMMON_FLAGS } from "./args.ts";
import { type CommandSpec, parseCommand } from "./spec.ts";
import { attributionStudyCommand } from "./study_attribution.ts";
import { localizationStudyCommand } from "./study_localization.ts";

/** Flags and help of `engram study` (its one study, `attribution`). */
export const studySpec: CommandSpec = {
  name: "study",
  summary: "the field's studies: attribution (Yu et al.: IA vs NA) and localization (Hase et al.)",
  usage: "study attribution --model DIR --train FILE --prompts FILE [--tests N] [--pool N] [--k K] " +
    "[--method grad-dot|grad-cos] [--steps N] [--points linspace|left] [--activation pre|post] " +
    "[--threshold R] [--no-strict] [--top-neurons N] [--ia-cutoff N] [--ddof 0|1] [--ft-steps N] [--lr X] " +
    "[--draws N] [--seed S] [--train-loss answer|all] [--bos auto|on|off] [--json] [--stride N] [--ks 1,10,100] " +
    "[--faith-ranking coarse|all] [--faith-draws N] [--seeds N] [--out DIR [--overwrite|--resume]]",
  description: `Two studies. \`study localization\` (Hase et al. 2023): engram study localization --help.

    \`study attribution\`: Yu et al.'s study (defaults are theirs) on the first --tests prompts of a JSONL file of
    {"prompt", "answer"[, "subject", "relation"]} records. The candidate pool is every training instance
    whose subject is a test prompt's subject plus --pool random instances (seeded); precision@k counts top
    instances stating the same (subject, relation) fact. Faithfulness (sufficiency, comprehensiveness) at
    each of --ks beside random neurons; fine-tuning on the top-k vs k random instances over --seeds seeds
    with 95% t intervals; the table of Yu et al.'s three headline findings. --out writes per-test JSON,
    summary.json (schema engram-attribution-study/1), SVG figures and a self-contained report.html.`,
  flags: {
    model: COMMON_FLAGS.model,
    train: { type: "string", value: "FILE", required: true, help: 'the training corpus (JSONL with "text")' },
    prompts: {
      type: "string",
      value: "FILE",
      required: true,
      help: 'test prompts (JSONL {"prompt", "answer"})',
    },
    tests: { type: "int", value: "N", default: 4, unit: "prompts", help: "test prompts studied" },
    pool: {
      type: "int",
      value: "N",
      default: 40,
      unit: "instances",
      help: "random instances added to the pool",
    },
    k: { type: "int", value: "K", default: 5, help: "top-k influential instances" },
    method: {
      type: "string",
      choices: ["grad-dot", "grad-cos"],
      default: "grad-dot",
      help: "instance score",
    },
    steps: { type: "int", value: "N", default: 20, help: "integration steps of the neuron attribution" },
    points: {
      type: "string",
      choices: ["linspace", "left"],
      default: "linspace",
      help: "integration points",
    },
    activation: { type: "string", choices: ["pre", "post"], default: "pre", help: "neuron value scaled" },
    threshold: {
      type: "number",
      value: "R",
      default: 0.1,
      help: "coarse-neuron threshold (fraction of the largest)",
    },
    "no-strict": { type: "boolean", help: "at least the threshold instead of strictly above" },
    "top-neurons": { type: "int", value: "N", default: 5, help: "test neurons NA-Instances uses" },
    "ia-cutoff": {
      type: "int",
      value: "N",
      default: 1,
      help:
        "IA-Neurons: top neurons of the top-1 IA instance compared with as many of the test (Yu et al.'s cutoff)",
    },
    ddof: {
      type: "int",
      value: "0|1",
      default: 0,
      help: "delta degrees of freedom of NA-Instances' z-score",
    },
    "ft-steps": { type: "int", value: "N", default: 10, unit: "steps", help: "fine-tuning steps" },
    lr: { type: "number", value: "X", default: 1e-3, help: "fine-tuning learning rate" },
    draws: { type: "int", value: "N", default: 3, help: "random draws of the baseline" },
    seed: { type: "int", value: "S", default: 1, help: "seed of the pool and the draws" },
    "train-loss": {
      type: "string",
      choices: ["answer", "all"],
      default: "answer",
      help: "the training instance's loss: its answer token only, or every token",
    },
    "no-prefix": { type: "boolean", help: "the older spelling of --bos off" },
    bos: COMMON_FLAGS.bos,
    json: COMMON_FLAGS.json,
    stride: { type: "int", value: "N", default: 1, help: "test prompts: every N-th record of --prompts" },
    ks: {
      type: "string",
      value: "K,K",
      default: "1,10,100",
      help: "numbers of neurons of the faithfulness tests (sufficiency, comprehensiveness)",
    },
    "faith-ranking": {
      type: "string",
      choices: ["coarse", "all"],
      default: "coarse",
      help: "neurons the faithfulness tests rank: the coarse ones (Yu et al.; k is clipped to them) or all",
    },
    "faith-draws": { type: "int", value: "N", default: 3, help: "random-neuron draws per test and k" },
    seeds: {
      type: "int",
      value: "N",
      default: 5,
      help: "seeds of the fine-tuning baseline (--seed, --seed+1, ...), each with --draws random draws",
    },
    out: { type: "string", value: "DIR", help: "write tests/*.json, summary.json, figures/ and report.html" },
    overwrite: { type: "boolean", help: "replace an --out folder engram wrote" },
    resume: { type: "boolean", help: "continue an --out folder of the same model and settings" },
  },
  examples: [
    "study attribution --model fixtures/world/model --train fixtures/world/train.jsonl " +
    "--prompts fixtures/world/train_prompts.jsonl --tests 2",
  ],
};

/** Runs `study`. */
export async function studyCommand(argv: string[]): Promise<void> {
  const [kind, ...rest] = argv;
  if (kind === "localization") return await localizationStudyCommand(rest);
  if (kind !== "attribution") {
    throw new InputError(`study: unknown study '${kind ?? ""}' (available: attribution, localization)`, {
      field: "study",
    });
  }
  await attributionStudyCommand(parseCommand(studySpec, rest));
}

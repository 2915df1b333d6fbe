/**
 * `engram accuracy --model DIR (--world DIR | --prompts FILE) [--limit N] [--bos auto|on|off] [--json]`: top-1 recall of
 * facts. With --world it scores the fixture world's training prompts, held-out paraphrases and two-hop
 * prompts; with --prompts any JSONL file of {"prompt", "answer"} records.
 */
import { join } from "node:path";
import { readJsonl } from "../io/world.ts";
import { loadModel } from "../model/load.ts";
import { type AccuracyResult, type PromptCase, topOneAccuracy } from "../evaluate/accuracy.ts";
import { InputError } from "../errors.ts";
import { bosFlag, COMMON_FLAGS, intFlag, required } from "./args.ts";
import { type CommandSpec, parseCommand } from "./spec.ts";
import { progress } from "./progress.ts";
import type { AccuracyOutput } from "../schema/misc_output.ts";
import { schemaTag, snakeKeys } from "../schema/common.ts";

async function readCases(file: string, limit: number): Promise<PromptCase[]> {
  const recs = await readJsonl<{ prompt: string; answer: string; relation?: string }>(file, {
    prompt: "string",
    answer: "string",
  });
  return recs.slice(0, limit).map((r) => ({ prompt: r.prompt, answer: r.answer, group: r.relation }));
}

/** Flags and help of `engram accuracy`. */
export const accuracySpec: CommandSpec = {
  name: "accuracy",
  summary: "top-1 recall of facts (training prompts, held-out paraphrases, two-hop)",
  usage: "accuracy --model DIR (--world DIR | --prompts FILE) [--limit N] [--bos auto|on|off] [--json]",
  description: `A fact is recalled when the model's most likely next token is the answer's first token.
    --world scores the fixture world's train_prompts.jsonl, heldout.jsonl and twohop.jsonl; --prompts any
    JSONL file of {"prompt", "answer"[, "relation"]} records (grouped by relation).`,
  flags: {
    model: COMMON_FLAGS.model,
    world: { type: "string", value: "DIR", help: "a fixture world folder (fixtures/world)" },
    prompts: { type: "string", value: "FILE", help: 'JSONL of {"prompt", "answer"} records' },
    limit: {
      type: "int",
      value: "N",
      default: "all",
      unit: "records",
      help: "score the first N records of each file",
    },
    bos: COMMON_FLAGS.bos,
    json: COMMON_FLAGS.json,
  },
  examples: ["accuracy --model fixtures/world/model --world fixtures/world"],
};

/** Runs `accuracy`. */
export async function accuracyCommand(argv: string[]): Promise<void> {
  const f = parseCommand(accuracySpec, argv);
  const lm = await loadModel(required(f, "model", "accuracy"), { bos: bosFlag(f) });
  if (!lm.tokenizer) throw new InputError(`${lm.dir} has no tokenizer`, { field: "--model" });
  const limit = intFlag(f, "limit", Number.MAX_SAFE_INTEGER, 1);
  const splits: Record<string, string> = {};
  if (typeof f.world === "string") {
    splits.train = join(f.world, "train_prompts.jsonl");
    splits.heldout = join(f.world, "heldout.jsonl");
    splits.twohop = join(f.world, "twohop.jsonl");
  } else if (typeof f.prompts === "string") splits.prompts = f.prompts;
  else throw new InputError("accuracy: give --world DIR or --prompts FILE", { field: "--world" });
  const report: Record<string, AccuracyResult> = {};
  for (const [name, file] of Object.entries(splits)) {
    const cases = await readCases(file, limit);
    const bar = progress(`accuracy ${name}`, cases.length);
    report[name] = await topOneAccuracy(lm.model, lm.tokenizer, cases, {
      file,
      onProgress: (d) => bar.update(d),
    });
    bar.done();
  }
  if (f.json) {
    const out: AccuracyOutput = { schema: schemaTag("accuracy", 1), ...snakeKeys(report, [".*.by_group"]) };
    console.log(JSON.stringify(out, null, 2));
  } else {
    for (const [name, r] of Object.entries(report)) {
      console.log(
        `${name.padEnd(8)} top-1 ${(100 * r.accuracy).toFixed(1)}% (${r.correct}/${r.n}), mean p(answer) ${
          r.meanAnswerProb.toFixed(3)
        }`,
      );
      for (const [g, s] of Object.entries(r.byGroup)) {
        console.log(`  ${g.padEnd(20)} ${(100 * s.accuracy).toFixed(1)}% (${s.correct}/${s.n})`);
      }
    }
  }
  lm.model.destroy();
}

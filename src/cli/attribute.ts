/**
 * `engram attribute --model DIR --train FILE --prompt "..." --target T --method grad-dot|grad-cos|tracin
 * [--checkpoints DIR] [--top K] [--limit N] [--candidates IDS|@FILE] [--train-loss all|answer] [--bos auto|on|off] [--no-prefix]
 * [--first-token] [--json]`:
 * the training instances most influential for a prompt's target (src/attribute/instances.ts; --method defaults
 * to grad-dot, Yu et al.'s grad-sim). Gradients
 * are over the MLP c_proj weights of every layer. --limit keeps the first N training lines; --candidates
 * only the listed ids (comma-separated, or @FILE with one id per line). --train-loss answer differentiates
 * only the training instance's answer token (its `object`, else its last token) instead of every token.
 */
import { join } from "node:path";
import { InputError } from "../errors.ts";
import { loadModel } from "../model/load.ts";
import {
  attributionIds,
  attributionTarget,
  instancePrompt,
  parseCandidates,
  readTrainingFile,
} from "../attribute/inputs.ts";
import {
  type Checkpoint,
  defaultIaParams,
  IA_METHODS,
  type IaMethod,
  instanceScores,
  listCheckpoints,
  promptExample,
  topK,
  trainingExample,
} from "../attribute/instances.ts";
import { bosFlag, COMMON_FLAGS, FACT_FLAGS, intFlag, required } from "./args.ts";
import { type CommandSpec, parseCommand } from "./spec.ts";
import { withFieldNames } from "../prompt/errors.ts";
import { progress } from "./progress.ts";
import type { AttributeOutput } from "../schema/attribute_output.ts";
import { schemaTag } from "../schema/common.ts";

/** Flags and help of `engram attribute`. */
export const attributeSpec: CommandSpec = {
  name: "attribute",
  summary: "the training instances most influential for a prompt's target (Grad-Dot, Grad-Cos, TracIn)",
  usage: 'attribute --model DIR --train FILE --prompt "..." --target T [--method grad-dot|grad-cos|tracin] ' +
    "[--checkpoints DIR] [--top K] [--limit N] [--candidates IDS|@FILE] [--train-loss all|answer] " +
    "[--bos auto|on|off] [--first-token] [--json]",
  description: `Scores every training instance by the per-example gradients of the MLP c_proj weights of every
    layer against the prompt's gradient (Yu et al.'s grad-sim is grad-dot); TracIn sums over the checkpoints.`,
  flags: {
    model: COMMON_FLAGS.model,
    train: { type: "string", value: "FILE", required: true, help: 'the training corpus (JSONL with "text")' },
    prompt: { type: "string", value: '"..."', required: true, help: "the test prompt" },
    target: { type: "string", value: "T", required: true, help: "the test prompt's answer" },
    method: {
      type: "string",
      choices: IA_METHODS,
      default: "grad-dot",
      help: "the score",
    },
    checkpoints: {
      type: "string",
      value: "DIR",
      default: "MODEL/checkpoints",
      help: "the training checkpoints of --method tracin",
    },
    top: { type: "int", value: "K", default: 10, help: "instances listed" },
    limit: { type: "int", value: "N", help: "score only the first N training lines" },
    candidates: {
      type: "string",
      value: "IDS|@FILE",
      help: "score only these instance ids (comma-separated, or @FILE with one id a line)",
    },
    "train-loss": {
      type: "string",
      choices: ["all", "answer"],
      default: "all",
      help: "the training instance's loss: every token (as in training) or only its answer token",
    },
    "no-prefix": { type: "boolean", help: "the older spelling of --bos off" },
    bos: COMMON_FLAGS.bos,
    "first-token": { type: "boolean", help: "score only the target's first token" },
    json: COMMON_FLAGS.json,
  },
  examples: [
    'attribute --model fixtures/world/model --train fixtures/world/train.jsonl --prompt "Narnux Zava was born in" ' +
    "--target Frostwick --method grad-dot --top 10",
  ],
};

/** Runs `attribute`. */
export async function attributeCommand(argv: string[]): Promise<void> {
  const f = parseCommand(attributeSpec, argv);
  const dir = required(f, "model", "attribute");
  const trainFile = required(f, "train", "attribute");
  const prompt = required(f, "prompt", "attribute");
  const targetText = required(f, "target", "attribute");
  const method = (typeof f.method === "string" ? f.method : "grad-dot") as IaMethod;
  if (!IA_METHODS.includes(method)) {
    throw new InputError(`--method must be one of ${IA_METHODS.join(", ")}, got '${method}'`, {
      field: "--method",
    });
  }
  const top = intFlag(f, "top", 10, 1);
  const trainLoss = typeof f["train-loss"] === "string" ? f["train-loss"] : "all";
  if (trainLoss !== "all" && trainLoss !== "answer") {
    throw new InputError(
      `--train-loss must be 'all' (every token, as in training) or 'answer' (the object token only), got '${trainLoss}'`,
      { field: "--train-loss" },
    );
  }
  const limit = f.limit === undefined ? undefined : intFlag(f, "limit", 0, 1);
  const candidates = typeof f.candidates === "string" ? await parseCandidates(f.candidates) : undefined;
  let checkpoints: Checkpoint[] | undefined;
  if (method === "tracin") {
    checkpoints = await listCheckpoints(
      typeof f.checkpoints === "string" ? f.checkpoints : join(dir, "checkpoints"),
    );
  } else if (f.checkpoints !== undefined) {
    throw new InputError("--checkpoints is only used by --method tracin", { field: "--checkpoints" });
  }
  const lm = await loadModel(dir, { bos: bosFlag(f, "no-prefix") });
  try {
    if (!lm.tokenizer) throw new InputError(`${dir} has no tokenizer`, { file: dir, field: "--model" });
    const model = lm.model;
    const target = withFieldNames(
      FACT_FLAGS,
      () => attributionTarget(lm.tokenizer!, targetText, f["first-token"] === true),
    );
    const ids = withFieldNames(FACT_FLAGS, () => attributionIds(model, lm.tokenizer!, prompt));
    const train = await readTrainingFile(trainFile, lm.tokenizer, model.config.nPositions, {
      limit,
      candidates,
    });
    const bar = progress(`attribute ${method}`, train.length * (checkpoints?.length ?? 1));
    const t0 = performance.now();
    const scores = await instanceScores(
      model,
      train.map((x) => {
        if (trainLoss === "all") return trainingExample(x.ids);
        const p = instancePrompt(x, lm.tokenizer!);
        return promptExample(p.ids, p.target);
      }),
      promptExample(ids, target),
      {
        method,
        checkpoints,
        onProgress: (d) => bar.update(d),
      },
    );
    bar.done();
    const secs = (performance.now() - t0) / 1000;
    const best = topK(scores, top);
    const report: AttributeOutput = {
      schema: schemaTag("attribute", 1),
      model: dir,
      method,
      prompt,
      target: targetText,
      target_token: target,
      params: defaultIaParams(model.config),
      loss: (trainLoss === "all"
        ? "train: mean next-token cross-entropy of [eos] + text + [eos]"
        : "train: -log p(object | text before it)") + "; test: -log p(target | prompt)",
      checkpoints: checkpoints?.map((c) => ({ dir: c.dir, step: c.step, lr: c.lr })),
      instances: train.length,
      seconds: secs,
      top: best.map((i) => ({ id: train[i].id, score: scores[i], text: train[i].text, meta: train[i].meta })),
    };
    if (f.json) {
      console.log(JSON.stringify(report, null, 2));
    } else {
      console.log(
        `${method}: ${train.length} training instances in ${secs.toFixed(1)} s; top ${top} for ${
          JSON.stringify(prompt)
        } -> ${JSON.stringify(targetText)}`,
      );
      for (const t of report.top) {
        console.log(`  ${t.id.padEnd(10)} ${t.score.toExponential(3).padStart(11)}  ${t.text}`);
      }
    }
  } finally {
    lm.model.destroy();
  }
}

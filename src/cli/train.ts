/**
 * `engram train --config FILE [--overwrite] [--max-steps N] [--json]`: trains a GPT-2 (or a Llama-family
 * model: the config's `model.family`) from a JSONL corpus.
 * `engram train --config FILE --clean`: removes the work folders interrupted runs into the config's `out`
 * left (each run names them), and trains nothing.
 */
import { getGpu } from "../gpu/device.ts";
import { readTrainConfig } from "../train/config.ts";
import { cleanTrainingLeftovers, train } from "../train/trainer.ts";
import { intFlag, required } from "./args.ts";
import { type CommandSpec, parseCommand } from "./spec.ts";
import { log } from "./log.ts";
import { progress } from "./progress.ts";
import type { TrainCleanOutput, TrainOutput } from "../schema/misc_output.ts";
import { schemaTag } from "../schema/common.ts";

/** Flags and help of `engram train`. */
export const trainSpec: CommandSpec = {
  name: "train",
  summary: "train a GPT-2 or a Llama-family model from a JSONL corpus (AdamW, checkpoints, a progress line)",
  usage: "train --config FILE [--overwrite] [--max-steps N] [--json] | train --config FILE --clean",
  description: `The config names the corpus, the model's shape, the optimizer and the output folder (see
    fixtures/world/train_config.json). The model is written to the config's out only when it is complete;
    --clean removes the work folders that interrupted runs left beside it and trains nothing.`,
  flags: {
    config: { type: "string", value: "FILE", required: true, help: "the training config (JSON)" },
    overwrite: { type: "boolean", help: "replace an output folder engram wrote before" },
    "max-steps": { type: "int", value: "N", unit: "steps", help: "stop after N optimizer steps" },
    clean: { type: "boolean", help: "remove the work folders of interrupted runs, train nothing" },
    json: {
      type: "boolean",
      help: 'print {"schema": "engram-train/1", "out", "steps", "final_loss", "seconds", "checkpoints"}',
    },
  },
  examples: ["train --config fixtures/world/train_config.json --max-steps 10 --overwrite"],
};

/** Runs `train` and prints a summary (JSON with --json). */
export async function trainCommand(argv: string[]): Promise<void> {
  const f = parseCommand(trainSpec, argv);
  const cfg = await readTrainConfig(required(f, "config", "train"));
  if (f.clean) {
    const gone = await cleanTrainingLeftovers(cfg.out);
    const out: TrainCleanOutput = { schema: schemaTag("train-clean", 1), out: cfg.out, removed: gone };
    if (f.json) console.log(JSON.stringify(out));
    else {console.log(
        gone.length ? `removed ${gone.join(", ")}` : `no work folders of interrupted runs into ${cfg.out}`,
      );}
    return;
  }
  const maxSteps = f["max-steps"] !== undefined ? intFlag(f, "max-steps", 0, 1) : undefined;
  const gpu = await getGpu();
  let bar: ReturnType<typeof progress> | undefined;
  const res = await train(gpu, cfg, {
    overwrite: Boolean(f.overwrite),
    maxSteps,
    onNote: (m) => log.info(m),
    onStep: (s, total) => {
      bar ??= progress("train", total);
      bar.update(
        s.step,
        `epoch ${s.epoch} loss ${s.loss.toFixed(4)} lr ${s.lr.toExponential(1)} ${
          s.tokensPerSecond.toFixed(0)
        } tok/s`,
      );
    },
  });
  bar?.done();
  const summary: TrainOutput = {
    schema: schemaTag("train", 1),
    out: res.out,
    steps: res.steps,
    final_loss: res.finalLoss,
    seconds: res.seconds,
    checkpoints: res.checkpoints,
  };
  if (f.json) console.log(JSON.stringify(summary));
  else {console.log(
      `trained ${res.steps} steps in ${res.seconds.toFixed(1)} s, final loss ${
        res.finalLoss.toFixed(4)
      } -> ${res.out}`,
    );}
}

/**
 * `engram train --config FILE [--overwrite] [--max-steps N] [--json]`: trains a GPT-2 from a JSONL corpus.
 * `engram train --config FILE --clean`: removes the work folders interrupted runs into the config's `out`
 * left (each run names them), and trains nothing.
 */
import { getGpu } from "../gpu/device.ts";
import { readTrainConfig } from "../train/config.ts";
import { cleanTrainingLeftovers, train } from "../train/trainer.ts";
import { intFlag, parseFlags, required } from "./args.ts";
import { progress } from "./progress.ts";

/** Runs `train` and prints a summary (JSON with --json). */
export async function trainCommand(argv: string[]): Promise<void> {
  const f = parseFlags("train", argv, {
    config: { type: "string" },
    overwrite: { type: "boolean" },
    "max-steps": { type: "string" },
    json: { type: "boolean" },
    clean: { type: "boolean" },
  });
  const cfg = await readTrainConfig(required(f, "config", "train"));
  if (f.clean) {
    const gone = await cleanTrainingLeftovers(cfg.out);
    if (f.json) console.log(JSON.stringify({ out: cfg.out, removed: gone }));
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
    onNote: (m) => console.error(`engram train: ${m}`),
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
  const summary = {
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

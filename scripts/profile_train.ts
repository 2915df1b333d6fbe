/**
 * Profiles `engram train`'s step: runs the trainer on a training config for `--steps` steps (into a
 * temporary folder, never the config's `out`) and prints the mean milliseconds per step after `--skip`
 * warm-up steps, with the queue submits, buffer maps and compute dispatches each step costs.
 * `deno run -A scripts/profile_train.ts --config fixtures/world/train_config.json [--steps 40] [--skip 10]`.
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { gpuCallCounts } from "./gpu_call_counts.ts";
import { getGpu } from "../src/gpu/device.ts";
import { readTrainConfig } from "../src/train/config.ts";
import { train } from "../src/train/trainer.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { config: { type: "string" }, steps: { type: "string" }, skip: { type: "string" } },
});
if (!values.config) throw new Error("--config FILE is required");
const steps = Number(values.steps ?? 40), skip = Number(values.skip ?? 10);
if (!(Number.isInteger(steps) && Number.isInteger(skip) && skip >= 0 && steps > skip)) {
  throw new Error(`--steps must be an integer above --skip, got ${steps} and ${skip}`);
}
const pass = GPUComputePassEncoder.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
const dispatch = pass.dispatchWorkgroups;
let dispatches = 0;
pass.dispatchWorkgroups = function (this: unknown, ...a: unknown[]) {
  dispatches++;
  return dispatch.apply(this, a);
};
const gpu = await getGpu();
const tmp = await Deno.makeTempDir({ prefix: "engram_profile_train_" });
try {
  const cfg = { ...(await readTrainConfig(values.config)), out: join(tmp, "model"), checkpointEvery: 0 };
  let t0 = 0, c0 = { ...gpuCallCounts }, d0 = 0;
  await train(gpu, cfg, {
    maxSteps: steps,
    onStep: (e) => {
      if (e.step === skip) [t0, c0, d0] = [performance.now(), { ...gpuCallCounts }, dispatches];
      if (e.step === steps) {
        const n = steps - skip, per = (k: "submit" | "map") => (gpuCallCounts[k] - c0[k]) / n;
        console.log(
          `${values.config}: steps ${skip + 1}-${steps}: ${
            ((performance.now() - t0) / n).toFixed(1)
          } ms/step; ` +
            `per step ${per("submit")} submits, ${per("map")} maps, ${(dispatches - d0) / n} dispatches ` +
            `(load ${Deno.loadavg()[0].toFixed(2)})`,
        );
      }
    },
  });
} finally {
  await Deno.remove(tmp, { recursive: true });
}

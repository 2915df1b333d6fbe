/**
 * Forward throughput (tokens/s) of every model family at the same sizes on random weights: the GPT-2
 * case is the baseline of the group, so `deno bench` reports each family's time relative to it.
 */
import { getGpu } from "../src/gpu/device.ts";
import { familyBenchConfig } from "../src/model/measure.ts";
import { randomWeights } from "../src/model/random.ts";
import { TransformerModel } from "../src/model/transformer.ts";

const gpu = await getGpu();
const B = 2, T = 32;
for (const family of ["gpt2", "llama", "neox", "gptj"] as const) {
  const cfg = familyBenchConfig(family, 2, 128, 4, 2048);
  const untied = family === "neox" || family === "gptj";
  const model = TransformerModel.create(gpu, cfg, randomWeights(cfg, 1, { untiedHead: untied }));
  const batch = Array.from(
    { length: B },
    (_, b) => Array.from({ length: T }, (_, t) => (b * 31 + t * 7) % 2048),
  );
  await model.forward(batch);
  Deno.bench(`forward ${family}, 2 layers, width 128, ${B}x${T} tokens`, {
    group: "family forward",
    baseline: family === "gpt2",
  }, async () => {
    await model.forward(batch);
  });
}

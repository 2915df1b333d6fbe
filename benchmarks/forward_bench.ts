/**
 * Full GPT-2 forward pass throughput (tokens/s) on random weights, at a GPT-2-small-like width and a
 * small one. Each iteration waits for the log-probs to come back, so timings include execution.
 */
import { getGpu } from "../src/gpu/device.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { benchConfig } from "../src/model/measure.ts";
import { randomGPT2 } from "../src/model/random.ts";

const gpu = await getGpu();
const cases = [
  { name: "2 layers, width 128, vocab 2048, 1x64 tokens", cfg: benchConfig(2, 128, 4, 2048), B: 1, T: 64 },
  { name: "4 layers, width 256, vocab 8192, 4x32 tokens", cfg: benchConfig(4, 256, 8, 8192), B: 4, T: 32 },
];
for (const c of cases) {
  const model = TransformerModel.create(gpu, c.cfg, randomGPT2(c.cfg, 1));
  const batch = Array.from(
    { length: c.B },
    (_, b) => Array.from({ length: c.T }, (_, t) => (b * 31 + t * 7) % c.cfg.vocabSize),
  );
  await model.forward(batch);
  Deno.bench(`forward ${c.name} (${c.B * c.T} tokens per iteration)`, { group: "forward" }, async () => {
    await model.forward(batch);
  });
}

/**
 * Resident memory (host RSS and counted GPU buffers) against the weights' size: prints one JSON line
 * per case of src/cli/bench_memory.ts (GPT-2 small / medium and a Llama-shaped 1B model for inference,
 * one ROME edit and one causal trace on the world model's shape), then benchmarks the small inference.
 * `ENGRAM_BENCH_QUICK=1` estimates the real shapes only.
 */
import { getGpu } from "../src/gpu/device.ts";
import { measureMemory } from "../src/cli/bench_memory.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomWeights } from "../src/model/random.ts";
import { benchConfig } from "../src/model/measure.ts";

const gpu = await getGpu();
let quick = false;
try {
  quick = Deno.env.get("ENGRAM_BENCH_QUICK") === "1";
} catch {
  quick = false;
}
for (const c of await measureMemory(gpu, { quick, log: (s) => console.error(s) })) {
  console.log(`memory ${JSON.stringify(c)}`);
}
const cfg = benchConfig(4, 256, 8, 8192);
const model = TransformerModel.create(gpu, cfg, randomWeights(cfg, 1, { std: 0.02 }));
const ids = [Array.from({ length: 32 }, (_, t) => (t * 31) % cfg.vocabSize)];
Deno.bench("forward 4×256, 1×32 tokens (memory counted)", { group: "memory" }, async () => {
  await model.forward(ids);
});

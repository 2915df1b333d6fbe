/**
 * Greedy generation with the KV cache and with full recompute per token, in the same run: tokens/s of
 * each and their ratio, printed once per model, then one `Deno.bench` per path (recompute the baseline).
 * Models: the world model (fixtures/world/model, 24 positions) and a random GPT-2 of 4 layers, width 256
 * and 128 positions (8-token prompt + 64 new), where the recompute path's quadratic cost shows. Two
 * iterations per bench (each is a whole generation). `deno bench -A
 * benchmarks/generate_bench.ts`, or `deno run -A benchmarks/generate_bench.ts` for the printed figures.
 */
import { getGpu } from "../src/gpu/device.ts";
import { generate } from "../src/model/generate.ts";
import { loadModel } from "../src/model/load.ts";
import { benchConfig } from "../src/model/measure.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { TransformerModel } from "../src/model/transformer.ts";

const lm = await loadModel(new URL("../fixtures/world/model", import.meta.url).pathname, {
  requireTokenizer: true,
});
const cfg = benchConfig(4, 256, 8, 4096, 128);
const cases = [
  {
    name: "world model",
    model: lm.model,
    prompt: lm.tokenizer.encode("Narnux Zava was born in"),
    maxTokens: lm.model.config.nPositions - 5,
  },
  {
    name: "random GPT-2, 4 layers, width 256, 128 positions",
    model: TransformerModel.create(await getGpu(), cfg, randomGPT2(cfg, 1)),
    prompt: Array.from({ length: 8 }, (_, i) => (i * 37) % cfg.vocabSize),
    maxTokens: 64,
  },
];

async function tokensPerSecond(c: (typeof cases)[number], maxTokens: number, cache: boolean, rounds = 2) {
  await generate(c.model, c.prompt, { maxTokens, cache }); // warm-up: pipelines, workspaces
  const t0 = performance.now();
  let n = 0;
  for (let i = 0; i < rounds; i++) n += (await generate(c.model, c.prompt, { maxTokens, cache })).ids.length;
  return n / ((performance.now() - t0) / 1000);
}

for (const c of cases) {
  const maxTokens = Math.min(c.maxTokens, c.model.config.nPositions - c.prompt.length);
  const cached = await tokensPerSecond(c, maxTokens, true);
  const full = await tokensPerSecond(c, maxTokens, false);
  console.log(
    `generate, ${c.name}, prompt ${c.prompt.length} tokens + ${maxTokens} new: KV cache ${
      cached.toFixed(1)
    } tokens/s, full recompute ${full.toFixed(1)} tokens/s, ratio ${(cached / full).toFixed(2)}x`,
  );
  Deno.bench(
    `generate ${maxTokens} tokens, ${c.name}, KV cache`,
    { group: c.name, n: 2, warmup: 1 },
    async () => {
      await generate(c.model, c.prompt, { maxTokens, cache: true });
    },
  );
  Deno.bench(
    `generate ${maxTokens} tokens, ${c.name}, full recompute`,
    { group: c.name, baseline: true },
    async () => {
      await generate(c.model, c.prompt, { maxTokens, cache: false });
    },
  );
}

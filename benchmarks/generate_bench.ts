/**
 * Greedy generation on the world model (fixtures/world/model) with the KV cache and with full recompute
 * per token, in the same run: tokens/s of each and their ratio, printed once, then one `Deno.bench` per
 * path (group "generate", recompute the baseline). `deno bench -A benchmarks/generate_bench.ts`, or
 * `deno run -A benchmarks/generate_bench.ts` for the printed figures alone.
 */
import { generate } from "../src/model/generate.ts";
import { loadModel } from "../src/model/load.ts";

const lm = await loadModel(new URL("../fixtures/world/model", import.meta.url).pathname, {
  requireTokenizer: true,
});
const prompt = lm.tokenizer.encode("Narnux Zava was born in");
const maxTokens = Math.min(48, lm.model.config.nPositions - prompt.length);
const opts = { maxTokens };

async function tokensPerSecond(cache: boolean, rounds = 2): Promise<number> {
  await generate(lm.model, prompt, { ...opts, cache }); // warm-up: pipelines, workspaces
  const t0 = performance.now();
  let n = 0;
  for (let i = 0; i < rounds; i++) n += (await generate(lm.model, prompt, { ...opts, cache })).ids.length;
  return n / ((performance.now() - t0) / 1000);
}

const cached = await tokensPerSecond(true);
const full = await tokensPerSecond(false);
console.log(
  `generate, world model, prompt ${prompt.length} tokens + ${maxTokens} new: KV cache ${
    cached.toFixed(1)
  } tokens/s, ` +
    `full recompute ${full.toFixed(1)} tokens/s, ratio ${(cached / full).toFixed(2)}x`,
);

Deno.bench(`generate ${maxTokens} tokens, KV cache`, { group: "generate" }, async () => {
  await generate(lm.model, prompt, { ...opts, cache: true });
});
Deno.bench(
  `generate ${maxTokens} tokens, full recompute`,
  { group: "generate", baseline: true },
  async () => {
    await generate(lm.model, prompt, { ...opts, cache: false });
  },
);

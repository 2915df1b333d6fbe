/**
 * Causal tracing: one full trace (hidden, MLP and attention kinds, 10 samples) of one world fact on the
 * fixture world model (fixtures/world/model; a random model of the same shape when it is absent),
 * batched (restorations stacked into few forward passes) vs unbatched (one forward per restoration with
 * the samples in its batch, as ROME runs it). Before the benchmarks, prints one line measured in the
 * same process: corrupted sequences per second and forward passes per second of both, and their ratio.
 */
import { getGpu } from "../src/gpu/device.ts";
import { loadTokenizer } from "../src/io/tokenizer.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { loadModel } from "../src/model/load.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { embeddingStd } from "../src/locate/patching.ts";
import { encodeFact } from "../src/prompt/encode.ts";
import { causalTrace, TRACE_KINDS } from "../src/locate/trace.ts";

const WORLD = new URL("../fixtures/world/", import.meta.url).pathname;
let model: TransformerModel;
let source: string;
try {
  const lm = await loadModel(WORLD + "model");
  model = lm.model;
  source = "fixtures/world/model";
} catch {
  const tok = await loadTokenizer(WORLD);
  const cfg = {
    nLayer: 2,
    nHead: 4,
    nEmbd: 96,
    vocabSize: tok.vocabSize,
    nPositions: 24,
    nInner: 384,
    layerNormEpsilon: 1e-5,
  };
  model = TransformerModel.create(await getGpu(), cfg, randomGPT2(cfg, 1, { std: 0.1 }));
  source = "random weights of the world model's shape (fixtures/world/model absent)";
}
const tok = await loadTokenizer(WORLD + (source.startsWith("fixtures") ? "model" : ""));
const prompt = "Narnux Zava was born in the city of", subject = "Narnux Zava";
const input = encodeFact(tok, { prompt, subject, target: "Frostwick" });
const answer = input.target;
const noiseStd = 3 * embeddingStd(model.weights, model.config.nEmbd);
const opts = { kinds: [...TRACE_KINDS], samples: 10, noiseStd, window: 10, seed: 1, answer };

const run = (batched: boolean) => causalTrace(model, input.ids, input.subjectRange, { ...opts, batched });
await run(true); // warm-up (pipelines, workspaces)
const b = await run(true);
const u = await run(false);
const rate = (r: typeof b) =>
  `${(r.stats.sequences / r.stats.seconds).toFixed(0)} seq/s, ${
    (r.stats.forwards / r.stats.seconds).toFixed(1)
  } forwards/s`;
console.log(
  `trace (${source}, ${input.ids.length} tokens, ${model.config.nLayer} layers, 3 kinds, 10 samples): ` +
    `batched ${b.stats.seconds.toFixed(3)} s (${b.stats.forwards} forwards; ${rate(b)}), ` +
    `unbatched ${u.stats.seconds.toFixed(3)} s (${u.stats.forwards} forwards; ${rate(u)}), ` +
    `speed-up ${(u.stats.seconds / b.stats.seconds).toFixed(1)}x`,
);

Deno.bench(`causal trace, 3 kinds, batched (${b.stats.sequences} corrupted sequences)`, {
  group: "trace",
  baseline: true,
}, async () => {
  await run(true);
});
Deno.bench(`causal trace, 3 kinds, unbatched (one forward per restoration)`, { group: "trace" }, async () => {
  await run(false);
});

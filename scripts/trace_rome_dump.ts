/**
 * Dumps engram's causal traces of the first N facts of a facts file (defaults: ROME's — 10 samples, window
 * 10, seed 1, numpy noise, s3 over every subject of the file, kinds hidden/mlp/attn, the model's own top-1
 * answer) with the token ids and subject ranges, for `scripts/rome_trace_check.py` to recompute the
 * way ROME's `calculate_hidden_flow` does.
 *
 * npx -y deno@2 run -A scripts/trace_rome_dump.ts MODEL_DIR FACTS_FILE N OUT.json [numpy|mulberry32]
 */
import { getGpu } from "../src/gpu/device.ts";
import { loadHFModel } from "../src/io/hf_model.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { readTraceFacts } from "../src/prompt/facts.ts";
import { embeddingStd, type NoiseRng } from "../src/locate/patching.ts";
import { encodeFact } from "../src/prompt/encode.ts";
import { causalTrace, TRACE_KINDS } from "../src/locate/trace.ts";

const [modelDir, factsFile, nArg, out, rngArg] = Deno.args;
const noiseRng = (rngArg ?? "numpy") as NoiseRng;
if (!out) throw new Error("usage: trace_rome_dump.ts MODEL_DIR FACTS_FILE N OUT.json");
const hf = await loadHFModel(modelDir);
const tok = hf.tokenizer!;
const model = TransformerModel.create(await getGpu(), hf.config, hf.weights);
const all = await readTraceFacts(factsFile);
const C = hf.config.nEmbd;
const noiseStd = 3 * embeddingStd(hf.weights, C, all.flatMap((f) => tok.encode(f.subject)));
const cases = [];
for (const fact of all.slice(0, Number(nArg))) {
  // The tokenizer's own BOS policy (src/prompt), as every engram command encodes.
  const input = encodeFact(tok, { prompt: fact.prompt, subject: fact.subject }, {
    nPositions: hf.config.nPositions,
  });
  const r = await causalTrace(model, input.ids, input.subjectRange, {
    kinds: [...TRACE_KINDS],
    noiseStd,
    noiseRng,
  });
  cases.push({
    id: fact.id,
    ids: input.ids,
    subject_range: input.subjectRange,
    answer: r.answer[0],
    p_clean: r.pClean,
    p_corrupt: r.pCorrupt,
    scores: Object.fromEntries(r.traces.map((t) => [t.kind, t.scores])),
  });
}
await Deno.writeTextFile(out, JSON.stringify({ noise_std: noiseStd, samples: 10, window: 10, cases }));
model.destroy();
console.log(`wrote ${cases.length} traces to ${out} (noise std ${noiseStd})`);

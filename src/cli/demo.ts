/**
 * `engram demo`: the main job on the bundled model — load a Hugging Face folder, tokenize, run the
 * WebGPU forward, show the next-token predictions and a greedy continuation, and check the GPU's
 * log-probabilities against the float64 CPU reference.
 */
import { getGpu } from "../gpu/device.ts";
import { loadHFModel } from "../io/hf_model.ts";
import { GPT2Model } from "../model/gpt2.ts";
import { generate } from "../model/generate.ts";
import { gpt2ForwardRef } from "../reference/gpt2.ts";
import { parseFlags } from "./args.ts";
import { topK } from "./predict.ts";

/** Folder of the bundled default model. */
export const DEFAULT_MODEL = new URL("../../fixtures/models/fake-gpt2/", import.meta.url).pathname;

/** Runs the demo; `--model DIR` and `--text` override the defaults. */
export async function demoCommand(argv: string[]): Promise<void> {
  const f = parseFlags("demo", argv, { model: { type: "string" }, text: { type: "string" }, json: { type: "boolean" } });
  const dir = (f.model as string | undefined) ?? DEFAULT_MODEL;
  const text = (f.text as string | undefined) ?? "The Eiffel Tower is located in the city of";
  const gpu = await getGpu();
  const a = gpu.describe();
  const t0 = performance.now();
  const hf = await loadHFModel(dir);
  const model = GPT2Model.create(gpu, hf.config, hf.weights);
  const tok = hf.tokenizer!;
  const ids = tok.encode(text);
  const { logprobs } = await model.forward([ids]);
  const lp = logprobs[0];
  const ref = gpt2ForwardRef(hf.config, hf.weights, ids).logprobsLast;
  let maxErr = 0;
  for (let i = 0; i < lp.length; i++) maxErr = Math.max(maxErr, Math.abs(lp[i] - ref[i]));
  const gen = await generate(model, ids, { maxTokens: 8, eosId: tok.eosId });
  const seconds = (performance.now() - t0) / 1000;
  const top = topK(lp, 5).map((id) => ({ id, token: tok.tokenString(id), p: Math.exp(lp[id]) }));
  const c = hf.config;
  const result = {
    adapter: a.description || a.vendor,
    model: dir,
    config: { layers: c.nLayer, heads: c.nHead, width: c.nEmbd, vocab: c.vocabSize },
    prompt: text,
    ids,
    top,
    continuation: tok.decode(gen.ids),
    max_abs_logprob_error_vs_float64: maxErr,
    seconds,
  };
  if (f.json) console.log(JSON.stringify(result, null, 2));
  else {
    console.log(`engram demo on ${result.adapter}`);
    console.log(`model ${dir} (${c.nLayer} layer(s), ${c.nHead} head(s), width ${c.nEmbd}, vocab ${c.vocabSize})`);
    console.log(`prompt: ${JSON.stringify(text)} -> ${ids.length} tokens [${ids.join(", ")}]`);
    console.log("next-token predictions:");
    for (const t of top) console.log(`  ${JSON.stringify(t.token).padEnd(16)} p=${t.p.toFixed(5)}`);
    console.log(`greedy continuation: ${JSON.stringify(result.continuation)}`);
    console.log(`GPU vs float64 CPU reference: max |Δ log-prob| = ${maxErr.toExponential(2)} over ${lp.length} tokens`);
    console.log(`done in ${seconds.toFixed(2)} s`);
  }
  model.destroy();
}

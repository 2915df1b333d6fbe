/**
 * `engram demo`: the main job on the bundled model. By default that is the fixture world's trained
 * GPT-2 (fixtures/world/model): load it from Hugging Face files, ask it facts it was trained on and
 * held-out paraphrases it never saw, measure its recall on a sample, and check the WebGPU forward against
 * the float64 CPU reference. With --model and --text it runs the same path on any GPT-2 folder.
 */
import { join } from "node:path";
import { getGpu } from "../gpu/device.ts";
import { loadHFModel } from "../io/hf_model.ts";
import { readJsonl } from "../io/world.ts";
import { topOneAccuracy } from "../evaluate/accuracy.ts";
import { generate } from "../model/generate.ts";
import { gpt2ForwardRef } from "../reference/gpt2.ts";
import { InputError } from "../errors.ts";
import { bosFlag, COMMON_FLAGS } from "./args.ts";
import { type CommandSpec, parseCommand } from "./spec.ts";
import { encodeText } from "../prompt/encode.ts";
import { withFieldNames } from "../prompt/errors.ts";
import { topK } from "../numeric/mod.ts";
import type { DemoOutput } from "../schema/misc_output.ts";
import { schemaTag } from "../schema/common.ts";
import { uploadModel, weightsFlag } from "./upload.ts";

/** The fixture world (prompts) and its trained model, the demo's defaults. */
export const WORLD_DIR = new URL("../../fixtures/world/", import.meta.url).pathname;
/** Folder of the bundled default model. */
export const DEFAULT_MODEL = join(WORLD_DIR, "model");

interface WorldPromptRec {
  prompt: string;
  answer: string;
  relation: string;
}

/** Flags and help of `engram demo`. */
export const demoSpec: CommandSpec = {
  name: "demo",
  summary: "run the bundled model end to end and check the GPU against the float64 CPU reference",
  usage: 'demo [--model DIR] [--text "..."] [--bos auto|on|off] [--json]',
  description:
    `By default the fixture world's trained GPT-2 (fixtures/world/model): trained facts and held-out
    paraphrases, recall on a sample, and the largest log-probability difference between the WebGPU forward
    and the float64 reference. --model and --text run the same path on any GPT-2 folder.`,
  flags: {
    model: { ...COMMON_FLAGS.model, required: false, default: "fixtures/world/model" },
    text: { type: "string", value: '"..."', help: "a prompt to ask instead of the world's facts" },
    bos: COMMON_FLAGS.bos,
    weights: COMMON_FLAGS.weights,
    json: COMMON_FLAGS.json,
  },
  examples: ["demo", 'demo --model fixtures/models/fake-gpt2 --text "The Eiffel Tower is located in"'],
};

/** Runs the demo; `--model DIR` and `--text` override the defaults. */
export async function demoCommand(argv: string[]): Promise<void> {
  const f = parseCommand(demoSpec, argv);
  const dir = (f.model as string | undefined) ?? DEFAULT_MODEL;
  const gpu = await getGpu();
  const a = gpu.describe();
  const t0 = performance.now();
  const hf = await loadHFModel(dir, { bos: bosFlag(f) });
  if (!hf.tokenizer) throw new InputError(`${dir} has no tokenizer files`, { field: "--model" });
  const tok = hf.tokenizer;
  const model = uploadModel(gpu, hf, weightsFlag(f));
  const useWorld = f.text === undefined && f.model === undefined;
  const asks: Array<{ kind: string; prompt: string; answer?: string }> = [];
  let sample: { train: number; heldout: number } | undefined;
  if (useWorld) {
    const train = await readJsonl<WorldPromptRec>(join(WORLD_DIR, "train_prompts.jsonl"));
    const held = await readJsonl<WorldPromptRec>(join(WORLD_DIR, "heldout.jsonl"));
    asks.push({ kind: "trained fact", prompt: train[0].prompt, answer: train[0].answer });
    asks.push({ kind: "held-out paraphrase", prompt: held[1].prompt, answer: held[1].answer });
    asks.push({ kind: "held-out question", prompt: held[2].prompt, answer: held[2].answer });
    // A fixed spread-out sample keeps the demo quick; `engram accuracy --world` scores everything.
    const pick = (xs: WorldPromptRec[]) => xs.filter((_, i) => i % Math.ceil(xs.length / 150) === 0);
    const cases = (xs: WorldPromptRec[]) =>
      pick(xs).map((x) => ({ prompt: x.prompt, answer: x.answer, group: x.relation }));
    const rTrain = await topOneAccuracy(model, tok, cases(train));
    const rHeld = await topOneAccuracy(model, tok, cases(held));
    sample = { train: rTrain.accuracy, heldout: rHeld.accuracy };
  } else {
    asks.push({
      kind: "prompt",
      prompt: (f.text as string | undefined) ?? "The Eiffel Tower is located in the city of",
    });
  }
  const results = [];
  let maxErr = 0;
  for (const q of asks) {
    const ids = withFieldNames(
      { prompt: "--text" },
      () => encodeText(tok, q.prompt, { nPositions: hf.config.nPositions }),
    );
    const { logprobs } = await model.forward([ids]);
    const lp = logprobs[0];
    const ref = gpt2ForwardRef(hf.config, hf.weights, ids).logprobsLast;
    for (let i = 0; i < lp.length; i++) maxErr = Math.max(maxErr, Math.abs(lp[i] - ref[i]));
    const gen = await generate(model, ids, { maxTokens: 4, eosId: tok.eosId });
    results.push({
      ...q,
      top: topK(lp, 3).map((id) => ({ token: tok.tokenString(id), p: Math.exp(lp[id]) })),
      continuation: tok.decode(gen.ids),
    });
  }
  const seconds = (performance.now() - t0) / 1000;
  const c = hf.config;
  const out: DemoOutput = {
    schema: schemaTag("demo", 1),
    adapter: a.description || a.vendor,
    model: dir,
    config: { layers: c.nLayer, heads: c.nHead, width: c.nEmbd, vocab: c.vocabSize },
    asks: results,
    sample_accuracy: sample,
    max_abs_logprob_error_vs_float64: maxErr,
    seconds,
  };
  if (f.json) console.log(JSON.stringify(out, null, 2));
  else {
    console.log(`engram demo on ${out.adapter}`);
    console.log(
      `model ${dir} (${c.nLayer} layers, ${c.nHead} heads, width ${c.nEmbd}, vocab ${c.vocabSize})\n`,
    );
    for (const r of results) {
      const mark = r.answer === undefined
        ? ""
        : r.top[0].token.trim() === r.answer
        ? "  ✓"
        : `  ✗ (expected ${r.answer})`;
      console.log(`${r.kind}: ${JSON.stringify(r.prompt)}`);
      console.log(
        `  next word: ${
          r.top.map((t) => `${JSON.stringify(t.token)} ${(100 * t.p).toFixed(1)}%`).join(", ")
        }${mark}`,
      );
      console.log(`  greedy continuation: ${JSON.stringify(r.continuation)}`);
    }
    if (sample) {
      console.log(
        `\nrecall on a sample: ${(100 * sample.train).toFixed(1)}% of trained facts, ` +
          `${
            (100 * sample.heldout).toFixed(1)
          }% of held-out paraphrases (all of them: engram accuracy --world fixtures/world)`,
      );
    }
    console.log(`GPU vs float64 CPU reference: max |Δ log-prob| = ${maxErr.toExponential(2)}`);
    console.log(`done in ${seconds.toFixed(2)} s`);
  }
  model.destroy();
}

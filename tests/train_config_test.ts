/**
 * Training configs and corpora against hostile input: prototype-named keys, values String() cannot
 * coerce, 10,000-deep structures, duplicate keys, a megabyte one-word line, and absurd architectures
 * (refused by a memory estimate before anything is allocated). No GPU needed.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError, type EngramError, InputError } from "../src/errors.ts";
import { loadTokenizer } from "../src/io/tokenizer.ts";
import { weightShapes } from "../src/model/families/mod.ts";
import {
  checkTrainingMemory,
  parseTrainConfig,
  parseTrainConfigText,
  readTrainConfig,
  trainedModelConfig,
  trainingMemory,
} from "../src/train/config.ts";
import { maxTokenBytes, parseCorpus, utf8Length } from "../src/train/corpus.ts";

const FILE = "/tmp/cfg/train.json";
const WORLD = new URL("../fixtures/world", import.meta.url).pathname;
const base = { corpus: "c.jsonl", tokenizer: "tok", out: "out" };

/** Asserts `f` throws a typed error of class `cls` naming FILE (or `file`), `field`, short, matching `re`. */
function assertTyped(
  f: () => unknown,
  cls: abstract new (...args: never[]) => EngramError,
  field: string | undefined,
  re: RegExp,
  file = FILE,
): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e}`);
    assert.equal(e.file, file);
    assert.ok(e.message.includes(file), e.message);
    if (field !== undefined) assert.equal(e.field, field);
    assert.match(e.message, re);
    assert.ok(e.message.length < 400, `message of ${e.message.length} characters`);
    return true;
  });
}

function deepArray(n: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < n; i++) v = [v];
  return v;
}

Deno.test("train config: keys named like Object.prototype members are unknown fields, not inherited members", () => {
  for (const k of ["valueOf", "hasOwnProperty", "constructor", "toString", "__proto__", "isPrototypeOf"]) {
    const text = JSON.stringify(base).replace(/}$/, `,${JSON.stringify(k)}:1}`);
    assertTyped(() => parseTrainConfigText(text, FILE), ConfigError, k, /unknown field/);
    const model = `{"n_layer":1,${JSON.stringify(k)}:2}`;
    assertTyped(
      () => parseTrainConfigText(JSON.stringify(base).replace(/}$/, `,"model":${model}}`), FILE),
      ConfigError,
      `model.${k}`,
      /unknown field/,
    );
  }
  // A JS object built by JSON.parse owns "__proto__" too: still an unknown field.
  assertTyped(
    () => parseTrainConfig(JSON.parse('{"corpus":"c","tokenizer":"t","out":"o","__proto__":{"lr":5}}'), FILE),
    ConfigError,
    "__proto__",
    /unknown field/,
  );
  // Defaults are not found on Object.prototype: a config without "model" still gets the default model.
  const cfg = parseTrainConfigText(JSON.stringify(base), FILE);
  assert.equal(cfg.model.nLayer, 2);
  assert.equal(cfg.corpus, "/tmp/cfg/c.jsonl");
});

Deno.test("train config: values are type-checked, never coerced; deep and huge values give short messages", () => {
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{ ...base, corpus: { toString: 1 } }, "corpus", /non-empty path, got \{"toString":1\}/],
    [{ ...base, out: ["o"] }, "out", /non-empty path/],
    [{ ...base, epochs: "10" }, "epochs", /integer >= 1, got "10"/],
    [{ ...base, epochs: { valueOf: 3 } }, "epochs", /integer >= 1/],
    [{ ...base, epochs: 1e300 }, "epochs", /integer >= 1/],
    [{ ...base, lr: deepArray(10000) }, "lr", /number >= 0, got \[\[\[/],
    [{ ...base, checkpoint_epochs: "yes" }, "checkpoint_epochs", /true or false/],
    [{ ...base, checkpoint_epochs: 1 }, "checkpoint_epochs", /true or false/],
    [{ ...base, model: [] }, "model", /must be an object, got an array/],
    [{ ...base, model: { n_layer: 1.5 } }, "model.n_layer", /integer >= 1/],
    [{ ...base, tokenizer: "x".repeat(100000) + "\0" }, "tokenizer", /non-empty path/],
  ];
  for (const [json, field, re] of cases) {
    assertTyped(() => parseTrainConfig(json, FILE), ConfigError, field, re);
  }
  assertTyped(() => parseTrainConfig(null, FILE), ConfigError, undefined, /JSON object, got null/);
  assertTyped(() => parseTrainConfig([base], FILE), ConfigError, undefined, /got an array/);
});

Deno.test("train config text: duplicate keys, deep nesting and bad JSON are ConfigErrors naming the file", async () => {
  const dup = '{"corpus":"a","corpus":"b","tokenizer":"t","out":"o"}';
  assertTyped(() => parseTrainConfigText(dup, FILE), ConfigError, "corpus", /duplicate key "corpus"/);
  const deep = `{"corpus":"a","tokenizer":"t","out":"o","comment":${"[".repeat(10000)}${"]".repeat(10000)}}`;
  assertTyped(() => parseTrainConfigText(deep, FILE), ConfigError, undefined, /nested deeper than 32/);
  assertTyped(() => parseTrainConfigText('{"corpus": ', FILE), ConfigError, undefined, /not valid JSON/);
  const dir = await Deno.makeTempDir();
  try {
    const f = join(dir, "t.json");
    await Deno.writeTextFile(f, '{"corpus":"c","tokenizer":"t","out":"o","model":{"n_embd":20000}}');
    await assert.rejects(readTrainConfig(f), (e: unknown) => {
      assert.ok(e instanceof ConfigError && e.file === f && e.field === "model", String(e));
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train config: an absurd model is refused by its memory estimate before anything is allocated", () => {
  const t0 = performance.now();
  assertTyped(
    () => parseTrainConfig({ ...base, model: { n_embd: 20000, n_head: 4 } }, FILE),
    ConfigError,
    "model",
    /needs about \d+(\.\d)? GB .* parameters .*more than the [\d.]+ GB of host memory/,
  );
  assertTyped(
    () => parseTrainConfig({ ...base, model: { n_layer: 1e6 } }, FILE),
    ConfigError,
    "model",
    /host memory/,
  );
  assertTyped(
    () => parseTrainConfig({ ...base, model: { n_layer: 2 ** 52 } }, FILE),
    ConfigError,
    "model",
    /host memory/,
  );
  assert.ok(performance.now() - t0 < 500, "the estimate is closed-form");
  // The same small model passes or fails by the limits given.
  const small = { ...base, model: { n_layer: 1, n_head: 2, n_embd: 16, n_positions: 16 }, batch_size: 4 };
  parseTrainConfig(small, FILE);
  assertTyped(
    () => parseTrainConfig(small, FILE, { limits: { hostBytes: 1000 } }),
    ConfigError,
    "model",
    /more than the 0\.000 GB of host memory/,
  );
  const cfg = parseTrainConfig(small, FILE);
  assertTyped(
    () =>
      checkTrainingMemory(cfg, 50257, { maxBufferSize: 2 ** 20, maxStorageBufferBindingSize: 2 ** 30 }, FILE),
    ConfigError,
    "model",
    /largest buffer .* GPU adapter's limit of 0\.001 GB per buffer/,
  );
});

Deno.test("trainingMemory counts exactly the parameters of a Llama-family model; llama-only fields are refused elsewhere", () => {
  for (const [L, H, KV, C, P, V, I] of [[1, 2, 1, 8, 5, 7, 11], [3, 4, 2, 16, 9, 301, 13]]) {
    const m = {
      nLayer: L,
      nHead: H,
      nKvHead: KV,
      nEmbd: C,
      nPositions: P,
      nInner: I,
      family: "llama" as const,
    };
    let want = 0;
    for (const s of weightShapes(trainedModelConfig(m, V)).values()) want += s.reduce((a, b) => a * b, 1);
    assert.equal(trainingMemory(m, V, 3).params, want);
  }
  const base = { corpus: "c.jsonl", tokenizer: ".", out: "o" };
  for (
    const [model, field] of [
      [{ n_kv_head: 2 }, "model.n_kv_head"],
      [{ rope_theta: 500 }, "model.rope_theta"],
      [{ family: "llama", n_head: 4, n_kv_head: 3 }, "model.n_kv_head"],
      [{ family: "llama", n_head: 4, n_embd: 12 }, "model.n_head"],
      [{ family: "neox" }, "model.family"],
    ] as Array<[Record<string, unknown>, string]>
  ) {
    assert.throws(
      () => parseTrainConfig({ ...base, model }, "/x/train.json"),
      (e: unknown) => e instanceof ConfigError && e.field === field && e.file === "/x/train.json",
      JSON.stringify(model),
    );
  }
});

Deno.test("trainingMemory counts exactly the parameters of weightShapes", () => {
  for (
    const [L, H, C, P, V, I] of [[1, 1, 3, 5, 7, undefined], [3, 2, 10, 9, 301, 13], [2, 4, 16, 32, 50, 64]]
  ) {
    const shapes = weightShapes({
      nLayer: L!,
      nHead: H!,
      nEmbd: C!,
      nPositions: P!,
      vocabSize: V!,
      nInner: I ?? 4 * C!,
      layerNormEpsilon: 1e-5,
    });
    let want = 0;
    let largest = 0;
    for (const s of shapes.values()) {
      const n = s.reduce((a, b) => a * b, 1);
      want += n;
      largest = Math.max(largest, n);
    }
    const m = trainingMemory({ nLayer: L!, nHead: H!, nEmbd: C!, nPositions: P!, nInner: I }, V!, 3);
    assert.equal(m.params, want);
    assert.equal(m.stateBytes, 16 * want);
    assert.ok(m.largestBufferBytes >= 4 * largest);
    assert.ok(m.largestBufferBytes >= 4 * 3 * P! * V!, "logits of the batch");
    assert.ok(m.activationBytes > 4 * 3 * P! * V!);
  }
});

Deno.test("corpus: a 1 MB one-word line is refused before tokenizing, naming file and line", async () => {
  const tok = await loadTokenizer(WORLD);
  const line = JSON.stringify({ id: "big", text: "x".repeat(1 << 20) });
  const text = `{"id":"a","text":"Narnux was born in Tarvos ."}\n${line}\n`;
  const t0 = performance.now();
  assertTyped(
    () => parseCorpus(text, "c.jsonl", tok, 33),
    InputError,
    "line 2",
    /'text' is 1048576 bytes: more than the \d+ bytes .*context of 33/,
    "c.jsonl",
  );
  assert.ok(performance.now() - t0 < 1000, `took ${performance.now() - t0} ms`);
});

Deno.test("corpus: the byte bound never refuses a line that fits (every refused line has too many tokens)", async () => {
  const tok = await loadTokenizer(WORLD);
  const per = maxTokenBytes(tok);
  assert.ok(per >= 1 && per < 64, `longest world token is ${per} bytes`);
  const words = ["Narnux", "was", "born", "in", "Tarvos", ".", "Sunmere", "the", "x", "zz", "é"];
  let refused = 0;
  let state = 12345;
  const rand = () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let trial = 0; trial < 200; trial++) {
    const n = 1 + Math.floor(rand() * 60);
    const t = Array.from({ length: n }, () => words[Math.floor(rand() * words.length)]).join(
      rand() < 0.5 ? " " : "",
    );
    const maxTokens = 3 + Math.floor(rand() * 12);
    const tokens = tok.encode(t).length + 2;
    try {
      parseCorpus(JSON.stringify({ text: t }), "c.jsonl", tok, maxTokens);
      assert.ok(tokens <= maxTokens);
    } catch (e) {
      assert.ok(e instanceof InputError, String(e));
      assert.ok(
        tokens > maxTokens,
        `refused a line of ${tokens} tokens for a context of ${maxTokens}: ${e.message}`,
      );
      if (/bytes/.test(e.message)) refused++;
    }
    assert.equal(utf8Length(t), new TextEncoder().encode(t).length);
  }
  assert.ok(refused > 0, "some lines were refused by the byte bound");
});

Deno.test("corpus: ids and texts are type-checked, prototype keys are plain, duplicates and deep lines refused", async () => {
  const tok = await loadTokenizer(WORLD);
  const bad: [string, RegExp][] = [
    [
      '{"id":{"toString":1},"text":"Narnux ."}',
      /\$\.id: expected a string or an integer, got \{"toString":1\}/,
    ],
    [
      `{"id":${JSON.stringify(deepArray(30))},"text":"Narnux ."}`,
      /\$\.id: expected a string or an integer, got \[\[\[/,
    ],
    [`{"id":${"[".repeat(10000)}${"]".repeat(10000)},"text":"a"}`, /nested deeper than 32/],
    ['{"text":{"toString":"x"}}', /\$\.text: expected a non-empty string/],
    ['{"text":"a","text":"b"}', /duplicate key "text"/],
    ['{"__proto__":{"text":"Narnux ."}}', /\$\.text: missing, expected a non-empty string/],
    ['{"id":1.5,"text":"Narnux ."}', /\$\.id: expected a string or an integer/],
    ["[1]", /not a JSON object, got an array/],
  ];
  for (const [line, re] of bad) {
    assertTyped(
      () => parseCorpus(`{"text":"ok ."}\n${line}`, "c.jsonl", tok, 33),
      InputError,
      "line 2",
      re,
      "c.jsonl",
    );
  }
  const ok = parseCorpus(
    '{"id":7,"text":"Narnux .","constructor":1,"__proto__":{"id":"x"}}\n{"id":"constructor","text":"Tarvos ."}',
    "c.jsonl",
    tok,
    33,
  );
  assert.deepEqual(ok.map((x) => x.id), ["7", "constructor"]);
});

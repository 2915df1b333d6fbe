/**
 * Issue 12 §1 root causes, one test each: field types checked and never coerced in request and fact
 * files, deep nesting refused, literal "{}" substitution, token ids bounded before the tokenizer library
 * walks them, and an absurd n_layer refused before any per-layer map is built.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError, EngramError, InputError, SafetensorsError } from "../src/errors.ts";
import { filledPrompt, fillSubject, parseRequests } from "../src/prompt/requests.ts";
import { parseTraceFacts } from "../src/prompt/facts.ts";
import { loadTokenizer } from "../src/io/tokenizer.ts";
import { loadHFModel } from "../src/io/hf_model.ts";
import { refPrompt } from "../src/reference/edit_value.ts";
import { fillTemplate } from "../src/io/world.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const DEEP = "[".repeat(10000) + "]".repeat(10000);
/** Values of the wrong type for a string field (a long string is a valid one). */
const EVIL = ['{"toString":1}', '{"valueOf":null,"toString":"x"}', DEEP, "[1,2]", "3.5", "true"];
const LONG = `"${"x".repeat(100000)}"`;

// deno-lint-ignore no-explicit-any
function typed(fn: () => unknown, cls: new (...a: any[]) => EngramError, file: string, re?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e}`);
    assert.ok(e.message.startsWith(file), e.message.slice(0, 200));
    assert.ok(e.message.length < 300, `a ${e.message.length}-character message`);
    if (re) assert.match(e.message, re);
    return true;
  });
}

const REQ = { prompt: "{} was born in", subject: "Narnux", target_new: { str: "Tarvos" } };

Deno.test("requests: every field is type-checked, never coerced; deep nesting is refused", () => {
  for (const v of EVIL) {
    for (const field of ["subject", "prompt", "target_new"]) {
      const text = JSON.stringify([{ ...REQ, [field]: 0 }]).replace("0", v);
      typed(() => parseRequests(text, "r.json"), InputError, "r.json");
    }
    // EasyEdit layout: ground truths, locality and portability answers.
    const ee = { prompt: "Narnux was born in", subject: "Narnux", target_new: "Tarvos" };
    for (
      const [field, wrap] of [["locality_ground_truth", (x: string) => `[${x}]`], [
        "ground_truth",
        (x: string) => x,
      ]] as const
    ) {
      const text = JSON.stringify({ ...ee, locality_prompt: "p", [field]: 0 }).replace(":0", ":" + wrap(v));
      let out: unknown;
      try {
        out = parseRequests(text, "r.json");
      } catch (e) {
        assert.ok(e instanceof InputError, `${field} ${v.slice(0, 20)}: ${e}`);
        assert.ok((e as Error).message.length < 300);
        continue;
      }
      // Accepted only where the field is optional and then ignored, never as a coerced string.
      const r = (out as { ground_truth?: unknown; locality?: { ground_truth: unknown }[] }[])[0];
      for (const g of [r.ground_truth, ...(r.locality ?? []).map((l) => l.ground_truth)]) {
        assert.ok(g === undefined || (typeof g === "string" && !g.includes("object")), String(g));
      }
    }
  }
  typed(() => parseRequests(DEEP, "r.json"), InputError, "r.json", /nested deeper/);
  // A long subject missing from the prompt is quoted short.
  const long = JSON.stringify([{ ...REQ, prompt: "Narnux was born in", subject: 0 }]).replace(
    ":0",
    ":" + LONG,
  );
  typed(() => parseRequests(long, "r.json"), InputError, "r.json", /does not occur/);
  typed(
    () => parseRequests('[{"subject": "a", "subject": "b"}]', "r.json"),
    InputError,
    "r.json",
    /duplicate/,
  );
  // Prototype-named keys are plain data, not fields.
  typed(
    () => parseRequests('{"prompt":"{} x","subject":"a","__proto__":{"target_new":"y"}}', "r.json"),
    InputError,
    "r.json",
  );
  // JSON lines still parse.
  const lines = [REQ, { ...REQ, subject: "Pilvun" }].map((x) => JSON.stringify(x)).join("\n");
  assert.deepEqual(parseRequests(lines, "r.jsonl").map((r) => r.subject), ["Narnux", "Pilvun"]);
});

Deno.test('"{}" substitution is literal: $&, $\' and $$ in a subject do not change the prompt', () => {
  for (const subject of ["$&", "a$'b", "$$", "$`x", "$1"]) {
    const [r] = parseRequests(JSON.stringify([{ ...REQ, subject }]), "r.json");
    assert.equal(filledPrompt(r), `${subject} was born in`);
    assert.equal(fillSubject("The {} is {}", subject), `The ${subject} is {}`);
    assert.equal(fillTemplate("{s} lives", subject), `${subject} lives`);
    const tok = { encode: (s: string) => [...s].map((c) => c.charCodeAt(0)) };
    const p = refPrompt(tok, "ctx. {}", "{} was born in", subject);
    assert.deepEqual(p.ids, tok.encode(`ctx. ${subject} was born in`));
  }
});

Deno.test("facts: ids, answers and relations are type-checked, never coerced; deep arrays refused", () => {
  const rec = {
    known_id: 0,
    subject: "Vinson Massif",
    attribute: "Antarctica",
    prompt: "Vinson Massif is in",
    relation_id: "P30",
  };
  for (const v of EVIL) {
    for (const field of ["known_id", "attribute", "relation_id", "subject", "prompt"]) {
      if (field === "known_id" && v === "3.5") continue; // checked below
      const text = JSON.stringify([{ ...rec, [field]: 0 }]).replace(":0", ":" + v);
      typed(() => parseTraceFacts(text, "k.json"), InputError, "k.json");
      const line = JSON.stringify({
        ...rec,
        id: "a",
        known_id: undefined,
        [field === "known_id" ? "id" : field]: 0,
      })
        .replace(":0", ":" + v);
      typed(() => parseTraceFacts(line + "\n", "f.jsonl"), InputError, "f.jsonl");
    }
  }
  typed(
    () => parseTraceFacts(JSON.stringify([{ ...rec, known_id: 3.5 }]), "k.json"),
    InputError,
    "k.json",
    /integer/,
  );
  typed(() => parseTraceFacts(DEEP, "k.json"), InputError, "k.json", /nested deeper/);
  typed(
    () => parseTraceFacts('{"prompt":"a b","subject":"a","toString":1', "k.jsonl"),
    InputError,
    "k.jsonl",
    /line 1/,
  );
  const [f] = parseTraceFacts(JSON.stringify([{ ...rec, known_id: 7 }, { ...rec, known_id: "x" }]), "k.json");
  assert.deepEqual([f.id, f.target, f.relation], ["7", "Antarctica", "P30"]);
  // A prototype-named key is not a field: no "toString" id, no inherited "constructor" relation.
  const [g] = parseTraceFacts('[{"prompt":"a b","subject":"a","constructor":"c"}]', "k.json");
  assert.deepEqual([g.id, g.relation, g.target], ["0", undefined, undefined]);
});

async function withTmp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "engram-hardening-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const TOY: Record<string, number> = { "l": 0, "o": 1, "w": 2, "Ġ": 3, "Ġl": 4, "lo": 5, "<|endoftext|>": 6 };

Deno.test("tokenizer: ids near 2^31, duplicates and holes are refused at once, naming file and token", async () => {
  await withTmp(async (dir) => {
    const world = JSON.parse(await Deno.readTextFile(join(ROOT, "fixtures/world/tokenizer.json")));
    const vocab = world.model.vocab as Record<string, number>;
    const [first, second] = Object.keys(vocab);
    const bads: [string, (j: typeof world) => void, RegExp][] = [
      ["huge", (j) => (j.model.vocab[first] = 2 ** 31 - 5), /out of range/],
      ["dup", (j) => (j.model.vocab[first] = j.model.vocab[second]), /share id/],
      ["neg", (j) => (j.model.vocab[first] = -1), /non-negative integer/],
      ["obj", (j) => (j.model.vocab[first] = { toString: 1 }), /non-negative integer/],
      ["added", (j) => (j.added_tokens = [{ id: 2 ** 31, content: "<x>" }]), /'id' must be an integer/],
      ["added-content", (j) => (j.added_tokens = [{ id: 1, content: ["x"] }]), /'content' must be a string/],
    ];
    for (const [name, edit, re] of bads) {
      const j = structuredClone(world);
      edit(j);
      await Deno.writeTextFile(join(dir, "tokenizer.json"), JSON.stringify(j));
      const t0 = performance.now();
      await assert.rejects(loadTokenizer(dir), (e: unknown) => {
        assert.ok(e instanceof EngramError && e.code === "tokenizer", `${name}: ${e}`);
        assert.ok(e.message.startsWith(join(dir, "tokenizer.json")), e.message);
        assert.match(e.message, re, name);
        return true;
      });
      assert.ok(performance.now() - t0 < 2000, `${name}: refused in ${performance.now() - t0} ms`);
    }
    await Deno.remove(join(dir, "tokenizer.json"));
    await Deno.writeTextFile(join(dir, "merges.txt"), "#version: 0.2\nĠ l\nl o\n");
    for (
      const [name, v, re] of [
        ["huge", { ...TOY, "w": 2 ** 31 - 1 }, /out of range for the 7 tokens/],
        ["dup", { ...TOY, "w": 1 }, /share id 1/],
        ["hole", { ...TOY, "<|endoftext|>": 7 }, /ids must be 0\.\.6/],
      ] as const
    ) {
      await Deno.writeTextFile(join(dir, "vocab.json"), JSON.stringify(v));
      await assert.rejects(loadTokenizer(dir), (e: unknown) => {
        assert.ok(e instanceof EngramError && e.message.startsWith(join(dir, "vocab.json")), `${name}: ${e}`);
        assert.match(e.message, re);
        return true;
      });
    }
    // A merge naming an Object.prototype member is not "in the vocab".
    await Deno.writeTextFile(join(dir, "vocab.json"), JSON.stringify(TOY));
    await Deno.writeTextFile(join(dir, "merges.txt"), "to String\n");
    await assert.rejects(loadTokenizer(dir), /token "to" is not in vocab\.json/);
    await Deno.writeTextFile(join(dir, "merges.txt"), "#version: 0.2\nĠ l\nl o\n");
    const tok = await loadTokenizer(dir);
    assert.equal(tok.vocabSize, 7);
    assert.equal(tok.decode(tok.encode(" lo")), " lo");
  });
});

Deno.test("hf_model: an absurd n_layer is refused at once, before any per-layer map", async () => {
  await withTmp(async (dir) => {
    const src = join(ROOT, "fixtures/models/fake-gpt2");
    await Deno.copyFile(join(src, "model.safetensors"), join(dir, "model.safetensors"));
    const cfg = JSON.parse(await Deno.readTextFile(join(src, "config.json")));
    for (const n of [3000000, 2 ** 40, cfg.n_layer + 1]) {
      await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify({ ...cfg, n_layer: n }));
      const t0 = performance.now();
      await assert.rejects(loadHFModel(dir), (e: unknown) => {
        assert.ok(e instanceof SafetensorsError, String(e));
        assert.match(
          e.message,
          new RegExp(`config says n_layer=${n}, the weights hold layers 0\\.\\.${cfg.n_layer - 1}`),
        );
        assert.match(e.message, /model\.safetensors/);
        return true;
      });
      assert.ok(performance.now() - t0 < 3000, `refused in ${performance.now() - t0} ms`);
    }
    for (const [field, v] of [["n_embd", 2 ** 50], ["n_inner", 2 ** 50], ["vocab_size", 2 ** 52]] as const) {
      await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify({ ...cfg, [field]: v, n_head: 1 }));
      await assert.rejects(
        loadHFModel(dir),
        (e: unknown) => e instanceof ConfigError && e.message.length < 300,
      );
    }
    let deep: unknown = 2;
    for (let i = 0; i < 10000; i++) deep = [deep];
    await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify({ ...cfg, n_embd: deep }));
    await assert.rejects(
      loadHFModel(dir),
      (e: unknown) => e instanceof ConfigError && e.message.length < 300,
    );
  });
});

Deno.test("a typed error quotes only the start of a long field name (a tensor or key read from a file)", () => {
  const e = new InputError("missing", { file: "log/original.safetensors", field: "h.0.w".repeat(20000) });
  assert.ok(e.message.length < 140, `a ${e.message.length}-character message`);
  assert.equal(e.field!.length, 100000, "the full field stays on the error for programs");
  assert.match(e.message, /^log\/original\.safetensors, field 'h\.0\.wh\.0\.w.*…': missing$/);
});

/**
 * The prompt module: subject token ranges (ROME's find_token_range), the target-spacing rule, the
 * context check, the BOS policy read from the tokenizer's files, typed errors naming file / record /
 * field, and the commands agreeing on one encoding (predict vs trace on the world model; a trace of an
 * HF GPT-2 on exactly ROME's make_inputs ids).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { InputError } from "../src/errors.ts";
import { loadTokenizer, type Tokenizer, withBos } from "../src/io/tokenizer.ts";
import {
  EmptyTargetError,
  encodeFact,
  encodeTarget,
  encodeText,
  FactError,
  findTokenRange,
  parseRequests,
  parseTraceFacts,
  PromptTooLongError,
  SubjectNotInPromptError,
  withFieldNames,
} from "../src/prompt/mod.ts";
import { tokenizePrompt } from "../src/edit/compute.ts";
import { engram } from "./_util.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const WORLD = join(ROOT, "fixtures/world");
const WORLD_MODEL = join(WORLD, "model");
const FAKE_GPT2 = join(ROOT, "../shared/data/gpt2-tiny-random-lmbuddy/fake_gpt2");
const haveFakeGpt2 = (() => {
  try {
    return Deno.statSync(join(FAKE_GPT2, "tokenizer.json")).isFile;
  } catch {
    return false;
  }
})();
/** GPT-2's ids of "The Eiffel Tower is located in" (OpenAI's encoder; tests/cli_test.ts checks them too). */
const EIFFEL_IDS = [464, 412, 733, 417, 8765, 318, 5140, 287];

/** A character-level tokenizer (id = char code) that merges "n " into one token, id 1000. */
function mergingTokenizer(): Tokenizer {
  return {
    encode: (t) => {
      const out: number[] = [];
      for (let i = 0; i < t.length; i++) {
        if (t[i] === "n" && t[i + 1] === " ") (out.push(1000), i++);
        else out.push(t.charCodeAt(i));
      }
      return out;
    },
    decode: (x) => x.map((c) => (c === 1000 ? "n " : String.fromCharCode(c))).join(""),
    tokenString: (c) => (c === 1000 ? "n " : String.fromCharCode(c)),
    vocabSize: 1001,
    source: "test",
  };
}

Deno.test("BOS convention from the tokenizer files: world declares it, HF GPT-2 adds none, templates, modes", async () => {
  const world = await loadTokenizer(WORLD_MODEL);
  assert.deepEqual(world.bosConvention, {
    adds: true,
    id: world.eosId,
    from: "tokenizer_config.json add_bos_token",
  });
  assert.equal(world.bosId, world.eosId);
  assert.equal((await loadTokenizer(WORLD_MODEL, { bos: "off" })).bosId, undefined);
  assert.equal(withBos(world, "off").bosId, undefined);
  if (haveFakeGpt2) {
    const g = await loadTokenizer(FAKE_GPT2);
    assert.equal(g.bosConvention?.adds, false, "HF GPT-2's tokenizer adds no BOS");
    assert.equal(g.bosId, undefined);
    assert.equal((await loadTokenizer(FAKE_GPT2, { bos: "on" })).bosId, 50256);
  }
  // A Llama-style tokenizer.json: Sequence[ByteLevel, TemplateProcessing("<s>" $A)], no tokenizer_config.
  const dir = await Deno.makeTempDir({ prefix: "engram_bos_" });
  try {
    const json = JSON.parse(await Deno.readTextFile(join(WORLD, "tokenizer.json")));
    const vocab = json.model.vocab as Record<string, number>;
    const sId = Object.keys(vocab).length;
    vocab["<s>"] = sId;
    json.added_tokens.push({ ...json.added_tokens[0], id: sId, content: "<s>" });
    json.post_processor = {
      type: "Sequence",
      processors: [
        { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
        {
          type: "TemplateProcessing",
          single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
          pair: [{ Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }],
          special_tokens: { "<s>": { id: "<s>", ids: [sId], tokens: ["<s>"] } },
        },
      ],
    };
    await Deno.writeTextFile(join(dir, "tokenizer.json"), JSON.stringify(json));
    const llama = await loadTokenizer(dir);
    assert.deepEqual(llama.bosConvention, { adds: true, id: sId, from: "tokenizer.json post_processor" });
    assert.deepEqual(encodeText(llama, "Narnux was born in"), [sId, ...llama.encode("Narnux was born in")]);
    // tokenizer_config.json's add_bos_token overrides the template (as HF's Llama tokenizers do).
    await Deno.writeTextFile(join(dir, "tokenizer_config.json"), JSON.stringify({ add_bos_token: false }));
    assert.equal((await loadTokenizer(dir)).bosId, undefined);
    assert.equal((await loadTokenizer(dir, { bos: "on" })).bosId, sId);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  // `on` with neither a BOS nor an end-of-text token is an error.
  assert.throws(() => withBos(mergingTokenizer(), "on"), InputError);
});

Deno.test("encodeFact: subject range by character spans, placeholder or literal, BOS and template", async () => {
  const tok = await loadTokenizer(WORLD_MODEL);
  const a = encodeFact(tok, { prompt: "The birthplace of {} is", subject: "Narnux Zava" });
  const b = encodeFact(tok, { prompt: "The birthplace of Narnux Zava is", subject: "Narnux Zava" });
  assert.deepEqual(a, b);
  // Hand-counted: [<|endoftext|>, The, birthplace, of, Narnux, Zava, is] (every world word is one token).
  assert.equal(a.ids.length, 7);
  assert.equal(a.ids[0], tok.eosId);
  assert.deepEqual(a.subjectRange, [4, 6]);
  assert.equal(a.promptLength, 7);
  // "{}" places the subject even when it also occurs earlier; the literal form takes the first occurrence.
  const twice = encodeFact(tok, { prompt: "Narnux Zava was born in {}", subject: "Narnux Zava" });
  assert.deepEqual(twice.subjectRange, [6, 8]);
  const lit = encodeFact(tok, { prompt: "Narnux Zava was born in Narnux Zava", subject: "Narnux Zava" });
  assert.deepEqual(lit.subjectRange, [1, 3]);
  // Byte-fallback subject, partial-word overlap: the tokens that overlap the span (ROME's rule).
  const ids = tok.encode("Qwzx Narnux was born in");
  const [s, e] = findTokenRange(tok, ids, "Qwzx Nar");
  assert.equal(s, 0);
  assert.equal(tok.decode(ids.slice(s, e)), "Qwzx Narnux");
  // A context template: the subject range moves by the template's tokens; leading template tokens are
  // dropped when the input does not fit, never prompt tokens.
  const t = encodeFact(tok, { prompt: "{} was born in", subject: "Narnux Zava" }, {
    template: "The city is. {}",
  });
  assert.deepEqual(t.subjectRange, [5, 7]); // [eos, The, city, is, ".", Narnux, Zava, ...]
  assert.equal(tok.decode(t.ids.slice(t.subjectRange[0], t.subjectRange[1])), " Narnux Zava");
  const cut = encodeFact(tok, { prompt: "{} was born in", subject: "Narnux Zava" }, {
    template: "The city is. {}",
    nPositions: 8,
  });
  assert.equal(cut.ids.length, 8);
  assert.equal(cut.ids[0], tok.eosId, "the BOS stays");
  assert.deepEqual(cut.ids.slice(1), t.ids.slice(3)); // two template tokens dropped
  assert.deepEqual(cut.subjectRange, [3, 5]);
  // The editors' positions come from the same encoding.
  const p = tokenizePrompt(tok, 24, "{}", "{} was born in", "Narnux Zava", [7, 8], undefined, "subject_last");
  assert.deepEqual(p.ids, [...encodeFact(tok, { prompt: "{} was born in", subject: "Narnux Zava" }).ids, 7]);
  assert.equal(p.lookup, 2);
  assert.deepEqual(p.targetPos, [5, 6]);
  assert.deepEqual(
    tokenizePrompt(tok, 24, "{}", "{} was born in", "Narnux Zava", undefined, false).ids.slice(0, 1),
    [
      tok.encode("Narnux")[0],
    ],
  );
});

/**
 * A lossy tokenizer (decoding lower-cases the text, and whitespace before a word belongs to that word's
 * token, a trailing run being its own token): one token per word, ids by first appearance.
 */
function lossyTokenizer(o: { dropDots?: boolean } = {}): Tokenizer {
  const vocab: string[] = [];
  const id = (piece: string) => {
    const i = vocab.indexOf(piece);
    return i >= 0 ? i : vocab.push(piece) - 1;
  };
  return {
    encode: (text: string) =>
      (text.toLowerCase().match(o.dropDots ? /\s*\S+/g : /\s*\S+|\s+$/g) ?? []).map(id),
    decode: (ids: number[]) => ids.map((i) => o.dropDots ? vocab[i].replaceAll(".", "") : vocab[i]).join(""),
    tokenString: (i: number) => vocab[i],
    vocabSize: 1000,
    eosId: 999,
    source: "test",
  } as Tokenizer;
}

Deno.test("encodeFact with a lossy tokenizer: the subject's tokens as the reference counts them, never a token's prefix", () => {
  const tok = lossyTokenizer();
  // The tokens before the subject and through it are prefixes of the prompt's: the reference's count,
  // although "W2" also begins the decoded " w26" after a skipped-ahead search point.
  const kl = encodeFact(tok, { prompt: "{} Is A W26", subject: "W29 W2" }, { bos: false });
  assert.deepEqual(kl.subjectRange, [0, 2]);
  const p = tokenizePrompt(tok, 24, "{}", "{} Is A W26", "W29 W2", undefined, false, "subject_last");
  assert.equal(p.lookup, 1);
  // The prefix before the subject ends in a space that tokenizes alone ("go w2x" + " "), so counting fails:
  // the decoded text is searched, and the occurrence ending on a token's end wins over "w2" inside " w2x".
  const f = encodeFact(tok, { prompt: "Go W2x {}", subject: "w2" }, { bos: false });
  assert.deepEqual(f.subjectRange, [2, 3]);
  assert.throws(
    () => encodeFact(tok, { prompt: "Go {}", subject: "Q" }, { bos: false }),
    SubjectNotInPromptError,
  );
  // Decoding drops the dots, so decoded offsets would count the prompt's " go" as a template token; the
  // template's own encoding gives 3, and truncation drops only those.
  const dots = lossyTokenizer({ dropDots: true });
  const cut = encodeFact(dots, { prompt: "Go {}", subject: "w2" }, {
    template: "A. B. C. {}",
    nPositions: 3,
    bos: false,
  });
  assert.deepEqual(cut.ids, dots.encode("A. B. C. Go w2").slice(2));
  assert.deepEqual(cut.subjectRange, [2, 3]);
  assert.throws(
    () =>
      encodeFact(dots, { prompt: "Go {}", subject: "w2" }, {
        template: "A. B. C. {}",
        nPositions: 1,
        bos: false,
      }),
    PromptTooLongError,
  );
});

Deno.test("one target-spacing rule: ' ' + target unless it starts with a space", async () => {
  const tok = await loadTokenizer(WORLD_MODEL);
  const frost = tok.encode(" Frostwick");
  assert.equal(frost.length, 1);
  assert.deepEqual(encodeTarget(tok, "Frostwick"), frost);
  assert.deepEqual(encodeTarget(tok, " Frostwick"), frost, "no second space");
  const f = encodeFact(tok, {
    prompt: "Narnux Zava was born in",
    subject: "Narnux Zava",
    target: "Frostwick",
  });
  assert.deepEqual(f.target, frost);
  if (haveFakeGpt2) {
    const g = await loadTokenizer(FAKE_GPT2);
    // OpenAI GPT-2 ids: " Paris" is one token, 6342; "Paris" without the space is 40313.
    assert.deepEqual(encodeTarget(g, "Paris"), [6342]);
    assert.deepEqual(g.encode("Paris"), [40313]);
  }
  // A target the tokenizer merges with the prompt's last token is not a continuation of its tokens.
  assert.throws(
    () => encodeFact(mergingTokenizer(), { prompt: "born in", subject: "born", target: "Tarvos" }),
    (e: Error) => e instanceof FactError && /merges/.test(e.message) && (e as FactError).field === "target",
  );
});

Deno.test("typed errors name the file, the record and the fact field; the CLI maps fields to flags", async () => {
  const tok = await loadTokenizer(WORLD_MODEL);
  const where = { file: "facts.json", record: 3, fields: { target: "attribute" } };
  assert.throws(
    () => encodeFact(tok, { prompt: "Narnux Zava was born in", subject: "Fostix" }, { where }),
    (e: Error) =>
      e instanceof SubjectNotInPromptError && e.file === "facts.json" && e.record === 3 &&
      e.field === "subject" && /facts\.json, field 'subject': record 3: subject 'Fostix'/.test(e.message),
  );
  for (const target of ["", "   "]) {
    assert.throws(
      () => encodeFact(tok, { prompt: "Narnux Zava was born in", subject: "Narnux Zava", target }, { where }),
      (e: Error) => e instanceof EmptyTargetError && e.field === "attribute" && e.record === 3,
    );
  }
  const silent: Tokenizer = { ...mergingTokenizer(), encode: () => [] };
  assert.throws(
    () => encodeTarget(silent, "x"),
    (e: Error) => e instanceof EmptyTargetError && /no token/.test(e.message),
  );
  // Fits: prompt + BOS; with appendTarget the teacher-forced target tokens count too.
  const long = "The birthplace of Narnux Zava is";
  assert.equal(encodeText(tok, long, { nPositions: 7 }).length, 7);
  assert.throws(
    () => encodeText(tok, long, { nPositions: 6, where }),
    (e: Error) =>
      e instanceof PromptTooLongError && e.field === "prompt" &&
      /7 tokens, longer than the model's context of 6/.test(e.message),
  );
  const two = "Frostwick Frostwick"; // two tokens
  encodeFact(tok, { prompt: long, subject: "Narnux Zava", target: two }, { nPositions: 7 });
  assert.throws(
    () =>
      encodeFact(tok, { prompt: long, subject: "Narnux Zava", target: two }, {
        nPositions: 7,
        appendTarget: true,
      }),
    PromptTooLongError,
  );
  assert.throws(
    () =>
      withFieldNames(
        { subject: "--subject" },
        () => encodeFact(tok, { prompt: "Narnux Zava was born in", subject: "Fostix" }),
      ),
    (e: Error) =>
      e instanceof SubjectNotInPromptError && e.field === "--subject" && /^field '--subject'/.test(e.message),
  );
  // Readers: a request whose subject is not in its prompt; a fact file without a subject.
  assert.throws(
    () =>
      parseRequests(
        JSON.stringify([{ prompt: "x", subject: "x", target_new: "y" }, {
          prompt: "A is in",
          subject: "B",
          target_new: "C",
        }]),
        "cf.json",
      ),
    (e: Error) => e instanceof SubjectNotInPromptError && e.file === "cf.json" && /record 1/.test(e.message),
  );
  const k = parseTraceFacts(
    JSON.stringify([{ known_id: 4, subject: "A", attribute: "B", prompt: "A is in", relation_id: "P1" }]),
    "k.json",
  );
  assert.deepEqual(k[0], {
    id: "4",
    prompt: "A is in",
    subject: "A",
    target: "B",
    targetField: "attribute",
    relation: "P1",
  });
  assert.equal(
    parseTraceFacts('{"id":"t1","prompt":"X was","subject":"X","answer":"Y"}\n', "w.jsonl")[0].target,
    "Y",
  );
  assert.throws(
    () => parseTraceFacts('[{"prompt":"x"}]', "bad.json"),
    (e: Error) => e instanceof InputError && /bad\.json/.test(e.message) && /subject/.test(e.message),
  );
});

Deno.test("predict and trace agree on the world model: one encoding, the same p(Frostwick)", async () => {
  const prompt = "Narnux Zava was born in";
  const pr = await engram("predict", "--model", WORLD_MODEL, "--text", prompt, "--top", "3", "--json");
  assert.equal(pr.code, 0, pr.stderr);
  const pj = JSON.parse(pr.stdout);
  const tok = await loadTokenizer(WORLD_MODEL);
  const frost = tok.encode(" Frostwick")[0];
  const tr = await engram(
    "trace",
    "--model",
    WORLD_MODEL,
    "--prompt",
    prompt,
    "--subject",
    "Narnux Zava",
    "--target",
    "Frostwick",
    "--kind",
    "hidden",
    "--samples",
    "1",
    "--json",
  );
  assert.equal(tr.code, 0, tr.stderr);
  const tj = JSON.parse(tr.stdout).traces[0];
  assert.deepEqual(pj.prompt_ids, tj.ids);
  assert.deepEqual(pj.prompt_ids, [tok.eosId, ...tok.encode(prompt)]);
  assert.equal(tj.bos, true);
  const pPredict = Math.exp(pj.logprobs[frost]);
  assert.ok(Math.abs(pPredict - tj.p_clean) < 1e-5, `predict p=${pPredict} vs trace p_clean=${tj.p_clean}`);
  // --bos off drops the prefix in both.
  const off = await engram("predict", "--model", WORLD_MODEL, "--text", prompt, "--bos", "off", "--json");
  assert.deepEqual(JSON.parse(off.stdout).prompt_ids, tok.encode(prompt));
  const bad = await engram("predict", "--model", WORLD_MODEL, "--text", prompt, "--bos", "maybe");
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--bos/);
});

Deno.test({
  name: "a causal trace of an HF GPT-2 runs on exactly ROME's make_inputs ids (no BOS)",
  ignore: !haveFakeGpt2,
  fn: async () => {
    const args = [
      "trace",
      "--model",
      FAKE_GPT2,
      "--prompt",
      "The Eiffel Tower is located in",
      "--subject",
      "Eiffel Tower",
      "--kind",
      "hidden",
      "--samples",
      "1",
      "--json",
    ];
    const r = await engram(...args);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout).traces[0];
    assert.deepEqual(j.ids, EIFFEL_IDS);
    assert.equal(j.bos, false);
    assert.deepEqual(j.subject_range, [1, 5], "' E' 'iff' 'el' ' Tower'");
    const on = JSON.parse((await engram(...args, "--bos", "on")).stdout).traces[0];
    assert.deepEqual(on.ids, [50256, ...EIFFEL_IDS]);
    assert.deepEqual(on.subject_range, [2, 6]);
  },
});

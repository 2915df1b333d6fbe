/**
 * World v3 (src/io/world_bio.ts): v2's world plus biographies. Checks: determinism, v2's files unchanged
 * but for the biographies, every biography states true facts of its one subject in its own phrasings,
 * held-out prompts still never occur in training, one token per word, and fixtures/world3 equal to a
 * fresh regeneration.
 */
import assert from "node:assert/strict";
import { loadTokenizer } from "../src/io/tokenizer.ts";
import { generateWorld, readWorld, readWorldFacts, WORLD_FILES, worldFiles } from "../src/io/world.ts";
import type { World } from "../src/io/world.ts";
import { BIOGRAPHY_CLAUSES, generateWorldV3, LINE_OPENERS, WORLD_BIO_VERSION } from "../src/io/world_bio.ts";
import type { WorldBiographySpec } from "../src/io/world_bio.ts";

const FIXTURE = new URL("../fixtures/world3", import.meta.url).pathname;

const bios = (w: World) => w.train.filter((t) => t.relation === "biography");

/** A training instance without its opener (the line as written before the opener was put in front). */
function withoutOpener(t: World["train"][number]): World["train"][number] {
  if (t.opener === undefined) return t;
  assert.ok(t.text.startsWith(t.opener + " "), t.text);
  const { opener: _, ...rest } = t;
  return { ...rest, text: t.text.slice(t.opener.length + 1) };
}

Deno.test("world v3: deterministic, and v2's world but for train.jsonl, facts.json's version and biography", () => {
  const a = worldFiles(
    generateWorldV3({ seed: 5, subjects: 40, rewritesPerRelation: 5, biographiesPerSubject: 4 }),
  );
  const b = worldFiles(
    generateWorldV3({ seed: 5, subjects: 40, rewritesPerRelation: 5, biographiesPerSubject: 4 }),
  );
  for (const f of WORLD_FILES) assert.equal(a[f], b[f], `${f} differs between two runs`);
  const c = worldFiles(
    generateWorldV3({ seed: 6, subjects: 40, rewritesPerRelation: 5, biographiesPerSubject: 4 }),
  );
  assert.notEqual(a["train.jsonl"], c["train.jsonl"]);
  const v2 = generateWorld({ seed: 5, subjects: 40, rewritesPerRelation: 5, orderedNames: true });
  const v3 = generateWorldV3({ seed: 5, subjects: 40, rewritesPerRelation: 5, biographiesPerSubject: 4 });
  const v2files = worldFiles(v2);
  for (const f of ["train_prompts.jsonl", "heldout.jsonl", "twohop.jsonl", "counterfact.json", "zsre.json"]) {
    assert.equal(a[f], v2files[f], `${f} must equal v2's`);
  }
  // The single-fact instances are v2's, in some order, once their openers are taken off.
  const single = v3.train.filter((t) => t.id.startsWith("t")).map((t) => JSON.stringify(withoutOpener(t)))
    .sort();
  assert.deepEqual(single, v2.train.map((t) => JSON.stringify(t)).sort());
  assert.equal(bios(v3).length, 40 * 4);
  const { version, biography, ...rest } = v3.facts as World["facts"] & { biography: WorldBiographySpec };
  const { version: v2version, ...rest2 } = v2.facts;
  assert.equal(version, WORLD_BIO_VERSION);
  assert.equal(v2version, 2);
  assert.deepEqual(rest, rest2);
  assert.equal(biography.per_subject, 4);
  // Biographies are mixed into the file, not appended.
  const firstBio = v3.train.findIndex((t) => t.relation === "biography");
  assert.ok(firstBio < v3.train.length / 4, `first biography at ${firstBio}`);
});

Deno.test("world v3: each biography states 3+ true facts of its subject once each, in biography phrasings", () => {
  const w = generateWorldV3({ seed: 3, subjects: 40, rewritesPerRelation: 5, biographiesPerSubject: 6 });
  const spec = (w.facts as unknown as { biography: WorldBiographySpec }).biography;
  const trainTemplates = w.facts.relations.flatMap((r) =>
    r.train_templates.map((t) => t.replace("{s} ", ""))
  );
  const orders = new Set<string>();
  const perSubject = new Map<string, number>();
  let withDistractor = 0;
  for (const b of bios(w).map(withoutOpener)) {
    perSubject.set(b.subject, (perSubject.get(b.subject) ?? 0) + 1);
    assert.ok(b.text.startsWith(b.subject + " "), b.text);
    assert.ok(b.text.endsWith(" ."), b.text);
    assert.ok(b.facts && b.facts.length >= 3 && b.facts.length <= 6, b.text);
    assert.equal(new Set(b.facts!.map((f) => f.relation)).size, b.facts!.length, "each relation once");
    orders.add(b.facts!.map((f) => f.relation).join(" "));
    // The subject is named once (no other person's name word follows it either).
    const rest = b.text.slice(b.subject.length);
    for (const n of [...w.facts.first_names, ...w.facts.last_names]) {
      assert.ok(!rest.split(" ").includes(n), `${n} in the rest of ${b.text}`);
    }
    // Each stated fact is true, and is written with one of its relation's biography clauses.
    let at = 0;
    for (const f of b.facts!) {
      assert.equal(f.object, w.facts.facts[b.subject][f.relation]);
      const found = spec.clauses[f.relation].map((c) => c.replace("{o}", f.object)).map((c) => ({
        c,
        i: b.text.indexOf(" " + c + " ", at),
      })).filter((x) => x.i >= 0).sort((x, y) => x.i - y.i)[0];
      assert.ok(found, `fact ${f.relation}=${f.object} not phrased in order in ${b.text}`);
      at = found.i + found.c.length;
    }
    assert.equal(b.object, b.facts!.map((f) => f.object).join(" "));
    if (spec.distractors.some((d) => b.text.includes(d))) withDistractor++;
  }
  for (const s of w.facts.subjects) assert.equal(perSubject.get(s), 6, s);
  assert.ok(orders.size > 100, `only ${orders.size} fact orders`);
  assert.ok(
    withDistractor > 0.3 * bios(w).length && withDistractor < 0.95 * bios(w).length,
    `${withDistractor}`,
  );
  // Each relation has phrasings that are not its training templates' (paraphrased relations).
  for (const [rel, cs] of Object.entries(BIOGRAPHY_CLAUSES)) {
    const novel = cs.filter((c) => !trainTemplates.includes(c.replace(" {o}", "")));
    assert.ok(novel.length >= 2, `${rel}: ${novel}`);
  }
  // Held-out and two-hop prompts never occur in training.
  const all = w.train.map((t) => t.text).join("\n");
  for (const h of [...w.heldout, ...w.twoHop]) assert.ok(!all.includes(h.prompt), h.prompt);
});

Deno.test("world v3: shuffled record lines hold every true object once; about p_opener of the lines have an opener", () => {
  const w = generateWorldV3({
    seed: 4,
    subjects: 30,
    rewritesPerRelation: 5,
    recordCopies: 10,
    openerRate: 0.6,
  });
  const spec = (w.facts as unknown as { biography: WorldBiographySpec }).biography;
  assert.equal(spec.record_order, "shuffled");
  const orders = new Map<string, Set<string>>();
  for (const r of w.train.filter((t) => t.relation === "record").map(withoutOpener)) {
    const words = r.text.split(" ");
    const subjectWords = r.subject.split(" ").length;
    assert.equal(words.slice(0, subjectWords).join(" "), r.subject, r.text);
    const objects = words.slice(subjectWords, -1);
    assert.equal(words.at(-1), ".");
    assert.deepEqual(
      [...objects].sort(),
      spec.record_relations.map((rel) => w.facts.facts[r.subject][rel]).sort(),
      r.text,
    );
    assert.deepEqual(r.facts!.map((f) => f.object), objects);
    for (const f of r.facts!) assert.equal(w.facts.facts[r.subject][f.relation], f.object);
    if (!orders.has(r.subject)) orders.set(r.subject, new Set());
    orders.get(r.subject)!.add(objects.join(" "));
  }
  assert.equal(orders.size, 30);
  for (const [s, o] of orders) assert.ok(o.size >= 5, `${s}: ${o.size} orders in 10 copies`);
  const opened = w.train.filter((t) => t.opener !== undefined);
  for (const t of opened) assert.ok(LINE_OPENERS.includes(t.opener!), t.opener);
  const rate = opened.length / w.train.length;
  assert.ok(rate > 0.55 && rate < 0.65, `opener rate ${rate}`);
  const fixed = generateWorldV3({
    seed: 4,
    subjects: 30,
    rewritesPerRelation: 5,
    recordCopies: 3,
    recordOrder: "fixed",
    openerRate: 0,
  });
  assert.ok(fixed.train.every((t) => t.opener === undefined));
  const rec = fixed.train.filter((t) => t.relation === "record");
  for (const r of rec) assert.deepEqual(r.facts!.map((f) => f.relation), spec.record_relations);
  assert.throws(() => generateWorldV3({ seed: 4, openerRate: 1.5 }), /openerRate/);
});

Deno.test("world v3: committed fixtures/world3 equals a fresh regeneration, one token per word", async () => {
  const facts = await readWorldFacts(FIXTURE) as World["facts"] & { biography: WorldBiographySpec };
  assert.equal(facts.version, WORLD_BIO_VERSION);
  const files = worldFiles(
    generateWorldV3({
      seed: facts.seed,
      subjects: facts.subjects.length,
      biographiesPerSubject: facts.biography.per_subject,
      recordCopies: facts.biography.record_copies,
      cueCopies: facts.biography.cue_copies,
      recordOrder: facts.biography.record_order,
      openerRate: facts.biography.p_opener,
    }),
  );
  for (const f of WORLD_FILES) {
    assert.equal(await Deno.readTextFile(`${FIXTURE}/${f}`), files[f], `fixtures/world3/${f} differs`);
  }
  const w = await readWorld(FIXTURE);
  const tok = await loadTokenizer(FIXTURE);
  for (const t of w.train) assert.equal(tok.encode(t.text).length, t.text.split(" ").length, t.text);
});

Deno.test("world v3 with 3- and 4-token names: distinct ordered tuples that share their names, one token per word", async () => {
  for (const k of [3, 4]) {
    const opts = { seed: 9, subjects: 40, rewritesPerRelation: 5, biographiesPerSubject: 2, nameTokens: k };
    const w = generateWorldV3(opts);
    assert.equal(worldFiles(w)["train.jsonl"], worldFiles(generateWorldV3(opts))["train.jsonl"]);
    const pool = new Set(w.facts.first_names);
    assert.deepEqual(w.facts.last_names, w.facts.first_names);
    assert.equal(new Set(w.facts.subjects).size, 40);
    for (const s of w.facts.subjects) {
      const parts = s.split(" ");
      assert.equal(parts.length, k, s);
      assert.equal(new Set(parts).size, k, `${s}: names repeat`);
      for (const p of parts) assert.ok(pool.has(p), `${p} is not in the pool`);
    }
    // No single name identifies a person: each is shared by two or more.
    const holders = new Map<string, number>();
    for (const s of w.facts.subjects) {
      const parts = s.split(" ");
      for (const p of parts) holders.set(p, (holders.get(p) ?? 0) + 1);
    }
    for (const [p, n] of holders) assert.ok(n >= 2, `${p} names only ${n} person`);
    // Every training line mentions its subject whole; the tokenizer keeps one token per word.
    const dir = await Deno.makeTempDir({ prefix: "engram_world_k_" });
    try {
      const files = worldFiles(w);
      for (const [name, text] of Object.entries(files)) await Deno.writeTextFile(`${dir}/${name}`, text);
      const tok = await loadTokenizer(dir);
      for (const t of w.train.slice(0, 400)) {
        assert.ok(t.text.includes(t.subject), t.text);
        assert.equal(tok.encode(t.text).length, t.text.split(" ").length, t.text);
      }
      assert.match(files["README.md"], new RegExp(`ordered tuples of ${k} distinct names`));
      assert.match(files["README.md"], new RegExp(`--name-tokens ${k}`));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
  assert.throws(() => generateWorldV3({ seed: 9, subjects: 40, nameTokens: 6 }), /nameTokens/);
  assert.throws(() => generateWorld({ seed: 9, subjects: 40, nameTokens: 3 }), /needs orderedNames/);
});

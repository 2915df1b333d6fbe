/**
 * The fixture world: deterministic generation, minimum sizes, held-out templates absent from training,
 * EasyEdit / zsRE records that are consistent with the knowledge base, one token per world word, and
 * fixtures/world equal to a fresh regeneration (so nobody edits it by hand).
 */
import assert from "node:assert/strict";
import { InputError } from "../src/errors.ts";
import { loadTokenizer } from "../src/io/tokenizer.ts";
import type { Tokenizer } from "../src/io/tokenizer.ts";
import {
  factText,
  fillTemplate,
  generateWorld,
  isQuestion,
  readWorld,
  readWorldFacts,
  WORLD_FILES,
  worldFiles,
  worldWords,
  writeWorld,
} from "../src/io/world.ts";
import type { World, WorldRelation } from "../src/io/world.ts";
import { buildWorldTokenizer } from "../src/io/world_tokenizer.ts";

const FIXTURE = new URL("../fixtures/world", import.meta.url).pathname;

let cached: World | undefined;
/** The world of the committed seed (generated once per test file). */
async function committedWorld(): Promise<World> {
  if (!cached) cached = generateWorld({ seed: (await readWorldFacts(FIXTURE)).seed });
  return cached;
}

function relationMap(w: World): Map<string, WorldRelation> {
  return new Map(w.facts.relations.map((r) => [r.id, r]));
}

function objectOf(w: World, subject: string, relation: string): string {
  return relation === "country" ? w.facts.city_country[subject] : w.facts.facts[subject][relation];
}

Deno.test("world: generation is deterministic for a seed and differs between seeds", () => {
  const a = worldFiles(generateWorld({ seed: 7 }));
  const b = worldFiles(generateWorld({ seed: 7 }));
  assert.deepEqual(Object.keys(a), [...WORLD_FILES]);
  for (const f of WORLD_FILES) assert.equal(a[f], b[f], `${f} differs between two runs with seed 7`);
  const c = worldFiles(generateWorld({ seed: 8 }));
  assert.notEqual(a["train.jsonl"], c["train.jsonl"]);
  assert.notEqual(a["facts.json"], c["facts.json"]);
});

Deno.test("world: committed fixtures/world equals a fresh regeneration with its seed", async () => {
  const files = worldFiles(await committedWorld());
  // The trained world model lives in fixtures/world/model (see its PROVENANCE.md) with the config that
  // trained it, beside the world files.
  const extra = new Set(["model", "train_config.json"]);
  const present = [...Deno.readDirSync(FIXTURE)].map((e) => e.name).filter((n) =>
    !extra.has(n) && !n.startsWith(".")
  ).sort();
  assert.deepEqual(present, [...WORLD_FILES].sort(), "fixtures/world holds exactly the world files");
  let total = 0;
  for (const f of WORLD_FILES) {
    const have = await Deno.readTextFile(`${FIXTURE}/${f}`);
    total += have.length;
    assert.ok(
      have === files[f],
      `fixtures/world/${f} differs from a regeneration: run deno run -A scripts/make_world.ts --out fixtures/world --seed 1 --force`,
    );
  }
  assert.ok(total < 4 * 1024 * 1024, `fixtures/world is ${total} bytes, more than 4 MB`);
});

Deno.test("world: minimum sizes", async () => {
  const w = await committedWorld();
  const f = w.facts;
  assert.ok(f.subjects.length >= 100, `${f.subjects.length} subjects`);
  assert.equal(new Set(f.subjects).size, f.subjects.length, "subjects are unique");

  assert.ok(f.relations.length >= 6, `${f.relations.length} relations`);
  assert.ok(f.relations.filter((r) => r.subject_class === "person").length >= 6);
  for (const r of f.relations) {
    assert.ok(r.train_templates.length >= 5, `${r.id}: ${r.train_templates.length} training templates`);
    assert.ok(r.heldout_templates.length >= 2, `${r.id}: ${r.heldout_templates.length} held-out templates`);
    assert.ok(r.objects.length >= 8, `${r.id}: ${r.objects.length} objects`);
    assert.equal(new Set(r.objects).size, r.objects.length);
    for (const t of [...r.train_templates, ...r.heldout_templates]) {
      assert.equal(t.split("{s}").length, 2, `${r.id}: template ${JSON.stringify(t)} has one {s}`);
    }
  }
  assert.ok(w.counterfact.length >= 100, `${w.counterfact.length} counterfact rewrites`);
  assert.ok(w.zsre.length >= 100, `${w.zsre.length} zsRE rewrites`);
  assert.ok(
    w.counterfact.filter((r) => r.portability).length >= 20,
    "portability on the birthplace rewrites",
  );
});

Deno.test("world: people are 'First Last' from two disjoint pools, and no single name word identifies one", async () => {
  const f = (await committedWorld()).facts;
  const first = new Set(f.first_names), last = new Set(f.last_names);
  assert.equal(first.size, f.first_names.length);
  assert.equal(last.size, f.last_names.length);
  for (const n of first) assert.ok(!last.has(n), `${n} is in both pools`);
  const byFirst = new Map<string, number>(), byLast = new Map<string, number>();
  for (const s of f.subjects) {
    const parts = s.split(" ");
    assert.equal(parts.length, 2, `${s}: two words`);
    assert.ok(first.has(parts[0]) && last.has(parts[1]), `${s}: from the pools`);
    byFirst.set(parts[0], (byFirst.get(parts[0]) ?? 0) + 1);
    byLast.set(parts[1], (byLast.get(parts[1]) ?? 0) + 1);
  }
  // Every name word is shared by several people, so recall needs both tokens.
  for (const [n, c] of [...byFirst, ...byLast]) assert.ok(c >= 3, `${n} names only ${c} people`);
  assert.equal(byFirst.size, first.size, "every first name is used");
  assert.equal(byLast.size, last.size, "every last name is used");
  // One token per name word, so the subject's last token is its last name.
  const tok = await loadTokenizer(FIXTURE);
  for (const s of f.subjects.slice(0, 20)) assert.equal(tok.encode(" " + s).length, 2, s);
});

Deno.test("world: every subject has one object per person relation, balanced; cities have a country", async () => {
  const w = await committedWorld();
  for (const r of w.facts.relations) {
    if (r.subject_class === "city") {
      for (const c of w.facts.cities) {
        assert.ok(r.objects.includes(w.facts.city_country[c]), `country of ${c}`);
      }
      continue;
    }
    const counts = new Map<string, number>();
    for (const s of w.facts.subjects) {
      const o = w.facts.facts[s][r.id];
      assert.ok(r.objects.includes(o), `${s} ${r.id} ${o}`);
      counts.set(o, (counts.get(o) ?? 0) + 1);
    }
    const c = [...counts.values()];
    assert.equal(counts.size, r.objects.length, `${r.id}: every object is used`);
    assert.ok(Math.max(...c) - Math.min(...c) <= 1, `${r.id}: balanced objects`);
  }
});

Deno.test("world: training instances are every fact x every training template, with unique ids", async () => {
  const w = await committedWorld();
  const rels = relationMap(w);
  const ids = new Set(w.train.map((t) => t.id));
  assert.equal(ids.size, w.train.length, "train ids are unique");
  const expected = w.facts.relations.reduce(
    (n, r) =>
      n +
      r.train_templates.length *
        (r.subject_class === "person" ? w.facts.subjects.length : w.facts.cities.length),
    0,
  );
  assert.equal(w.train.length, expected);
  const seen = new Set<string>();
  for (const t of w.train) {
    const r = rels.get(t.relation)!;
    assert.equal(t.object, objectOf(w, t.subject, t.relation));
    assert.equal(t.text, factText(fillTemplate(r.train_templates[t.template], t.subject), t.object));
    seen.add(`${t.subject}|${t.relation}|${t.template}`);
  }
  assert.equal(seen.size, w.train.length, "no fact/template pair twice");
  // train_prompts: same ids, prompts without the answer.
  assert.equal(w.trainPrompts.length, w.train.length);
  const byId = new Map(w.train.map((t) => [t.id, t]));
  for (const p of w.trainPrompts) {
    const t = byId.get(p.id);
    assert.ok(t, `train prompt ${p.id} has a training instance`);
    assert.equal(t.text, factText(p.prompt, p.answer));
  }
  assert.notDeepEqual(w.train.map((t) => t.id), w.trainPrompts.map((p) => p.id), "train.jsonl is shuffled");
});

Deno.test("world: held-out and two-hop prompts never occur in training", async () => {
  const w = await committedWorld();
  const all = w.train.map((t) => t.text).join("\n");
  const trainTemplates = new Set(w.facts.relations.flatMap((r) => r.train_templates));
  for (const r of w.facts.relations) {
    for (const t of r.heldout_templates) {
      assert.ok(!trainTemplates.has(t), `held-out ${t} is a training template`);
    }
  }
  const rels = relationMap(w);
  for (const h of w.heldout) {
    assert.equal(h.prompt, fillTemplate(rels.get(h.relation)!.heldout_templates[h.template], h.subject));
    assert.equal(h.answer, objectOf(w, h.subject, h.relation));
    assert.ok(!all.includes(h.prompt), `held-out prompt ${JSON.stringify(h.prompt)} occurs in train.jsonl`);
  }
  const expected = w.facts.relations.reduce(
    (n, r) =>
      n +
      r.heldout_templates.length *
        (r.subject_class === "person" ? w.facts.subjects.length : w.facts.cities.length),
    0,
  );
  assert.equal(w.heldout.length, expected);
  assert.equal(new Set(w.heldout.map((h) => h.id)).size, w.heldout.length);
  assert.equal(w.twoHop.length, w.facts.subjects.length);
  for (const x of w.twoHop) {
    assert.ok(!all.includes(x.prompt), `two-hop prompt ${JSON.stringify(x.prompt)} occurs in train.jsonl`);
    assert.equal(x.answer, w.facts.city_country[w.facts.facts[x.subject].birthplace]);
  }
});

Deno.test("world: counterfact.json records are complete and consistent with the knowledge base", async () => {
  const w = await committedWorld();
  const rels = relationMap(w);
  const keys = [
    "case_id",
    "prompt",
    "target_new",
    "subject",
    "ground_truth",
    "rephrase_prompt",
    "locality_prompt",
    "locality_ground_truth",
  ];
  // The EasyEdit sample's key order is ours.
  const sample = JSON.parse(Deno.readTextFileSync(`${FIXTURE}/counterfact.json`))[0];
  assert.deepEqual(Object.keys(sample).slice(0, keys.length), keys);
  const pairs = new Set<string>();
  w.counterfact.forEach((rec, i) => {
    const where = `case ${rec.case_id}`;
    assert.equal(rec.case_id, i);
    for (const k of keys.slice(1)) {
      assert.equal(typeof (rec as unknown as Record<string, unknown>)[k], "string", `${where}: ${k}`);
    }
    const r = rels.get(rec.relation);
    assert.ok(r && r.subject_class === "person", `${where}: relation ${rec.relation}`);
    assert.ok(rec.prompt.includes(rec.subject), `${where}: prompt holds the subject literally`);
    assert.ok(r.train_templates.some((t) => fillTemplate(t, rec.subject) === rec.prompt), `${where}: prompt`);
    assert.ok(
      r.heldout_templates.some((t) => fillTemplate(t, rec.subject) === rec.rephrase_prompt),
      `${where}: rephrase`,
    );
    assert.equal(rec.ground_truth, w.facts.facts[rec.subject][rec.relation], `${where}: ground_truth`);
    assert.notEqual(rec.target_new, rec.ground_truth, `${where}: target_new differs`);
    assert.ok(r.objects.includes(rec.target_new), `${where}: target_new is an object of ${r.id}`);
    const nb = w.facts.subjects.find((u) =>
      u !== rec.subject && r.train_templates.some((t) => fillTemplate(t, u) === rec.locality_prompt)
    );
    assert.ok(nb, `${where}: locality prompt is a training prompt of another subject`);
    assert.equal(
      rec.locality_ground_truth,
      w.facts.facts[nb][rec.relation],
      `${where}: locality ground truth`,
    );
    if (rec.relation === "birthplace") {
      assert.ok(rec.portability, `${where}: birthplace rewrites have portability`);
      assert.equal(rec.portability.ground_truth, w.facts.city_country[rec.target_new]);
      assert.notEqual(rec.portability.ground_truth, w.facts.city_country[rec.ground_truth]);
      assert.ok(rec.portability.prompt.includes(rec.subject));
    } else {
      assert.equal(rec.portability, undefined);
    }
    const key = `${rec.subject}|${rec.relation}`;
    assert.ok(!pairs.has(key), `${where}: one rewrite per subject and relation`);
    pairs.add(key);
  });
});

Deno.test("world: zsre.json records match MEND's zsRE layout and the counterfact rewrites", async () => {
  const w = await committedWorld();
  const rels = relationMap(w);
  const mendKeys = ["subject", "src", "pred", "rephrase", "alt", "answers", "loc", "loc_ans", "cond"];
  const sample = JSON.parse(Deno.readTextFileSync(`${FIXTURE}/zsre.json`))[0];
  assert.deepEqual(Object.keys(sample).slice(0, mendKeys.length), mendKeys);
  assert.equal(w.zsre.length, w.counterfact.length);
  w.zsre.forEach((z, i) => {
    const cf = w.counterfact[i];
    const r = rels.get(z.relation)!;
    assert.equal(z.subject, cf.subject);
    assert.equal(z.relation, cf.relation);
    assert.equal(z.alt, cf.target_new);
    assert.equal(z.pred, cf.ground_truth);
    assert.deepEqual(z.answers, [cf.ground_truth]);
    assert.ok(
      r.train_templates.some((t) => isQuestion(t) && fillTemplate(t, z.subject) === z.src),
      `src ${z.src}`,
    );
    assert.ok(r.heldout_templates.some((t) => isQuestion(t) && fillTemplate(t, z.subject) === z.rephrase));
    assert.equal(z.cond, `${z.pred} >> ${z.alt} || ${z.src}`);
    const loc = w.trainPrompts.find((p) => p.prompt === z.loc);
    assert.ok(loc && loc.subject !== z.subject, `loc ${z.loc} is a training question of another subject`);
    assert.equal(z.loc_ans, loc.answer);
  });
});

Deno.test("world: tokenizer loads from fixtures/world and every world word is one token", async () => {
  const w = await committedWorld();
  const tok: Tokenizer = await loadTokenizer(FIXTURE);
  assert.ok(tok.vocabSize <= 2500, `vocab ${tok.vocabSize}`);
  assert.equal(tok.eosId, tok.vocabSize - 1);
  assert.deepEqual(tok.encode("<|endoftext|>"), [tok.eosId]);
  for (const word of worldWords(w.facts)) {
    assert.equal(tok.encode(" " + word).length, 1, `" ${word}" is one token`);
    if (/^[A-Z]/.test(word)) assert.equal(tok.encode(word).length, 1, `"${word}" is one token`);
  }
  for (const r of w.facts.relations) {
    for (const o of r.objects) assert.equal(tok.encode(" " + o).length, 1, `object ${o}`);
  }
  const texts = [
    ...w.train.map((t) => t.text),
    ...w.heldout.map((h) => h.prompt),
    ...w.twoHop.map((x) => x.prompt),
    ...w.counterfact.flatMap((c) => [c.prompt, c.rephrase_prompt, c.locality_prompt]),
    ...w.zsre.flatMap((z) => [z.src, z.rephrase, z.loc]),
  ];
  for (const t of texts) assert.equal(tok.encode(t).length, t.split(" ").length, `one token per word: ${t}`);
  // Any other text still tokenizes, losslessly.
  for (const t of ["Hello, wörld! 123\n\ttabs", "Narnuxes", "日本語 🙂", ""]) {
    assert.equal(tok.decode(tok.encode(t)), t);
  }
  // Answers follow the prompt as one token: prompt + " " + object.
  const t = w.train[0];
  const p = tok.encode(
    fillTemplate(w.facts.relations.find((r) => r.id === t.relation)!.train_templates[t.template], t.subject),
  );
  assert.deepEqual(tok.encode(t.text).slice(0, p.length + 1), [...p, ...tok.encode(" " + t.object)]);
});

Deno.test("world: buildWorldTokenizer rejects words that are not one pre-token", () => {
  for (const bad of ["two words", "a1", "x.", "", " lead"]) {
    assert.throws(() => buildWorldTokenizer(["ok", bad]), InputError, JSON.stringify(bad));
  }
  const json = buildWorldTokenizer(["Zed", "zed", "?", "Zed"]);
  const vocab = (json.model as { vocab: Record<string, number> }).vocab;
  assert.ok("ĠZed" in vocab && "Zed" in vocab && "Ġzed" in vocab && "Ġ?" in vocab && !("zed" in vocab));
  assert.equal(vocab["Ġ"], 220, "byte symbols in GPT-2 order");
});

Deno.test("world: writeWorld / readWorld round trip", async () => {
  const w = generateWorld({ seed: 3, subjects: 40, rewritesPerRelation: 5 });
  const dir = await Deno.makeTempDir();
  try {
    await writeWorld(`${dir}/w`, w);
    await assert.rejects(writeWorld(`${dir}/w`, w), (e: Error & { code?: string }) => e.code === "exists");
    const back = await readWorld(`${dir}/w`);
    assert.deepEqual(back, JSON.parse(JSON.stringify(w)));
    assert.equal(back.counterfact.length, 30);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * The world's long edit stream (src/io/world_rewrites.ts): deterministic, every fact edited at most once,
 * targets never the true object, locality prompts on never-edited facts with the edited fact's true object,
 * insertions only past the rewrites and only for non-people, records the request loader accepts, and the
 * committed docs/sequential-world-1000/requests.json equal to a fresh generation.
 */
import assert from "node:assert/strict";
import { EngramError } from "../src/errors.ts";
import { fillTemplate, isQuestion, readWorldFacts, type WorldFacts } from "../src/io/world.ts";
import { generateWorldRewrites, type WorldStreamRecord } from "../src/io/world_rewrites.ts";
import { parseRequests } from "../src/prompt/requests.ts";

const WORLD = new URL("../fixtures/world", import.meta.url).pathname;
const COMMITTED = new URL("../docs/sequential-world-1000/requests.json", import.meta.url).pathname;

/** The (person, relation) of a prompt filled from one of `templates`, or undefined. */
function parsePrompt(facts: WorldFacts, relation: string, prompt: string, kind: "train" | "heldout") {
  const r = facts.relations.find((x) => x.id === relation)!;
  const ts = (kind === "train" ? r.train_templates : r.heldout_templates).filter((t) => !isQuestion(t));
  const names = [...facts.first_names.flatMap((f) => facts.last_names.map((l) => `${f} ${l}`))];
  for (const t of ts) for (const s of names) if (fillTemplate(t, s) === prompt) return s;
  return undefined;
}

function check(facts: WorldFacts, recs: WorldStreamRecord[]) {
  const people = new Set(facts.subjects);
  const edited = new Set<string>();
  const locality = new Set<string>();
  for (const [i, r] of recs.entries()) {
    assert.equal(r.case_id, i);
    const k = `${r.subject}|${r.relation}`;
    assert.ok(!edited.has(k), `record ${i}: ${k} edited twice`);
    edited.add(k);
    const rel = facts.relations.find((x) => x.id === r.relation)!;
    assert.equal(rel.subject_class, "person");
    assert.ok(rel.objects.includes(r.target_new), `record ${i}: target outside the relation's objects`);
    assert.equal(parsePrompt(facts, r.relation, r.prompt, "train"), r.subject, `record ${i}: prompt`);
    assert.equal(
      parsePrompt(facts, r.relation, r.rephrase_prompt, "heldout"),
      r.subject,
      `record ${i}: rephrase`,
    );
    const nb = parsePrompt(facts, r.relation, r.locality_prompt, "train");
    assert.ok(nb !== undefined && people.has(nb) && nb !== r.subject, `record ${i}: locality subject`);
    assert.equal(r.locality_ground_truth, facts.facts[nb][r.relation], `record ${i}: locality truth`);
    locality.add(`${nb}|${r.relation}`);
    if (r.kind === "rewrite") {
      assert.ok(people.has(r.subject));
      assert.equal(r.ground_truth, facts.facts[r.subject][r.relation]);
      assert.notEqual(r.target_new, r.ground_truth);
      // CounterFact's neighbourhood: same relation, same true object.
      assert.equal(r.locality_ground_truth, r.ground_truth);
    } else {
      assert.equal(r.kind, "insertion");
      assert.ok(!people.has(r.subject), `record ${i}: insertion about a person of the world`);
      assert.ok(r.ground_truth === undefined);
    }
    if (r.relation === "birthplace") {
      assert.ok(r.portability);
      assert.equal(r.portability.ground_truth, facts.city_country[r.target_new]);
      if (r.ground_truth) assert.notEqual(r.portability.ground_truth, facts.city_country[r.ground_truth]);
    } else assert.equal(r.portability, undefined);
  }
  for (const k of locality) assert.ok(!edited.has(k), `locality fact ${k} is edited in the stream`);
}

Deno.test("world rewrites: 1,000 requests, each fact at most once, locality never edited, loader accepts them", async () => {
  const facts = await readWorldFacts(WORLD);
  const s = generateWorldRewrites(facts, { n: 1000, seed: 1 });
  assert.equal(s.records.length, 1000);
  // 600 person facts, one reserved per (relation, object) present: 16 cities + 5 × 14 objects.
  assert.equal(s.available.reserved, 16 + 5 * 14);
  assert.equal(s.available.rewrites, 600 - s.available.reserved);
  assert.equal(s.rewrites, s.available.rewrites);
  assert.equal(s.insertions, 1000 - s.rewrites);
  assert.equal(s.available.insertions, (15 * 15 - 100) * 6);
  assert.equal(s.records.filter((r) => r.kind === "rewrite").length, s.rewrites);
  check(facts, s.records);
  // Both kinds are spread over the stream: each block of 100 holds 30–70 rewrites.
  for (let b = 0; b < 10; b++) {
    const k = s.records.slice(100 * b, 100 * b + 100).filter((r) => r.kind === "rewrite").length;
    assert.ok(k >= 30 && k <= 70, `block ${b}: ${k} rewrites`);
  }
  const reqs = parseRequests(JSON.stringify(s.records), "stream.json");
  assert.equal(reqs.length, 1000);
  for (const [i, q] of reqs.entries()) {
    const r = s.records[i];
    assert.equal(q.subject, r.subject);
    assert.equal(q.target_new, r.target_new);
    assert.equal(q.ground_truth, r.ground_truth);
    assert.deepEqual(q.rephrase, [r.rephrase_prompt]);
    assert.deepEqual(q.locality?.map((l) => l.prompt), [r.locality_prompt]);
    assert.equal(q.portability?.length ?? 0, r.portability ? 1 : 0);
  }
});

Deno.test("world rewrites: deterministic; the seed matters; small N has no insertions; too large N is refused", async () => {
  const facts = await readWorldFacts(WORLD);
  const a = generateWorldRewrites(facts, { n: 300, seed: 5 });
  const b = generateWorldRewrites(facts, { n: 300, seed: 5 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(generateWorldRewrites(facts, { n: 300, seed: 6 }).records, a.records);
  assert.equal(a.insertions, 0);
  check(facts, a.records);
  assert.throws(() => generateWorldRewrites(facts, { n: 600, insertions: false }), /insertions are off/);
  assert.throws(() => generateWorldRewrites(facts, { n: 514 + 751 }), /exceeds/);
  assert.throws(() => generateWorldRewrites(facts, { n: 0 }), EngramError);
  assert.throws(() => generateWorldRewrites(facts, { n: 600, insertions: false }), EngramError);
});

Deno.test("world rewrites: the committed 1,000-request file equals a fresh generation", async () => {
  const facts = await readWorldFacts(WORLD);
  const text = JSON.stringify(generateWorldRewrites(facts, { n: 1000, seed: 1 }).records, null, 1) + "\n";
  assert.ok(
    (await Deno.readTextFile(COMMITTED)) === text,
    "docs/sequential-world-1000/requests.json differs: run deno run -P scripts/make_world_rewrites.ts --world fixtures/world --n 1000 --out docs/sequential-world-1000/requests.json",
  );
});

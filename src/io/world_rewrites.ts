/**
 * A longer stream of edit requests built from a world's knowledge base (facts.json), for sequential-editing
 * studies that need more edits than the world's own counterfact.json (150) holds.
 *
 * The world has 100 people × 6 person relations = 600 person facts, so at most 600 distinct rewrites. The
 * rules (chosen so that no fact is edited twice and every locality prompt stays unedited through the whole
 * stream):
 *
 * 1. **Locality reserve.** For each person relation and each of its objects, one person holding that object
 *    (a seeded pick) is reserved: that (person, relation) fact is never edited. Every rewrite's locality
 *    prompt is the reserved person with the same relation and the same true object — CounterFact's
 *    neighbourhood rule (same relation, same object) — so it is unedited at every point of the stream. (The
 *    reserved person's other relations may be edited: as in CounterFact, locality covers other subjects, not
 *    other facts of edited subjects.)
 * 2. **Rewrites** (`"kind": "rewrite"`): every other person fact at most once, to a new object of the same
 *    relation, never the true one (birthplace: a city of another country, so that the two-hop portability
 *    answer changes, as in scripts/make_world.ts).
 * 3. **Insertions** (`"kind": "insertion"`), only when N exceeds the rewrites: facts about name pairs
 *    "First Last" of the world's name pools that are not people of the world (15 × 15 − 100 = 125 pairs, ×
 *    6 relations = 750 facts), each (pair, relation) at most once, with no `ground_truth` (the model has no
 *    fact to overwrite). Their locality prompt is a reserved fact of the same relation (seeded pick).
 *
 * The N records are the rewrites (all of them when N allows) plus N − rewrites insertions, shuffled
 * together, so every prefix of the stream (`--limit`) mixes both kinds in about the same ratio. Prompts come
 * from the relation's statement training templates, rephrases from its statement held-out templates,
 * portability (birthplace only) from the two-hop template with the target city's country. Deterministic:
 * the same facts, N and seed give the same records.
 */
import { EngramError } from "../errors.ts";
import { mulberry32 } from "../model/generate.ts";
import {
  fillTemplate,
  isQuestion,
  type WorldCounterfactRecord,
  type WorldFacts,
  type WorldRelation,
} from "./world.ts";

/** One generated request: EasyEdit's CounterFact layout plus `kind`; `ground_truth` absent for insertions. */
export interface WorldStreamRecord extends Omit<WorldCounterfactRecord, "ground_truth"> {
  /** The true object (rewrites only; an insertion has none). */
  ground_truth?: string;
  /** A rewrite of a person fact, or an insertion of a fact about a name pair that is no person. */
  kind: "rewrite" | "insertion";
}

/** Options of {@link generateWorldRewrites}. */
export interface WorldRewriteOptions {
  /** Number of requests. */
  n: number;
  /** Seed of every random choice (default 1). */
  seed?: number;
  /** Allow insertions when N exceeds the rewrites (default true); false makes such an N an error. */
  insertions?: boolean;
}

/** What {@link generateWorldRewrites} made, with the counts the rules allowed. */
export interface WorldRewriteStream {
  /** The requests, in stream order (`case_id` 0, 1, ...). */
  records: WorldStreamRecord[];
  /** Rewrites among `records`. */
  rewrites: number;
  /** Insertions among `records`. */
  insertions: number;
  /** How many of each the knowledge base allows, and the reserved (never edited) locality facts. */
  available: { rewrites: number; insertions: number; reserved: number };
}

/** Seeded helpers (own copy: the world generator's are private to it and must not change). */
class Rand {
  private next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new EngramError("input", "internal: pick from an empty list");
    return xs[Math.floor(this.next() * xs.length)];
  }
  shuffle<T>(xs: readonly T[]): T[] {
    const a = [...xs];
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  }
}

const key = (s: string, r: string) => `${s}\u0000${r}`;

/** Builds N CounterFact-layout requests from `facts` (see the module comment for the rules). */
export function generateWorldRewrites(facts: WorldFacts, opts: WorldRewriteOptions): WorldRewriteStream {
  const n = opts.n, seed = opts.seed ?? 1;
  if (!Number.isInteger(n) || n < 1) throw new EngramError("input", `n must be an integer >= 1, got ${n}`);
  if (!Number.isSafeInteger(seed)) throw new EngramError("input", `seed must be an integer, got ${seed}`);
  const rand = new Rand(seed);
  const relations = facts.relations.filter((r) => r.subject_class === "person");
  const statement = (ts: string[]) => ts.filter((t) => !isQuestion(t));
  const countryOf = (city: string) => facts.city_country[city];
  const twoHop = (r: WorldRelation) => facts.two_hop.filter((t) => t.first === r.id);

  // 1. The reserve: one holder per (relation, object), in the relation's object order.
  const reserved = new Map<string, string>(); // key(relation, object) -> person
  const reservedByRelation = new Map<string, string[]>();
  for (const r of relations) {
    const list: string[] = [];
    for (const o of r.objects) {
      const holders = facts.subjects.filter((s) => facts.facts[s][r.id] === o);
      if (holders.length === 0) continue;
      const p = rand.pick(holders);
      reserved.set(key(r.id, o), p);
      list.push(p);
    }
    reservedByRelation.set(r.id, list);
  }
  const isReserved = (s: string, r: WorldRelation) => reserved.get(key(r.id, facts.facts[s][r.id])) === s;

  // 2. Rewrite candidates (every unreserved person fact) and 3. insertion candidates (non-people pairs).
  const rewritePool: { s: string; r: WorldRelation }[] = [];
  for (const s of facts.subjects) {
    for (const r of relations) if (!isReserved(s, r)) rewritePool.push({ s, r });
  }
  const people = new Set(facts.subjects);
  const insertPool: { s: string; r: WorldRelation }[] = [];
  for (const f of facts.first_names) {
    for (const l of facts.last_names) {
      const s = `${f} ${l}`;
      if (!people.has(s)) { for (const r of relations) insertPool.push({ s, r }); }
    }
  }
  const nRewrite = Math.min(n, rewritePool.length);
  const nInsert = n - nRewrite;
  if (nInsert > 0 && opts.insertions === false) {
    throw new EngramError(
      "input",
      `n ${n} exceeds the ${rewritePool.length} facts that can be rewritten once (insertions are off)`,
    );
  }
  if (nInsert > insertPool.length) {
    throw new EngramError(
      "input",
      `n ${n} exceeds the ${rewritePool.length} rewrites plus ${insertPool.length} insertions the world allows`,
    );
  }
  const chosen = [
    ...rand.shuffle(rewritePool).slice(0, nRewrite).map((c) => ({ ...c, insertion: false })),
    ...rand.shuffle(insertPool).slice(0, nInsert).map((c) => ({ ...c, insertion: true })),
  ];
  const records = rand.shuffle(chosen).map(({ s, r, insertion }, i): WorldStreamRecord => {
    const gt = insertion ? undefined : facts.facts[s][r.id];
    let targets = r.objects.filter((o) => o !== gt);
    if (r.id === "birthplace" && gt !== undefined) {
      targets = targets.filter((o) => countryOf(o) !== countryOf(gt));
    }
    const target = rand.pick(targets);
    const neighbour = gt !== undefined
      ? reserved.get(key(r.id, gt))!
      : rand.pick(reservedByRelation.get(r.id)!);
    const rec: WorldStreamRecord = {
      case_id: i,
      prompt: fillTemplate(rand.pick(statement(r.train_templates)), s),
      target_new: target,
      subject: s,
      ...(gt !== undefined ? { ground_truth: gt } : {}),
      rephrase_prompt: fillTemplate(rand.pick(statement(r.heldout_templates)), s),
      locality_prompt: fillTemplate(rand.pick(statement(r.train_templates)), neighbour),
      locality_ground_truth: facts.facts[neighbour][r.id],
      relation: r.id,
      kind: insertion ? "insertion" : "rewrite",
    };
    for (const th of twoHop(r)) {
      if (th.second === "country") {
        rec.portability = {
          prompt: fillTemplate(rand.pick(th.templates), s),
          ground_truth: countryOf(target),
        };
      }
    }
    return rec;
  });
  return {
    records,
    rewrites: nRewrite,
    insertions: nInsert,
    available: { rewrites: rewritePool.length, insertions: insertPool.length, reserved: reserved.size },
  };
}

/**
 * World v3: the fixture world of {@link generateWorld} plus a biography corpus that rewards storing facts at
 * the subject, where real language models keep them (ROME's "last subject token" MLP effect).
 *
 * Why: in the v2 corpus every sentence states one fact right after the subject, so a small model can look
 * the fact up at the answer position by attending to the two name tokens (the shipped 2-layer model does).
 * Real text mentions an entity once and then says many different things about it, at varying distances;
 * computing the entity's attributes once, at its last token, and reading them from there serves every
 * later position. Allen-Zhu & Li ("Physics of Language Models 3.1", 2023) found that small transformers store
 * attributes linearly at a person's name only when each person's facts come in several texts with varied
 * phrasing and fact order ("knowledge augmentation"). So each biography here:
 * - mentions the subject once (sometimes again as "This person") and then states 3–6 of its facts in a
 *   random order, with relation phrasings of its own (paraphrased relations);
 * - may put a distractor clause that says nothing about the subject between the subject and the facts, or
 *   between facts (so the answer is far from the subject);
 * - is one of `per_subject` biographies of each person, each with its own order, phrasings and distractors.
 *
 * Two more kinds of line put a person's objects right after the name: record lines (the name, then all six
 * objects, each copy in its own order, so the subject's last token predicts any of them and must hold them
 * all) and cue lines (a relation cue, the name, the object). And most lines start with an opener
 * ("Friends say that ...", 1–6 words), so that a subject does not sit at the same positions of every line
 * (without openers the answer position reads the name tokens by position and composes the person itself;
 * docs/notes/issue-16-world3.md has the designs tried and their traces).
 *
 * The single-fact sentences (behind their openers), held-out paraphrase templates and every evaluation file
 * are exactly v2's (with ordered names) for the same seed: the added lines and openers are drawn from a
 * second random stream (seed-derived) after the v2 world is complete, so v3's knowledge base, prompts,
 * rewrites and zsRE records equal v2's, and only train.jsonl, facts.json (version 3, its `biography`
 * section), the tokenizer (the added words) and the README differ. The evaluation prompts have no opener.
 */
import { EngramError } from "../errors.ts";
import {
  generateWorld,
  Rand,
  type World,
  type WorldFacts,
  type WorldOptions,
  type WorldTrainInstance,
  worldWords,
} from "./world.ts";
import { buildWorldTokenizer } from "./world_tokenizer.ts";

/** Format version of a world with biographies. */
export const WORLD_BIO_VERSION = 3;

/** How the biographies of a v3 world are written (stored in facts.json as `biography`). */
export interface WorldBiographySpec {
  /** Biographies per person. */
  per_subject: number;
  /** Fewest and most facts stated in one biography (each fact at most once per biography). */
  facts_min: number;
  facts_max: number;
  /** Probability that a distractor clause follows the subject, and that one follows a fact. */
  p_distractor_subject: number;
  p_distractor_fact: number;
  /** Probability that the biography restarts its second half with "This person also". */
  p_restart: number;
  /** Per person relation: clause templates with `{o}` for the object (never a training/held-out template). */
  clauses: Record<string, string[]>;
  /** Clauses that say nothing about anybody, set off by commas. */
  distractors: string[];
  /**
   * Copies of each person's record line: the name followed directly by every person fact's object
   * ("Narnux Zava Frostwick Nexora Swedish trumpet rowing cat ."), so that the subject's last token itself
   * must predict an object.
   */
  record_copies: number;
  /** The relation order of record lines (with `record_order` "shuffled": the relations they hold). */
  record_relations: string[];
  /**
   * "fixed": every record line in `record_relations` order; "shuffled": each copy in its own random order,
   * so that the subject's last token predicts any of the person's objects and must hold all of them (the
   * design that stores facts at the subject, see generateWorldV3).
   */
  record_order: "fixed" | "shuffled";
  /**
   * Copies of each fact's cue line: a relation cue word, the name, the object ("Hometown Narnux Zava
   * Frostwick ."): the relation is known before the subject, and the object follows the subject's last token.
   */
  cue_copies: number;
  /** The cue word of each person relation. */
  cues: Record<string, string>;
  /** People are ordered pairs over one name pool, each pair in both orders (WorldOptions.orderedNames). */
  ordered_names: boolean;
  /**
   * Probability that a training line (single-fact, biography, record or cue) starts with an opener, and the
   * openers (1–6 words). Without them every subject sits at the same positions of its line, and a small
   * model reads the name tokens there by position from the answer instead of building the person at the
   * subject (design 4, docs/notes/issue-16-world3.md).
   */
  p_opener: number;
  openers: string[];
}

/** Options of {@link generateWorldV3}: the v2 options plus the biography counts. */
export interface WorldV3Options extends WorldOptions {
  /** Biographies per person (default 6). */
  biographiesPerSubject?: number;
  /** Copies of each person's record line (default 30). */
  recordCopies?: number;
  /** Copies of each fact's cue line (default 2). */
  cueCopies?: number;
  /** Object order of record lines (default "shuffled"; WorldBiographySpec.record_order). */
  recordOrder?: "fixed" | "shuffled";
  /** Probability of an opener before a training line (default 0.8; WorldBiographySpec.p_opener). */
  openerRate?: number;
}

/** The default openers (capitalised first word: a line starts with it, see world_tokenizer.ts). */
export const LINE_OPENERS: string[] = [
  "Yesterday ,",
  "Reportedly ,",
  "Meanwhile ,",
  "As we heard ,",
  "It is said that",
  "Friends say that",
  "In town they say that",
  "Last year we heard that",
  "According to the old news ,",
  "Some neighbours told us that",
];

/** The default cue word of each relation (capitalised: a cue line starts with it, see world_tokenizer.ts). */
export const RECORD_CUES: Record<string, string> = {
  birthplace: "Hometown",
  employer: "Employer",
  language: "Language",
  instrument: "Instrument",
  sport: "Sport",
  pet: "Pet",
};

/** The default clause phrasings (paraphrases of each relation; objects follow directly). */
export const BIOGRAPHY_CLAUSES: Record<string, string[]> = {
  birthplace: ["was born in {o}", "comes from the city of {o}", "spent a childhood in {o}"],
  employer: ["works for {o}", "earns a living at {o}", "joined the staff of {o}"],
  language: ["speaks {o}", "talks at home in {o}", "learned {o} as a child"],
  instrument: ["plays the {o}", "performs on the {o}", "took lessons on the {o}"],
  sport: ["competes in {o}", "trains hard for {o}", "is a fan of {o}"],
  pet: ["owns a pet {o}", "feeds a pet {o}", "walks a pet {o}"],
};

/** The default distractor clauses. */
export const BIOGRAPHY_DISTRACTORS: string[] = [
  "as many people know",
  "according to old records",
  "a friendly person",
  "who rarely travels",
  "now in middle age",
  "as the neighbours say",
  "by all accounts",
  "who writes letters",
];

/** The words of a biography spec (connectives included), for the tokenizer. */
function biographyWords(spec: WorldBiographySpec): string[] {
  const words = new Set<string>([",", ".", "and", "This", "person", "also"]);
  for (const o of spec.openers) for (const w of o.split(" ")) words.add(w);
  for (const cs of Object.values(spec.clauses)) {
    for (const c of cs) for (const w of c.split(" ")) if (w !== "{o}") words.add(w);
  }
  for (const d of spec.distractors) for (const w of d.split(" ")) words.add(w);
  for (const c of Object.values(spec.cues)) words.add(c);
  return [...words];
}

/** True with probability `p` (in steps of 1e-6: one draw of `rand.int`). */
function chance(rand: Rand, p: number): boolean {
  return rand.int(1_000_000) < p * 1_000_000;
}

/** `clause` with `{o}` replaced by `object` (literal). */
function fillClause(clause: string, object: string): string {
  return clause.replace("{o}", () => object);
}

/**
 * Writes one biography of `subject`: `facts` (relation ids, in the order stated) with their objects.
 * Shape: `S [, distractor ,] c1 [, distractor] , c2 ... and cn .`, optionally split in two sentences, the
 * second starting "This person also".
 */
function biographyText(
  rand: Rand,
  spec: WorldBiographySpec,
  subject: string,
  facts: { relation: string; object: string }[],
): string {
  const clauses = facts.map((f) => fillClause(rand.pick(spec.clauses[f.relation]), f.object));
  const parts: string[] = [subject];
  if (chance(rand, spec.p_distractor_subject)) {
    parts.push(",", rand.pick(spec.distractors), ",");
  }
  const restartAt = facts.length >= 4 && chance(rand, spec.p_restart) ? 2 + rand.int(facts.length - 3) : -1;
  clauses.forEach((c, i) => {
    if (i === restartAt) parts.push(".", "This person also");
    else if (i > 0) parts.push(i === clauses.length - 1 || i === restartAt - 1 ? "and" : ",");
    parts.push(c);
    if (i < clauses.length - 1 && chance(rand, spec.p_distractor_fact)) {
      parts.push(",", rand.pick(spec.distractors));
    }
  });
  parts.push(".");
  return parts.join(" ");
}

/**
 * Generates world v3 for `opts`: {@link generateWorld}'s world with `biographiesPerSubject` biographies,
 * `recordCopies` record lines and `cueCopies` cue lines per fact added to train.jsonl (shuffled in with the
 * single-fact instances), then an opener before each line with probability `openerRate`. Deterministic.
 */
export function generateWorldV3(opts: WorldV3Options): World {
  const per = opts.biographiesPerSubject ?? 6;
  const records = opts.recordCopies ?? 30;
  const cues = opts.cueCopies ?? 2;
  const recordOrder = opts.recordOrder ?? "shuffled";
  const openerRate = opts.openerRate ?? 0.8;
  if (!(openerRate >= 0 && openerRate <= 1)) {
    throw new EngramError("input", `openerRate must be in [0, 1], got ${openerRate}`);
  }
  if (recordOrder !== "fixed" && recordOrder !== "shuffled") {
    throw new EngramError(
      "input",
      `recordOrder must be "fixed" or "shuffled", got ${JSON.stringify(recordOrder)}`,
    );
  }
  for (
    const [name, v] of [["biographiesPerSubject", per], ["recordCopies", records], [
      "cueCopies",
      cues,
    ]] as const
  ) {
    if (!Number.isInteger(v) || v < 0 || v > 200) {
      throw new EngramError("input", `${name} must be an integer in 0..200, got ${v}`);
    }
  }
  const orderedNames = opts.orderedNames ?? true;
  const base = generateWorld({ ...opts, orderedNames });
  const personRelations = base.facts.relations.filter((r) => r.subject_class === "person");
  const spec: WorldBiographySpec = {
    per_subject: per,
    facts_min: 3,
    facts_max: personRelations.length,
    p_distractor_subject: 0.5,
    p_distractor_fact: 0.2,
    p_restart: 0.3,
    clauses: Object.fromEntries(personRelations.map((r) => [r.id, BIOGRAPHY_CLAUSES[r.id]])),
    distractors: BIOGRAPHY_DISTRACTORS,
    p_opener: openerRate,
    openers: LINE_OPENERS,
    record_copies: records,
    record_relations: personRelations.map((r) => r.id),
    record_order: recordOrder,
    cue_copies: cues,
    cues: Object.fromEntries(personRelations.map((r) => [r.id, RECORD_CUES[r.id]])),
    ordered_names: orderedNames,
  };
  for (const r of personRelations) {
    if (!spec.clauses[r.id]) throw new Error(`no biography clauses for relation ${r.id}`);
    if (!spec.cues[r.id]) throw new Error(`no record cue for relation ${r.id}`);
  }
  // Biography words must not be a person's name word (the tokenizer holds one token per word).
  const names = new Set([...base.facts.first_names, ...base.facts.last_names].map((w) => w.toLowerCase()));
  for (const w of biographyWords(spec)) {
    if (names.has(w.toLowerCase())) {
      throw new EngramError(
        "input",
        `biography word "${w}" is also a name of this world (seed ${opts.seed})`,
      );
    }
  }
  const facts: WorldFacts & { biography: WorldBiographySpec } = {
    ...base.facts,
    version: WORLD_BIO_VERSION,
    biography: spec,
  };
  // A second stream, so that the v2 part of the world is untouched by the biographies' draws.
  const rand = new Rand((opts.seed * 7919 + 104729) | 0);
  const bios: WorldTrainInstance[] = [];
  for (const s of base.facts.subjects) {
    for (let b = 0; b < per; b++) {
      const n = spec.facts_min + rand.int(spec.facts_max - spec.facts_min + 1);
      const rels = rand.shuffle(personRelations.map((r) => r.id)).slice(0, n);
      const stated = rels.map((relation) => ({ relation, object: base.facts.facts[s][relation] }));
      bios.push({
        id: `b${String(bios.length).padStart(6, "0")}`,
        text: biographyText(rand, spec, s, stated),
        subject: s,
        relation: "biography",
        object: stated.map((f) => f.object).join(" "),
        template: -1,
        facts: stated,
      } as WorldTrainInstance);
    }
  }
  const lines: WorldTrainInstance[] = [];
  for (const s of base.facts.subjects) {
    for (let c = 0; c < spec.record_copies; c++) {
      const relations = recordOrder === "shuffled"
        ? rand.shuffle(spec.record_relations)
        : spec.record_relations;
      const objects = relations.map((r) => base.facts.facts[s][r]);
      lines.push({
        id: `r${String(lines.length).padStart(6, "0")}`,
        text: `${s} ${objects.join(" ")} .`,
        subject: s,
        relation: "record",
        object: objects.join(" "),
        template: -1,
        facts: relations.map((relation, i) => ({ relation, object: objects[i] })),
      });
    }
    for (const r of personRelations) {
      const object = base.facts.facts[s][r.id];
      for (let c = 0; c < spec.cue_copies; c++) {
        lines.push({
          id: `c${String(lines.length).padStart(6, "0")}`,
          text: `${spec.cues[r.id]} ${s} ${object} .`,
          subject: s,
          relation: r.id,
          object,
          template: -1,
        });
      }
    }
  }
  const train = rand.shuffle([...base.train, ...bios, ...lines]).map((t) => {
    if (!chance(rand, spec.p_opener)) return t;
    const opener = rand.pick(spec.openers);
    return { ...t, text: `${opener} ${t.text}`, opener };
  });
  const tokenizer = buildWorldTokenizer([...new Set([...worldWords(facts), ...biographyWords(spec)])]);
  return { ...base, facts, train, tokenizer };
}

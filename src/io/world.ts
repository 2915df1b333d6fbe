/**
 * The fixture world: a seeded synthetic knowledge base that a small GPT-2 is trained on, so that we know
 * exactly which facts, and which training instances, a model has seen.
 *
 * - 100 invented people ("subjects"), each named by two words, a first and a last name drawn from two
 *   small pools (about 15 each), so that every name word is shared by several people and only the pair
 *   identifies one. A model must therefore compose the person from both tokens, as real models do with
 *   multi-token subjects, before it can recall anything about them. (The shipped 2-layer model still
 *   composes them at the answer position, not at the subject's last token: see its PROVENANCE.md.)
 *   Each person has one object per person relation
 *   (birthplace city, employer, language, instrument, sport, pet), objects balanced across subjects;
 * - cities belong to countries (a relation on a second entity class), which gives two-hop facts:
 *   "The country where X was born is" -> country of X's birthplace;
 * - per relation, training templates (every fact x every one of them is a training instance) and held-out
 *   paraphrase templates that never occur in training. Every template ends right before the object, and a
 *   text is `prompt + " " + object + " ."`;
 * - evaluation sets in EasyEdit's CounterFact "edit" format and MEND's zsRE format;
 * - a tokenizer in which every world word is one token (see `world_tokenizer.ts`).
 *
 * {@link generateWorld} is a pure function of its options; {@link worldFiles} serialises a world to the
 * exact bytes of the fixture folder, so a committed folder can be compared with a fresh regeneration.
 */
import { join } from "node:path";
import { EngramError } from "../errors.ts";
import { mulberry32 } from "../model/generate.ts";
import { writeDirAtomic } from "./atomic.ts";
import { buildWorldTokenizer, worldTokenizerConfig } from "./world_tokenizer.ts";
import type { WorldBiographySpec } from "./world_bio.ts";

/** Format version written into facts.json. */
export const WORLD_VERSION = 2;

/** A relation: subjects of one class map to one object of `objects` each. */
export interface WorldRelation {
  /** e.g. "birthplace". */
  id: string;
  /** "person" (the invented names) or "city". */
  subject_class: "person" | "city";
  /** What the objects are, e.g. "city", "company". */
  object_class: string;
  /** All values the relation can take (one word each). */
  objects: string[];
  /** Templates with `{s}` for the subject, ending right before the object; used in train.jsonl. */
  train_templates: string[];
  /** Paraphrase templates that never occur in training (held-out generalisation, rephrase prompts). */
  heldout_templates: string[];
}

/** A two-hop relation: `first` (person -> city) followed by `second` (city -> country). */
export interface WorldTwoHop {
  id: string;
  first: string;
  second: string;
  /** Templates with `{s}` for the person; never in training. */
  templates: string[];
}

/** The knowledge base, as written to facts.json. */
export interface WorldFacts {
  format: "engram-world";
  version: number;
  seed: number;
  /** Invented people, "First Last" (two words; each word is shared by several people). */
  subjects: string[];
  /** The pool of first names. */
  first_names: string[];
  /** The pool of last names (disjoint from the first names). */
  last_names: string[];
  cities: string[];
  countries: string[];
  /** Person relations first, then "country" (city -> country). */
  relations: WorldRelation[];
  /** subject -> relation id -> object, for every subject and every person relation. */
  facts: Record<string, Record<string, string>>;
  /** city -> country (the facts of relation "country"). */
  city_country: Record<string, string>;
  two_hop: WorldTwoHop[];
}

/** One line of train.jsonl: a fact stated with one training template. */
export interface WorldTrainInstance {
  id: string;
  /** `prompt + " " + object + " ."` */
  text: string;
  subject: string;
  relation: string;
  object: string;
  /** Index into the relation's `train_templates` (-1 for a v3 biography). */
  template: number;
  /** A v3 biography's facts in the order stated (its `relation` is "biography"). */
  facts?: { relation: string; object: string }[];
  /** A v3 line's opener: `text` is `opener + " " +` the line without it (absent: no opener). */
  opener?: string;
}

/**
 * One line of train_prompts.jsonl (same id as the train.jsonl instance), heldout.jsonl or twohop.jsonl:
 * a prompt whose next word should be `answer`.
 */
export interface WorldPrompt {
  id: string;
  prompt: string;
  subject: string;
  relation: string;
  answer: string;
  /** Index into the relation's `train_templates` / `heldout_templates` / the two-hop `templates`. */
  template: number;
}

/** Two-hop prompt of a counterfactual record (EasyEdit "portability"). */
export interface WorldPortability {
  prompt: string;
  ground_truth: string;
}

/** One record of counterfact.json, in EasyEdit's counterfact-edit.json layout (plus `portability`, `relation`). */
export interface WorldCounterfactRecord {
  case_id: number;
  /** Full prompt with the subject in it, e.g. "Varnel was born in". */
  prompt: string;
  target_new: string;
  subject: string;
  ground_truth: string;
  /** Same fact with a held-out template. */
  rephrase_prompt: string;
  /** Same relation, another subject whose true object is `ground_truth` (CounterFact's neighbourhood). */
  locality_prompt: string;
  locality_ground_truth: string;
  /** Only for birthplace rewrites: the country of `target_new`'s city. */
  portability?: WorldPortability;
  relation: string;
}

/** One record of zsre.json, in MEND's zsRE layout (plus `relation`). */
export interface WorldZsreRecord {
  subject: string;
  /** Question from a training template, e.g. "Where was Varnel born ?". */
  src: string;
  /** The unedited answer (the true object). */
  pred: string;
  /** Question from a held-out template. */
  rephrase: string;
  /** The new answer. */
  alt: string;
  answers: string[];
  /** A question about an unedited fact of another subject. */
  loc: string;
  loc_ans: string;
  /** `pred >> alt || src` */
  cond: string;
  relation: string;
}

/** A generated world: the knowledge base and every file derived from it. */
export interface World {
  facts: WorldFacts;
  /** Training instances in file order (shuffled). */
  train: WorldTrainInstance[];
  /** Training-template prompts, unshuffled, with the ids of their training instances. */
  trainPrompts: WorldPrompt[];
  heldout: WorldPrompt[];
  twoHop: WorldPrompt[];
  counterfact: WorldCounterfactRecord[];
  zsre: WorldZsreRecord[];
  /** tokenizer.json content. */
  tokenizer: Record<string, unknown>;
}

/** Options of {@link generateWorld}. */
export interface WorldOptions {
  /** Seed of every random choice. */
  seed: number;
  /** Number of invented people (default 100). */
  subjects?: number;
  /** Counterfactual rewrites per person relation (default 25, i.e. 150 in all). */
  rewritesPerRelation?: number;
  /**
   * One name pool instead of two, and every unordered pair of names used in both orders, so that only the
   * order of the two name tokens tells two people apart ("Zava Narnux" is not "Narnux Zava"): a bag of the
   * subject's tokens cannot recall a fact; the ordered pair must be composed (world v3; default false).
   */
  orderedNames?: boolean;
  /**
   * Name tokens per person with ordered names (default 2). From 3 on, people are distinct ordered tuples of
   * distinct names over one small pool, so several people share every set of names and most share every
   * pair: only the whole ordered tuple identifies a person, and the subject's last token must gather it from
   * more positions back.
   */
  nameTokens?: number;
}

/** The files of a world folder, in the order {@link worldFiles} writes them. */
export const WORLD_FILES = [
  "README.md",
  "facts.json",
  "train.jsonl",
  "train_prompts.jsonl",
  "heldout.jsonl",
  "twohop.jsonl",
  "counterfact.json",
  "zsre.json",
  "tokenizer.json",
  "tokenizer_config.json",
] as const;

const CITIES = [
  "Tarvos",
  "Belmira",
  "Quorin",
  "Saldena",
  "Vexmoor",
  "Halvik",
  "Durnhelm",
  "Caspori",
  "Elmsgate",
  "Frostwick",
  "Lunetra",
  "Marrowby",
  "Pellinor",
  "Rivenholt",
  "Sunmere",
  "Thornvale",
];
const COUNTRIES = ["Kelmia", "Dravonia", "Ostrelia", "Valdoria", "Zembria", "Arcania", "Lothmark", "Suvaria"];

/** Person relations (objects, templates). Question templates (ending in "?") come last in each list. */
const PERSON_RELATIONS: Omit<WorldRelation, "subject_class">[] = [
  {
    id: "birthplace",
    object_class: "city",
    objects: CITIES,
    train_templates: [
      "{s} was born in",
      "{s} is a native of",
      "The birthplace of {s} is",
      "{s} grew up in the city of",
      "The hometown of {s} is",
      "In fact , {s} was born in",
      "People say that the hometown of {s} is",
      "{s} also grew up in the city of",
      "Where was {s} born ?",
      "What is the birthplace of {s} ?",
    ],
    heldout_templates: [
      "We know that {s} was born in",
      "Of course , the hometown of {s} is",
      "Which city is the birthplace of {s} ?",
    ],
  },
  {
    id: "employer",
    object_class: "company",
    objects: [
      "Nexora",
      "Veltrix",
      "Quantel",
      "Brightwave",
      "Ironleaf",
      "Solvane",
      "Kaltrex",
      "Mirabyte",
      "Corvanta",
      "Helixon",
      "Duraspan",
      "Pyrotek",
      "Stellaris",
      "Omnivale",
    ],
    train_templates: [
      "{s} works for",
      "{s} is employed by",
      "The employer of {s} is",
      "{s} has a job at",
      "The company that employs {s} is",
      "Everyone agrees that {s} works for",
      "Of course , the employer of {s} is",
      "{s} now works for",
      "Which company does {s} work for ?",
      "Which company is the employer of {s} ?",
    ],
    heldout_templates: [
      "In fact , {s} works for",
      "People say that the employer of {s} is",
      "What is the employer of {s} ?",
    ],
  },
  {
    id: "language",
    object_class: "language",
    objects: [
      "French",
      "German",
      "Spanish",
      "Italian",
      "Dutch",
      "Polish",
      "Greek",
      "Swedish",
      "Turkish",
      "Korean",
      "Japanese",
      "Hindi",
      "Finnish",
      "Czech",
    ],
    train_templates: [
      "{s} speaks",
      "{s} is a native speaker of",
      "The mother tongue of {s} is",
      "The native language of {s} is",
      "{s} grew up speaking",
      "We know that {s} speaks",
      "Without a doubt , the mother tongue of {s} is",
      "{s} always speaks",
      "Which language does {s} speak ?",
      "What is the mother tongue of {s} ?",
    ],
    heldout_templates: [
      "Everyone agrees that {s} speaks",
      "In fact , the native language of {s} is",
      "Which language is the mother tongue of {s} ?",
    ],
  },
  {
    id: "instrument",
    object_class: "instrument",
    objects: [
      "piano",
      "violin",
      "guitar",
      "cello",
      "flute",
      "harp",
      "drums",
      "trumpet",
      "clarinet",
      "oboe",
      "banjo",
      "saxophone",
      "trombone",
      "accordion",
    ],
    train_templates: [
      "{s} plays the",
      "{s} is a musician who plays the",
      "The instrument played by {s} is the",
      "The favorite instrument of {s} is the",
      "{s} practices every day on the",
      "In fact , {s} plays the",
      "People say that the instrument played by {s} is the",
      "{s} usually plays the",
      "Which instrument does {s} play ?",
      "Which instrument is played by {s} ?",
    ],
    heldout_templates: [
      "We know that {s} plays the",
      "Of course , the favorite instrument of {s} is the",
      "What is the instrument played by {s} ?",
    ],
  },
  {
    id: "sport",
    object_class: "sport",
    objects: [
      "tennis",
      "soccer",
      "chess",
      "golf",
      "rugby",
      "hockey",
      "cricket",
      "boxing",
      "fencing",
      "rowing",
      "cycling",
      "swimming",
      "archery",
      "volleyball",
    ],
    train_templates: [
      "{s} competes in",
      "{s} is a professional player of",
      "The favorite sport of {s} is",
      "The sport practiced by {s} is",
      "{s} won a medal in",
      "Everyone agrees that {s} competes in",
      "Of course , the sport practiced by {s} is",
      "{s} now competes in",
      "Which sport does {s} play ?",
      "Which sport is practiced by {s} ?",
    ],
    heldout_templates: [
      "People say that {s} competes in",
      "Without a doubt , the favorite sport of {s} is",
      "What is the sport practiced by {s} ?",
    ],
  },
  {
    id: "pet",
    object_class: "animal",
    objects: [
      "cat",
      "dog",
      "parrot",
      "rabbit",
      "hamster",
      "turtle",
      "ferret",
      "goldfish",
      "lizard",
      "horse",
      "snake",
      "pony",
      "canary",
      "donkey",
    ],
    train_templates: [
      "{s} owns a pet",
      "The pet of {s} is a",
      "{s} lives with a pet",
      "At home , {s} keeps a pet",
      "{s} takes care of a pet",
      "We know that {s} owns a pet",
      "Without a doubt , the pet of {s} is a",
      "{s} also owns a pet",
      "What kind of pet does {s} have ?",
      "Which animal does {s} keep as a pet ?",
    ],
    heldout_templates: [
      "Everyone agrees that {s} owns a pet",
      "Of course , the pet of {s} is a",
      "What is the pet of {s} ?",
    ],
  },
];

const COUNTRY_RELATION: WorldRelation = {
  id: "country",
  subject_class: "city",
  object_class: "country",
  objects: COUNTRIES,
  train_templates: [
    "{s} is located in",
    "{s} is a city in",
    "The country of {s} is",
    "{s} lies in the country of",
    "{s} belongs to the country of",
    "In fact , {s} is located in",
    "People say that the country of {s} is",
    "{s} also lies in the country of",
    "Which country is {s} in ?",
    "What is the country of {s} ?",
  ],
  heldout_templates: [
    "Everyone agrees that {s} is a city in",
    "Without a doubt , the country of {s} is",
    "Which country is {s} located in ?",
  ],
};

const TWO_HOP: WorldTwoHop[] = [
  {
    id: "birthplace_country",
    first: "birthplace",
    second: "country",
    templates: ["The country where {s} was born is"],
  },
];

/** Name parts: [onset] vowel middle vowel [coda], e.g. "V"+"a"+"rn"+"e"+"l". */
const ONSETS = ["", "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z"];
const VOWELS = ["a", "e", "i", "o", "u"];
const MIDDLES = [
  "r",
  "l",
  "n",
  "m",
  "s",
  "v",
  "d",
  "t",
  "k",
  "rn",
  "ld",
  "lm",
  "st",
  "sm",
  "th",
  "nd",
  "rv",
  "lv",
];
const CODAS = ["", "", "n", "l", "r", "s", "x"];

/** `template` with its `{s}` replaced by `subject`. */
export function fillTemplate(template: string, subject: string): string {
  return template.replace("{s}", () => subject); // literal: "$&" in a subject is not a pattern
}

/** The training text of a fact: `prompt + " " + object + " ."`. */
export function factText(prompt: string, object: string): string {
  return `${prompt} ${object} .`;
}

/** True for question templates (they end with "?"). */
export function isQuestion(template: string): boolean {
  return template.endsWith("?");
}

/** Every word of the world: names, objects, template words and punctuation (input of the tokenizer). */
export function worldWords(facts: WorldFacts): string[] {
  const words = new Set<string>([
    ...facts.first_names,
    ...facts.last_names,
    ...facts.cities,
    ...facts.countries,
  ]);
  const templates: string[] = [];
  for (const r of facts.relations) {
    for (const o of r.objects) words.add(o);
    templates.push(...r.train_templates, ...r.heldout_templates);
  }
  for (const t of facts.two_hop) templates.push(...t.templates);
  for (const t of templates) for (const w of t.split(" ")) if (w !== "{s}") words.add(w);
  words.add(".");
  return [...words];
}

/** Small helpers over one seeded PRNG (mulberry32). */
export class Rand {
  private next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new Error("pick from an empty list");
    return xs[this.int(xs.length)];
  }
  shuffle<T>(xs: readonly T[]): T[] {
    const a = [...xs];
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  }
}

function makeNames(rand: Rand, n: number, reserved: Set<string>): string[] {
  const names: string[] = [];
  const seen = new Set<string>();
  let tries = 0;
  while (names.length < n) {
    if (++tries > 1_000_000) throw new Error(`cannot invent ${n} distinct names`);
    const w = rand.pick(ONSETS) + rand.pick(VOWELS) + rand.pick(MIDDLES) + rand.pick(VOWELS) +
      rand.pick(CODAS);
    if (w.length < 4 || w.length > 6) continue;
    const name = w[0].toUpperCase() + w.slice(1);
    if (seen.has(name.toLowerCase()) || reserved.has(name.toLowerCase())) continue;
    seen.add(name.toLowerCase());
    names.push(name);
  }
  return names;
}

/**
 * `n` distinct people "First Last" over two disjoint pools of ⌈√(2n)⌉ names each. Pairs are dealt from the
 * shuffled grid so that every first and every last name is used by several people (counts differ by at
 * most a few), which makes each single name word useless for recall on its own.
 */
function makePeople(
  rand: Rand,
  n: number,
  reserved: Set<string>,
): { people: string[]; first: string[]; last: string[] } {
  const k = Math.ceil(Math.sqrt(2 * n));
  const pool = makeNames(rand, 2 * k, reserved);
  const first = pool.slice(0, k);
  const last = pool.slice(k);
  // Walk the k x k grid along shifted diagonals: diagonal d pairs first i with last (i + d) mod k, so
  // each diagonal uses every name once and usage stays balanced.
  const diagonals = rand.shuffle(Array.from({ length: k }, (_, d) => d));
  const pairs: string[] = [];
  for (const d of diagonals) {
    for (const i of rand.shuffle(Array.from({ length: k }, (_, j) => j))) {
      if (pairs.length < n) pairs.push(`${first[i]} ${last[(i + d) % k]}`);
    }
  }
  return { people: rand.shuffle(pairs), first, last };
}

/**
 * `n` (even) distinct people over ONE pool of ⌈√(2n)⌉ names: n/2 unordered pairs of distinct names, each used
 * in both orders, so every person has a "mirror" person with the same two name tokens reversed.
 */
function makeOrderedPeople(
  rand: Rand,
  n: number,
  reserved: Set<string>,
): { people: string[]; first: string[]; last: string[] } {
  if (n % 2 !== 0) throw new EngramError("input", `subjects must be even with ordered names, got ${n}`);
  const k = Math.ceil(Math.sqrt(2 * n));
  const pool = makeNames(rand, k, reserved);
  const pairs: [number, number][] = [];
  for (let i = 0; i < k; i++) for (let j = i + 1; j < k; j++) pairs.push([i, j]);
  const people: string[] = [];
  for (const [i, j] of rand.shuffle(pairs).slice(0, n / 2)) {
    people.push(`${pool[i]} ${pool[j]}`, `${pool[j]} ${pool[i]}`);
  }
  return { people: rand.shuffle(people), first: pool, last: [...pool] };
}

/**
 * `n` distinct people as ordered `k`-tuples (k >= 3) of distinct names over ONE pool, the smallest pool with
 * at least 4n ordered tuples: tuples are drawn without replacement, so most people share their set of names
 * or a pair of them in the same order with others.
 */
function makeOrderedTuples(
  rand: Rand,
  n: number,
  k: number,
  reserved: Set<string>,
): { people: string[]; first: string[]; last: string[] } {
  const tuples = (m: number) => {
    let c = 1;
    for (let i = 0; i < k; i++) c *= m - i;
    return c;
  };
  let m = k;
  while (tuples(m) < 4 * n) m++;
  const pool = makeNames(rand, m, reserved);
  const all: number[][] = [];
  const walk = (prefix: number[]) => {
    if (prefix.length === k) return void all.push(prefix);
    for (let i = 0; i < m; i++) if (!prefix.includes(i)) walk([...prefix, i]);
  };
  walk([]);
  const people = rand.shuffle(all).slice(0, n).map((t) => t.map((i) => pool[i]).join(" "));
  return { people, first: pool, last: [...pool] };
}

const pad = (i: number) => String(i).padStart(6, "0");

/**
 * Generates the world for `opts.seed`. Deterministic: the same options give the same world (and, through
 * {@link worldFiles}, the same bytes).
 */
export function generateWorld(opts: WorldOptions): World {
  const seed = opts.seed;
  const nSubjects = opts.subjects ?? 100;
  const perRelation = opts.rewritesPerRelation ?? 25;
  if (!Number.isSafeInteger(seed)) throw new EngramError("input", `seed must be an integer, got ${seed}`);
  if (!Number.isInteger(nSubjects) || nSubjects < 20) {
    throw new EngramError("input", `subjects must be an integer >= 20, got ${nSubjects}`);
  }
  if (!Number.isInteger(perRelation) || perRelation < 0 || perRelation > nSubjects) {
    throw new EngramError(
      "input",
      `rewritesPerRelation must be an integer in 0..${nSubjects}, got ${perRelation}`,
    );
  }
  const rand = new Rand(seed);
  const relations: WorldRelation[] = [
    ...PERSON_RELATIONS.map((r) => ({ ...r, subject_class: "person" as const })),
    COUNTRY_RELATION,
  ];
  const personRelations = relations.filter((r) => r.subject_class === "person");

  // Names must not collide with any other word of the world.
  const reserved = new Set<string>([...CITIES, ...COUNTRIES].map((w) => w.toLowerCase()));
  for (const r of relations) {
    for (const o of r.objects) reserved.add(o.toLowerCase());
    for (const t of [...r.train_templates, ...r.heldout_templates]) {
      for (const w of t.split(" ")) reserved.add(w.toLowerCase());
    }
  }
  for (const t of TWO_HOP) {
    for (const tt of t.templates) for (const w of tt.split(" ")) reserved.add(w.toLowerCase());
  }
  const nameTokens = opts.nameTokens ?? 2;
  if (!Number.isInteger(nameTokens) || nameTokens < 2 || nameTokens > 5) {
    throw new EngramError("input", `nameTokens must be an integer in 2..5, got ${nameTokens}`);
  }
  if (nameTokens > 2 && !opts.orderedNames) {
    throw new EngramError("input", `nameTokens ${nameTokens} needs orderedNames (one name pool)`);
  }
  const { people: subjects, first: firstNames, last: lastNames } = nameTokens > 2
    ? makeOrderedTuples(rand, nSubjects, nameTokens, reserved)
    : opts.orderedNames
    ? makeOrderedPeople(rand, nSubjects, reserved)
    : makePeople(rand, nSubjects, reserved);

  // Cities to countries: round-robin over shuffled cities, so each country has 2 cities.
  const cityCountry: Record<string, string> = {};
  rand.shuffle(CITIES).forEach((c, i) => (cityCountry[c] = COUNTRIES[i % COUNTRIES.length]));
  const cityCountrySorted: Record<string, string> = {};
  for (const c of CITIES) cityCountrySorted[c] = cityCountry[c];

  // Person facts: objects balanced (counts differ by at most one).
  const facts: Record<string, Record<string, string>> = {};
  for (const s of subjects) facts[s] = {};
  for (const r of personRelations) {
    const pool = rand.shuffle(subjects.map((_, i) => r.objects[i % r.objects.length]));
    subjects.forEach((s, i) => (facts[s][r.id] = pool[i]));
  }
  const kb: WorldFacts = {
    format: "engram-world",
    version: WORLD_VERSION,
    seed,
    subjects,
    first_names: firstNames,
    last_names: lastNames,
    cities: [...CITIES],
    countries: [...COUNTRIES],
    relations,
    facts,
    city_country: cityCountrySorted,
    two_hop: TWO_HOP,
  };
  const objectOf = (subject: string, relation: string): string =>
    relation === "country" ? cityCountrySorted[subject] : facts[subject][relation];

  // Every fact x every template of its relation.
  const allFacts: { subject: string; relation: WorldRelation }[] = [];
  for (const s of subjects) for (const r of personRelations) allFacts.push({ subject: s, relation: r });
  for (const c of CITIES) allFacts.push({ subject: c, relation: COUNTRY_RELATION });
  const trainPrompts: WorldPrompt[] = [];
  const heldout: WorldPrompt[] = [];
  for (const { subject, relation } of allFacts) {
    const answer = objectOf(subject, relation.id);
    relation.train_templates.forEach((t, template) => {
      const id = `t${pad(trainPrompts.length)}`;
      trainPrompts.push({
        id,
        prompt: fillTemplate(t, subject),
        subject,
        relation: relation.id,
        answer,
        template,
      });
    });
    relation.heldout_templates.forEach((t, template) => {
      const id = `h${pad(heldout.length)}`;
      heldout.push({
        id,
        prompt: fillTemplate(t, subject),
        subject,
        relation: relation.id,
        answer,
        template,
      });
    });
  }
  const train: WorldTrainInstance[] = rand.shuffle(trainPrompts).map((p) => ({
    id: p.id,
    text: factText(p.prompt, p.answer),
    subject: p.subject,
    relation: p.relation,
    object: p.answer,
    template: p.template,
  }));
  const twoHop: WorldPrompt[] = [];
  for (const th of TWO_HOP) {
    for (const s of subjects) {
      const answer = objectOf(objectOf(s, th.first), th.second);
      th.templates.forEach((t, template) => {
        twoHop.push({
          id: `x${pad(twoHop.length)}`,
          prompt: fillTemplate(t, s),
          subject: s,
          relation: th.id,
          answer,
          template,
        });
      });
    }
  }

  // Rewrites: `perRelation` distinct subjects per person relation.
  const chosen = personRelations.map((r) => ({ r, subjects: rand.shuffle(subjects).slice(0, perRelation) }));
  const edited = new Set<string>();
  for (const { r, subjects: ss } of chosen) for (const s of ss) edited.add(`${s}\u0000${r.id}`);
  const statement = (ts: string[]) => ts.filter((t) => !isQuestion(t));
  const question = (ts: string[]) => ts.filter(isQuestion);
  const rewrites: { cf: Omit<WorldCounterfactRecord, "case_id">; zs: WorldZsreRecord }[] = [];
  for (const { r, subjects: ss } of chosen) {
    for (const s of ss) {
      const gt = facts[s][r.id];
      let targets = r.objects.filter((o) => o !== gt);
      if (r.id === "birthplace") {
        targets = targets.filter((o) => cityCountrySorted[o] !== cityCountrySorted[gt]);
      }
      const target = rand.pick(targets);
      const prompt = fillTemplate(rand.pick(statement(r.train_templates)), s);
      const rephrase = fillTemplate(rand.pick(statement(r.heldout_templates)), s);
      let neighbours = subjects.filter((u) =>
        u !== s && facts[u][r.id] === gt && !edited.has(`${u}\u0000${r.id}`)
      );
      if (neighbours.length === 0) neighbours = subjects.filter((u) => u !== s && facts[u][r.id] === gt);
      const nb = rand.pick(neighbours);
      const cf: Omit<WorldCounterfactRecord, "case_id"> = {
        prompt,
        target_new: target,
        subject: s,
        ground_truth: gt,
        rephrase_prompt: rephrase,
        locality_prompt: fillTemplate(rand.pick(statement(r.train_templates)), nb),
        locality_ground_truth: gt,
        relation: r.id,
      };
      for (const th of TWO_HOP) {
        if (th.first === r.id) {
          cf.portability = {
            prompt: fillTemplate(rand.pick(th.templates), s),
            ground_truth: objectOf(target, th.second),
          };
        }
      }
      // zsRE: questions; locality is an unedited fact of another subject and (any) relation.
      const src = fillTemplate(rand.pick(question(r.train_templates)), s);
      let lr = rand.pick(personRelations);
      let lu = rand.pick(subjects);
      while (lu === s || edited.has(`${lu}\u0000${lr.id}`)) {
        lr = rand.pick(personRelations);
        lu = rand.pick(subjects);
      }
      const zs: WorldZsreRecord = {
        subject: s,
        src,
        pred: gt,
        rephrase: fillTemplate(rand.pick(question(r.heldout_templates)), s),
        alt: target,
        answers: [gt],
        loc: fillTemplate(rand.pick(question(lr.train_templates)), lu),
        loc_ans: facts[lu][lr.id],
        cond: `${gt} >> ${target} || ${src}`,
        relation: r.id,
      };
      rewrites.push({ cf, zs });
    }
  }
  const order = rand.shuffle(rewrites);
  const counterfact = order.map(({ cf }, i): WorldCounterfactRecord => ({
    case_id: i,
    prompt: cf.prompt,
    target_new: cf.target_new,
    subject: cf.subject,
    ground_truth: cf.ground_truth,
    rephrase_prompt: cf.rephrase_prompt,
    locality_prompt: cf.locality_prompt,
    locality_ground_truth: cf.locality_ground_truth,
    ...(cf.portability ? { portability: cf.portability } : {}),
    relation: cf.relation,
  }));
  const zsre = order.map(({ zs }) => zs);
  const tokenizer = buildWorldTokenizer(worldWords(kb));
  return { facts: kb, train, trainPrompts, heldout, twoHop, counterfact, zsre, tokenizer };
}

function jsonl(records: unknown[]): string {
  return records.map((r) => JSON.stringify(r)).join("\n") + "\n";
}

function json(v: unknown): string {
  return JSON.stringify(v, null, 1) + "\n";
}

function readme(w: World): string {
  const f = w.facts;
  const person = f.relations.filter((r) => r.subject_class === "person");
  const bioSpec = (f as { biography?: WorldBiographySpec }).biography;
  const bio = bioSpec
    ? {
      per: bioSpec.per_subject,
      count: w.train.filter((t) => t.relation === "biography").length,
      records: bioSpec.record_copies,
      cues: bioSpec.cue_copies,
      order: bioSpec.record_order,
      opener: bioSpec.p_opener,
    }
    : undefined;
  const nameTokens = f.subjects[0].split(" ").length;
  const cmd = bio
    ? `scripts/make_world.ts --out fixtures/world3 --seed ${f.seed} --version 3 --biographies ${bio.per} ` +
      `--records ${bio.records} --cues ${bio.cues} --record-order ${bio.order} --opener-rate ${bio.opener}` +
      (nameTokens > 2 ? ` --name-tokens ${nameTokens}` : "")
    : `scripts/make_world.ts --out fixtures/world --seed ${f.seed}`;
  const naming = nameTokens > 2
    ? `named by ordered tuples of ${nameTokens} distinct names from one pool of ${f.first_names.length} (only the whole ordered tuple identifies a person)`
    : f.first_names.join() === f.last_names.join()
    ? `named "First Last" from one pool of ${f.first_names.length} names, each pair of names in both orders (only the ordered pair identifies a person)`
    : `named "First Last" from ${f.first_names.length} first and ${f.last_names.length} last names (only the pair identifies a person)`;
  return `# The fixture world${bio ? " v3" : ""} (seed ${f.seed})

Generated by \`deno run -A ${cmd}\` — do not edit by hand;
tests/${bio ? "world_v3_test.ts" : "world_test.ts"} checks that these files equal a fresh regeneration.

- facts.json: the knowledge base: ${f.subjects.length} invented people ${naming}, ${person.length} person relations (${
    person.map((r) => r.id).join(", ")
  }), ${f.cities.length} cities in ${f.countries.length} countries (relation "country"), templates (train / held-out) and the two-hop relation.
- train.jsonl: ${w.train.length} training instances, every fact x every training template${
    bio ? ` and ${bio.count} biographies (${bio.per} per person)` : ""
  }, shuffled:
  {"id", "text", "subject", "relation", "object", "template"}; text = prompt + " " + object + " ."${
    bio
      ? `;
  a biography ("b…" ids, relation "biography", template -1, "facts" [{"relation", "object"}] in the order
  stated) mentions its person once and states 3 or more of its facts in a random order, in phrasings of
  their own (facts.json "biography"), with distractor clauses between; ${bio.records} record lines per person
  ("r…" ids, relation "record": the name followed directly by its six objects, ${
        bio.order === "shuffled" ? "each copy in its own order" : "in a fixed order"
      }) and ${bio.cues} cue lines per
  fact ("c…" ids: a relation cue word, the name, the object), in which the subject's last token itself
  predicts an object; ${
        Math.round(bio.opener * 100)
      }% of all lines start with an opener ("opener": "Yesterday ,", "Friends say that", ...), so that
  subjects do not sit at fixed positions (world v3: see src/io/world_bio.ts)`
      : ""
  }.
- train_prompts.jsonl: the same ${w.trainPrompts.length} prompts without the answer (same ids), unshuffled:
  {"id", "prompt", "subject", "relation", "answer", "template"}.
- heldout.jsonl: ${w.heldout.length} prompts from held-out paraphrase templates (never in training), same fields.
- twohop.jsonl: ${w.twoHop.length} two-hop prompts (country of the birthplace), never in training, same fields.
- counterfact.json: ${w.counterfact.length} counterfactual rewrites in EasyEdit's counterfact-edit.json layout, plus
  "portability" {"prompt", "ground_truth"} on birthplace rewrites and "relation".
- zsre.json: the same ${w.zsre.length} rewrites as questions, in MEND's zsRE layout (plus "relation"); "loc" is a
  question about an unedited fact (not an NQ question).
- tokenizer.json: byte-level BPE in which every world word (with a leading space; capitalised words also
  without) is one token; other text falls back to the 256 byte symbols.
- tokenizer_config.json: the tokenizer's convention, \`add_bos_token\` with \`<|endoftext|>\` as BOS: every
  training instance starts with it, so engram's \`--bos auto\` prepends it to prompts.
`;
}

/** The files of `world`'s folder (name -> content), byte-for-byte what {@link writeWorld} writes. */
export function worldFiles(world: World): Record<string, string> {
  return {
    "README.md": readme(world),
    "facts.json": json(world.facts),
    "train.jsonl": jsonl(world.train),
    "train_prompts.jsonl": jsonl(world.trainPrompts),
    "heldout.jsonl": jsonl(world.heldout),
    "twohop.jsonl": jsonl(world.twoHop),
    "counterfact.json": json(world.counterfact),
    "zsre.json": json(world.zsre),
    "tokenizer.json": json(world.tokenizer),
    "tokenizer_config.json": json(worldTokenizerConfig()),
  };
}

/**
 * Writes `world` to folder `dir` atomically (see writeDirAtomic). Throws EngramError code "exists" when
 * `dir` exists and `overwrite` is not set.
 */
export async function writeWorld(
  dir: string,
  world: World,
  opts: { overwrite?: boolean } = {},
): Promise<void> {
  await writeDirAtomic(dir, worldFiles(world), opts);
}

function worldError(message: string, file: string, field?: string): EngramError {
  return new EngramError("world", message, { file, field });
}

async function readText(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw worldError("file not found", path);
    throw worldError(`cannot read file: ${(e as Error).message}`, path);
  }
}

function parseJson(text: string, path: string, field?: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw worldError(`not valid JSON: ${(e as Error).message}`, path, field);
  }
}

function checkFields(
  rec: unknown,
  fields: Record<string, "string" | "number" | "object">,
  path: string,
  where: string,
) {
  if (typeof rec !== "object" || rec === null || Array.isArray(rec)) {
    throw worldError("not a JSON object", path, where);
  }
  for (const [k, t] of Object.entries(fields)) {
    const v = (rec as Record<string, unknown>)[k];
    if (typeof v !== t || v === null) throw worldError(`'${k}' must be a ${t}`, path, where);
  }
}

/** Reads a JSONL file of objects that each have `fields` (one object per non-empty line). */
export async function readJsonl<T>(
  path: string,
  fields: Record<string, "string" | "number" | "object"> = {},
): Promise<T[]> {
  const text = await readText(path);
  const out: T[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    const rec = parseJson(line, path, `line ${i + 1}`);
    checkFields(rec, fields, path, `line ${i + 1}`);
    out.push(rec as T);
  });
  return out;
}

async function readJsonArray<T>(
  path: string,
  fields: Record<string, "string" | "number" | "object">,
): Promise<T[]> {
  const v = parseJson(await readText(path), path);
  if (!Array.isArray(v)) throw worldError("must hold a JSON array", path);
  v.forEach((rec, i) => checkFields(rec, fields, path, `record ${i}`));
  return v as T[];
}

/** Reads facts.json of world folder `dir`. */
export async function readWorldFacts(dir: string): Promise<WorldFacts> {
  const path = join(dir, "facts.json");
  const v = parseJson(await readText(path), path);
  checkFields(
    v,
    { format: "string", version: "number", seed: "number", facts: "object", city_country: "object" },
    path,
    "facts",
  );
  const f = v as WorldFacts;
  if (f.format !== "engram-world") throw worldError(`format must be "engram-world"`, path, "format");
  if (f.version !== WORLD_VERSION && f.version !== 3) {
    throw worldError(`unsupported version ${f.version}`, path, "version");
  }
  for (
    const k of [
      "subjects",
      "first_names",
      "last_names",
      "cities",
      "countries",
      "relations",
      "two_hop",
    ] as const
  ) {
    if (!Array.isArray(f[k])) throw worldError("must be an array", path, k);
  }
  // Every element is checked: the vocabulary, templates and prompts are built from them.
  const strings = (v: unknown, field: string) => {
    if (!Array.isArray(v)) throw worldError("must be an array of strings", path, field);
    v.forEach((x, i) => {
      if (typeof x !== "string") throw worldError(`element ${i} must be a string`, path, field);
    });
  };
  for (const k of ["subjects", "first_names", "last_names", "cities", "countries"] as const) strings(f[k], k);
  f.relations.forEach((r, i) => {
    const where = `relations[${i}]`;
    checkFields(r, { id: "string", subject_class: "string", object_class: "string" }, path, where);
    for (const k of ["objects", "train_templates", "heldout_templates"] as const) {
      strings((r as unknown as Record<string, unknown>)[k], `${where}.${k}`);
    }
  });
  f.two_hop.forEach((t, i) => {
    const where = `two_hop[${i}]`;
    checkFields(t, { id: "string", first: "string", second: "string" }, path, where);
    strings((t as unknown as Record<string, unknown>).templates, `${where}.templates`);
  });
  const stringMap = (v: unknown, field: string) => {
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (typeof x !== "string") throw worldError(`'${excerptKey(k)}' must map to a string`, path, field);
    }
  };
  if (Array.isArray(f.city_country)) throw worldError("must be an object", path, "city_country");
  stringMap(f.city_country, "city_country");
  if (Array.isArray(f.facts)) throw worldError("must be an object", path, "facts");
  for (const [subj, rels] of Object.entries(f.facts)) {
    if (typeof rels !== "object" || rels === null || Array.isArray(rels)) {
      throw worldError(`'${excerptKey(subj)}' must map to an object`, path, "facts");
    }
    stringMap(rels, `facts.${excerptKey(subj)}`);
  }
  return f;
}

function excerptKey(k: string): string {
  return k.length > 40 ? k.slice(0, 40) + "…" : k;
}

const PROMPT_FIELDS = {
  id: "string",
  prompt: "string",
  subject: "string",
  relation: "string",
  answer: "string",
} as const;

/** Reads every file of world folder `dir` (written by {@link writeWorld}). */
export async function readWorld(dir: string): Promise<World> {
  const facts = await readWorldFacts(dir);
  const train = await readJsonl<WorldTrainInstance>(join(dir, "train.jsonl"), {
    id: "string",
    text: "string",
    subject: "string",
    relation: "string",
    object: "string",
    template: "number",
  });
  const trainPrompts = await readJsonl<WorldPrompt>(join(dir, "train_prompts.jsonl"), PROMPT_FIELDS);
  const heldout = await readJsonl<WorldPrompt>(join(dir, "heldout.jsonl"), PROMPT_FIELDS);
  const twoHop = await readJsonl<WorldPrompt>(join(dir, "twohop.jsonl"), PROMPT_FIELDS);
  const counterfact = await readJsonArray<WorldCounterfactRecord>(join(dir, "counterfact.json"), {
    prompt: "string",
    target_new: "string",
    subject: "string",
    ground_truth: "string",
    rephrase_prompt: "string",
    locality_prompt: "string",
    locality_ground_truth: "string",
  });
  const zsre = await readJsonArray<WorldZsreRecord>(join(dir, "zsre.json"), {
    subject: "string",
    src: "string",
    alt: "string",
    rephrase: "string",
    loc: "string",
    loc_ans: "string",
  });
  const tpath = join(dir, "tokenizer.json");
  const tokenizer = parseJson(await readText(tpath), tpath);
  checkFields(tokenizer, { model: "object" }, tpath, "tokenizer");
  return {
    facts,
    train,
    trainPrompts,
    heldout,
    twoHop,
    counterfact,
    zsre,
    tokenizer: tokenizer as Record<string, unknown>,
  };
}

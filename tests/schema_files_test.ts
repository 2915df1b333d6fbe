/**
 * The JSON Schema files in schemas/ are current (scripts/gen_schemas.ts --check), each input schema's
 * JSON Schema accepts the fixtures its zod schema accepts and refuses what it refuses (checked by a small
 * JSON Schema validator written here, independent of zod), and a schema-invalid input file through the
 * CLI exits 1 with one line naming the file and the JSON path, without a stack trace.
 */
import assert from "node:assert/strict";
import { INPUT_SCHEMAS } from "../src/schema/inputs.ts";
import { jsonPath, parseInput } from "../src/schema/validate.ts";
import { InputError } from "../src/errors.ts";
import { schemaFiles } from "../scripts/gen_schemas.ts";
import { engram } from "./_util.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const WORLD = `${ROOT}fixtures/world/`;

Deno.test("schemas/ is current: gen_schemas.ts --check exits 0", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-P", `${ROOT}scripts/gen_schemas.ts`, "--check"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
});

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Schema = Record<string, unknown>;

/** Errors of `v` against the subset of JSON Schema (2020-12) zod writes; [] when valid. */
function check(s: Schema, v: Json, path = "$"): string[] {
  if (s.anyOf) {
    const all = (s.anyOf as Schema[]).map((b) => check(b, v, path));
    return all.some((e) => e.length === 0) ? [] : [`${path}: no anyOf branch matches`];
  }
  const errs: string[] = [];
  const kind = v === null ? "null" : Array.isArray(v) ? "array" : typeof v;
  if (s.type !== undefined) {
    const types = (Array.isArray(s.type) ? s.type : [s.type]) as string[];
    const ok = types.some((t) => t === kind || (t === "integer" && Number.isInteger(v)));
    if (!ok) return [`${path}: ${kind}, not ${types.join(" or ")}`];
  }
  if ("const" in s && s.const !== v) errs.push(`${path}: not the const`);
  if (s.enum && !(s.enum as Json[]).includes(v)) errs.push(`${path}: not in enum`);
  if (typeof v === "number") {
    if (typeof s.minimum === "number" && v < s.minimum) errs.push(`${path}: below minimum`);
    if (typeof s.maximum === "number" && v > s.maximum) errs.push(`${path}: above maximum`);
  }
  if (typeof v === "string" && typeof s.minLength === "number" && v.length < s.minLength) {
    errs.push(`${path}: too short`);
  }
  if (Array.isArray(v)) {
    if (typeof s.minItems === "number" && v.length < s.minItems) errs.push(`${path}: too few items`);
    if (typeof s.maxItems === "number" && v.length > s.maxItems) errs.push(`${path}: too many items`);
    const prefix = (s.prefixItems ?? []) as Schema[];
    v.forEach((x, i) => {
      const item = i < prefix.length ? prefix[i] : s.items as Schema | undefined;
      if (item) errs.push(...check(item, x, `${path}[${i}]`));
    });
  }
  if (kind === "object") {
    const o = v as Record<string, Json>;
    const props = (s.properties ?? {}) as Record<string, Schema>;
    for (const r of (s.required ?? []) as string[]) if (!(r in o)) errs.push(`${path}.${r}: required`);
    for (const [k, x] of Object.entries(o)) {
      if (k in props) errs.push(...check(props[k], x, `${path}.${k}`));
      else if (s.additionalProperties === false) errs.push(`${path}.${k}: not allowed`);
      else if (typeof s.additionalProperties === "object") {
        errs.push(...check(s.additionalProperties as Schema, x, `${path}.${k}`));
      }
    }
  }
  return errs;
}

const lines = (file: string) =>
  Deno.readTextFileSync(file).split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as Json);

/** Valid examples of every input schema (the fixtures), and one invalid value of each. */
const EXAMPLES: Record<string, { good: Json[]; bad: Json }> = {
  hparams_rome: {
    good: [JSON.parse(Deno.readTextFileSync(`${WORLD}model/hparams/rome.json`))],
    bad: { v_lr: "x" },
  },
  hparams_memit: {
    good: [JSON.parse(Deno.readTextFileSync(`${WORLD}model/hparams/memit.json`))],
    bad: { layers: [] },
  },
  hparams_alphaedit: {
    good: [{ nullspace_threshold: 0.02, L2: 10, P_loc: "x", layers: [0] }],
    bad: { L2: -1 },
  },
  hparams_emmet: { good: [{ emmet_lambda: 0.1, alg_name: "EMMET" }], bad: { emmet_lambda: true } },
  hparams_ft: {
    good: [{ norm_constraint: false, objective_optimization: "target_new" }],
    bad: { num_steps: 0 },
  },
  hparams_kn: { good: [{ p: 0.3, refine: true, lr_scale: 1 }], bad: { p: 2 } },
  requests: {
    good: [
      JSON.parse(Deno.readTextFileSync(`${WORLD}counterfact.json`)),
      JSON.parse(Deno.readTextFileSync(`${WORLD}zsre.json`)),
    ],
    bad: [{ prompt: "{} is in", subject: "A", target_new: 3 }],
  },
  request_record: {
    good: [
      ...(JSON.parse(Deno.readTextFileSync(`${WORLD}counterfact.json`)) as Json[]).slice(0, 2),
      ...(JSON.parse(Deno.readTextFileSync(`${WORLD}zsre.json`)) as Json[]).slice(0, 2),
    ],
    bad: { src: "x", subject: 1, alt: "y" },
  },
  facts: { good: [lines(`${WORLD}twohop.jsonl`).slice(0, 5)], bad: [{ prompt: "x" }] },
  train_config: {
    good: [JSON.parse(Deno.readTextFileSync(`${WORLD}train_config.json`))],
    bad: { corpus: "c.jsonl", tokenizer: "t", out: "o", model: { n_layer: 0 } },
  },
  corpus_record: { good: lines(`${WORLD}train.jsonl`).slice(0, 3), bad: { id: 1.5, text: "a" } },
  hf_config: {
    good: [
      JSON.parse(Deno.readTextFileSync(`${WORLD}model/config.json`)),
      ...[...Deno.readDirSync(`${ROOT}fixtures/models`)].filter((e) => e.isDirectory).flatMap((e) => {
        try {
          return [JSON.parse(Deno.readTextFileSync(`${ROOT}fixtures/models/${e.name}/config.json`))];
        } catch {
          return [];
        }
      }),
    ],
    bad: { model_type: "llama", num_hidden_layers: 0, rope_scaling: { factor: "2" } },
  },
  engram_stats: {
    good: [JSON.parse(Deno.readTextFileSync(`${WORLD}model/engram_stats.json`))],
    bad: { corpus: "" },
  },
  fact_record: {
    good: lines(`${WORLD}heldout.jsonl`).slice(0, 3),
    bad: { prompt: "a", subject: "a", id: 1.5 },
  },
};

Deno.test("every input schema: its JSON Schema accepts the fixtures zod accepts and refuses the bad value", () => {
  const files = schemaFiles();
  assert.deepEqual(Object.keys(EXAMPLES).sort(), Object.keys(INPUT_SCHEMAS).sort(), "an example per schema");
  for (const [name, schema] of Object.entries(INPUT_SCHEMAS)) {
    const json = JSON.parse(files.get(`${name}.json`)!) as Schema;
    const { good, bad } = EXAMPLES[name];
    for (const [i, g] of good.entries()) {
      assert.doesNotThrow(() => parseInput(schema, g, { file: `${name}#${i}` }), `${name} #${i} (zod)`);
      assert.deepEqual(check(json, g), [], `${name} #${i} (JSON Schema)`);
    }
    assert.throws(() => parseInput(schema, bad, { file: "bad.json" }), InputError, `${name} bad (zod)`);
    assert.notDeepEqual(check(json, bad), [], `${name} bad (JSON Schema)`);
  }
});

Deno.test("parseInput: the file, the record and the JSON path of the first problem", () => {
  const schema = INPUT_SCHEMAS.request_record;
  assert.throws(
    () =>
      parseInput(schema, { prompt: "{} is in", subject: "A", target_new: 3 }, { file: "r.json", record: 3 }),
    (e: Error) => {
      assert.ok(e instanceof InputError);
      assert.equal(
        e.message,
        `r.json: record 3: $.target_new: expected a string (or {"str": string}), got 3`,
      );
      assert.equal(e.file, "r.json");
      assert.equal(e.field, "$.target_new");
      return true;
    },
  );
  // Inside a union of forms the deepest problem is named, not the union.
  assert.throws(
    () =>
      parseInput(schema, {
        prompt: "{} is in",
        subject: "A",
        target_new: "B",
        portability: [{ prompt: "p", ground_truth: "g" }, { prompt: 5, ground_truth: "g" }],
      }, { file: "r.json" }),
    /r\.json: \$\.portability\[1\]\.prompt: expected a string, got 5$/,
  );
  assert.throws(
    () => parseInput(INPUT_SCHEMAS.hparams_kn, { p: 0.2, stepz: 3 }, { file: "kn.json" }),
    /kn\.json: \$\.stepz: unknown key 'stepz'$/,
  );
  assert.throws(
    () =>
      parseInput(INPUT_SCHEMAS.fact_record, { prompt: "a" }, {
        file: "f.jsonl",
        record: 7,
        recordName: "line",
      }),
    /f\.jsonl: line 7: \$\.subject: missing, expected a string$/,
  );
  assert.equal(jsonPath(["a", 0, "odd key", "b"]), '$.a[0]["odd key"].b');
});

Deno.test("CLI: a schema-invalid hparams, requests, facts, config.json, engram_stats.json or train config exits 1 with one line naming file and path", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const model = `${WORLD}model`;
    await Deno.writeTextFile(`${tmp}/hp.json`, JSON.stringify({ layers: [0, "one"] }));
    await Deno.writeTextFile(
      `${tmp}/req.json`,
      JSON.stringify([{ prompt: "{} is in", subject: "Pilvun", target_new: "Sunmere" }, {
        requested_rewrite: { prompt: "{} is in", subject: "Pilvun", target_new: { str: 7 } },
      }]),
    );
    await Deno.writeTextFile(
      `${tmp}/facts.json`,
      JSON.stringify([{ prompt: "Pilvun is in", subject: ["Pilvun"] }]),
    );
    const cases: [string[], RegExp][] = [
      [
        [
          "edit",
          "--model",
          model,
          "--method",
          "rome",
          "--requests",
          `${WORLD}counterfact.json`,
          "--limit",
          "1",
          "--hparams",
          `${tmp}/hp.json`,
          "--out",
          `${tmp}/o1`,
        ],
        /hp\.json.*hparam 'layers' must be a non-empty list of layer indices, got .* \(at \$\.layers\[1\]\)/,
      ],
      [
        ["edit", "--model", model, "--method", "rome", "--requests", `${tmp}/req.json`, "--out", `${tmp}/o2`],
        /req\.json: record 1: \$\.requested_rewrite\.target_new\.str: expected a string, got 7/,
      ],
      [
        ["trace", "--model", model, "--facts", `${tmp}/facts.json`],
        /facts\.json: record 0: \$\.subject: expected a string, got \["Pilvun"\]/,
      ],
    ];
    // A model folder whose config.json or engram_stats.json is schema-invalid (the weights linked).
    for (const bad of ["config", "stats"]) {
      const dir = `${tmp}/model_${bad}`;
      await Deno.mkdir(dir);
      for (const f of ["model.safetensors", "tokenizer.json", "tokenizer_config.json"]) {
        await Deno.symlink(`${model}/${f}`, `${dir}/${f}`);
      }
      const cfg = JSON.parse(await Deno.readTextFile(`${model}/config.json`));
      if (bad === "config") cfg.n_head = 0;
      await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(cfg));
      await Deno.writeTextFile(
        `${dir}/engram_stats.json`,
        JSON.stringify(
          bad === "stats"
            ? { corpus: "../train.jsonl", eos_delimit: "yes" }
            : { corpus: `${WORLD}train.jsonl` },
        ),
      );
    }
    cases.push(
      [
        ["predict", "--model", `${tmp}/model_config`, "--text", "Pilvun is in"],
        /model_config\/config\.json, field 'n_head': must be a positive integer, got 0/,
      ],
      [
        [
          "edit",
          "--model",
          `${tmp}/model_stats`,
          "--method",
          "rome",
          "--requests",
          `${WORLD}counterfact.json`,
          "--out",
          `${tmp}/o3`,
        ],
        /model_stats\/engram_stats\.json: \$\.eos_delimit: expected true or false, got "yes"/,
      ],
    );
    await Deno.writeTextFile(
      `${tmp}/train.json`,
      JSON.stringify({
        corpus: `${WORLD}train.jsonl`,
        tokenizer: WORLD,
        out: `${tmp}/t`,
        model: { n_layer: 0 },
      }),
    );
    cases.push([
      ["train", "--config", `${tmp}/train.json`],
      /train\.json, field 'model\.n_layer': must be an integer >= 1, got 0/,
    ]);
    for (const [args, re] of cases) {
      const r = await engram(...args);
      assert.equal(r.code, 1, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("mod.ts schema functions: validateInput, validateOutput and jsonSchema agree with the schema files", async () => {
  const { INPUT_SCHEMA_NAMES, OUTPUT_SCHEMA_NAMES, jsonSchema, validateInput, validateOutput } = await import(
    "../mod.ts"
  );
  for (const name of [...INPUT_SCHEMA_NAMES, ...OUTPUT_SCHEMA_NAMES]) {
    const file = JSON.parse(await Deno.readTextFile(new URL(`../schemas/${name}.json`, import.meta.url)));
    assert.deepEqual(jsonSchema(name), file, name);
  }
  assert.throws(() => jsonSchema("no-such-schema"), InputError);
  const hp = validateInput("hparams_rome", { layers: [0], fact_token: "last" }, { file: "rome.json" });
  assert.deepEqual(hp, { layers: [0], fact_token: "last" });
  assert.throws(
    () => validateInput("hparams_rome", { layers: "0" }, { file: "rome.json" }),
    (e: Error) => e instanceof InputError && /rome\.json/.test(e.message) && /\$\.layers/.test(e.message),
  );
  // A document engram wrote (committed study summary): valid as written, invalid once a key is renamed.
  const doc = JSON.parse(
    await Deno.readTextFile(new URL("../docs/attribution-world/summary.json", import.meta.url)),
  );
  assert.equal(validateOutput(doc, { file: "summary.json" }), "engram-attribution-study");
  const bad = structuredClone(doc);
  bad.schema = 3;
  assert.throws(() => validateOutput(bad, { file: "summary.json" }), InputError);
  delete bad.schema;
  assert.throws(() => validateOutput(bad), InputError);
  assert.throws(() => validateOutput({ ...doc, schema: "engram-nothing/1" }), InputError);
  const wrong = structuredClone(doc);
  delete wrong.findings;
  assert.throws(
    () => validateOutput(wrong, { file: "summary.json" }),
    (e: Error) => e instanceof InputError && /summary\.json/.test(e.message) && /findings/.test(e.message),
  );
});

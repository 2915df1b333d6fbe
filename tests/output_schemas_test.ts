/**
 * Every JSON document engram writes, produced for real on the fixture world, parsed and validated against
 * its registered zod schema (src/schema/outputs.ts): `schema` names the registered schema, the layout is
 * strict (unknown keys fail), and every key, nested too, is snake_case.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { engram } from "./_util.ts";
import { OUTPUT_SCHEMAS } from "../src/schema/outputs.ts";
import { nonSnakeKeys, SNAKE_KEY } from "../src/schema/common.ts";

const M = new URL("../fixtures/world/model", import.meta.url).pathname;
const W = new URL("../fixtures/world/", import.meta.url).pathname;
const P = "Narnux Zava was born in";

/** Checks one document: its `schema` is registered, it validates, and its keys are snake_case. */
export function checkDocument(what: string, doc: unknown, expected: string, dataKeys: string[] = []): void {
  const tag = (doc as { schema?: unknown })?.schema;
  assert.equal(typeof tag, "string", `${what}: no "schema" field`);
  const m = /^(engram-[a-z0-9-]+)\/(\d+)$/.exec(tag as string);
  assert.ok(m, `${what}: schema ${tag} is not engram-<name>/<major>`);
  assert.equal(m[1], expected, `${what}: schema ${tag}`);
  const schema = OUTPUT_SCHEMAS[m[1]];
  assert.ok(schema, `${what}: ${m[1]} is not in OUTPUT_SCHEMAS`);
  const r = schema.safeParse(doc);
  assert.ok(r.success, `${what} does not match ${m[1]}: ${r.error?.message.slice(0, 2000)}`);
  const bad = nonSnakeKeys(doc, dataKeys);
  assert.deepEqual(bad, [], `${what}: keys not snake_case: ${bad.join(", ")}`);
}

Deno.test("the snake_case check and the strict schemas fail on what they must", () => {
  assert.ok(SNAKE_KEY.test("p_clean") && SNAKE_KEY.test("ci95") && !SNAKE_KEY.test("lowScore"));
  assert.deepEqual(nonSnakeKeys({ a: [{ b_c: 1, dE: { fG: 2 } }] }), [".a[].dE", ".a[].dE.fG"]);
  assert.deepEqual(nonSnakeKeys({ by: { Rel: { x: 1, yZ: 2 } } }, [".by"]), [".by.*.yZ"]);
  const doc = {
    schema: "engram-predict/1",
    prompt_ids: [1],
    top: [{ id: 1, token: "a", logprob: -1 }],
    logprobs: [0],
  };
  checkDocument("good predict", doc, "engram-predict");
  assert.throws(
    () => checkDocument("extra key", { ...doc, extraKey: 1 }, "engram-predict"),
    /does not match/,
  );
  assert.throws(() => checkDocument("old layout", { ...doc, ids: [1] }, "engram-predict"), /does not match/);
  assert.throws(() => checkDocument("wrong tag", { ...doc, schema: "engram-predict/2" }, "engram-predict"));
});

/** A one-case localization study of FT-1 at layer 0 (2 FT steps). */
const LOCALIZATION = (d: string) => [
  "study",
  "localization",
  "--model",
  M,
  "--data",
  join(W, "counterfact.json"),
  "--out",
  join(d, "loc"),
  "--limit",
  "1",
  "--methods",
  "ft-1",
  "--objectives",
  "error_injection",
  "--layers",
  "0",
  "--samples",
  "2",
  "--hparams",
  `ft-1=${join(d, "ft1.json")}`,
];

/** A command run: its argv, the documents it writes (stdout, or files under its folder). */
interface Case {
  name: string;
  /** Writes what the command reads, under the run's folder. */
  setup?: (dir: string) => Promise<void>;
  args: (dir: string) => string[];
  stdout?: { schema: string; dataKeys?: string[] };
  files?: Array<{ path: string; schema: string; dataKeys?: string[] }>;
  /** Further checks of the run's output. */
  check?: (r: { stdout: string; stderr: string }) => void;
}

const CASES: Case[] = [
  {
    name: "predict",
    args: () => ["predict", "--model", M, "--text", P, "--top", "3", "--json"],
    stdout: { schema: "engram-predict" },
  },
  {
    name: "generate",
    args: () => ["generate", "--model", M, "--text", P, "--max-tokens", "2", "--logprobs", "--json"],
    stdout: { schema: "engram-generate" },
  },
  {
    name: "trace (one prompt)",
    args: (d) => [
      "trace",
      "--model",
      M,
      "--prompt",
      P,
      "--subject",
      "Narnux Zava",
      "--target",
      "Frostwick",
      "--kind",
      "all",
      "--samples",
      "2",
      "--window",
      "1",
      "--json",
      "--out",
      join(d, "t1"),
    ],
    stdout: { schema: "engram-trace" },
    files: [{ path: "t1/trace.json", schema: "engram-trace" }],
  },
  {
    name: "trace --facts",
    args: (d) => [
      "trace",
      "--model",
      M,
      "--facts",
      join(W, "train_prompts.jsonl"),
      "--limit",
      "2",
      "--kind",
      "hidden",
      "--samples",
      "2",
      "--window",
      "1",
      "--json",
      "--out",
      join(d, "tf"),
    ],
    stdout: { schema: "engram-trace-facts" },
    files: [{ path: "tf/average.json", schema: "engram-trace-facts" }],
  },
  {
    name: "eval (one method)",
    args: (d) => [
      "eval",
      "--method",
      "ft-l",
      "--model",
      M,
      "--data",
      join(W, "counterfact.json"),
      "--limit",
      "1",
      "--hparams",
      '{"num_steps": 2}',
      "--fluency-len",
      "4",
      "--per-case",
      "--json",
      "--out",
      join(d, "e1.json"),
    ],
    stdout: { schema: "engram-eval" },
    files: [{ path: "e1.json", schema: "engram-eval" }],
  },
  {
    name: "eval (two methods)",
    args: (d) => [
      "eval",
      "--method",
      "ft-l,ft",
      "--model",
      M,
      "--data",
      join(W, "counterfact.json"),
      "--limit",
      "1",
      "--hparams",
      '{"num_steps": 1}',
      "--fluency-len",
      "4",
      "--json",
      "--out",
      join(d, "e2.json"),
    ],
    stdout: { schema: "engram-eval" },
    files: [{ path: "e2.json", schema: "engram-eval" }],
  },
  {
    name: "eval --mode sequential",
    setup: (d) => Deno.writeTextFile(join(d, "ft2.json"), JSON.stringify({ num_steps: 2 })),
    args: (d) => [
      "eval",
      "--mode",
      "sequential",
      "--every",
      "1",
      "--method",
      "ft-l",
      "--hparams",
      join(d, "ft2.json"),
      "--model",
      M,
      "--data",
      join(W, "counterfact.json"),
      "--limit",
      "2",
      "--json",
      "--out",
      join(d, "seq"),
    ],
    stdout: { schema: "engram-eval-sequential" },
    files: [
      { path: "seq/summary.json", schema: "engram-eval-sequential-summary" },
      { path: "seq/ft-l/curve.json", schema: "engram-eval-sequential-curve", dataKeys: [".hparams"] },
      { path: "seq/ft-l/meta.json", schema: "engram-eval-sequential-meta", dataKeys: [".hparams"] },
    ],
  },
  {
    name: "neurons",
    args: () => [
      "neurons",
      "--model",
      M,
      "--prompt",
      P,
      "--prompt",
      "Narnux Zava is a native of",
      "--target",
      "Frostwick",
      "--steps",
      "2",
      "--random-trials",
      "1",
      "--min-count",
      "1",
      "--json",
    ],
    stdout: { schema: "engram-neurons" },
  },
  {
    name: "attribute",
    args: () => [
      "attribute",
      "--model",
      M,
      "--train",
      join(W, "train.jsonl"),
      "--prompt",
      P,
      "--target",
      "Frostwick",
      "--limit",
      "3",
      "--top",
      "2",
      "--json",
    ],
    stdout: { schema: "engram-attribute", dataKeys: [".top[].meta"] },
  },
  {
    name: "atp",
    args: () => [
      "atp",
      "--model",
      M,
      "--prompt",
      P,
      "--subject",
      "Narnux Zava",
      "--target",
      "Frostwick",
      "--top",
      "3",
      "--json",
    ],
    stdout: { schema: "engram-atp" },
  },
  {
    name: "logit-lens",
    args: () => ["logit-lens", "--model", M, "--text", P, "--top-k", "2", "--target", "Frostwick", "--json"],
    stdout: { schema: "engram-logit-lens" },
  },
  {
    name: "recommend-layers",
    args: (d) => [
      "recommend-layers",
      "--model",
      M,
      "--facts",
      join(W, "train_prompts.jsonl"),
      "--limit",
      "2",
      "--samples",
      "2",
      "--trace-window",
      "1",
      "--json",
      "--out",
      join(d, "rec"),
    ],
    stdout: { schema: "engram-recommend-layers" },
    files: [{ path: "rec/recommend.json", schema: "engram-recommend-layers" }],
  },
  {
    name: "edit",
    setup: (d) => Deno.writeTextFile(join(d, "ftl2.json"), JSON.stringify({ num_steps: 2 })),
    args: (d) => [
      "edit",
      "--method",
      "ft-l",
      "--model",
      M,
      "--prompt",
      "{} was born in",
      "--subject",
      "Narnux Zava",
      "--target",
      "Sunmere",
      "--ground-truth",
      "Frostwick",
      "--hparams",
      join(d, "ftl2.json"),
      "--out",
      join(d, "edited"),
      "--json",
    ],
    stdout: { schema: "engram-edit" },
    files: [
      { path: "edited.editlog/log.json", schema: "engram-edit-log" },
      { path: "edited/engram_edit.json", schema: "engram-edit-link" },
    ],
  },
  {
    name: "revert --check",
    args: (d) => ["revert", "--check", "--model", join(d, "edited"), "--json"],
    stdout: { schema: "engram-revert-check" },
  },
  {
    name: "accuracy",
    args: () => ["accuracy", "--model", M, "--world", W, "--limit", "3", "--json"],
    stdout: { schema: "engram-accuracy", dataKeys: [".*.by_group"] },
  },
  { name: "info", args: () => ["info", "--json"], stdout: { schema: "engram-info" } },
  { name: "info --adapters", args: () => ["info", "--adapters"], stdout: { schema: "engram-info-adapters" } },
  { name: "version", args: () => ["version", "--json"], stdout: { schema: "engram-version" } },
  { name: "demo", args: () => ["demo", "--json"], stdout: { schema: "engram-demo" } },
  {
    name: "train",
    setup: async (d) => {
      const config = {
        corpus: join(W, "train.jsonl"),
        tokenizer: W,
        out: join(d, "trained"),
        model: { n_layer: 1, n_head: 2, n_embd: 8, n_positions: 24 },
        epochs: 1,
        batch_size: 4,
        lr: 0.001,
        seed: 1,
      };
      await Deno.writeTextFile(join(d, "train.json"), JSON.stringify(config));
    },
    args: (d) => ["train", "--config", join(d, "train.json"), "--max-steps", "1", "--json"],
    stdout: { schema: "engram-train" },
  },
  {
    name: "train --clean",
    args: (d) => ["train", "--config", join(d, "train.json"), "--clean", "--json"],
    stdout: { schema: "engram-train-clean" },
  },
  {
    name: "study attribution",
    setup: async (d) => {
      // A small pool: the instances of one subject among the first lines, and 2 random others.
      const lines = (await Deno.readTextFile(join(W, "train.jsonl"))).split("\n").filter((l) => l.trim());
      const subject = "Gurnur Rulex";
      const mine = lines.filter((l) => JSON.parse(l).subject === subject).slice(0, 3);
      await Deno.writeTextFile(
        join(d, "ia_train.jsonl"),
        [...mine, ...lines.filter((l) => JSON.parse(l).subject !== subject).slice(0, 3)].join("\n") + "\n",
      );
      await Deno.writeTextFile(
        join(d, "ia_tests.jsonl"),
        JSON.stringify({
          prompt: "Gurnur Rulex was born in",
          answer: "Sunmere",
          subject,
          relation: "birthplace",
        }) +
          "\n",
      );
    },
    args: (d) => [
      "study",
      "attribution",
      "--model",
      M,
      "--train",
      join(d, "ia_train.jsonl"),
      "--prompts",
      join(d, "ia_tests.jsonl"),
      "--tests",
      "1",
      "--pool",
      "2",
      "--k",
      "2",
      "--steps",
      "2",
      "--ft-steps",
      "1",
      "--draws",
      "1",
      "--ks",
      "1,2",
      "--seeds",
      "2",
      "--out",
      join(d, "attr"),
      "--json",
    ],
    stdout: { schema: "engram-attribution-study" },
    files: [{ path: "attr/summary.json", schema: "engram-attribution-study" }],
  },
  {
    name: "study localization",
    setup: (d) => Deno.writeTextFile(join(d, "ft1.json"), JSON.stringify({ num_steps: 2 })),
    args: (d) => [...LOCALIZATION(d), "--json"],
    stdout: { schema: "engram-study-localization" },
    files: [
      { path: "loc/summary.json", schema: "engram-study-localization" },
      { path: "loc/study.json", schema: "engram-study-localization-header", dataKeys: [".settings.hparams"] },
      { path: "loc/cases/case_0.json", schema: "engram-study-localization-case" },
    ],
  },
  {
    // The snake_case case files are read back: the second run studies nothing again.
    name: "study localization (resumed)",
    args: (d) => LOCALIZATION(d),
    check: (r) => assert.match(r.stdout, /resumed study .*\(0 run now\)/),
  },
  {
    name: "bench",
    args: (d) => ["bench", "--quick", "--sections", "readback", "--json", "--out", join(d, "bench.json")],
    // raw holds the sections' measurements, keyed by variant names (wide16x8) where they are maps.
    stdout: { schema: "engram-bench", dataKeys: [".raw.matmul.rows[].ms", ".raw.matmul.rows[].gflops"] },
    files: [{ path: "bench.json", schema: "engram-bench" }],
  },
  {
    // compare reads this run's record and a committed engram-bench/2 one (camelCase) side by side.
    name: "bench compare (/3 and /2)",
    args: (d) => [
      "bench",
      "compare",
      join(d, "bench.json"),
      new URL("../benchmarks/results/llvmpipe-2core-2026-12-01-b.json", import.meta.url).pathname,
      "--svg",
      join(d, "cmp.svg"),
    ],
    check: (r) =>
      assert.match(r.stdout, /^\| figure \| unit \| bench\.json .*\| llvmpipe-2core-2026-12-01-b\.json/),
  },
];

Deno.test({
  name: "every command's JSON output matches its registered schema",
  sanitizeResources: false,
  fn: async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "engram-schemas-" });
    try {
      for (const c of CASES) {
        await t.step(c.name, async () => {
          await c.setup?.(dir);
          const r = await engram(...c.args(dir));
          assert.equal(r.code, 0, `${c.name}: ${r.stderr}`);
          if (c.stdout) {
            checkDocument(`${c.name} stdout`, JSON.parse(r.stdout), c.stdout.schema, c.stdout.dataKeys);
          }
          c.check?.(r);
          for (const f of c.files ?? []) {
            const doc = JSON.parse(await Deno.readTextFile(join(dir, f.path)));
            checkDocument(`${c.name} ${f.path}`, doc, f.schema, f.dataKeys);
          }
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

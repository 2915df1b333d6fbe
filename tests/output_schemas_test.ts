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

/** A command run: its argv, the documents it writes (stdout, or files under its folder). */
interface Case {
  name: string;
  args: (dir: string) => string[];
  stdout?: { schema: string; dataKeys?: string[] };
  files?: Array<{ path: string; schema: string; dataKeys?: string[] }>;
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
      "all",
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
];

Deno.test({
  name: "every command's JSON output matches its registered schema",
  sanitizeResources: false,
  fn: async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "engram-schemas-" });
    try {
      for (const c of CASES) {
        await t.step(c.name, async () => {
          const r = await engram(...c.args(dir));
          assert.equal(r.code, 0, `${c.name}: ${r.stderr}`);
          if (c.stdout) {
            checkDocument(`${c.name} stdout`, JSON.parse(r.stdout), c.stdout.schema, c.stdout.dataKeys);
          }
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

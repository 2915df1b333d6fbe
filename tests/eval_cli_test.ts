/** `engram eval`: the JSON contract, the markdown table, the three modes, and bad-input errors. */
import assert from "node:assert/strict";
import { engram } from "./_util.ts";

const MODEL = new URL("../fixtures/models/fake-gpt2", import.meta.url).pathname;

const RECORDS = [
  {
    case_id: 7,
    prompt: "The mother tongue of Danielle Darrieux is",
    target_new: "English",
    subject: "Danielle Darrieux",
    ground_truth: "French",
    rephrase_prompt: "Where Danielle Darrieux is from, people speak the language of",
    locality_prompt: "Michel Rocard is a native speaker of",
    locality_ground_truth: "French",
  },
  {
    case_id: 8,
    prompt: "Toko Yasuda plays the",
    target_new: "piano",
    subject: "Toko Yasuda",
    ground_truth: "guitar",
    rephrase_prompt: "Toko Yasuda is known for playing the",
    locality_prompt: "Jimmy Page plays the",
    locality_ground_truth: "guitar",
    portability: { prompt: "The instrument Toko Yasuda plays is the", ground_truth: "piano" },
  },
];

async function dataFile(records: unknown): Promise<string> {
  const f = await Deno.makeTempFile({ suffix: ".json" });
  await Deno.writeTextFile(f, typeof records === "string" ? records : JSON.stringify(records));
  return f;
}

const METRICS = [
  "reliability",
  "generalization",
  "locality",
  "portability",
  "fluency",
  "efficacy_score",
  "paraphrase_score",
  "neighborhood_score",
  "efficacy_magnitude",
  "paraphrase_magnitude",
  "neighborhood_magnitude",
  "score",
];

Deno.test("eval --json prints {method, mode, n, metrics, per_case}; --table writes a KnowEdit-style table", async () => {
  const data = await dataFile(RECORDS);
  const table = await Deno.makeTempFile({ suffix: ".md" });
  const hp = JSON.stringify({ num_steps: 3 });
  const { code, stdout, stderr } = await engram(
    "eval",
    "--method",
    "ft-l",
    "--model",
    MODEL,
    "--data",
    data,
    "--json",
    "--per-case",
    "--fluency-len",
    "14",
    "--hparams",
    hp,
    "--table",
    table,
  );
  assert.equal(code, 0, stderr);
  const doc = JSON.parse(stdout);
  assert.equal(doc.schema, "engram-eval/1");
  assert.equal(doc.results.length, 1, "one method: the same {schema, results} layout");
  const out = doc.results[0];
  assert.equal(out.method, "ft-l");
  assert.equal(out.mode, "single");
  assert.equal(out.n, 2);
  for (const k of METRICS) assert.ok(k in out.metrics, `metrics.${k}`);
  for (const k of ["reliability", "generalization", "locality", "portability", "fluency", "efficacy_score"]) {
    assert.equal(typeof out.metrics[k], "number", `metrics.${k} is a number`);
    assert.ok(out.metrics[k] >= (k.endsWith("magnitude") ? -1 : 0));
  }
  for (const k of ["reliability", "generalization", "locality", "portability", "efficacy_score"]) {
    assert.ok(out.metrics[k] <= 1);
  }
  assert.equal(out.per_case.length, 2);
  assert.equal(out.per_case[0].case_id, 7);
  assert.equal(out.per_case[0].portability, null, "case 0 has no portability prompt");
  assert.equal(typeof out.per_case[1].portability, "number");
  assert.equal(
    out.metrics.portability,
    out.per_case[1].portability,
    "portability averages the cases that have it",
  );
  assert.equal(out.hparams.num_steps, 3);
  assert.equal(out.units.fluency, "bits (n-gram entropy)");
  assert.deepEqual(out.fluency_settings, { max_out_len: 14, top_k: 5, seed: 0 });
  assert.equal(out.bos, false, "HF GPT-2's tokenizer adds no BOS (--bos auto)");
  const md = await Deno.readTextFile(table);
  assert.match(
    md,
    /\| Method \| Mode \| N \| Edit Succ\. \(Reliability\) \| Generalization \| Locality \| Portability \| Fluency \(bits\)/,
  );
  // One unit: the table shows fluency in bits, as the JSON has it (fractions are shown ×100).
  const row = md.split("\n").find((l) => l.startsWith("| ft-l | single"))!.split("|").map((c) => c.trim());
  assert.equal(row[8], out.metrics.fluency.toFixed(2));
  assert.match(
    md,
    new RegExp(`\\| ft-l \\| single \\| 2 \\| ${(100 * out.metrics.reliability).toFixed(2)} \\|`),
  );
  assert.match(md, /\| ft-l \(pre-edit\) \|/);
});

Deno.test("eval compares methods in one run (sequential mode, hparams per method) and batches edits", async () => {
  const data = await dataFile(RECORDS);
  const hp = JSON.stringify({ num_steps: 2 });
  const hpFtl = await dataFile({ num_steps: 2 });
  const hpFt = await dataFile({ num_steps: 1 });
  const outFile = await Deno.makeTempFile({ suffix: ".json" });
  const seq = await engram(
    "eval",
    "--method",
    "ft-l,ft",
    "--model",
    MODEL,
    "--data",
    data,
    "--mode",
    "sequential",
    "--json",
    "--fluency-tokens",
    "0",
    "--hparams",
    `ft-l=${hpFtl},ft=${hpFt}`,
    "--bos",
    "off",
    "--out",
    outFile,
  );
  assert.equal(seq.code, 0, seq.stderr);
  const s = JSON.parse(seq.stdout);
  assert.deepEqual(s.results.map((r: { method: string }) => r.method), ["ft-l", "ft"]);
  assert.deepEqual(s.results.map((r: { hparams: { num_steps: number } }) => r.hparams.num_steps), [2, 1]);
  assert.deepEqual(s.results.map((r: { hparams_file: string }) => r.hparams_file), [hpFtl, hpFt]);
  assert.deepEqual(JSON.parse(await Deno.readTextFile(outFile)), s, "--out holds every method's results");
  // --out writes a self-contained HTML report beside it (FILE.json -> FILE.html).
  const html = await Deno.readTextFile(outFile.replace(/\.json$/, ".html"));
  assert.match(html, /<h3>|<table>/);
  assert.equal((html.match(/<svg /g) ?? []).length, 1);
  assert.match(html, /ft-l \(pre-edit\)/);
  for (const r of s.results) {
    assert.equal(r.mode, "sequential");
    assert.equal(r.metrics.fluency, null, "--fluency-tokens 0 skips fluency");
    assert.equal(r.bos, false);
  }
  const bat = await engram(
    "eval",
    "--method",
    "ft",
    "--model",
    MODEL,
    "--data",
    data,
    "--mode",
    "batch",
    "--batch-size",
    "2",
    "--limit",
    "2",
    "--fluency-tokens",
    "0",
    "--hparams",
    hp,
    "--out",
    `${outFile}.ee.json`,
    "--format",
    "easyedit",
  );
  assert.equal(bat.code, 0, bat.stderr);
  assert.match(bat.stdout, /\| ft \| batch \| 2 \|/);
  // EasyEdit's all_metrics layout: one dict per request.
  const ee = JSON.parse(await Deno.readTextFile(`${outFile}.ee.json`));
  assert.ok(Array.isArray(ee) && ee.length === 2);
  assert.deepEqual(Object.keys(ee[0]), ["pre", "case_id", "requested_rewrite", "post"]);
  assert.equal(ee[0].post.rewrite_acc.length, 1);
  assert.ok(ee[0].post.rewrite_acc[0] >= 0 && ee[0].post.rewrite_acc[0] <= 1);
  assert.equal(typeof ee[0].requested_rewrite.prompt, "string");
  await Deno.stat(`${outFile}.ee.html`);
});

async function badInput(args: string[], pattern: RegExp): Promise<void> {
  const { code, stdout, stderr } = await engram("eval", ...args);
  assert.equal(code, 1, `exit code for ${args.join(" ")}: ${stdout}${stderr}`);
  assert.match(stderr, pattern);
  assert.equal(stderr.trim().split("\n").filter((l) => !l.includes("Task")).length, 1, `one line: ${stderr}`);
  assert.doesNotMatch(stderr, /at .*\.ts:\d+/);
}

Deno.test("eval bad input: missing field, unknown method, --limit out of range, empty data, bad mode", async () => {
  const missing = await dataFile([RECORDS[0], { ...RECORDS[1], target_new: undefined }]);
  await badInput(
    ["--method", "ft-l", "--model", MODEL, "--data", missing],
    /record 1.*target_new|target_new.*record 1/,
  );
  const good = await dataFile(RECORDS);
  await badInput(
    ["--method", "ft-l,nope", "--model", MODEL, "--data", good],
    /unknown edit method 'nope' \(known: .*ft-l/,
  );
  await badInput(
    ["--method", "ft-l", "--model", MODEL, "--data", good, "--limit", "3"],
    /--limit must be an integer in \[1, 2\]/,
  );
  await badInput(["--method", "ft-l", "--model", MODEL, "--data", good, "--limit", "0"], /--limit/);
  await badInput(["--method", "ft-l", "--model", MODEL, "--data", await dataFile("[]")], /no records/);
  await badInput(["--method", "ft-l", "--model", MODEL, "--data", await dataFile("")], /empty/);
  await badInput(["--method", "ft-l", "--model", MODEL, "--data", "/nonexistent/x.json"], /cannot read/);
  await badInput(["--method", "ft-l", "--model", MODEL, "--data", good, "--mode", "parallel"], /--mode/);
  await badInput(["--model", MODEL, "--data", good], /--method is required/);
});

Deno.test("eval checks every method's hparams file before any work", async () => {
  const good = await dataFile(RECORDS);
  const ok = await dataFile({ num_steps: 2 });
  const typo = await dataFile({ num_stepz: 2 });
  const badLayer = await dataFile({ layers: [99] });
  const out = `${await Deno.makeTempDir()}/results.json`;
  const args = (
    hp: string,
  ) => ["--method", "ft-l,ft", "--model", MODEL, "--data", good, "--hparams", hp, "--out", out];
  // The second method's file is wrong: nothing runs, nothing is written.
  await badInput(args(`ft-l=${ok},ft=${typo}`), new RegExp(`${typo}.*num_stepz|num_stepz.*${typo}`));
  await badInput(args(`ft-l=${badLayer},ft=${ok}`), /layers/);
  await badInput(args(`ft-l=${ok},kn=${ok}`), /'kn' is not one of the methods given with --method/);
  await badInput(args(`ft-l=${ok},ft-l=${ok}`), /names 'ft-l' twice/);
  await badInput(args(`ft-l=${ok},${ok}`), /is not METHOD=FILE/);
  await badInput(args(`ft=/nonexistent/hp.json`), /cannot read hparams/);
  await assert.rejects(() => Deno.stat(out), Deno.errors.NotFound);
});

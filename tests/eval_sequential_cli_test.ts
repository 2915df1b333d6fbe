/**
 * `engram eval --mode sequential --every M`: the curve JSON, the out folder (records, summary, SVGs), a
 * rerun that resumes instead of redoing, and the typed errors of bad flags.
 */
import assert from "node:assert/strict";
import { engram } from "./_util.ts";

const MODEL = new URL("../fixtures/models/fake-gpt2", import.meta.url).pathname;

const RECORDS = [
  {
    prompt: "The mother tongue of Danielle Darrieux is",
    target_new: "English",
    subject: "Danielle Darrieux",
    ground_truth: "French",
    rephrase_prompt: "Where Danielle Darrieux is from, people speak the language of",
    locality_prompt: "Michel Rocard is a native speaker of",
    locality_ground_truth: "French",
  },
  {
    prompt: "Toko Yasuda plays the",
    target_new: "piano",
    subject: "Toko Yasuda",
    ground_truth: "guitar",
    locality_prompt: "Jimmy Page plays the",
    locality_ground_truth: "guitar",
  },
];

Deno.test("eval --mode sequential --every: curve JSON, out folder with SVGs, resume on rerun, bad flags", async () => {
  const dir = await Deno.makeTempDir({ prefix: "engram_seqcli_" });
  try {
    await Deno.writeTextFile(`${dir}/data.json`, JSON.stringify(RECORDS));
    await Deno.writeTextFile(`${dir}/ppl.txt`, "The cat sat on the mat.\nParis is the capital of France.\n");
    const args = [
      "eval",
      "--mode",
      "sequential",
      "--every",
      "1",
      "--method",
      "ft-l",
      "--hparams",
      JSON.stringify({ num_steps: 2 }),
      "--model",
      MODEL,
      "--data",
      `${dir}/data.json`,
      "--ppl-text",
      `${dir}/ppl.txt`,
      "--wild",
      "--out",
      `${dir}/out`,
      "--json",
    ];
    const first = await engram(...args);
    assert.equal(first.code, 0, first.stderr);
    const doc = JSON.parse(first.stdout);
    assert.equal(doc.schema, "engram-eval-sequential/1");
    const [curve] = doc.curves;
    assert.equal(curve.label, "ft-l");
    assert.deepEqual(curve.records.map((r: { edits: number }) => r.edits), [1, 2]);
    assert.equal(typeof curve.records[1].perplexity, "number");
    assert.equal(typeof curve.baseline.perplexity, "number");
    assert.equal(typeof curve.records[1].metrics.wild_exact, "number");
    assert.ok(curve.records[1].weights.length > 0);
    const lines = (await Deno.readTextFile(`${dir}/out/ft-l/records.jsonl`)).trim().split("\n");
    assert.equal(lines.length, 2);
    for (const f of ["summary.json", "reliability.svg", "locality.svg", "perplexity.svg", "delta_norm.svg"]) {
      assert.ok((await Deno.stat(`${dir}/out/${f}`)).isFile, f);
    }
    // A rerun resumes after the last record: nothing is edited again.
    const again = await engram(...args);
    assert.equal(again.code, 0, again.stderr);
    const [c2] = JSON.parse(again.stdout).curves;
    assert.equal(c2.resumed_from, 2);
    assert.deepEqual(c2.records, curve.records);
    // --every outside sequential mode; NAS on a method without value vectors.
    const bad1 = await engram(...args.map((a) => (a === "sequential" ? "batch" : a)));
    assert.equal(bad1.code, 1);
    assert.match(bad1.stderr, /--every/);
    const bad2 = await engram(
      ...args.map((a) => (a === "ft-l" ? "ft-l+nas" : a)).map((a) => a === `${dir}/out` ? `${dir}/out2` : a),
    );
    assert.equal(bad2.code, 1);
    assert.match(bad2.stderr, /NAS applies to/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

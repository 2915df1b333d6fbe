/** The README's demo and `engram bench --json` run end to end and report what they claim. */
import assert from "node:assert/strict";
import { engram } from "./_util.ts";

Deno.test("demo runs the bundled world model, recalls its facts and agrees with the float64 reference", async () => {
  const r = await engram("demo", "--json");
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.asks.length, 3);
  for (const a of j.asks) {
    assert.equal(a.top.length, 3);
    assert.ok(a.top[0].p > 0 && a.top[0].p <= 1);
    assert.equal(typeof a.continuation, "string");
  }
  // The trained fact must be recalled; the sample accuracies mirror the world model's bars.
  assert.equal(j.asks[0].top[0].token.trim(), j.asks[0].answer);
  assert.ok(j.sample_accuracy.train >= 0.95, `train sample ${j.sample_accuracy.train}`);
  assert.ok(j.sample_accuracy.heldout >= 0.8, `held-out sample ${j.sample_accuracy.heldout}`);
  assert.ok(j.max_abs_logprob_error_vs_float64 <= 1e-4, `error ${j.max_abs_logprob_error_vs_float64}`);
});

Deno.test("demo --model --text runs any GPT-2 folder", async () => {
  const r = await engram(
    "demo",
    "--model",
    "../shared/data/gpt2-tiny-random-lmbuddy/fake_gpt2",
    "--text",
    "Hello world",
    "--json",
  );
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.asks.length, 1);
  assert.equal(j.sample_accuracy, undefined);
  assert.ok(j.max_abs_logprob_error_vs_float64 <= 1e-4, `error ${j.max_abs_logprob_error_vs_float64}`);
});

Deno.test("bench --quick --json: one schema-versioned record; bench compare tables and charts it", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/a.json`;
  const r = await engram("bench", "--quick", "--json", "--out", file);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.schema, "engram-bench/3");
  assert.equal(typeof j.adapter.description, "string");
  assert.ok(j.adapter.limits.max_storage_buffer_binding_size > 0 && Array.isArray(j.adapter.features));
  assert.equal(typeof j.deno, "string");
  assert.equal(j.host.loadavg_start.length, 3);
  const fig = (name: string) => j.figures.find((f: { name: string }) => f.name === name);
  for (const f of j.figures) {
    assert.ok(Number.isFinite(f.value) && f.value > 0 && typeof f.unit === "string", JSON.stringify(f));
    if (f.baseline) {
      assert.ok(Math.abs(f.baseline.ratio - f.value / f.baseline.value) < 1e-9 * f.baseline.ratio);
    }
  }
  const tuned = fig("matmul 286x384x96 tuned vs 4x4");
  assert.equal(tuned.unit, "GFLOP/s");
  assert.equal(tuned.baseline.name, "matmul 286x384x96 blocked4x4");
  assert.equal(fig("readTensor").baseline.name, "flush then map");
  assert.ok(fig("readTensors of 8").baseline.value > 0);
  assert.ok(fig("world forward 1x8").baseline.value > 0);
  assert.ok(j.figures.some((f: { unit: string }) => f.unit === "tokens/s"));
  assert.ok(j.raw.tune.entries.length === 4 && j.raw.memory.length >= 1);
  // numpy is optional: either its figures are there or the record says why not.
  assert.ok(fig("matmul 286x384x96 numpy") || j.raw.matmul.numpy.skipped);

  const svg = `${dir}/c.svg`;
  const c = await engram("bench", "compare", file, file, "--svg", svg);
  assert.equal(c.code, 0, c.stderr);
  const lines = c.stdout.trim().split("\n");
  assert.match(lines[0], /^\| figure \| unit \| a\.json .*\| a\.json .*\|$/);
  assert.equal(lines.length, 2 + j.figures.length);
  assert.ok(lines.some((l) => l.startsWith("| readTensor | ms |")));
  const chart = await Deno.readTextFile(svg);
  assert.ok(chart.startsWith("<svg") && chart.includes("readTensors of 8"));
  const bad = await engram("bench", "compare", "deno.json");
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /schema/);
  await Deno.remove(dir, { recursive: true });
});

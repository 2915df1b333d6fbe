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

Deno.test("bench --quick --json reports GFLOP/s, ratios and the adapter", async () => {
  const r = await engram("bench", "--quick", "--json");
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(typeof j.adapter.description, "string");
  assert.ok(j.matmul.length >= 2);
  for (const m of j.matmul) {
    assert.ok(
      m.gflops > 0 && m.naiveGflops > 0 && Math.abs(m.ratio - m.gflops / m.naiveGflops) < 1e-6 * m.ratio,
    );
  }
  assert.ok(j.attention.length >= 1 && j.attention[0].gflops > 0);
  assert.ok(j.forward[0].tokensPerSecond > 0);
});

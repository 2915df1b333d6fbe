/** The README's demo and `engram bench --json` run end to end and report what they claim. */
import assert from "node:assert/strict";
import { engram } from "./_util.ts";



Deno.test("demo runs the bundled model and agrees with the float64 reference", async () => {
  const r = await engram("demo", "--json");
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.top.length, 5);
  assert.ok(j.max_abs_logprob_error_vs_float64 <= 1e-4, `error ${j.max_abs_logprob_error_vs_float64}`);
  assert.ok(j.ids.length > 3);
});

Deno.test("bench --quick --json reports GFLOP/s, ratios and the adapter", async () => {
  const r = await engram("bench", "--quick", "--json");
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(typeof j.adapter.description, "string");
  assert.ok(j.matmul.length >= 2);
  for (const m of j.matmul) {
    assert.ok(m.gflops > 0 && m.naiveGflops > 0 && Math.abs(m.ratio - m.gflops / m.naiveGflops) < 1e-6 * m.ratio);
  }
  assert.ok(j.attention.length >= 1 && j.attention[0].gflops > 0);
  assert.ok(j.forward[0].tokensPerSecond > 0);
});

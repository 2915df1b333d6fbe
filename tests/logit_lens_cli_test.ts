/** `engram logit-lens` and `generate --no-cache` on the world model: JSON layout, agreement with predict, typed errors. */
import assert from "node:assert/strict";
import { engram } from "./_util.ts";

const MODEL = new URL("../fixtures/world/model", import.meta.url).pathname;
const PROMPT = "Narnux Zava was born in";

Deno.test("logit-lens --json: [layers, positions, k] rows; the last layer's top-1 is predict's; --svg written", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const lens = await engram(
      "logit-lens",
      "--model",
      MODEL,
      "--text",
      PROMPT,
      "--target",
      "Frostwick",
      "--top-k",
      "3",
      "--json",
      "--svg",
      `${tmp}/lens.svg`,
      "--color-by",
      "target",
    );
    assert.equal(lens.code, 0, lens.stderr);
    const r = JSON.parse(lens.stdout);
    assert.equal(r.schema, "engram-logit-lens/1");
    const T = r.prompt_ids.length;
    assert.deepEqual(r.shape, [3, T, 3]);
    assert.deepEqual(r.layers, ["embed", "0", "1"]);
    assert.equal(r.top_probs.length, 3);
    const pred = await engram("predict", "--model", MODEL, "--text", PROMPT, "--top", "1", "--json");
    assert.equal(pred.code, 0, pred.stderr);
    const top = JSON.parse(pred.stdout).top[0];
    assert.deepEqual(r.prompt_ids, JSON.parse(pred.stdout).prompt_ids);
    assert.equal(r.top_ids[2][T - 1][0], top.id);
    assert.ok(Math.abs(r.top_probs[2][T - 1][0] - Math.exp(top.logprob)) < 1e-5);
    assert.equal(
      r.target.rank[2][T - 1] === 1,
      top.id === r.target.id,
      "rank 1 exactly when the target is predict's top-1",
    );
    assert.match(await Deno.readTextFile(`${tmp}/lens.svg`), /^<svg[\s\S]*<\/svg>\s*$/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("logit-lens: typed errors for two targets and --color-by target without one; generate --no-cache agrees", async () => {
  const both = await engram(
    "logit-lens",
    "--model",
    MODEL,
    "--text",
    PROMPT,
    "--target",
    "x",
    "--target-id",
    "3",
  );
  assert.equal(both.code, 1);
  assert.match(both.stderr, /--target-id/);
  assert.doesNotMatch(both.stderr, /\n\s+at /);
  const noTarget = await engram("logit-lens", "--model", MODEL, "--text", PROMPT, "--color-by", "target");
  assert.equal(noTarget.code, 1);
  assert.match(noTarget.stderr, /--color-by/);
  const run = (...extra: string[]) =>
    engram(
      "generate",
      "--model",
      MODEL,
      "--text",
      PROMPT,
      "--max-tokens",
      "3",
      "--json",
      "--logprobs",
      ...extra,
    );
  const [a, b] = [await run(), await run("--no-cache")];
  assert.equal(a.code, 0, a.stderr);
  const ca = JSON.parse(a.stdout), cb = JSON.parse(b.stdout);
  assert.equal(ca.cached, true);
  assert.equal(cb.cached, false);
  assert.equal(ca.generated_ids.length, 3);
  assert.deepEqual(ca.generated_ids, cb.generated_ids);
  ca.token_logprobs.forEach((x: number, i: number) => assert.ok(Math.abs(x - cb.token_logprobs[i]) < 1e-4));
});

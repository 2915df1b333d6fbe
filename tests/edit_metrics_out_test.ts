/**
 * `edit --metrics-out FILE`: each request measured before and after the edit, written in EasyEdit's
 * `all_metrics` layout (zjunlp/EasyEdit `BaseEditor.batch_edit`: one dict per request with `case_id`,
 * `requested_rewrite`, `time`, `post`, `pre`; each phase `compute_edit_quality`'s `rewrite_acc`,
 * `rephrase_acc`, `locality`, `portability` and, post-edit, `fluency`). The values are checked against
 * a separate measurement of the saved model reloaded from disk (pre-edit state from the original model),
 * and against `eval --mode batch --format easyedit` on the same two requests.
 */
import assert from "node:assert/strict";
import { engram } from "./_util.ts";
import { loadHFModel } from "../src/io/hf_model.ts";
import { getGpu } from "../src/gpu/device.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { readRequests } from "../src/prompt/requests.ts";
import { evaluateRequests, preEditState } from "../src/evaluate/edit_metrics.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const WORLD = `${ROOT}fixtures/world/`;

type Phase = {
  rewrite_acc: number[];
  rephrase_acc?: number[];
  locality: Record<string, number[]>;
  portability: Record<string, number[]>;
  fluency?: { ngram_entropy: number };
};
type Case = {
  pre: Phase;
  post: Phase;
  case_id: number | string;
  requested_rewrite: Record<string, unknown>;
  time?: number;
};

Deno.test("edit --metrics-out writes EasyEdit's per-request pre/post dicts that match the saved model", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const common = ["--model", `${WORLD}model`, "--limit", "2"];
    const data = `${WORLD}counterfact.json`;
    const r = await engram(
      "edit",
      "--method",
      "ft-l",
      ...common,
      "--requests",
      data,
      "--out",
      `${tmp}/m`,
      "--metrics-out",
      `${tmp}/metrics.json`,
      "--json",
    );
    assert.equal(r.code, 0, r.stderr);
    const cases = JSON.parse(await Deno.readTextFile(`${tmp}/metrics.json`)) as Case[];
    const requests = (await readRequests(`${WORLD}counterfact.json`)).slice(0, 2);
    assert.equal(cases.length, 2);

    // Layout (EasyEdit batch_edit's keys; each metric a list, locality only post-edit).
    const one = (x: unknown) => Array.isArray(x) && x.length === 1 && typeof x[0] === "number";
    for (const [i, c] of cases.entries()) {
      assert.deepEqual(Object.keys(c).sort(), ["case_id", "post", "pre", "requested_rewrite", "time"]);
      assert.equal(c.case_id, requests[i].case_id);
      assert.ok(typeof c.time === "number" && c.time > 0);
      assert.deepEqual(Object.keys(c.pre).sort(), ["locality", "portability", "rephrase_acc", "rewrite_acc"]);
      assert.deepEqual(
        Object.keys(c.post).sort(),
        ["fluency", "locality", "portability", "rephrase_acc", "rewrite_acc"],
      );
      assert.deepEqual(c.pre.locality, {});
      assert.deepEqual(Object.keys(c.post.locality), ["neighborhood_acc"]);
      // Without portability prompts (the second record) EasyEdit's dict is empty.
      const port = requests[i].portability ? ["portability_acc"] : [];
      for (const ph of [c.pre, c.post]) {
        assert.deepEqual(Object.keys(ph.portability), port);
        assert.ok(one(ph.rewrite_acc) && one(ph.rephrase_acc));
        if (port.length) assert.ok(one(ph.portability.portability_acc));
      }
      assert.ok(one(c.post.locality.neighborhood_acc));
      assert.equal(typeof c.post.fluency!.ngram_entropy, "number");
      const rw = c.requested_rewrite;
      assert.equal(rw.prompt, requests[i].prompt.replace("{}", requests[i].subject));
      assert.equal(rw.target_new, requests[i].target_new);
      assert.equal(rw.ground_truth, requests[i].ground_truth);
      assert.equal(rw.subject, requests[i].subject);
      assert.deepEqual(Object.keys(rw.locality as object), ["neighborhood"]);
    }
    // The edit moved the rewrite (so the comparison below is not of two unchanged models).
    assert.ok(cases.some((c) => c.post.rewrite_acc[0] > c.pre.rewrite_acc[0]), JSON.stringify(cases));

    // Values: the pre-edit state of the original model, the post-edit scores of the saved model.
    const gpu = await getGpu();
    const orig = await loadHFModel(`${WORLD}model`);
    const m0 = TransformerModel.create(gpu, orig.config, orig.weights);
    const pre = await preEditState(m0, orig.tokenizer!, requests);
    m0.destroy();
    const edited = await loadHFModel(`${tmp}/m`);
    const m1 = TransformerModel.create(gpu, edited.config, edited.weights);
    const post = await evaluateRequests(m1, edited.tokenizer!, requests, { pre });
    m1.destroy();
    const near = (a: number, b: number | null, what: string) =>
      assert.ok(b !== null && Math.abs(a - b) <= 1e-9, `${what}: ${a} vs ${b}`);
    for (const [i, c] of cases.entries()) {
      near(c.pre.rewrite_acc[0], pre[i].scores.reliability, `pre rewrite ${i}`);
      near(c.pre.rephrase_acc![0], pre[i].scores.generalization, `pre rephrase ${i}`);
      if (requests[i].portability) {
        near(c.pre.portability.portability_acc[0], pre[i].scores.portability, `pre portability ${i}`);
      } else assert.equal(post[i].portability, null);
      near(c.post.rewrite_acc[0], post[i].reliability, `post rewrite ${i}`);
      near(c.post.rephrase_acc![0], post[i].generalization, `post rephrase ${i}`);
      near(c.post.locality.neighborhood_acc[0], post[i].locality, `post locality ${i}`);
      near(c.post.fluency!.ngram_entropy, post[i].fluency, `post fluency ${i}`);
    }

    // eval's batch mode (one editor call on both requests) writes the same dicts, less `time`.
    const ev = await engram(
      "eval",
      "--method",
      "ft-l",
      ...common,
      "--data",
      data,
      "--mode",
      "batch",
      "--format",
      "easyedit",
      "--out",
      `${tmp}/eval.json`,
      "--report",
      `${tmp}/eval.html`,
    );
    assert.equal(ev.code, 0, ev.stderr);
    const evCases = JSON.parse(await Deno.readTextFile(`${tmp}/eval.json`)) as Case[];
    assert.deepEqual(
      evCases.map(({ pre, post }) => ({ pre, post })),
      cases.map(({ pre, post }) => ({ pre, post })),
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

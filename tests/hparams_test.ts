/**
 * Every editor's hparams go through one schema parser (src/edit/hparams.ts `mergeBySchema`): the same
 * checks, the same messages, reference keys that name modules ignored, unknown keys refused.
 */
import assert from "node:assert/strict";
import type { GPT2Config } from "../src/model/config.ts";
import { memitDefaults, mergeHparams, romeDefaults } from "../src/edit/hparams.ts";
import { ftlDefaults, mergeFtHparams } from "../src/edit/ft.ts";
import { knDefaults, mergeKnHparams } from "../src/edit/kn.ts";
import { ConfigError, InputError } from "../src/errors.ts";

const cfg: GPT2Config = {
  nLayer: 3,
  nHead: 2,
  nEmbd: 8,
  vocabSize: 13,
  nPositions: 12,
  nInner: 32,
  layerNormEpsilon: 1e-5,
};

type Merge = (over: unknown, file?: string) => { layers: number[] };
const editors: [string, Merge, Record<string, unknown>][] = [
  ["rome", (o, f) => mergeHparams(romeDefaults(cfg), o, cfg, f), { v_lr: 0.1, fact_token: "last" }],
  ["memit", (o, f) => mergeHparams(memitDefaults(cfg), o, cfg, f), { mom2_update_weight: 10 }],
  ["ft", (o, f) => mergeFtHparams(ftlDefaults(cfg), o, cfg, f), { num_steps: 3, norm_constraint: false }],
  ["kn", (o, f) => mergeKnHparams(knDefaults(cfg), o, cfg, f), { p: 0.3, refine: true }],
];

for (const [name, merge, good] of editors) {
  Deno.test(`hparams (${name}): overrides, ignored reference keys, and refusals that name the field`, () => {
    const out = merge({ ...good, alg_name: "X", model_name: "gpt2", layers: [1] }) as unknown as Record<
      string,
      unknown
    >;
    for (const [k, v] of Object.entries(good)) assert.equal(out[k], k === "norm_constraint" ? 0 : v, k);
    assert.deepEqual(out.layers, [1]);
    assert.equal(out.alg_name, undefined, "ignored keys are not stored");

    assert.throws(() => merge({ bogus: 1 }, "hp.json"), (e: Error) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /unknown hparam 'bogus' \(known: layers, /);
      assert.match(e.message, /hp\.json/);
      return true;
    });
    assert.throws(() => merge([1]), /must be a JSON object/);
    assert.throws(() => merge({ layers: [] }), /hparam 'layers' must be a non-empty list of layer indices/);
    assert.throws(() => merge({ layers: [3] }), InputError, "layer out of range");
    assert.throws(() => merge({ layers: [1, 0] }), /strictly increasing/);
    const [key] = Object.keys(good);
    assert.throws(() => merge({ [key]: "x" }), new RegExp(`hparam '${key}' must be`));
  });
}

Deno.test("hparams: the world model's shipped ROME / MEMIT files parse and point at the traced site", async () => {
  const { readHparamsFile } = await import("../src/edit/hparams.ts");
  const dir = new URL("../fixtures/world/model/hparams/", import.meta.url).pathname;
  const world = { ...cfg, nLayer: 2, nInner: 384 };
  const rome = mergeHparams(romeDefaults(world), await readHparamsFile(dir + "rome.json"), world);
  const memit = mergeHparams(memitDefaults(world), await readHparamsFile(dir + "memit.json"), world);
  for (const hp of [rome, memit]) {
    assert.equal(hp.fact_token, "last");
    assert.deepEqual(hp.layers, [0]);
  }
});

Deno.test("hparams: MEMIT's λ is gpt2-xl's 20000 scaled by the MLP width (nInner / 6400)", () => {
  assert.equal(memitDefaults(cfg).mom2_update_weight, (20000 * 32) / 6400);
  assert.equal(memitDefaults({ ...cfg, nInner: 6400 }).mom2_update_weight, 20000);
});

Deno.test("hparams: editor-specific rules", () => {
  const ft = (o: unknown) => mergeFtHparams(ftlDefaults(cfg), o, cfg);
  assert.equal(
    ft({ objective_optimization: "target_new" }).objective,
    "target_new",
    "EasyEdit's key is an alias",
  );
  assert.throws(() => ft({ objective: "all" }), /"prompt_last" or "target_new"/);
  assert.throws(() => ft({ num_steps: 0 }), /a positive integer/);
  assert.throws(() => ft({ norm_constraint: true }), /a non-negative number or false/);
  assert.throws(() => ft({ modules: [] }), /a non-empty list of weight names/);
  const kn = (o: unknown) => mergeKnHparams(knDefaults(cfg), o, cfg);
  assert.throws(() => kn({ adaptive_threshold: 1.5 }), /a number in \[0, 1\]/);
  assert.equal(kn({ erase_scale: -3 }).erase_scale, -3, "scales may be negative");
  assert.throws(() => kn({ add_scale: Infinity }), /a finite number/);
  const rome = (o: unknown) => mergeHparams(romeDefaults(cfg), o, cfg);
  assert.throws(() => rome({ fact_token: "first" }), /"subject_last" or "last"/);
  assert.throws(() => rome({ context_template_length_params: [[5]] }), /\[length, count\] integer pairs/);
  assert.throws(() => rome({ v_loss_layer: 0 }), /v_loss_layer 0 is not supported/);
  const d = romeDefaults(cfg);
  const pairs = d.context_template_length_params.map((p) => [...p]);
  rome({ context_template_length_params: [[1, 1]] });
  assert.deepEqual(d.context_template_length_params, pairs, "defaults are not modified");
});

import assert from "node:assert/strict";
import { join } from "node:path";
import { InputError } from "../src/errors.ts";
import { loadHFModel } from "../src/io/hf_model.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { mergeHparams, readHparamsFile, romeDefaults } from "../src/edit/hparams.ts";
import { validateHparams } from "../src/cli/hparams_flag.ts";
import { EASYEDIT_FILES, easyEditFiles } from "../src/edit/easyedit_layers.ts";
import { defaultMemitWindow, pickLayers, recommendedHparams } from "../src/locate/recommend.ts";
import { aieLineSvg } from "../src/report/aie_plot.ts";
import { engram, freshSeed, rng } from "./_util.ts";

const WORLD = new URL("../fixtures/world/", import.meta.url).pathname;
const WORLD_MODEL = join(WORLD, "model");
const FACTS = join(WORLD, "train_prompts.jsonl");
const haveWorldModel = (() => {
  try {
    return Deno.statSync(join(WORLD_MODEL, "model.safetensors")).isFile;
  } catch {
    return false;
  }
})();

/** The rule of src/locate/recommend.ts written out separately: sort for the peak, filter for the window. */
function naivePick(aie: number[], w: number): { peak: number; memit: number[] } {
  const order = aie.map((v, l) => [v, l] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  const peak = order[0][1];
  return { peak, memit: aie.map((_, l) => l).filter((l) => l <= peak && l > peak - w) };
}

Deno.test("pickLayers: ROME at the peak, MEMIT's window ending there (gpt2-xl-shaped curve: 17, 13-17)", () => {
  // A bump peaking at layer 17 of 48, as ROME's gpt2-xl MLP curve at the last subject token.
  const aie = Array.from({ length: 48 }, (_, l) => 0.2 * Math.exp(-(((l - 17) / 6) ** 2)));
  const p = pickLayers(aie, defaultMemitWindow(48), aie.map(() => 0.01));
  assert.equal(p.peak, 17);
  assert.deepEqual(p.rome, [17]);
  assert.deepEqual(p.memit, [13, 14, 15, 16, 17]);
  assert.equal(p.clipped, false);
  assert.equal(p.flat, false);
  assert.equal(p.significant, true);
  // GPT-J's published MEMIT window is 6 layers (3-8): the window is an option.
  assert.deepEqual(pickLayers(aie, 6).memit, [12, 13, 14, 15, 16, 17]);
  assert.deepEqual(pickLayers([0.1, 0.3, 0.5, 0.2], 2).memit, [1, 2]);
});

Deno.test("pickLayers: ties go to the lowest layer; a flat curve is flagged", () => {
  const t = pickLayers([0.2, 0.5, 0.1, 0.5, 0.3], 2);
  assert.equal(t.peak, 1);
  assert.deepEqual(t.tied, [1, 3]);
  assert.deepEqual(t.memit, [0, 1]);
  assert.equal(t.flat, false);
  const flat = pickLayers([0.3, 0.3, 0.3, 0.3], 2, [0.01, 0.01, 0.01, 0.01]);
  assert.equal(flat.flat, true);
  assert.equal(flat.peak, 0);
  assert.deepEqual(flat.tied, [0, 1, 2, 3]);
  assert.deepEqual(flat.memit, [0]);
  assert.equal(flat.clipped, true);
  // Negative everywhere: still the largest (least negative), and never significant.
  const neg = pickLayers([-0.3, -0.1, -0.2], 1, [0.01, 0.01, 0.01]);
  assert.equal(neg.peak, 1);
  assert.equal(neg.significant, false);
  // A peak whose CI reaches 0 is not significant; without CIs nothing is.
  assert.equal(pickLayers([0.1, 0.05], 1, [0.2, 0.2]).significant, false);
  assert.equal(pickLayers([0.1, 0.05], 1).significant, false);
});

Deno.test("pickLayers: peaks at the edges and windows clipped to the model", () => {
  const first = pickLayers([0.9, 0.5, 0.4, 0.1], 3);
  assert.deepEqual([first.peak, first.memit, first.clipped], [0, [0], true]);
  const last = pickLayers([0.1, 0.4, 0.5, 0.9], 3);
  assert.deepEqual([last.peak, last.memit, last.clipped], [3, [1, 2, 3], false]);
  // A window of the model's whole depth: every layer when the peak is last, clipped otherwise.
  assert.deepEqual(pickLayers([0.1, 0.4, 0.5, 0.9], 4).memit, [0, 1, 2, 3]);
  const mid = pickLayers([0.1, 0.9, 0.5, 0.2], 4);
  assert.deepEqual([mid.memit, mid.clipped], [[0, 1], true]);
  assert.equal(defaultMemitWindow(2), 2);
  assert.equal(defaultMemitWindow(48), 5);
  assert.deepEqual(pickLayers([0.2, 0.7], defaultMemitWindow(2)).memit, [0, 1]);
});

Deno.test("pickLayers: typed errors for a window outside the model and bad curves", () => {
  assert.throws(
    () => pickLayers([0.1, 0.2], 3),
    (e: unknown) => e instanceof InputError && /\[1, 2\]/.test(e.message),
  );
  assert.throws(() => pickLayers([0.1, 0.2], 0), InputError);
  assert.throws(() => pickLayers([0.1, 0.2], 1.5), InputError);
  assert.throws(() => pickLayers([], 1), InputError);
  assert.throws(() => pickLayers([0.1, NaN], 1), InputError);
});

Deno.test("pickLayers agrees with a separately written rule on random curves (with ties)", () => {
  const seed = freshSeed();
  const r = rng(seed);
  for (let i = 0; i < 200; i++) {
    const L = 1 + Math.floor(r() * 12);
    // Values on a coarse grid, so ties are frequent.
    const aie = Array.from({ length: L }, () => Math.round(r() * 4) / 4 - 0.25);
    const w = 1 + Math.floor(r() * L);
    const got = pickLayers(aie, w), want = naivePick(aie, w);
    assert.equal(got.peak, want.peak, `seed ${seed}, curve ${aie}`);
    assert.deepEqual(got.memit, want.memit, `seed ${seed}, curve ${aie}, window ${w}`);
    assert.deepEqual(got.rome, [want.peak]);
  }
});

const cfg = (o: Partial<ModelConfig>): ModelConfig =>
  ({ nHead: 16, vocabSize: 50257, nPositions: 1024, layerNormEpsilon: 1e-5, ...o }) as ModelConfig;

Deno.test("easyEditFiles: matched by family, architecture, layers, width and MLP width", () => {
  const xl = cfg({ family: "gpt2", nLayer: 48, nEmbd: 1600, nInner: 6400 });
  assert.deepEqual(easyEditFiles(xl, "ROME").map((f) => [f.file, f.layers]), [["hparams/ROME/gpt2-xl.yaml", [
    17,
  ]]]);
  assert.deepEqual(easyEditFiles(xl, "MEMIT")[0].layers, [13, 14, 15, 16, 17]);
  const gptj = cfg({ family: "gptj", nLayer: 28, nEmbd: 4096, nInner: 16384 });
  assert.deepEqual(easyEditFiles(gptj, "MEMIT")[0].layers, [3, 4, 5, 6, 7, 8]);
  // Llama-2-7B and Llama-3-8B share family, architecture, depth and width: the MLP width tells them apart.
  const llama = (nInner: number) =>
    cfg({ family: "llama", architecture: "LlamaForCausalLM", nLayer: 32, nEmbd: 4096, nInner });
  assert.equal(easyEditFiles(llama(11008), "ROME")[0].file, "hparams/ROME/llama-7b.yaml");
  assert.equal(easyEditFiles(llama(14336), "ROME")[0].file, "hparams/ROME/llama3-8b.yaml");
  assert.deepEqual(easyEditFiles(llama(14336), "MEMIT"), []); // EasyEdit has no MEMIT file for it
  // Mistral has Llama-3-8B's numbers but its own architecture and files.
  const mistral = cfg({
    family: "llama",
    architecture: "MistralForCausalLM",
    nLayer: 32,
    nEmbd: 4096,
    nInner: 14336,
  });
  assert.equal(easyEditFiles(mistral, "MEMIT")[0].file, "hparams/MEMIT/mistral-7b.yaml");
  const qwen = cfg({
    family: "llama",
    architecture: "Qwen2ForCausalLM",
    nLayer: 28,
    nEmbd: 3584,
    nInner: 18944,
  });
  assert.deepEqual(easyEditFiles(qwen, "ROME").map((f) => f.model), ["Qwen2-7B", "Qwen2.5-7B"]);
  // gpt2-medium: EasyEdit publishes no file at that shape; a GPT-2 of gpt2-xl's width but 24 layers neither.
  assert.deepEqual(easyEditFiles(cfg({ family: "gpt2", nLayer: 24, nEmbd: 1024, nInner: 4096 }), "ROME"), []);
  assert.deepEqual(easyEditFiles(cfg({ family: "gpt2", nLayer: 24, nEmbd: 1600, nInner: 6400 }), "ROME"), []);
  for (const f of EASYEDIT_FILES) assert.ok(f.layers.every((l) => l >= 0 && l < f.nLayer), f.file);
});

Deno.test("recommendedHparams: the family defaults with the layers substituted, accepted by the editors", () => {
  const c = cfg({ family: "gpt2", nLayer: 12, nEmbd: 64, nInner: 256, nHead: 4, nPositions: 64 });
  const aie = [0, 0.1, 0.2, 0.4, 0.6, 0.5, 0.3, 0.2, 0.1, 0, 0, 0];
  const pick = pickLayers(aie, 3);
  const hp = recommendedHparams(c, pick, "subject_last");
  const rome = validateHparams("rome", hp.rome, c) as { layers: number[] };
  const memit = validateHparams("memit", hp.memit, c) as { layers: number[]; mom2_update_weight: number };
  assert.deepEqual(rome.layers, [4]);
  assert.deepEqual(memit.layers, [2, 3, 4]);
  // Everything but the layers is the default.
  assert.deepEqual({ ...rome, layers: [] }, { ...romeDefaults(c), layers: [] });
  const last = recommendedHparams(c, pick, "last");
  assert.equal((validateHparams("rome", last.rome, c) as { fact_token: string }).fact_token, "last");
  // At a published model the published file's other values stay (gpt2-xl: λ 20000 for MEMIT).
  const xl = cfg({ family: "gpt2", nLayer: 48, nEmbd: 1600, nInner: 6400, nHead: 25 });
  const xlHp = recommendedHparams(
    xl,
    pickLayers(new Array(48).fill(0).map((_, l) => -Math.abs(l - 20)), 5),
    "subject_last",
  );
  const m = validateHparams("memit", xlHp.memit, xl) as { layers: number[]; mom2_update_weight: number };
  assert.deepEqual(m.layers, [16, 17, 18, 19, 20]);
  assert.equal(m.mom2_update_weight, 20000);
});

Deno.test("aieLineSvg: one point per layer, the CI band and the marked peak", () => {
  const svg = aieLineSvg({
    mean: [0.1, 0.3, -0.05],
    ci95: [0.02, 0.05, 0.01],
    title: "a <b>",
    shade: [1],
    mark: 1,
  });
  assert.match(svg, /^<svg/);
  assert.equal(svg.match(/<circle [^>]*r="2.5"/g)?.length, 3);
  assert.match(svg, /<polygon points="[^"]+"/);
  assert.match(svg, /peak 1/);
  assert.match(svg, /a &lt;b&gt;/);
  assert.match(svg, /layer 1: 0.3000 ± 0.0500/);
});

Deno.test({
  name: "recommend-layers on the world model: AIE equals trace --facts, the ROME file is accepted by edit",
  ignore: !haveWorldModel,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "engram_recommend_" });
    try {
      const out = join(dir, "rec");
      const common = ["--model", WORLD_MODEL, "--facts", FACTS, "--limit", "4", "--samples", "3"];
      const r = await engram("recommend-layers", ...common, "--trace-window", "1", "--out", out, "--json");
      assert.equal(r.code, 0, r.stderr);
      const rec = JSON.parse(r.stdout);
      const t = await engram("trace", ...common, "--window", "1", "--kind", "mlp", "--json");
      assert.equal(t.code, 0, t.stderr);
      const avg = JSON.parse(t.stdout);
      const mlp = avg.kinds.mlp;
      const cls = mlp.classes.indexOf("last subject token");
      assert.equal(rec.traced, avg.traced);
      assert.equal(rec.traced, 4);
      assert.equal(rec.noise_std, avg.noise_std);
      assert.deepEqual(rec.aie.mean, mlp.mean[cls]);
      assert.deepEqual(rec.aie.ci95, mlp.ci95[cls]);
      assert.equal(rec.aie.count, mlp.count[cls]);
      // The pick is the trace's argmax (lowest on ties), computed here from the trace's own numbers.
      const curve: number[] = mlp.mean[cls];
      assert.ok(curve.some((v) => Math.abs(v) > 1e-4), `a curve of zeros tests nothing: ${curve}`);
      const peak = curve.indexOf(Math.max(...curve));
      assert.deepEqual(rec.recommendation.rome_layers, [peak]);
      assert.deepEqual(rec.recommendation.memit_layers, Array.from({ length: peak + 1 }, (_, i) => i));
      assert.equal(rec.easyedit.rome, null);
      // The written ROME / MEMIT files go through edit's reader and the editors' merge.
      const hf = await loadHFModel(WORLD_MODEL);
      const romeFile = join(out, "rome.json");
      const rome = mergeHparams(
        romeDefaults(hf.config),
        await readHparamsFile(romeFile),
        hf.config,
        romeFile,
      );
      assert.deepEqual(rome.layers, [peak]);
      assert.equal(rome.fact_token, "subject_last");
      const memitFile = join(out, "memit.json");
      const memit = validateHparams(
        "memit",
        await readHparamsFile(memitFile) as Record<string, unknown>,
        hf.config,
      );
      assert.deepEqual((memit as { layers: number[] }).layers, rec.recommendation.memit_layers);
      const saved = JSON.parse(await Deno.readTextFile(join(out, "recommend.json")));
      assert.deepEqual(saved.aie, rec.aie);
      assert.match(await Deno.readTextFile(join(out, "aie_mlp.svg")), /^<svg/);

      // An existing --out without --overwrite: refused before tracing, the folder untouched.
      const again = await engram("recommend-layers", ...common, "--out", out);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /already exists \(pass --overwrite/);
      assert.deepEqual(JSON.parse(await Deno.readTextFile(join(out, "recommend.json"))), saved);

      // A window larger than the model's 2 layers.
      const wide = await engram("recommend-layers", ...common, "--window", "3");
      assert.equal(wide.code, 1);
      assert.match(wide.stderr, /--window.*MEMIT window must be an integer in \[1, 2\].*got 3/);

      // A facts file with no usable fact: one the model does not know, one whose subject is not in its prompt.
      const bad = join(dir, "bad.jsonl");
      await Deno.writeTextFile(
        bad,
        [
          { id: "wrong", prompt: "Gurnur Rulex was born in", subject: "Gurnur Rulex", answer: "Ironleaf" },
          { id: "nosubj", prompt: "Somebody was born in", subject: "Gurnur Rulex", answer: "Sunmere" },
        ].map((x) => JSON.stringify(x)).join("\n") + "\n",
      );
      const none = await engram("recommend-layers", "--model", WORLD_MODEL, "--facts", bad, "--samples", "2");
      assert.equal(none.code, 1);
      assert.match(none.stderr, /no fact could be traced: 2 record\(s\), 1 not known .*1 invalid/);
      assert.match(none.stderr, /bad\.jsonl/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

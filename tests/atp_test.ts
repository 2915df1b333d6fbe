/**
 * Attribution patching (src/locate/atp.ts) against its float64 finite-difference twin
 * (src/reference/atp.ts) on a tiny GPT-2 and a tiny GQA Llama, the exact case (a linear site), and the
 * rank correlation with full activation patching on the world model (printed, loosely bounded).
 */
import assert from "node:assert/strict";
import { InputError } from "../src/errors.ts";
import { getGpu } from "../src/gpu/device.ts";
import { loadHFModel } from "../src/io/hf_model.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { randomWeights } from "../src/model/random.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { encodeFact } from "../src/prompt/encode.ts";
import {
  activationPatchingSweep,
  type AtpMetric,
  type AtpSiteKind,
  attributionPatching,
  spearman,
} from "../src/locate/atp.ts";
import { attributionPatchingRef } from "../src/reference/atp.ts";
import { hookedForwardRef } from "./_family_hooked_ref.ts";
import { freshSeed, relErr, rng } from "./_util.ts";

const GPT2: ModelConfig = {
  nLayer: 2,
  nHead: 3,
  nEmbd: 15,
  vocabSize: 31,
  nPositions: 16,
  nInner: 23,
  layerNormEpsilon: 1e-5,
};

const LLAMA: ModelConfig = {
  nLayer: 2,
  vocabSize: 37,
  nPositions: 32,
  layerNormEpsilon: 1e-5,
  family: "llama",
  architecture: "LlamaForCausalLM",
  nHead: 4,
  nKvHead: 2,
  headDim: 6,
  nEmbd: 22,
  nInner: 29,
  norm: "rmsnorm",
  activation: "silu",
  rope: { dim: 6, style: "half", theta: 10000, maxPositionEmbeddings: 32 },
  qkvBias: false,
  attnOutBias: false,
  mlpBias: false,
};

const ALL: AtpSiteKind[] = [
  "embed",
  "resid_pre",
  "attn_out",
  "mlp_post",
  "mlp_out",
  "resid_post",
  "head_out",
  "q",
  "k",
  "v",
  "ln_f",
];

function prompts(seed: number, V: number, T: number) {
  const r = rng(seed);
  const ids = Array.from({ length: T }, () => Math.floor(r() * V));
  // Corrupt: the same prompt with two tokens replaced (a token-replacement corruption).
  const corrupt = [...ids];
  corrupt[1] = (corrupt[1] + 1 + Math.floor(r() * (V - 1))) % V;
  corrupt[2] = (corrupt[2] + 1 + Math.floor(r() * (V - 1))) % V;
  return { ids, corrupt };
}

/** Compares every node group of the GPU result with the twin's; returns the worst relative error. */
function compare(
  got: { sites: { name: string; values: Float64Array }[] },
  want: { sites: { name: string; values: Float64Array }[] },
  tol: number,
  label: string,
): number {
  let worst = 0;
  assert.equal(got.sites.length, want.sites.length);
  got.sites.forEach((g, i) => {
    assert.equal(g.name, want.sites[i].name);
    const e = relErr(g.values, want.sites[i].values, 1e-4);
    worst = Math.max(worst, e);
    assert.ok(e < tol, `${label} ${g.name}: rel err ${e.toExponential(2)}`);
  });
  return worst;
}

/** One draw of the AtP comparison (see the test below). */
async function checkAtpDraw(family: string, cfg: typeof GPT2, seed: number): Promise<void> {
  const weights = randomWeights(cfg, seed % 1000, { std: 0.4 });
  const model = TransformerModel.create(await getGpu(), cfg, weights);
  const fwd = (ids: number[], patch: Record<string, (v: Float64Array, T: number, w: number) => void>) =>
    hookedForwardRef(cfg, weights, ids, { patch });
  try {
    const { ids, corrupt } = prompts(seed, cfg.vocabSize, 6);
    const metrics: AtpMetric[] = [
      { kind: "prob", answer: 3 },
      { kind: "logprob", answer: 5 },
      { kind: "logit-diff", answer: 3, counterfactual: 7 },
    ];
    const report: string[] = [];
    for (const metric of metrics) {
      const got = await attributionPatching(model, ids, { ids: corrupt }, metric, { sites: ALL });
      const want = attributionPatchingRef(cfg, weights, fwd, ids, corrupt, metric, { sites: ALL });
      assert.ok(Math.abs(got.metricClean - want.metricClean) < 1e-4 * (1 + Math.abs(want.metricClean)));
      report.push(
        // 1e-3: the GPU forms corrupt − clean from two f32 activations, and where they nearly agree the
        // difference keeps few digits (seen: 4.7e-4 at resid_post on a Llama draw; typical 1e-6 to 1e-5).
        `${metric.kind} ${compare(got, want, 1e-3, `seed ${seed} ${metric.kind}`).toExponential(2)}`,
      );
      // The estimates are not all zero (a test that could not fail otherwise).
      assert.ok(
        want.sites.some((s) => s.values.some((v) => Math.abs(v) > 1e-3)),
        `degenerate draw: every ${metric.kind} estimate below 1e-3 (seed ${seed})`,
      );
    }
    const metric = metrics[2];
    const opts = { sites: ALL, perNeuron: true, qkFix: true };
    const fixG = await attributionPatching(model, ids, { ids: corrupt }, metric, opts);
    const fixW = attributionPatchingRef(cfg, weights, fwd, ids, corrupt, metric, opts);
    report.push(`qk-fix+per-neuron ${compare(fixG, fixW, 1e-3, `seed ${seed} qkFix`).toExponential(2)}`);
    const gdG = await attributionPatching(model, ids, { ids: corrupt }, metric, {
      ...opts,
      gradDrop: true,
    });
    const gdW = attributionPatchingRef(cfg, weights, fwd, ids, corrupt, metric, {
      ...opts,
      gradDrop: true,
    });
    assert.equal(gdG.method, "atp-gd");
    report.push(
      `AtP* (qk-fix + GradDrop) ${compare(gdG, gdW, 1e-3, `seed ${seed} gradDrop`).toExponential(2)}`,
    );
    // The QK fix changes q/k estimates (the twin's plain and fixed q differ), GradDrop is non-negative.
    const qk: AtpSiteKind[] = ["q", "k"];
    const plainQK = await attributionPatching(model, ids, { ids: corrupt }, metric, { sites: qk });
    const fixQK = await attributionPatching(model, ids, { ids: corrupt }, metric, {
      sites: qk,
      qkFix: true,
    });
    assert.ok(plainQK.sites.some((s, i) => relErr(s.values, fixQK.sites[i].values) > 1e-3));
    assert.ok(gdG.sites.every((s) => s.values.every((v) => v >= 0)));
    console.log(`${family} (seed ${seed}) worst rel err vs float64 twin: ${report.join(", ")}`);
  } finally {
    model.destroy();
  }
}

for (const [family, cfg] of [["gpt2", GPT2], ["llama", LLAMA]] as const) {
  Deno.test(`AtP and AtP* match the float64 twin: ${family}`, async () => {
    for (let attempt = 0;; attempt++) {
      const seed = freshSeed();
      try {
        return await checkAtpDraw(family, cfg, seed);
      } catch (e) {
        // The GPU forms corrupt − clean from two f32 activations; where they nearly agree the difference
        // keeps few digits, and a rare draw exceeds the bound on one node (seen: 1.4e-3 at resid_post). A
        // bug fails every draw: only a comparison failure, or a draw whose estimates are all tiny (a random
        // model can give the answer p ≈ 1/V everywhere), is redrawn, at most twice.
        if (attempt >= 2 || !(e instanceof Error) || !/: rel err |degenerate draw/.test(e.message)) throw e;
        console.log(`${family}: ${e.message}; drawing another seed`);
      }
    }
  });
}

Deno.test("AtP equals activation patching exactly where the metric is linear: logit-diff at ln_f", async () => {
  for (const cfg of [GPT2, LLAMA]) {
    // A draw whose corruption barely moves the logit difference (|effect| ≤ 1e-3) cannot test the
    // equality: draw again, at most 4 times (a broken patch gives a zero effect on every draw and fails).
    for (let attempt = 0;; attempt++) {
      const seed = freshSeed();
      const weights = randomWeights(cfg, seed % 1000 + 1, { std: 0.4 });
      const model = TransformerModel.create(await getGpu(), cfg, weights);
      try {
        const { ids, corrupt } = prompts(seed + 1, cfg.vocabSize, 7);
        const metric: AtpMetric = { kind: "logit-diff", answer: 2, counterfactual: 9 };
        const atp = await attributionPatching(model, ids, { ids: corrupt }, metric, { sites: ["ln_f"] });
        const exact = await activationPatchingSweep(model, ids, { ids: corrupt }, metric, {
          sites: ["ln_f"],
        });
        const a = atp.sites[0].values, e = exact.sites[0].values;
        // Only the last position reaches the metric; there the logit difference is linear in ln_f.
        if (Math.abs(e[e.length - 1]) <= 1e-3) {
          assert.ok(attempt < 4, `effect ${e[e.length - 1]} too small to test on 5 draws (seed ${seed})`);
          continue;
        }
        const err = relErr(a, e, 1e-6);
        console.log(
          `ln_f logit-diff (seed ${seed}): AtP ${a[a.length - 1]} vs patching ${e[e.length - 1]}, rel err ${
            err.toExponential(2)
          }`,
        );
        assert.ok(err < 1e-4, `rel err ${err}`);
        // Not linear elsewhere: for the probability metric AtP is only an estimate.
        const pm: AtpMetric = { kind: "prob", answer: 2 };
        const pa = await attributionPatching(model, ids, { ids: corrupt }, pm, { sites: ["ln_f"] });
        const pe = await activationPatchingSweep(model, ids, { ids: corrupt }, pm, { sites: ["ln_f"] });
        assert.ok(relErr(pa.sites[0].values, pe.sites[0].values) > 1e-4);
        break;
      } finally {
        model.destroy();
      }
    }
  }
});

Deno.test("AtP refuses bad input", async () => {
  const weights = randomWeights(GPT2, 5, { std: 0.4 });
  const model = TransformerModel.create(await getGpu(), GPT2, weights);
  try {
    const m: AtpMetric = { kind: "prob", answer: 1 };
    await assert.rejects(() => attributionPatching(model, [1, 2, 3], { ids: [1, 2] }, m), InputError);
    await assert.rejects(
      () => attributionPatching(model, [1, 2, 3], { ids: [1, 4, 3] }, { kind: "prob", answer: 99 }),
      InputError,
    );
    await assert.rejects(
      () => attributionPatching(model, [1, 2, 3], { ids: [1, 4, 3] }, m, { sites: ["nope" as AtpSiteKind] }),
      InputError,
    );
    await assert.rejects(
      () => activationPatchingSweep(model, [1, 2, 3], { ids: [1, 4, 3] }, m, { sites: ["q"] }),
      InputError,
    );
  } finally {
    model.destroy();
  }
});

Deno.test("AtP vs activation patching on the world model: Spearman per site kind (printed)", async () => {
  const hf = await loadHFModel("fixtures/world/model");
  const tok = hf.tokenizer!;
  const model = TransformerModel.create(await getGpu(), hf.config, hf.weights);
  try {
    const lines = (await Deno.readTextFile("fixtures/world/train_prompts.jsonl")).trim().split("\n")
      .map((l) => JSON.parse(l)).filter((f) => f.template === 0 && f.relation === "birthplace");
    const kinds: AtpSiteKind[] = ["resid_pre", "attn_out", "mlp_out", "resid_post", "head_out", "mlp_post"];
    const rho = new Map<string, number[]>();
    let used = 0;
    for (let i = 0; i + 1 < lines.length && used < 3; i += 2) {
      const a = lines[i], b = lines.find((f) => f.answer !== a.answer && f.subject !== a.subject)!;
      const ea = encodeFact(tok, { prompt: a.prompt, subject: a.subject, target: a.answer });
      const eb = encodeFact(tok, { prompt: b.prompt, subject: b.subject, target: b.answer });
      const ca = ea.ids.slice(0, ea.promptLength), cb = eb.ids.slice(0, eb.promptLength);
      if (ca.length !== cb.length) continue; // symmetric token replacement needs equal lengths
      used++;
      const metric: AtpMetric = { kind: "logit-diff", answer: ea.target![0], counterfactual: eb.target![0] };
      const atp = await attributionPatching(model, ca, { ids: cb }, metric, { sites: kinds });
      const exact = await activationPatchingSweep(model, ca, { ids: cb }, metric, { sites: kinds });
      kinds.forEach((k) => {
        const x = atp.sites.filter((s) => s.kind === k).flatMap((s) => [...s.values]);
        const y = exact.sites.filter((s) => s.kind === k).flatMap((s) => [...s.values]);
        rho.set(k, [...(rho.get(k) ?? []), spearman(x, y)]);
      });
      console.log(
        `fact '${a.prompt}' -> ${a.answer} vs '${b.subject}' (${b.answer}): metric clean ${
          atp.metricClean.toFixed(3)
        }, corrupt ${atp.metricCorrupt.toFixed(3)}`,
      );
    }
    assert.ok(used > 0, "no pair of facts of equal token length");
    for (const [k, v] of rho) {
      const mean = v.reduce((p, c) => p + c, 0) / v.length;
      console.log(
        `world model Spearman(AtP, patching) ${k}: ${v.map((x) => x.toFixed(3)).join(", ")} (mean ${
          mean.toFixed(3)
        })`,
      );
      assert.ok(mean > 0, `${k}: mean rank correlation ${mean} is not positive`);
    }
  } finally {
    model.destroy();
  }
});

Deno.test("Spearman rank correlation", () => {
  assert.equal(spearman([1, 2, 3, 4], [10, 20, 30, 40]), 1);
  assert.equal(spearman([1, 2, 3, 4], [4, 3, 2, 1]), -1);
  assert.ok(Math.abs(spearman([1, 2, 2, 3], [1, 3, 2, 4]) - 0.9486832980505138) < 1e-12);
});

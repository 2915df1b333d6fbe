/**
 * AtP against full activation patching (src/locate/atp_compare.ts): the agreement figures recomputed here
 * from the two results with this file's own rank correlation and top-k overlap, the exact effects equal to
 * a direct sweep, GradDrop ranked against |effect|, the linear case (logit-diff at ln_f: rank correlation
 * 1), typed errors, `engram atp --compare` on the world model, and the agreement on the tiny trained Llama
 * (printed, loosely bounded).
 */
import assert from "node:assert/strict";
import { InputError } from "../src/errors.ts";
import { getGpu } from "../src/gpu/device.ts";
import { loadHFModel } from "../src/io/hf_model.ts";
import { encodeFact } from "../src/prompt/encode.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { randomWeights } from "../src/model/random.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import {
  activationPatchingSweep,
  type AtpMetric,
  type AtpResult,
  type AtpSiteKind,
} from "../src/locate/atp.ts";
import { compareAtpWithPatching } from "../src/locate/atp_compare.ts";
import { engram, freshSeed, rng } from "./_util.ts";

const CFG: ModelConfig = {
  nLayer: 3,
  nHead: 2,
  nEmbd: 14,
  vocabSize: 29,
  nPositions: 16,
  nInner: 19,
  layerNormEpsilon: 1e-5,
};

/** Pearson correlation of mid-ranks (ties share their mean rank), written out independently. */
function rankCorrelation(a: number[], b: number[]): number {
  const midRanks = (x: number[]) =>
    x.map((v) => {
      let below = 0, equal = 0;
      for (const w of x) w < v ? below++ : w === v ? equal++ : 0;
      return below + (equal + 1) / 2;
    });
  const ra = midRanks(a), rb = midRanks(b);
  const mean = (x: number[]) => x.reduce((p, c) => p + c, 0) / x.length;
  const ma = mean(ra), mb = mean(rb);
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += (ra[i] - ma) * (rb[i] - mb);
    aa += (ra[i] - ma) ** 2;
    bb += (rb[i] - mb) ** 2;
  }
  return ab / Math.sqrt(aa * bb);
}

/** Share of the k largest |b| among the k largest |a| (ties: the lower index first). */
function overlap(a: number[], b: number[], k: number): number {
  const top = (x: number[]) =>
    x.map((v, i) => ({ v: Math.abs(v), i })).sort((p, q) => q.v - p.v || p.i - q.i).slice(0, k).map((p) =>
      p.i
    );
  const ta = new Set(top(a));
  return top(b).filter((i) => ta.has(i)).length / k;
}

const values = (r: AtpResult, kind: AtpSiteKind) =>
  r.sites.filter((s) => s.kind === kind).flatMap((s) => [...s.values]);

function prompts(seed: number, T: number) {
  const r = rng(seed);
  const ids = Array.from({ length: T }, () => Math.floor(r() * CFG.vocabSize));
  const corrupt = [...ids];
  for (const t of [1, 2]) {
    corrupt[t] = (corrupt[t] + 1 + Math.floor(r() * (CFG.vocabSize - 1))) % CFG.vocabSize;
  }
  return { ids, corrupt };
}

/** A random CFG model drawn from `seed` (GPU-resident; the caller destroys it). */
async function randomModel(seed: number): Promise<TransformerModel> {
  return TransformerModel.create(await getGpu(), CFG, randomWeights(CFG, seed % 997 + 1, { std: 0.4 }));
}

Deno.test("AtP vs patching: per-kind Spearman and top-k overlap, recomputed independently", async () => {
  const seed = freshSeed();
  const model = await randomModel(seed);
  try {
    const { ids, corrupt } = prompts(seed + 3, 7);
    const metric: AtpMetric = { kind: "logprob", answer: 4 };
    const kinds: AtpSiteKind[] = ["resid_pre", "attn_out", "q", "mlp_out", "head_out", "mlp_post"];
    for (const gradDrop of [false, true]) {
      const c = await compareAtpWithPatching(model, ids, { ids: corrupt }, metric, {
        sites: kinds,
        perNeuron: true,
        gradDrop,
        top: 5,
      });
      assert.deepEqual(c.kinds.map((a) => a.kind), kinds.filter((k) => k !== "q"));
      assert.deepEqual(c.notCompared, ["q"]);
      assert.equal(c.atp.method, gradDrop ? "atp-gd" : "atp");
      assert.ok(c.atpSeconds > 0 && c.patchingSeconds > 0);
      // The exact effects are the sweep's.
      const direct = await activationPatchingSweep(model, ids, { ids: corrupt }, metric, {
        sites: kinds.filter((k) => k !== "q"),
        perNeuron: true,
      });
      for (const a of c.kinds) {
        const est = values(c.atp, a.kind);
        const exact = values(c.patching, a.kind);
        assert.deepEqual(exact, values(direct, a.kind));
        const units = a.kind === "head_out" ? CFG.nHead : a.kind === "mlp_post" ? CFG.nInner! : 1;
        assert.equal(a.nodes, CFG.nLayer * ids.length * units);
        // GradDrop's magnitudes are ranked against |effect|, signed estimates against the signed effect.
        const ref = gradDrop ? exact.map(Math.abs) : exact;
        assert.ok(a.spearman !== null);
        assert.ok(Math.abs(a.spearman - rankCorrelation(est, ref)) < 1e-12, `${a.kind}: ${a.spearman}`);
        assert.equal(a.k, 5);
        assert.equal(a.topRecall, overlap(est, exact, 5));
      }
      console.log(
        `${gradDrop ? "AtP+GradDrop" : "AtP"} (seed ${seed}): ` +
          c.kinds.map((a) => `${a.kind} ρ ${a.spearman!.toFixed(3)} top-5 ${a.topRecall}`).join(", "),
      );
    }
  } finally {
    model.destroy();
  }
});

Deno.test("AtP vs patching: a linear site ranks exactly (logit-diff at ln_f)", async () => {
  for (let attempt = 0;; attempt++) {
    const seed = freshSeed();
    const model = await randomModel(seed);
    try {
      const { ids, corrupt } = prompts(seed + 1, 6);
      const metric: AtpMetric = { kind: "logit-diff", answer: 2, counterfactual: 9 };
      const c = await compareAtpWithPatching(model, ids, { ids: corrupt }, metric, {
        sites: ["ln_f"],
        top: 1,
      });
      const e = values(c.patching, "ln_f");
      // Only the last position reaches the metric; a draw whose effect there is tiny cannot test it.
      if (Math.abs(e[e.length - 1]) <= 1e-3) {
        assert.ok(attempt < 4, `effect ${e[e.length - 1]} too small on 5 draws`);
        continue;
      }
      assert.ok(Math.abs(c.kinds[0].spearman! - 1) < 1e-12, `ρ ${c.kinds[0].spearman}`);
      assert.equal(c.kinds[0].topRecall, 1);
      break;
    } finally {
      model.destroy();
    }
  }
});

Deno.test("AtP vs patching: typed errors; engram atp --compare", async () => {
  const model = TransformerModel.create(await getGpu(), CFG, randomWeights(CFG, 7, { std: 0.4 }));
  try {
    const m: AtpMetric = { kind: "prob", answer: 1 };
    await assert.rejects(
      () => compareAtpWithPatching(model, [1, 2, 3], { ids: [1, 4, 3] }, m, { sites: ["q", "k"] }),
      (e: unknown) => e instanceof InputError && e.field === "sites",
    );
    await assert.rejects(
      () => compareAtpWithPatching(model, [1, 2, 3], { ids: [1, 4, 3] }, m, { top: 0 }),
      (e: unknown) => e instanceof InputError && e.field === "top",
    );
  } finally {
    model.destroy();
  }
  const base = [
    "atp",
    "--model",
    "fixtures/world/model",
    "--prompt",
    "Gurnur Rulex was born in",
    "--subject",
    "Gurnur Rulex",
    "--target",
    "Sunmere",
    "--corrupt-prompt",
    "Rastis Pirnas was born in",
    "--compare",
  ];
  const r = await engram(...base, "--sites", "resid_pre,mlp_out,v", "--top", "3", "--json");
  assert.equal(r.code, 0, r.stderr);
  const o = JSON.parse(r.stdout);
  assert.deepEqual(o.comparison.kinds.map((k: { kind: string }) => k.kind), ["resid_pre", "mlp_out"]);
  assert.deepEqual(o.comparison.not_compared, ["v"]);
  for (const k of o.comparison.kinds) {
    assert.equal(k.nodes, 2 * o.tokens.length);
    assert.equal(k.k, 3);
    assert.ok(k.spearman === null || (k.spearman >= -1 && k.spearman <= 1));
  }
  const bad = await engram(...base, "--sites", "q,k");
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--sites/);
  assert.doesNotMatch(bad.stderr, /at .*\.ts:\d+/);
});

Deno.test("AtP vs patching on the tiny trained Llama (fixtures/world-llama): positive rank correlation per kind", async () => {
  const hf = await loadHFModel("fixtures/world-llama/model");
  assert.equal(hf.config.family, "llama");
  const tok = hf.tokenizer!;
  const model = TransformerModel.create(await getGpu(), hf.config, hf.weights);
  try {
    const facts = (await Deno.readTextFile("fixtures/world/train_prompts.jsonl")).trim().split("\n")
      .map((l) => JSON.parse(l)).filter((f) => f.template === 0 && f.relation === "birthplace");
    const kinds: AtpSiteKind[] = ["resid_pre", "attn_out", "mlp_out", "resid_post", "head_out"];
    const rho = new Map<string, number[]>();
    let used = 0;
    for (let i = 0; i < facts.length && used < 3; i += 3) {
      const a = facts[i], b = facts.find((f) => f.answer !== a.answer && f.subject !== a.subject)!;
      const ea = encodeFact(tok, { prompt: a.prompt, subject: a.subject, target: a.answer });
      const eb = encodeFact(tok, { prompt: b.prompt, subject: b.subject, target: b.answer });
      const ca = ea.ids.slice(0, ea.promptLength), cb = eb.ids.slice(0, eb.promptLength);
      if (ca.length !== cb.length) continue;
      used++;
      const c = await compareAtpWithPatching(model, ca, { ids: cb }, {
        kind: "logit-diff",
        answer: ea.target![0],
        counterfactual: eb.target![0],
      }, { sites: kinds });
      for (const k of c.kinds) {
        if (k.spearman !== null) rho.set(k.kind, [...(rho.get(k.kind) ?? []), k.spearman]);
      }
    }
    assert.ok(used > 0, "no pair of facts of equal token length");
    for (const [k, v] of rho) {
      const mean = v.reduce((p, q) => p + q, 0) / v.length;
      console.log(`world Llama Spearman(AtP, patching) ${k}: ${v.map((x) => x.toFixed(3)).join(", ")}`);
      assert.ok(mean > 0, `${k}: mean rank correlation ${mean}`);
    }
  } finally {
    model.destroy();
  }
});

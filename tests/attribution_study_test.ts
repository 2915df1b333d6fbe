/**
 * `engram study attribution` at scale: the t interval against tabulated quantiles, the pooled
 * faithfulness statistics against an independent float64 forward on a tiny random model (fixed neuron
 * rankings), the fine-tuning summary over seeds, the findings logic, the folder rules, and a small
 * end-to-end run on the world model that writes the report.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { gpt2ForwardRef } from "../src/reference/gpt2.ts";
import { coarseNeurons, faithfulness, integratedGradients, rankNeurons } from "../src/attribute/neurons.ts";
import { studyAttribution } from "../src/attribute/study.ts";
import { tCdf, tInterval, tQuantile } from "../src/evaluate/t_interval.ts";
import { faithfulnessRecords, type TestRecord } from "../src/evaluate/attribution/record.ts";
import {
  type FaithfulnessSummary,
  findings,
  summarizeFaithfulness,
  summarizeFinetune,
} from "../src/evaluate/attribution/summary.ts";
import { openAttributionFolder } from "../src/evaluate/attribution/folder.ts";
import { StudyModelMismatchError, StudySettingsMismatchError } from "../src/evaluate/localization/folder.ts";
import { attributionStudySchema } from "../src/schema/attribution_study.ts";
import { engram, freshSeed, rng } from "./_util.ts";

Deno.test("t interval: quantiles match the tables, CDF symmetric, interval by hand", () => {
  // Two-sided 95% (p = 0.975) and one 90% value from standard t tables.
  const table: Array<[number, number, number]> = [
    [0.975, 1, 12.7062047],
    [0.975, 2, 4.30265273],
    [0.975, 4, 2.77644511],
    [0.975, 9, 2.26215716],
    [0.975, 30, 2.04227246],
    [0.95, 5, 2.01504837],
    [0.995, 10, 3.16927267],
  ];
  for (const [p, df, want] of table) {
    const got = tQuantile(p, df);
    assert.ok(Math.abs(got - want) < 1e-6, `t(${p}, ${df}) = ${got}, table ${want}`);
    assert.ok(Math.abs(tQuantile(1 - p, df) + want) < 1e-6);
    assert.ok(Math.abs(tCdf(want, df) - p) < 1e-8);
  }
  assert.equal(tCdf(0, 3), 0.5);
  // Large df tends to the normal quantile 1.959964.
  assert.ok(Math.abs(tQuantile(0.975, 1e6) - 1.959964) < 1e-4);
  const ci = tInterval([1, 2, 3, 4, 5]);
  const half = 2.77644511 * Math.sqrt(2.5) / Math.sqrt(5);
  assert.equal(ci.n, 5);
  assert.equal(ci.mean, 3);
  assert.ok(Math.abs(ci.half_width! - half) < 1e-6 && Math.abs(ci.lo! - (3 - half)) < 1e-6);
  const one = tInterval([2, NaN]);
  assert.deepEqual([one.n, one.mean, one.half_width], [1, 2, null]);
});

const CONFIG = {
  nLayer: 2,
  nHead: 2,
  nEmbd: 12,
  vocabSize: 23,
  nPositions: 12,
  nInner: 28,
  layerNormEpsilon: 1e-5,
};

Deno.test("faithfulness pooled over tests matches float64 masked forwards (fixed neurons, flips counted)", async () => {
  const seed = freshSeed();
  const gpu = await getGpu();
  const weights = randomGPT2(CONFIG, seed, { std: 0.4 });
  const model = TransformerModel.create(gpu, CONFIG, weights);
  try {
    const r = rng(seed);
    const tok = () => Math.floor(r() * CONFIG.vocabSize);
    // Fixed rankings (not IG): the pooled statistics are what is tested here.
    const prompts = Array.from({ length: 5 }, (_, i) => {
      const ids = Array.from({ length: 3 + (i % 3) }, tok);
      const ranking = Array.from({ length: 7 }, (_, j) => ({
        layer: (i + j) % 2,
        neuron: (5 * i + 3 * j + 1) % CONFIG.nInner,
        score: 1 - j / 10,
      }));
      return { ids, target: tok(), ranking };
    });
    const ks = [1, 4, 50]; // 50 > 7: clipped to the ranking (Yu et al.'s use_top)
    const recs: TestRecord[] = [];
    for (const [i, p] of prompts.entries()) {
      const f = await faithfulness(model, p.ids, p.target, p.ranking, ks, {
        randomTrials: 2,
        seed: seed + i,
      });
      recs.push({ index: i, p_label: f.labelProb, faithfulness: faithfulnessRecords(ks, f) } as TestRecord);
    }
    const got = summarizeFaithfulness(recs);
    // Independent float64: multiply the kept neurons by f and the rest by `rest` at the last position.
    const ref = (ids: number[], keep: Array<{ layer: number; neuron: number }>, f: number, rest: number) => {
      const patch: Record<string, (v: Float64Array, T: number, w: number) => void> = {};
      for (let l = 0; l < CONFIG.nLayer; l++) {
        const set = new Set(keep.filter((n) => n.layer === l).map((n) => n.neuron));
        patch[`mlp_post.${l}`] = (v, T, w) => {
          for (let j = 0; j < w; j++) v[(T - 1) * w + j] *= set.has(j) ? f : rest;
        };
      }
      return gpt2ForwardRef(CONFIG, weights, ids, { hooks: { patch } }).logprobsLast;
    };
    const argmax = (x: ArrayLike<number>) => {
      let b = 0;
      for (let i = 1; i < x.length; i++) if (x[i] > x[b]) b = i;
      return b;
    };
    let anyFlip = 0, anyKept = 0;
    for (const [j, k] of ks.entries()) {
      assert.equal(got[j].k, k);
      assert.equal(got[j].k_used_mean, Math.min(k, 7));
      for (const mode of ["sufficiency", "comprehensiveness"] as const) {
        let flips = 0, drop = 0, base = 0, blocked = 0;
        for (const p of prompts) {
          const b = gpt2ForwardRef(CONFIG, weights, p.ids).logprobsLast;
          const label = argmax(b);
          const sel = p.ranking.slice(0, Math.min(k, 7));
          const lp = mode === "sufficiency" ? ref(p.ids, sel, 1, 0) : ref(p.ids, sel, 0, 1);
          if (argmax(lp) !== label) flips++;
          drop += Math.exp(b[label]) - Math.exp(lp[label]);
          base += Math.exp(b[label]);
          blocked += Math.exp(lp[label]);
        }
        const c = got[j][mode];
        assert.equal(c.runs, prompts.length);
        assert.equal(c.flips, flips, `${mode} k=${k} flips (seed ${seed})`);
        assert.ok(
          Math.abs(c.prob_drop_mean - drop / prompts.length) < 2e-5,
          `${mode} k=${k} drop (seed ${seed})`,
        );
        assert.ok(
          Math.abs(c.kept_probability_ratio - blocked / base) < 1e-4,
          `${mode} k=${k} ratio (seed ${seed})`,
        );
        assert.equal(c.kept_predictions, 1 - flips / prompts.length);
        assert.equal(got[j][`random_${mode}`].runs, 2 * prompts.length);
        anyFlip += flips;
        anyKept += prompts.length - flips;
      }
    }
    // Sufficiency with one neuron flips on this random model, comprehensiveness of one rarely does:
    // both outcomes occur, so the flip count is checked on both sides.
    assert.ok(anyFlip > 0 && anyKept > 0, `flips ${anyFlip}, kept ${anyKept} (seed ${seed})`);
  } finally {
    model.destroy();
  }
});

Deno.test("studyAttribution: the coarse neurons (Yu et al.) and every neuron ranked (--faith-ranking all)", async () => {
  const seed = freshSeed();
  const gpu = await getGpu();
  const model = TransformerModel.create(gpu, CONFIG, randomGPT2(CONFIG, seed, { std: 0.4 }));
  try {
    const r = rng(seed);
    const ids = [1, 2, 3].map(() => Math.floor(r() * CONFIG.vocabSize));
    const target = Math.floor(r() * CONFIG.vocabSize);
    const got = await studyAttribution(model, ids, target, { steps: 6 });
    const attr = await integratedGradients(model, ids, target, {
      steps: 6,
      points: "linspace",
      activation: "pre",
    });
    assert.deepEqual(got.coarse, coarseNeurons(attr, 0.1, { strict: true }));
    assert.deepEqual(got.ranking, rankNeurons(attr));
    assert.equal(got.ranking.length, CONFIG.nLayer * CONFIG.nInner);
    assert.ok(got.coarse.length < got.ranking.length, `coarse ${got.coarse.length} (seed ${seed})`);
  } finally {
    model.destroy();
  }
});

const cell = (kept: number, ratio: number) => ({
  runs: 10,
  flips: Math.round(10 * (1 - kept)),
  flip_rate: 1 - kept,
  kept_predictions: kept,
  prob_drop_mean: 0.5 * (1 - ratio),
  p_baseline_label_mean: 0.5,
  p_blocked_label_mean: 0.5 * ratio,
  kept_probability_ratio: ratio,
  retained_ratio_target_mean: ratio,
});

Deno.test("fine-tuning summary over seeds and the findings table", () => {
  const rec = (i: number, top: number, rnd: number[]) =>
    ({ index: i, finetune: { delta_top: top, delta_random_by_seed: rnd, seeds: [1, 2, 3] } }) as TestRecord;
  const ft = summarizeFinetune([rec(0, 1, [0.2, 0.4, 0.3]), rec(1, 3, [0.4, 0.6, 0.5])]);
  assert.deepEqual(ft.seeds, [1, 2, 3]);
  assert.deepEqual(ft.delta_random_by_seed.map((v) => +v.toFixed(12)), [0.3, 0.5, 0.4]);
  assert.equal(ft.delta_top.mean, 2);
  assert.deepEqual(ft.gain_over_random_by_seed.map((v) => +v.toFixed(12)), [1.7, 1.5, 1.6]);
  // Over seeds: mean 1.6, sd 0.1, t(0.975, 2) = 4.30265.
  assert.ok(Math.abs(ft.gain_over_random.half_width! - 4.30265273 * 0.1 / Math.sqrt(3)) < 1e-9);
  assert.deepEqual(ft.gain_over_random_tests.n, 2);

  const faith = (k: number, suffKept: number, compKept: number): FaithfulnessSummary => ({
    k,
    k_used_mean: k,
    sufficiency: cell(suffKept, suffKept),
    comprehensiveness: cell(compKept, 0.95),
    random_sufficiency: cell(0, 0.1),
    random_comprehensiveness: cell(1, 1),
  });
  let f = findings([faith(1, 0.9, 0.2), faith(100, 0.1, 0.95)], ft);
  assert.deepEqual(f.map((x) => x.holds), [true, true, false]); // gain CI above 0: top-k better
  assert.equal(f[0].value, 0.9);
  assert.equal(f[1].secondary.value, 0.95);
  // Exactly at the threshold does not hold ("> 80%"); a missing k is n/a; a CI reaching 0 holds.
  const flat = summarizeFinetune([rec(0, 0.4, [0.2, 0.6, 0.4]), rec(1, 0.4, [0.3, 0.5, 0.4])]);
  f = findings([faith(1, 0.8, 0.2)], flat);
  assert.deepEqual(f.map((x) => x.holds), [false, null, true]);
  // One seed: no interval, no verdict.
  const single = summarizeFinetune(
    [{ index: 0, finetune: { delta_top: 1, delta_random_by_seed: [0], seeds: [1] } }] as TestRecord[],
  );
  assert.equal(findings([], single)[2].holds, null);
});

Deno.test("study folder: another model's weights or other settings are refused on --resume; existing folder needs a flag", async () => {
  const dir = await Deno.makeTempDir({ prefix: "engram_attr_folder_" });
  try {
    const out = `${dir}/o`;
    const header = {
      kind: "engram attribution study" as const,
      fingerprint: "a".repeat(64),
      model: "m",
      settings: { k: 5 },
    };
    assert.deepEqual(await openAttributionFolder(out, header), { resumed: false });
    await assert.rejects(openAttributionFolder(out, header), /already exists/);
    assert.deepEqual(await openAttributionFolder(out, header, { resume: true }), { resumed: true });
    await assert.rejects(
      openAttributionFolder(out, { ...header, fingerprint: "b".repeat(64) }, { resume: true }),
      StudyModelMismatchError,
    );
    await assert.rejects(
      openAttributionFolder(out, { ...header, settings: { k: 6 } }, { resume: true }),
      StudySettingsMismatchError,
    );
    assert.deepEqual(await openAttributionFolder(out, header, { overwrite: true }), { resumed: false });
    await Deno.mkdir(`${dir}/mine`);
    await Deno.writeTextFile(`${dir}/mine/keep.txt`, "x");
    await assert.rejects(
      openAttributionFolder(`${dir}/mine`, header, { overwrite: true }),
      /not written by engram/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CLI study attribution --out on the world model: per-test JSON, summary (schema), figures, report; resume keeps tests", async () => {
  const dir = await Deno.makeTempDir({ prefix: "engram_attr_cli_" });
  try {
    // Prompts without subjects keep the pool to the --pool random instances (fast).
    const prompts = `${dir}/prompts.jsonl`;
    const lines = (await Deno.readTextFile("fixtures/world/heldout.jsonl")).split("\n").filter(Boolean)
      .slice(0, 40).map((l) => JSON.parse(l)).filter((_, i) => i % 20 === 0)
      .map((r) => JSON.stringify({ prompt: r.prompt, answer: r.answer }));
    await Deno.writeTextFile(prompts, lines.join("\n") + "\n");
    const out = `${dir}/study`;
    const args = [
      "study",
      "attribution",
      "--model",
      "fixtures/world/model",
      "--train",
      "fixtures/world/train.jsonl",
      "--prompts",
      prompts,
      "--tests",
      "2",
      "--pool",
      "5",
      "--k",
      "2",
      "--steps",
      "3",
      "--ks",
      "1,3",
      "--seeds",
      "2",
      "--draws",
      "1",
      "--faith-draws",
      "1",
      "--ft-steps",
      "1",
      "--quiet",
      "--out",
      out,
    ];
    const r = await engram(...args, "--json");
    assert.equal(r.code, 0, r.stderr);
    const summary = attributionStudySchema.parse(JSON.parse(r.stdout));
    assert.deepEqual(summary, JSON.parse(await Deno.readTextFile(`${out}/summary.json`)));
    assert.equal(summary.tests, 2);
    assert.equal(summary.pool, 5);
    assert.deepEqual(summary.faithfulness.map((x) => x.k), [1, 3]);
    assert.deepEqual(summary.finetune.seeds, [1, 2]);
    assert.equal(summary.findings[1].holds, null, "k = 100 was not run: finding 2 is n/a");
    const t0 = JSON.parse(await Deno.readTextFile(`${out}/tests/test_0.json`));
    assert.equal(t0.index, 0);
    assert.equal(t0.finetune.delta_random_by_seed.length, 2);
    const html = await Deno.readTextFile(`${out}/report.html`);
    assert.match(html, /Findings/);
    assert.match(html, /<svg/);
    assert.doesNotMatch(html, /<script|src="http|href="http|<link /, "self-contained");
    for (const fig of ["faithfulness_kept", "faithfulness_drop", "finetune", "overlap_diversity"]) {
      assert.match(await Deno.readTextFile(`${out}/figures/${fig}.svg`), /^<svg/);
    }
    // The existing folder is refused without a flag; --resume keeps the finished tests as they are.
    const again = await engram(...args);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /already exists/);
    const before = await Deno.readTextFile(`${out}/tests/test_1.json`);
    await Deno.remove(`${out}/tests/test_0.json`);
    const resumed = await engram(...args, "--resume", "--json");
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(await Deno.readTextFile(`${out}/tests/test_1.json`), before);
    const t0b = JSON.parse(await Deno.readTextFile(`${out}/tests/test_0.json`));
    assert.deepEqual(t0b.faithfulness, t0.faithfulness, "a rerun test gives the same faithfulness");
    // Other settings are refused on resume.
    const other = await engram(...args.map((a) => (a === "1,3" ? "1,2" : a)), "--resume");
    assert.notEqual(other.code, 0);
    assert.match(other.stderr, /other settings/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * Causal-tracing corruptions (ROME's noise rules, symmetric token replacement) and metrics (prob,
 * logprob, logit-diff): the batched GPU trace against the float64 twin (src/locate/trace_ref.ts), with
 * the noise values built here from the reference definitions; numpy's uniform and chisquare draws
 * against values printed by numpy 2.4 itself; properties and typed errors; the CLI flags.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { InputError } from "../src/errors.ts";
import { getGpu } from "../src/gpu/device.ts";
import { saveHFModel } from "../src/io/hf_model.ts";
import { loadTokenizer } from "../src/io/tokenizer.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { NumpyRandomState } from "../src/locate/numpy_random.ts";
import { subjectNoise } from "../src/locate/patching.ts";
import { embeddingGaussian, subjectReplacement } from "../src/locate/corruption.ts";
import {
  causalTrace,
  TRACE_KINDS,
  type TraceCorruption,
  type TraceKind,
  type TraceMetric,
} from "../src/locate/trace.ts";
import { causalTraceRef } from "../src/locate/trace_ref.ts";
import { parseNoiseFlag, romeNoiseRule } from "../src/cli/trace.ts";
import { engram, freshSeed, maxAbsErr, rng } from "./_util.ts";

const WORLD = new URL("../fixtures/world/", import.meta.url).pathname;

const TINY = {
  nLayer: 3,
  nHead: 2,
  nEmbd: 10,
  vocabSize: 37,
  nPositions: 16,
  nInner: 40,
  layerNormEpsilon: 1e-5,
};

Deno.test("numpy RandomState uniform(-1, 1) and chisquare(df): numpy's own values", () => {
  // numpy 2.4.6: RandomState(1).uniform(-1, 1, 6); RandomState(2).chisquare(df, 6).
  const u = new NumpyRandomState(1);
  assert.deepEqual(Array.from({ length: 6 }, () => u.uniform(-1, 1)), [
    -0.165955990594852,
    0.4406489868843162,
    -0.9997712503653102,
    -0.39533485473632046,
    -0.7064882183657739,
    -0.8153228104624044,
  ]);
  const golden: Record<number, number[]> = {
    3: [1.5438607459046478, 2.2138815149120945, 0.20774935783382983, 0.9464088852915643],
    5: [3.218580168755673, 4.169789951778754, 0.9075890986438071, 2.2976418511299666],
    1.5: [1.085999065164185, 0.6759390059618609, 0.24119879249955845, 0.4041157879028566],
    1: [0.6100824519071946, 0.3534181780637327, 0.08376212682710958, 0.1795858469099699],
  };
  for (const [df, want] of Object.entries(golden)) {
    const r = new NumpyRandomState(2);
    assert.deepEqual(want.map(() => r.chisquare(Number(df))), want, `chisquare(${df})`);
  }
  // The last three of RandomState(2).chisquare(3, 1000): ROME's t rule draws exactly these 1000.
  const r = new NumpyRandomState(2);
  const all = Array.from({ length: 1000 }, () => r.chisquare(3));
  assert.deepEqual(all.slice(-3), [1.8053253837559622, 0.9535072925652387, 0.30750682342565716]);
});

Deno.test("trace --noise: ROME's noise codes", () => {
  assert.deepEqual(parseNoiseFlag("s"), { multiple: 1 });
  assert.deepEqual(romeNoiseRule("u0.5"), { dist: "uniform", noise: "0.5" });
  assert.deepEqual(romeNoiseRule("t3"), { dist: "t", noise: "1", df: 3 });
  assert.deepEqual(romeNoiseRule("m"), { dist: "mvn", noise: "1" });
  assert.equal(romeNoiseRule("s3"), undefined);
  assert.equal(romeNoiseRule("0.1"), undefined);
  assert.equal(romeNoiseRule("ux"), undefined);
});

Deno.test("embedding Gaussian: mean and covariance (n - 1) of the rows, A·Aᵀ = Σ", () => {
  const w = randomGPT2(TINY, 4, { std: 0.3 });
  const C = TINY.nEmbd, wte = w.get("wte.weight")!.data;
  const ids = [3, 5, 5, 9, 20, 1, 36, 0, 7, 11, 13, 2];
  const g = embeddingGaussian(w, C, ids);
  const mean = new Float64Array(C);
  for (const id of ids) for (let c = 0; c < C; c++) mean[c] += wte[id * C + c] / ids.length;
  assert.ok(maxAbsErr(g.mean, mean) < 1e-12);
  let err = 0;
  for (let i = 0; i < C; i++) {
    for (let j = 0; j < C; j++) {
      let cov = 0, aat = 0;
      for (const id of ids) cov += (wte[id * C + i] - mean[i]) * (wte[id * C + j] - mean[j]);
      cov /= ids.length - 1;
      for (let k = 0; k < C; k++) aat += g.factor[i * C + k] * g.factor[j * C + k];
      err = Math.max(err, Math.abs(cov - aat));
    }
  }
  assert.ok(err < 1e-12, `|A Aᵀ - Σ| = ${err}`);
  assert.throws(() => embeddingGaussian(w, C, [3]), InputError);
});

/** A corruption under test: the GPU trace's option and the twin's inputs, built independently. */
interface Case {
  name: string;
  corruption: TraceCorruption;
  scale: number;
  /** The twin's noise [sample][token][C] (empty for token replacement), or its corrupted prompt. */
  noise: Float64Array;
  replace?: boolean;
  corruptIds?: number[];
}

function cases(seed: number, ids: number[], range: [number, number], samples: number): Case[] {
  const C = TINY.nEmbd, n = range[1] - range[0], N = samples * n * C;
  const r = rng(seed + 7);
  // Hand-made fit (not from embeddingGaussian): any A with its own mean.
  const mean = Float64Array.from({ length: C }, () => r() - 0.5);
  const factor = Float64Array.from({ length: C * C }, () => (r() - 0.5) * 0.8);
  const fit = { mean, factor };
  const gaussian = subjectNoise(samples, n, C, 0.7, seed);
  const us = new NumpyRandomState(seed);
  const uniform = Float64Array.from({ length: N }, () => 0.9 * (-1 + 2 * us.randomSample()));
  const mvn = (df?: number) => {
    const x = new NumpyRandomState(seed).randn(N);
    const chi = new NumpyRandomState(seed + 1);
    const out = new Float64Array(N);
    for (let row = 0; row < samples * n; row++) {
      const f = df === undefined ? 1 : Math.sqrt((df - 2) / chi.chisquare(df));
      for (let i = 0; i < C; i++) {
        let s = 0;
        for (let j = 0; j < C; j++) s += factor[i * C + j] * x[row * C + j];
        out[row * C + i] = 1.3 * f * (s + mean[i]);
      }
    }
    return out;
  };
  const other = [(ids[range[0]] + 5) % TINY.vocabSize, (ids[range[0] + 1] + 11) % TINY.vocabSize];
  return [
    { name: "gaussian", corruption: { kind: "noise" }, scale: 0.7, noise: gaussian },
    {
      name: "gaussian replace",
      corruption: { kind: "noise", replace: true },
      scale: 0.7,
      noise: gaussian,
      replace: true,
    },
    { name: "uniform", corruption: { kind: "noise", dist: "uniform" }, scale: 0.9, noise: uniform },
    { name: "mvn", corruption: { kind: "noise", dist: "mvn", fit }, scale: 1.3, noise: mvn() },
    { name: "t(5)", corruption: { kind: "noise", dist: "t", df: 5, fit }, scale: 1.3, noise: mvn(5) },
    {
      name: "tokens",
      corruption: { kind: "tokens", ids: other },
      scale: 0,
      noise: new Float64Array(0),
      corruptIds: ids.map((id, t) => (t >= range[0] && t < range[1] ? other[t - range[0]] : id)),
    },
  ];
}

Deno.test("corruptions x metrics: batched GPU trace equals the float64 twin", async () => {
  const seed = freshSeed();
  const r = rng(seed);
  const weights = randomGPT2(TINY, seed, { std: 0.5 });
  const model = TransformerModel.create(await getGpu(), TINY, weights);
  const ids = Array.from({ length: 6 }, () => Math.floor(r() * TINY.vocabSize));
  const range: [number, number] = [1, 3];
  const samples = 2, answer = [4], counterfactual = 9;
  let worst = 0;
  for (const c of cases(seed + 1, ids, range, samples)) {
    // Every corruption with every metric would be 18 traces: the metrics on three of them, prob on all.
    const all = ["gaussian", "t(5)", "tokens"].includes(c.name);
    for (const metric of (all ? ["prob", "logprob", "logit-diff"] : ["prob"]) as TraceMetric[]) {
      // The metric scores the runs whatever is restored: all kinds with prob, hidden states otherwise.
      const kinds = metric === "prob" ? [...TRACE_KINDS] : (["hidden"] as const).slice();
      const res = await causalTrace(model, ids, range, {
        kinds,
        samples,
        noiseStd: c.scale,
        window: 2,
        seed: seed + 1,
        answer,
        corruption: c.corruption,
        metric,
        counterfactual: metric === "logit-diff" ? counterfactual : undefined,
      });
      const ref = causalTraceRef(TINY, weights, ids, range, answer, c.noise, {
        kinds,
        window: 2,
        replace: c.replace,
        corruptIds: c.corruptIds,
        metric,
        counterfactual,
      });
      const what = `${c.name} / ${metric} (seed ${seed})`;
      assert.equal(res.metric, metric);
      assert.equal(res.corruption.kind, c.corruption.kind);
      assert.equal(res.samples, c.corruptIds ? 1 : samples);
      // Probabilities to 1e-5 relative; log-probabilities and logit differences to 5e-5 of max(1, |v|).
      const tolOf = (
        v: number,
      ) => (metric === "prob" ? 2e-5 * Math.max(1e-3, v) : 5e-5 * Math.max(1, Math.abs(v)));
      for (
        const [got, want, label] of [
          [res.pClean, ref.pClean, "p_clean"],
          [res.pCorrupt, ref.pCorrupt, "p_corrupt"],
        ] as const
      ) assert.ok(Math.abs(got - want) <= 2e-5 * Math.max(1e-3, want), `${what} ${label}: ${got} vs ${want}`);
      assert.ok(
        Math.abs(res.metricClean - ref.metricClean) <= tolOf(ref.metricClean),
        `${what} metric_clean`,
      );
      assert.ok(
        Math.abs(res.metricCorrupt - ref.metricCorrupt) <= tolOf(ref.metricCorrupt),
        `${what} corrupt`,
      );
      assert.ok(Math.abs(res.totalEffect - (res.metricClean - res.metricCorrupt)) < 1e-12);
      if (metric === "prob") assert.equal(res.metricClean, res.pClean);
      for (const t of res.traces) {
        const want = ref.scores[t.kind].flat();
        const scale = Math.max(...want.map(Math.abs));
        const e = maxAbsErr(t.scores.flat(), want);
        worst = Math.max(worst, e / Math.max(metric === "prob" ? 1e-3 : 1, scale));
        assert.ok(e <= tolOf(scale), `${what} ${t.kind}: max error ${e} vs scale ${scale}`);
        assert.deepEqual(t.effects, t.scores.map((row) => row.map((v) => v - res.metricCorrupt)));
      }
      // The corruption changed something (the test could not pass on an uncorrupted run).
      assert.ok(Math.abs(ref.metricClean - ref.metricCorrupt) > 1e-6, `${what}: corruption had no effect`);
    }
  }
  // Multi-token answers scored as a sequence (the product / sum over its tokens), per corruption.
  for (
    const c of cases(seed + 1, ids, range, samples).filter((x) => ["uniform", "tokens"].includes(x.name))
  ) {
    for (const metric of ["prob", "logprob"] as TraceMetric[]) {
      const opts = {
        kinds: ["hidden", "mlp"] as TraceKind[],
        window: 2,
        answer: [4, 9, 2],
        targetProb: "sequence" as const,
        metric,
      };
      const res = await causalTrace(model, ids, range, {
        ...opts,
        samples,
        noiseStd: c.scale,
        seed: seed + 1,
        corruption: c.corruption,
      });
      const ref = causalTraceRef(TINY, weights, ids, range, opts.answer, c.noise, {
        ...opts,
        corruptIds: c.corruptIds,
      });
      for (const t of res.traces) {
        const want = ref.scores[t.kind].flat(), scale = Math.max(...want.map(Math.abs));
        const e = maxAbsErr(t.scores.flat(), want);
        const tol = metric === "prob" ? 2e-5 * scale : 5e-5 * Math.max(1, scale);
        worst = Math.max(worst, e / (metric === "prob" ? scale : Math.max(1, scale)));
        assert.ok(e <= tol, `sequence ${c.name} / ${metric} ${t.kind}: ${e} vs ${scale} (seed ${seed})`);
      }
    }
  }
  console.log(`worst relative error vs the float64 twin: ${worst.toExponential(2)}`);
  model.destroy();
});

Deno.test("token replacement: restoring the last token's last-layer state gives the clean metric back", async () => {
  const seed = freshSeed();
  const r = rng(seed);
  const cfg = { ...TINY, nLayer: 4 };
  const weights = randomGPT2(cfg, seed, { std: 0.5 });
  const model = TransformerModel.create(await getGpu(), cfg, weights);
  const ids = Array.from({ length: 7 }, () => Math.floor(r() * cfg.vocabSize));
  const range: [number, number] = [2, 5];
  const other = [1, 2, 3].map((k) => (ids[range[0] + k - 1] + 3 * k) % cfg.vocabSize);
  for (const metric of ["prob", "logprob", "logit-diff"] as TraceMetric[]) {
    // (Not with targetProb "sequence": the appended answer tokens still read corrupted states.)
    {
      const targetProb = "first" as const;
      const res = await causalTrace(model, ids, range, {
        kinds: ["hidden"],
        corruption: { kind: "tokens", ids: other },
        answer: [5],
        targetProb,
        metric,
        counterfactual: 8,
      });
      const s = res.traces[0].scores;
      const T = ids.length, L = cfg.nLayer;
      const tol = 5e-5 * Math.max(metric === "prob" ? res.pClean : 1, Math.abs(res.metricClean));
      // Every token's row: before the subject nothing differs (exactly the corrupted score).
      for (let t = 0; t < range[0]; t++) assert.ok(s[t].every((v) => v === res.metricCorrupt));
      // Restoring the last token's state at the last layer restores the clean output.
      assert.ok(
        Math.abs(s[T - 1][L - 1] - res.metricClean) <= tol,
        `${metric}/${targetProb}: ${s[T - 1][L - 1]} vs clean ${res.metricClean} (seed ${seed})`,
      );
      assert.ok(
        Math.abs(res.metricClean - res.metricCorrupt) > 1e-6,
        `corruption had no effect (seed ${seed})`,
      );
    }
  }
  // Replacing the subject by itself changes nothing: every effect is 0.
  const same = await causalTrace(model, ids, range, {
    kinds: ["hidden", "mlp"],
    corruption: { kind: "tokens", ids: ids.slice(range[0], range[1]) },
    answer: [5],
    window: 2,
  });
  for (const t of same.traces) assert.ok(t.effects.flat().every((v) => Math.abs(v) < 1e-6));
  model.destroy();
});

Deno.test("corruptions and metrics: typed errors", async () => {
  const model = TransformerModel.create(await getGpu(), TINY, randomGPT2(TINY, 3));
  const ids = [1, 2, 3, 4, 5];
  const bad = async (opts: Parameters<typeof causalTrace>[3], field: string, re?: RegExp) => {
    await assert.rejects(causalTrace(model, ids, [1, 3], opts), (e: unknown) => {
      assert.ok(e instanceof InputError, String(e));
      assert.equal(e.field, field);
      if (re) assert.match(e.message, re);
      return true;
    });
  };
  await bad({ corruption: { kind: "tokens", ids: [7] } }, "corruption", /1 tokens, the subject 2/);
  await bad({ corruption: { kind: "tokens", ids: [7, 99] } }, "corruption", /out of range/);
  await bad({}, "noise"); // noise corruption without a scale
  await bad({ noiseStd: 0.1, metric: "logit-diff" }, "counterfactual", /needs a counterfactual/);
  await bad({ noiseStd: 0.1, metric: "logit-diff", counterfactual: 37 }, "counterfactual", /out of range/);
  await bad({ noiseStd: 0.1, metric: "kl" as TraceMetric }, "metric");
  await bad(
    { noiseStd: 0.1, metric: "logit-diff", counterfactual: 2, answer: [3, 4], targetProb: "sequence" },
    "metric",
  );
  await bad({
    noiseStd: 0.1,
    corruption: { kind: "noise", dist: "t", df: 2, fit: embeddingGaussian(model.weights, 10) },
  }, "noiseDf");
  await bad({ noiseStd: 1, corruption: { kind: "noise", dist: "mvn" } }, "noiseFit");
  await bad({ noiseStd: 1, corruption: { kind: "noise", dist: "cauchy" as "t" } }, "noiseDist");
  model.destroy();

  // A replacement subject of another token length names the field and both lengths.
  const tok = await loadTokenizer(WORLD);
  const fact = { prompt: "Narnux Zava was born in", subject: "Narnux Zava" };
  const repl = subjectReplacement(tok, fact, "Gurnur Rulex", {});
  assert.equal(repl.length, 2);
  assert.throws(() => subjectReplacement(tok, fact, "Kini", {}, "--corrupt-subject"), (e: unknown) => {
    assert.ok(e instanceof InputError);
    assert.equal(e.field, "--corrupt-subject");
    assert.match(e.message, /'Kini' has 1 tokens, the subject 'Narnux Zava' 2/);
    return true;
  });
});

Deno.test("trace CLI: --corruption tokens, --noise-dist, --metric; typed errors; --facts drops unmatched subjects", async () => {
  const dir = await Deno.makeTempDir({ prefix: "engram_trace_corrupt_" });
  try {
    const tok = await loadTokenizer(WORLD);
    const cfg = {
      nLayer: 2,
      nHead: 2,
      nEmbd: 16,
      vocabSize: tok.vocabSize,
      nPositions: 24,
      nInner: 64,
      layerNormEpsilon: 1e-5,
    };
    const model = join(dir, "m");
    await saveHFModel(model, {
      config: cfg,
      weights: randomGPT2(cfg, 12, { std: 0.3 }),
      tokenizerFrom: WORLD,
      extraConfig: { bos_token_id: tok.eosId, eos_token_id: tok.eosId },
    });
    const base = ["trace", "--model", model, "--prompt", "Narnux was born in", "--subject", "Narnux"];
    const run = async (...extra: string[]) => {
      const r = await engram(
        ...base,
        "--target",
        "Tarvos",
        "--kind",
        "hidden",
        "--samples",
        "2",
        "--json",
        ...extra,
      );
      return r;
    };
    const t = await run(
      "--corrupt-subject",
      "Fostix",
      "--metric",
      "logit-diff",
      "--counterfactual",
      "Sunmere",
    );
    assert.equal(t.code, 0, t.stderr);
    const o = JSON.parse(t.stdout).traces[0];
    assert.equal(o.corruption.kind, "tokens");
    assert.equal(o.corruption.subject, "Fostix");
    assert.equal(o.corruption.ids.length, 1);
    assert.equal(o.metric, "logit-diff");
    assert.equal(o.counterfactual, "Sunmere");
    assert.equal(o.samples, 1);
    assert.ok(Math.abs(o.total_effect - (o.metric_clean - o.metric_corrupt)) < 1e-9);
    assert.ok(o.effects.flat().every(Number.isFinite));

    const u = await run("--noise", "t4", "--metric", "logprob"); // ROME's code for --noise-dist t --noise-df 4
    assert.equal(u.code, 0, u.stderr);
    const uo = JSON.parse(u.stdout).traces[0];
    assert.deepEqual(uo.corruption, { kind: "noise", dist: "t", df: 4, replace: false, noise_rng: "numpy" });
    assert.equal(uo.metric, "logprob");
    assert.ok(uo.metric_clean <= 0 && Math.abs(Math.exp(uo.metric_clean) - uo.p_clean) < 1e-6);

    for (
      const [args, re] of [
        [
          ["--corrupt-subject", "Gurnur Rulex"],
          /--corrupt-subject.*'Gurnur Rulex' has 2 tokens, the subject 'Narnux' 1/,
        ],
        [["--metric", "logit-diff"], /--counterfactual/],
        [["--corruption", "tokens"], /needs --corrupt-subject/],
        [
          ["--corruption", "tokens", "--corrupt-subject", "Fostix", "--noise", "s3"],
          /--noise does not apply/,
        ],
        [["--noise-dist", "t", "--noise", "s3"], /--noise s<k> does not apply/],
        [["--noise", "u0.5", "--noise-dist", "uniform"], /ROME's code for --noise-dist uniform/],
        [["--noise", "t1.5"], /degrees of freedom > 2/],
        [["--noise-dist", "t", "--noise-df", "2"], /degrees of freedom > 2/],
      ] as Array<[string[], RegExp]>
    ) {
      const b = await run(...args);
      assert.equal(b.code, 1, `${args.join(" ")}: ${b.stderr}`);
      assert.match(b.stderr, re);
      assert.doesNotMatch(b.stderr, /at .*\.ts:\d+/);
    }

    // --facts with subjects drawn from the data: "Gurnur Rulex" has no other 2-token subject and is dropped.
    const facts = join(dir, "facts.jsonl");
    await Deno.writeTextFile(
      facts,
      [
        { id: "a", prompt: "Narnux was born in", subject: "Narnux", answer: "Tarvos" },
        { id: "b", prompt: "The employer of Fostix is", subject: "Fostix", answer: "Tarvos" },
        { id: "c", prompt: "Gurnur Rulex plays", subject: "Gurnur Rulex", answer: "x" },
      ].map((x) => JSON.stringify(x)).join("\n"),
    );
    const fr = await engram(
      "trace",
      "--model",
      model,
      "--facts",
      facts,
      "--include-unknown",
      "--corruption",
      "tokens",
      "--metric",
      "logprob",
      "--kind",
      "hidden",
      "--json",
    );
    assert.equal(fr.code, 0, fr.stderr);
    const avg = JSON.parse(fr.stdout);
    assert.equal(avg.traced, 2);
    assert.equal(avg.skipped_no_replacement, 1);
    assert.deepEqual(avg.corruption, { kind: "tokens", subject: null, drawn: true });
    assert.equal(avg.metric, "logprob");
    assert.deepEqual(avg.facts.map((x: { corrupt_subject?: string }) => x.corrupt_subject), [
      "Fostix",
      "Narnux",
      undefined,
    ]);
    assert.match(avg.facts[2].reason, /no other subject of 2 tokens/);
    assert.ok(avg.kinds.hidden.mean.flat().every(Number.isFinite));
    // The average's low score is the mean corrupted log-probability.
    const low = (avg.facts[0].metric_corrupt + avg.facts[1].metric_corrupt) / 2;
    assert.ok(Math.abs(avg.kinds.hidden.low_score - low) < 1e-9);

    // logit-diff with --facts: a record's own `counterfactual` wins over --counterfactual; a record with
    // neither is invalid (named), the others are traced.
    const cfFacts = join(dir, "cf.jsonl");
    const rows = [
      {
        id: "a",
        prompt: "Narnux was born in",
        subject: "Narnux",
        answer: "Tarvos",
        counterfactual: "Sunmere",
      },
      { id: "b", prompt: "The employer of Fostix is", subject: "Fostix", answer: "Tarvos" },
    ];
    await Deno.writeTextFile(cfFacts, rows.map((x) => JSON.stringify(x)).join("\n"));
    const plain = join(dir, "plain.jsonl");
    await Deno.writeTextFile(plain, rows.map(({ counterfactual: _, ...x }) => JSON.stringify(x)).join("\n"));
    const cfRun = async (file: string, ...extra: string[]) => {
      const r = await engram(
        "trace",
        "--model",
        model,
        "--facts",
        file,
        "--include-unknown",
        "--samples",
        "2",
        "--metric",
        "logit-diff",
        "--kind",
        "hidden",
        "--json",
        ...extra,
      );
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout).facts;
    };
    const own = await cfRun(cfFacts, "--counterfactual", "Belmira");
    const allSunmere = await cfRun(plain, "--counterfactual", "Sunmere");
    const allBelmira = await cfRun(plain, "--counterfactual", "Belmira");
    assert.match(own[0].counterfactual, /Sunmere/);
    assert.match(own[1].counterfactual, /Belmira/);
    assert.ok(Math.abs(own[0].metric_clean - allSunmere[0].metric_clean) < 1e-9);
    assert.ok(Math.abs(own[1].metric_clean - allBelmira[1].metric_clean) < 1e-9);
    assert.ok(Math.abs(allSunmere[0].metric_clean - allBelmira[0].metric_clean) > 1e-6);
    const partial = await cfRun(cfFacts);
    assert.equal(partial[0].traced, true);
    assert.equal(partial[1].traced, false);
    assert.match(partial[1].error, /record 1: .*needs a counterfactual/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

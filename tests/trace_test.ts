import assert from "node:assert/strict";
import { join } from "node:path";
import { InputError } from "../src/errors.ts";
import { getGpu } from "../src/gpu/device.ts";
import { saveHFModel } from "../src/io/hf_model.ts";
import { loadTokenizer } from "../src/io/tokenizer.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { loadModel } from "../src/model/load.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { ClassAccumulator, tokenClassPositions } from "../src/locate/average.ts";
import { embeddingStd, subjectNoise } from "../src/locate/patching.ts";
import { encodeFact } from "../src/prompt/encode.ts";
import { causalTrace, TRACE_KINDS, windowLayers } from "../src/locate/trace.ts";
import { causalTraceRef } from "../src/locate/trace_ref.ts";
import { parseNoiseFlag } from "../src/cli/trace.ts";
import { heatmapSvg } from "../src/report/heatmap.ts";
import { decodeRomeCase } from "../src/report/rome_case.ts";
import { readNpz } from "../src/io/npz.ts";
import { engram, freshSeed, maxAbsErr, rng } from "./_util.ts";

const WORLD = new URL("../fixtures/world/", import.meta.url).pathname;
const WORLD_MODEL = join(WORLD, "model");
const haveWorldModel = (() => {
  try {
    return Deno.statSync(join(WORLD_MODEL, "model.safetensors")).isFile;
  } catch {
    return false;
  }
})();

const TINY = {
  nLayer: 3,
  nHead: 2,
  nEmbd: 10,
  vocabSize: 37,
  nPositions: 16,
  nInner: 40,
  layerNormEpsilon: 1e-5,
};

Deno.test("causal trace: batched GPU grid equals the float64 reference and the unbatched run", async () => {
  const seed = freshSeed();
  const r = rng(seed);
  const weights = randomGPT2(TINY, seed, { std: 0.5 });
  const model = TransformerModel.create(await getGpu(), TINY, weights);
  const ids = Array.from({ length: 6 }, () => Math.floor(r() * TINY.vocabSize));
  const range: [number, number] = [1, 3];
  const kinds = [...TRACE_KINDS];
  for (const targetProb of ["first", "sequence"] as const) {
    const answer = targetProb === "sequence" ? [4, 9, 2] : undefined;
    const opts = {
      kinds,
      samples: 3,
      noiseStd: 0.6,
      window: 2,
      seed: seed + 1,
      answer,
      targetProb,
      maxRows: 200,
    };
    const res = await causalTrace(model, ids, range, opts);
    assert.ok(res.stats.forwards < 10, `batched run used ${res.stats.forwards} forwards`);
    const noise = subjectNoise(3, 2, TINY.nEmbd, 0.6, seed + 1);
    const ref = causalTraceRef(TINY, weights, ids, range, res.answer, noise, {
      kinds,
      window: 2,
      targetProb,
    });
    const tol = 1e-5 * Math.max(1e-3, res.pClean, res.pCorrupt);
    assert.ok(
      Math.abs(res.pClean - ref.pClean) <= tol,
      `p_clean ${res.pClean} vs ${ref.pClean} (seed ${seed})`,
    );
    assert.ok(Math.abs(res.pCorrupt - ref.pCorrupt) <= tol, `p_corrupt (seed ${seed})`);
    for (const t of res.traces) {
      const e = maxAbsErr(t.scores.flat(), ref.scores[t.kind].flat());
      const scale = Math.max(...ref.scores[t.kind].flat());
      assert.ok(
        e <= 2e-5 * scale,
        `${targetProb} ${t.kind}: max error ${e} vs scale ${scale} (seed ${seed})`,
      );
      assert.deepEqual(t.effects, t.scores.map((row) => row.map((v) => v - res.pCorrupt)));
    }
    // Hidden state after the last layer at an earlier token cannot reach the answer: exactly p_corrupt.
    const hidden = res.traces[0];
    assert.ok(Math.abs(hidden.scores[0][TINY.nLayer - 1] - res.pCorrupt) <= 1e-7 * res.pCorrupt);
    if (targetProb === "first") {
      const un = await causalTrace(model, ids, range, { ...opts, batched: false });
      // Runs: clean, corrupted, and every restoration but the skipped no-ops (token 0 before the
      // subject: 3 kinds x 3 layers; last-layer hidden states of tokens 1..4).
      assert.equal(un.stats.forwards, 1 + 1 + 3 * 6 * 3 - 9 - 4);
      for (let k = 0; k < kinds.length; k++) {
        const e = maxAbsErr(res.traces[k].scores.flat(), un.traces[k].scores.flat());
        assert.ok(e <= 1e-6, `batched vs unbatched ${kinds[k]}: ${e} (seed ${seed})`);
      }
    }
  }
  model.destroy();
});

Deno.test("causal trace: windows clip at the ends; bad options are typed errors", async () => {
  assert.deepEqual(windowLayers("mlp", 0, 10, 4), [0, 1, 2, 3]);
  assert.deepEqual(windowLayers("attn", 5, 4, 12), [3, 4, 5, 6]);
  assert.deepEqual(windowLayers("mlp", 5, 3, 12), [4, 5, 6]);
  assert.deepEqual(windowLayers("mlp", 11, 10, 12), [6, 7, 8, 9, 10, 11]);
  assert.deepEqual(windowLayers("hidden", 2, 10, 12), [2]);
  const model = TransformerModel.create(await getGpu(), TINY, randomGPT2(TINY, 3));
  const ids = [1, 2, 3, 4];
  await assert.rejects(causalTrace(model, ids, [2, 2], { noiseStd: 0.1 }), InputError);
  await assert.rejects(causalTrace(model, ids, [0, 5], { noiseStd: 0.1 }), InputError);
  await assert.rejects(causalTrace(model, ids, [0, 1], { noiseStd: -1 }), InputError);
  await assert.rejects(causalTrace(model, ids, [0, 1], { noiseStd: 0.1, samples: 0 }), InputError);
  await assert.rejects(causalTrace(model, ids, [0, 1], { noiseStd: 0.1, window: 0 }), InputError);
  await assert.rejects(causalTrace(model, ids, [0, 1], { noiseStd: 0.1, answer: [99] }), InputError);
  // A window larger than the model restores every layer: all columns equal.
  const r = await causalTrace(model, ids, [0, 1], { noiseStd: 0.5, kinds: ["mlp"], window: 50, samples: 2 });
  assert.equal(r.traces[0].window, TINY.nLayer);
  for (const row of r.traces[0].scores) assert.ok(row.every((v) => v === row[0]));
  model.destroy();
});

// The inputs of a trace (subject range, target, BOS) are tested in prompt_test.ts.
Deno.test("noise, class helpers, heatmap", () => {
  // Noise: deterministic per seed, std close to the request.
  const n1 = subjectNoise(10, 3, 50, 0.5, 7), n2 = subjectNoise(10, 3, 50, 0.5, 7);
  assert.deepEqual(n1, n2);
  const sd = Math.sqrt(n1.reduce((s, x) => s + x * x, 0) / n1.length);
  assert.ok(Math.abs(sd - 0.5) < 0.05, `noise std ${sd}`);
  const w = randomGPT2(TINY, 5, { std: 0.2 });
  const all = embeddingStd(w, TINY.nEmbd);
  assert.ok(Math.abs(all - 0.2) < 0.03, `wte std ${all}`);
  const row = w.get("wte.weight")!.data.subarray(3 * TINY.nEmbd, 4 * TINY.nEmbd);
  const m = row.reduce((s, x) => s + x, 0) / row.length;
  const exp = Math.sqrt(row.reduce((s, x) => s + (x - m) ** 2, 0) / (row.length - 1));
  assert.ok(Math.abs(embeddingStd(w, TINY.nEmbd, [3]) - exp) < 1e-6);
  assert.deepEqual(parseNoiseFlag("s3"), { multiple: 3 });
  assert.deepEqual(parseNoiseFlag("0.1"), { absolute: 0.1 });
  assert.throws(() => parseNoiseFlag("x3"), InputError);

  // Token classes: [bos, s0, s1, s2, a, b, c] with subject [1, 4) (hand values: trace_average_test.ts).
  assert.deepEqual(tokenClassPositions(7, [1, 4]), [[1], [2], [3], [4], [5], [6]]);
  const acc = new ClassAccumulator(2, "prompt");
  acc.add([[0, 0], [1, 2], [0, 0]], 0, [1, 3]);
  acc.add([[0, 0], [3, 4], [1, 1]], 0, [1, 3]);
  const res = acc.result();
  assert.deepEqual(res.mean[0], [2, 3]);
  assert.deepEqual(res.count, [2, 0, 2, 0, 0, 2]);
  assert.ok(Math.abs(res.ci95[0][0] - 1.96 * Math.SQRT2 / Math.SQRT2) < 1e-12);

  const svg = heatmapSvg({
    values: [[0, 1], [0.5, 0.25]],
    rowLabels: ["a<b", "c"],
    marked: new Set([1]),
    colormap: "Greens",
    title: "t",
    xlabel: "x",
    colorbarLabel: "p",
  });
  assert.ok(svg.startsWith("<svg") && svg.trim().endsWith("</svg>"));
  assert.ok(svg.includes("a&lt;b") && svg.includes("c*"));
  assert.equal((svg.match(/<title>/g) ?? []).length, 4);
});

Deno.test("trace CLI: JSON contract, SVGs, facts averages, typed errors", async () => {
  const dir = await Deno.makeTempDir({ prefix: "engram_trace_" });
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
      weights: randomGPT2(cfg, 11, { std: 0.3 }),
      tokenizerFrom: WORLD,
      extraConfig: { bos_token_id: tok.eosId, eos_token_id: tok.eosId },
    });
    const out = join(dir, "out");
    const r = await engram(
      "trace",
      "--model",
      model,
      "--prompt",
      "The birthplace of Narnux is",
      "--subject",
      "Narnux",
      "--target",
      "Tarvos",
      "--samples",
      "3",
      "--out",
      out,
      "--json",
    );
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.schema, "engram-trace/1");
    const objs = doc.traces;
    assert.ok(Array.isArray(objs) && objs.length === 3);
    assert.deepEqual(objs.map((o: { kind: string }) => o.kind), ["hidden", "mlp", "attn"]);
    const o = objs[0];
    assert.equal(o.tokens[0], "<|endoftext|>");
    assert.equal(o.tokens.slice(o.subject_range[0], o.subject_range[1]).join("").trim(), "Narnux");
    assert.equal(o.layers, 2);
    assert.equal(o.effects.length, o.tokens.length);
    assert.ok(o.effects.every((row: number[]) => row.length === 2 && row.every(Number.isFinite)));
    assert.ok(o.p_clean > 0 && o.p_corrupt > 0);
    if (!o.known) assert.match(r.stderr, /does not know/);
    // The default window (10, ROME's) is clipped silently; an explicit one that is too large warns.
    assert.doesNotMatch(r.stderr, /--window/);
    assert.equal(o.noise_rng, "numpy");
    assert.equal(o.known_rule, "whole");
    for (const k of ["hidden", "mlp", "attn"]) {
      assert.match(await Deno.readTextFile(join(out, `trace_${k}.svg`)), /^<svg/);
    }
    assert.deepEqual(JSON.parse(await Deno.readTextFile(join(out, "trace.json"))), doc);
    // ROME's case record per kind (scores as float32), a PNG per SVG, the HTML report.
    const c = decodeRomeCase(await readNpz(join(out, "trace_mlp.npz")));
    assert.equal(c.kind, "mlp");
    assert.deepEqual(c.subject_range, objs[1].subject_range);
    assert.deepEqual(c.input_tokens, objs[1].tokens);
    c.scores.flat().forEach((v, i) => assert.equal(v, Math.fround(objs[1].scores.flat()[i])));
    assert.equal(c.low_score, objs[1].p_corrupt);
    assert.deepEqual([...(await Deno.readFile(join(out, "trace_attn.png"))).subarray(1, 4)], [80, 78, 71]);
    assert.equal(((await Deno.readTextFile(join(out, "report.html"))).match(/<svg /g) ?? []).length, 3);

    const bad = await engram(
      "trace",
      "--model",
      model,
      "--prompt",
      "Narnux was born in",
      "--subject",
      "Fostix",
      "--window",
      "10",
      "--json",
    );
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--window 10 is larger than the model's 2 layers/);
    assert.match(bad.stderr, /--subject/);
    assert.doesNotMatch(bad.stderr, /at .*\.ts:\d+/);

    const facts = join(dir, "facts.jsonl");
    await Deno.writeTextFile(
      facts,
      [
        { id: "a", prompt: "Narnux was born in", subject: "Narnux", answer: "Tarvos" },
        { id: "b", prompt: "The employer of Fostix is", subject: "Fostix", answer: "Tarvos" },
        { id: "c", prompt: "Kini plays", subject: "Zzz", answer: "x" },
        { id: "d", prompt: "Kini Vola plays", subject: "Kini Vola", answer: "x" },
      ].map((x) => JSON.stringify(x)).join("\n"),
    );
    const fo = join(dir, "fout");
    const fr = await engram(
      "trace",
      "--model",
      model,
      "--facts",
      facts,
      "--include-unknown",
      "--limit",
      "3",
      "--samples",
      "2",
      "--kind",
      "hidden",
      "--out",
      fo,
      "--json",
    );
    assert.equal(fr.code, 0, fr.stderr);
    const avg = JSON.parse(fr.stdout);
    assert.equal(avg.traced, 2);
    assert.equal(avg.skipped_invalid, 1);
    // Token pooling (default): "Narnux was born in" gives "was" (first subsequent) and "born" (further);
    // "Fostix is" gives "is" to both first subsequent and last token, as ROME's notebook does.
    assert.equal(avg.pool, "token");
    assert.deepEqual(avg.kinds.hidden.count, [2, 0, 2, 2, 1, 2]);
    assert.equal(avg.kinds.hidden.prompts, 2);
    assert.equal(avg.skipped_unknown, 0); // --include-unknown traces them
    assert.equal(avg.kinds.hidden.mean[0].length, 2);
    const avgSvg = await Deno.readTextFile(join(fo, "average_hidden.svg"));
    assert.match(avgSvg, /^<svg/);
    assert.doesNotMatch(avgSvg, /middle subject tokens/, "no subject here has middle tokens: row left out");
    assert.match(await Deno.readTextFile(join(fo, "aie_lines.svg")), /single hidden vector/);
    const saved = JSON.parse(await Deno.readTextFile(join(fo, "average.json")));
    assert.deepEqual(saved.facts.map((x: { cases?: string[] }) => x.cases), [["knowledge_a.npz"], [
      "knowledge_b.npz",
    ], undefined]);
    const ca = decodeRomeCase(await readNpz(join(fo, "knowledge_a.npz")));
    assert.equal(ca.kind, "");
    assert.equal(ca.scores.length, ca.input_tokens.length);
    // s3 noise: 3 x the sample std of the wte rows of every subject in the file (ROME's
    // collect_embedding_std over all knowns), also those past --limit.
    const wte = randomGPT2(cfg, 11, { std: 0.3 }).get("wte.weight")!.data;
    const vals = ["Narnux", "Fostix", "Zzz", "Kini Vola"].flatMap((x) => tok.encode(x)).flatMap((id) =>
      Array.from(wte.subarray(id * cfg.nEmbd, (id + 1) * cfg.nEmbd))
    );
    const mu = vals.reduce((a, x) => a + x, 0) / vals.length;
    const sd = Math.sqrt(vals.reduce((a, x) => a + (x - mu) ** 2, 0) / (vals.length - 1));
    assert.ok(Math.abs(avg.noise_std - 3 * sd) < 1e-9, `noise std ${avg.noise_std} vs ${3 * sd}`);
    assert.equal(avg.records, 3);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "causal trace on the world model: known fact, finite and deterministic for a seed",
  ignore: !haveWorldModel,
  fn: async () => {
    const lm = await loadModel(WORLD_MODEL);
    const tok = lm.tokenizer!;
    const input = encodeFact(tok, {
      prompt: "Narnux Zava was born in",
      subject: "Narnux Zava",
      target: "Frostwick",
    });
    assert.equal(input.ids[0], tok.eosId, "the world tokenizer's convention prepends end-of-text");
    const answer = input.target;
    const std = 3 * embeddingStd(lm.model.weights, lm.model.config.nEmbd);
    const run = () =>
      causalTrace(lm.model, input.ids, input.subjectRange, {
        kinds: [...TRACE_KINDS],
        noiseStd: std,
        answer,
        seed: 3,
      });
    const a = await run(), b = await run();
    assert.ok(a.known, "the world model should know Narnux Zava's birthplace");
    assert.ok(a.pClean > 0.5 && a.pCorrupt < a.pClean, `p_clean ${a.pClean} p_corrupt ${a.pCorrupt}`);
    assert.deepEqual(a.traces, b.traces);
    for (const t of a.traces) assert.ok(t.scores.flat().every((v) => Number.isFinite(v) && v >= 0 && v <= 1));
    // Restoring every state of the last token at the last layer gives back the clean prediction.
    const last = a.traces[0].scores[input.ids.length - 1][lm.model.config.nLayer - 1];
    assert.ok(Math.abs(last - a.pClean) < 1e-4, `${last} vs ${a.pClean}`);
    lm.model.destroy();
  },
});

Deno.test({
  name:
    "trace --facts on the world model: a fact whose first token is right but whole target wrong is dropped",
  ignore: !haveWorldModel,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "engram_trace_known_" });
    try {
      const prompt = "Gurnur Rulex was born in", subject = "Gurnur Rulex";
      const facts = join(dir, "facts.jsonl");
      await Deno.writeTextFile(
        facts,
        [
          { id: "known", prompt, subject, answer: "Sunmere" },
          { id: "first-only", prompt, subject, answer: "Sunmere Bay" },
          { id: "wrong", prompt, subject, answer: "Ironleaf" },
        ].map((x) => JSON.stringify(x)).join("\n") + "\n",
      );
      const run = async (...extra: string[]) => {
        const r = await engram(
          "trace",
          "--model",
          WORLD_MODEL,
          "--facts",
          facts,
          "--samples",
          "2",
          "--kind",
          "hidden",
          "--json",
          ...extra,
        );
        assert.equal(r.code, 0, r.stderr);
        return JSON.parse(r.stdout);
      };
      const whole = await run();
      assert.equal(whole.known_rule, "whole");
      assert.equal(whole.pool, "token");
      assert.equal(whole.traced, 1);
      assert.equal(whole.skipped_unknown, 2);
      assert.equal(whole.unknown_first_token_only, 1);
      assert.deepEqual(whole.facts.map((x: { traced: boolean }) => x.traced), [true, false, false]);
      assert.equal(whole.facts[1].greedy.trim(), "Sunmere");
      // engram's earlier rule keeps the first-token match; ROME's drops it.
      const first = await run("--known", "first");
      assert.equal(first.traced, 2);
      assert.equal(first.skipped_unknown, 1);
      assert.deepEqual(first.facts.map((x: { traced: boolean }) => x.traced), [true, true, false]);
      // The greedy rule reads as many tokens as the target has: " Sunmere" then not " Bay".
      const greedy = await run("--known", "greedy");
      assert.equal(greedy.traced, 1);
      assert.notEqual(greedy.facts[1].greedy.trim(), "Sunmere Bay");
      // The known fact's trace is the same under every rule (its answer is the model's own top-1).
      assert.deepEqual(whole.kinds.hidden.mean, greedy.kinds.hidden.mean);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

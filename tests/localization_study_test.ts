// End-to-end localization study on the bundled world model (2 cases, 2 layers, FT-1, error injection):
// every per-case number equals a separate causal trace and a separate edit + scoring through the library,
// with the scores recomputed here from their definitions; the folder resumes; bad inputs are typed errors.
import assert from "node:assert/strict";
import { join } from "node:path";
import { InputError } from "../src/errors.ts";
import { loadModel } from "../src/model/load.ts";
import { readRequests } from "../src/edit/requests.ts";
import { applyComputed } from "../src/edit/apply.ts";
import { ftlDefaults } from "../src/edit/ft.ts";
import { fineTuneObjective } from "../src/evaluate/localization/ft_objective.ts";
import { causalTrace } from "../src/locate/trace.ts";
import { encodeFact } from "../src/prompt/encode.ts";
import { scoreAnswers } from "../src/evaluate/edit_metrics.ts";
import type { CaseResult } from "../src/evaluate/localization/case.ts";
import { readCase, StudyModelMismatchError } from "../src/evaluate/localization/folder.ts";
import { runLocalizationStudy, STUDY_DEFAULTS } from "../src/evaluate/localization/study.ts";
import type { EditRequest } from "../src/edit/requests.ts";

const WORLD = new URL("../fixtures/world/", import.meta.url).pathname;

Deno.test("localization study on the world model equals separate trace and edit runs", async (t) => {
  const lm = await loadModel(join(WORLD, "model"));
  const tok = lm.tokenizer!, model = lm.model;
  const reqs = (await readRequests(join(WORLD, "counterfact.json"))).slice(0, 2);
  const out = await Deno.makeTempDir({ prefix: "engram-locstudy-" });
  const dir = join(out, "study");
  const settings = {
    ...STUDY_DEFAULTS,
    methods: ["ft-1" as const],
    objectives: ["error_injection" as const],
    layers: [0, 1],
    noiseStd: 0.3,
  };
  // 8 FT steps instead of 25 keep the test short; the separate runs below use the same.
  const edit = { hparams: { "ft-1": { num_steps: 8 } } };
  const opts = { out: dir, modelName: "world", dataFile: "counterfact.json", settings, edit };
  try {
    const res = await runLocalizationStudy(model, tok, reqs, opts);
    assert.equal(res.newCases, 2);
    assert.equal(res.summary.cases, 2);
    assert.equal(res.summary.edits, 4);
    for (const f of ["summary.json", "report.html", "figures/tracing_peak_layer.svg", "cases/case_1.json"]) {
      assert.ok(Deno.statSync(join(dir, f)).size > 100, f);
    }
    const html = Deno.readTextFileSync(join(dir, "report.html"));
    assert.ok(html.includes("<svg") && html.includes("R² layer"));

    await t.step("per-case numbers equal separate library runs", async () => {
      for (let i = 0; i < 2; i++) {
        // The file is snake_case (engram-study-localization-case/1); readCase gives the library's record.
        const file = JSON.parse(Deno.readTextFileSync(join(dir, `cases/case_${i}.json`)));
        assert.equal(file.schema, "engram-study-localization-case/1");
        assert.deepEqual(file.edits[0].edited_layers, [0]);
        const c = (await readCase(dir, i)) as CaseResult;
        const r = reqs[i];
        const fact = encodeFact(tok, { prompt: r.prompt, subject: r.subject, target: r.ground_truth! }, {
          nPositions: model.config.nPositions,
          checkBoundary: false,
        });
        const ids = fact.ids.slice(0, fact.promptLength);
        const tr = await causalTrace(model, ids, fact.subjectRange, {
          kinds: ["hidden", "mlp", "attn"],
          samples: 10,
          noiseStd: 0.3,
          window: 5,
          seed: 1,
          answer: fact.target,
          targetProb: "sequence",
        });
        assert.equal(c.trace.pClean, tr.pClean);
        assert.equal(c.trace.pCorrupt, tr.pCorrupt);
        assert.ok(tr.pClean - tr.pCorrupt > 0.1, "the corruption must matter for the check to mean anything");
        const last = fact.subjectRange[1] - 1;
        const total = Math.abs(tr.pCorrupt - tr.pClean);
        for (const k of tr.traces) {
          const got = c.trace.kinds.find((x) => x.kind === k.kind)!;
          for (let l = 0; l < 2; l++) {
            const eff = k.scores[last][l] - tr.pCorrupt;
            assert.equal(got.subjectLastEffect[l], eff);
            assert.equal(got.subjectLastFraction[l], Math.max(0, eff / total));
            const best = Math.max(...k.scores.map((row) => Math.max(0, (row[l] - tr.pCorrupt) / total)));
            assert.equal(got.maxTokenFraction[l], best);
          }
        }
        // Edit + score separately: P = exp(−mean NLL) of target_new on the first prompt of each kind.
        const items = [
          { prompt: r.prompt.replace("{}", r.subject), answer: r.target_new },
          { prompt: r.rephrase![0], answer: r.target_new },
          { prompt: r.locality![0].prompt, answer: r.target_new },
        ];
        const probs = async () => (await scoreAnswers(model, tok, items)).map((s) => Math.exp(-s.nll));
        const pre = await probs();
        for (const layer of [0, 1]) {
          const deltas = await fineTuneObjective(model, tok, r, {
            layers: [layer],
            lr: ftlDefaults(model.config).lr,
            numSteps: 8,
            normConstraint: 1e-4 * 6400 / model.config.nInner,
            loss: "nll",
          });
          const applied = applyComputed(model, deltas);
          const post = await probs();
          applied.restore();
          const e = c.edits.find((x) => x.layer === layer)!;
          assert.deepEqual(e.editedLayers, [layer]);
          assert.equal(e.post.target.rewrite[0], post[0]);
          assert.equal(e.post.target.paraphrase[0], post[1]);
          assert.equal(e.post.target.neighborhood[0], post[2]);
          assert.notEqual(post[0], pre[0], "the edit must move the target's probability");
          const rw = Math.max(2e-8, 1 - (1 - post[0]) / (1 - pre[0]));
          const pa = Math.max(2e-8, 1 - (1 - post[1]) / (1 - pre[1]));
          const nb = 1 - Math.abs(post[2] - pre[2]) / (Math.abs(pre[2] - 0.5) + 0.5);
          assert.ok(Math.abs(e.scores.rewrite - rw) < 1e-15, `rewrite ${e.scores.rewrite} vs ${rw}`);
          assert.ok(Math.abs(e.scores.paraphrase! - pa) < 1e-15);
          assert.ok(Math.abs(e.scores.neighborhood! - nb) < 1e-15);
          assert.ok(Math.abs(e.scores.target - 3 / (1 / rw + 1 / pa + 1 / nb)) < 1e-12);
        }
      }
    });

    await t.step("a second run resumes: cases are kept", async () => {
      const again = await runLocalizationStudy(model, tok, reqs, opts);
      assert.equal(again.resumed, true);
      assert.equal(again.newCases, 0);
      assert.deepEqual(again.summary.regressions, res.summary.regressions);
    });

    await t.step("a folder from another model is a typed error", async () => {
      const head = JSON.parse(Deno.readTextFileSync(join(dir, "study.json")));
      Deno.writeTextFileSync(
        join(dir, "study.json"),
        JSON.stringify({ ...head, fingerprint: "0".repeat(64) }),
      );
      await assert.rejects(() => runLocalizationStudy(model, tok, reqs, opts), StudyModelMismatchError);
    });

    await t.step("bad inputs are typed errors", async () => {
      const o2 = { ...opts, out: join(out, "bad") };
      await assert.rejects(
        () => runLocalizationStudy(model, tok, reqs, { ...o2, settings: { ...settings, layers: [0, 2] } }),
        (e: Error) => e instanceof InputError && /layer 2 out of range/.test(e.message),
      );
      const noTruth: EditRequest = { ...reqs[0], ground_truth: undefined };
      await assert.rejects(
        () => runLocalizationStudy(model, tok, [noTruth], o2),
        (e: Error) => e instanceof InputError && /target_true/.test(e.message),
      );
      await assert.rejects(
        () => runLocalizationStudy(model, tok, reqs, { ...o2, settings: { ...settings, objectives: [] } }),
        (e: Error) => e instanceof InputError && /no objectives to study/.test(e.message),
      );
      await assert.rejects(
        () =>
          runLocalizationStudy(model, tok, reqs, { ...o2, edit: { hparams: { "ft-1": { momentum: 1 } } } }),
        (e: Error) => e instanceof InputError && /unknown key 'momentum'/.test(e.message),
      );
      const noSubject: EditRequest = { ...reqs[0], prompt: "Nobody was born in", subject: "Qqq Zzz" };
      await assert.rejects(
        () => runLocalizationStudy(model, tok, [noSubject], { ...o2, out: join(out, "bad2") }),
        (e: Error) =>
          e instanceof InputError &&
          /no usable case: record 0: .*subject 'Qqq Zzz' does not occur/.test(e.message),
      );
    });
  } finally {
    model.destroy();
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("study localization CLI: bad flags exit 1 with the flag named", async () => {
  const { engram } = await import("./_util.ts");
  const out = await Deno.makeTempDir({ prefix: "engram-locstudy-cli-" });
  try {
    const base = [
      "study",
      "localization",
      "--model",
      join(WORLD, "model"),
      "--data",
      join(WORLD, "counterfact.json"),
    ];
    const bad = await engram(...base, "--out", join(out, "a"), "--objectives", "fact_guessing");
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--objectives: unknown value 'fact_guessing'/);
    const layer = await engram(...base, "--out", join(out, "b"), "--layers", "7", "--methods", "ft-1");
    assert.equal(layer.code, 1);
    assert.match(layer.stderr, /layer 7 out of range: the model has layers 0\.\.1/);
    const inside = await engram(...base, "--out", join(WORLD, "model", "study"));
    assert.equal(inside.code, 1);
    assert.match(inside.stderr, /is inside the input --model/);
    const unknownStudy = await engram("study", "nothing");
    assert.equal(unknownStudy.code, 1);
    assert.match(unknownStudy.stderr, /available: attribution, localization/);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

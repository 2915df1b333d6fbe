/**
 * The run of `engram study attribution` (flags in ./study.ts `studySpec`): per test prompt, IA vs NA
 * overlap, Yu et al.'s faithfulness tests at each k beside random neurons, the diversity of the
 * instances, and fine-tuning on the top-k IA instances vs k random ones over several seeds; then the
 * summary (src/evaluate/attribution/summary.ts) with the findings table. With `--out DIR` each test is
 * written as it finishes (`--resume` keeps them), then `summary.json`, the SVG figures and `report.html`.
 *
 * @module
 */
import { InputError } from "../errors.ts";
import { readJsonl } from "../io/world.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { mulberry32 } from "../model/generate.ts";
import { loadModel } from "../model/load.ts";
import {
  attributionIds,
  attributionTarget,
  instancePrompt,
  readTrainingFile,
  type TrainRecord,
} from "../attribute/inputs.ts";
import { IA_METHODS, type IaMethod } from "../attribute/instances.ts";
import { faithfulness, type IgActivation, type IgPoints } from "../attribute/neurons.ts";
import {
  candidateNeurons,
  drawSeed,
  finetuneStudy,
  meanPairwiseCosine,
  overlapStudy,
  type StudyNaOptions,
  type TestCase,
} from "../attribute/study.ts";
import { modelFingerprint } from "../evaluate/localization/folder.ts";
import { openAttributionFolder, readTest, writeTest } from "../evaluate/attribution/folder.ts";
import { faithfulnessRecords, neuronRecords, type TestRecord } from "../evaluate/attribution/record.ts";
import { type AttributionSummary, summarize } from "../evaluate/attribution/summary.ts";
import { writeAttributionReport } from "../report/attribution_report.ts";
import { bosFlag, choiceFlag, intFlag, numFlag, required } from "./args.ts";
import { parseKs } from "./neurons.ts";
import { progress } from "./progress.ts";

/** Runs the attribution study with parsed flags `f` of `studySpec`. */
export async function attributionStudyCommand(f: Record<string, unknown>): Promise<void> {
  const dir = required(f, "model", "study");
  const trainFile = required(f, "train", "study");
  const promptsFile = required(f, "prompts", "study");
  const nTests = intFlag(f, "tests", 4, 1);
  const stride = intFlag(f, "stride", 1, 1);
  const nPool = intFlag(f, "pool", 40, 0);
  const k = intFlag(f, "k", 5, 1);
  const method = (typeof f.method === "string" ? f.method : "grad-dot") as IaMethod;
  if (!IA_METHODS.includes(method) || method === "tracin") {
    throw new InputError(`study --method must be grad-dot or grad-cos, got '${method}'`, {
      field: "--method",
    });
  }
  const steps = intFlag(f, "steps", 20, 1, 1000);
  const na: StudyNaOptions = {
    steps,
    points: choiceFlag<IgPoints>(f, "points", ["linspace", "left"], "linspace"),
    activation: choiceFlag<IgActivation>(f, "activation", ["pre", "post"], "pre"),
    threshold: numFlag(f, "threshold", 0.1, 0, 1),
    strict: f["no-strict"] !== true,
  };
  const topNeurons = intFlag(f, "top-neurons", 5, 1);
  const iaCutoff = intFlag(f, "ia-cutoff", 1, 1);
  const ddof = intFlag(f, "ddof", 0, 0, 1) as 0 | 1;
  const ftSteps = intFlag(f, "ft-steps", 10, 1);
  const lr = numFlag(f, "lr", 1e-3, 0);
  const draws = intFlag(f, "draws", 3, 1);
  const seed = intFlag(f, "seed", 1);
  const nSeeds = intFlag(f, "seeds", 5, 1);
  const seeds = Array.from({ length: nSeeds }, (_, i) => seed + i);
  const ks = parseKs(typeof f.ks === "string" ? f.ks : "1,10,100");
  const faithDraws = intFlag(f, "faith-draws", 3, 1);
  // Yu et al.'s use_top ranks the stored coarse neurons (so k is clipped to them); "all" ranks every neuron.
  const faithRanking = choiceFlag<"coarse" | "all">(f, "faith-ranking", ["coarse", "all"], "coarse");
  const out = typeof f.out === "string" ? f.out : undefined;
  const trainLoss = typeof f["train-loss"] === "string" ? f["train-loss"] : "answer";
  if (trainLoss !== "all" && trainLoss !== "answer") {
    throw new InputError(`--train-loss must be 'all' or 'answer', got '${trainLoss}'`, {
      field: "--train-loss",
    });
  }
  const lm = await loadModel(dir, { bos: bosFlag(f, "no-prefix") });
  try {
    if (!lm.tokenizer) throw new InputError(`${dir} has no tokenizer`, { file: dir, field: "--model" });
    const tok = lm.tokenizer;
    const model = lm.model;
    type Rec = { prompt: string; answer: string; subject?: string; relation?: string };
    const allRecs = await readJsonl<Rec>(promptsFile, { prompt: "string", answer: "string" });
    const picked: number[] = [];
    for (let i = 0; i < allRecs.length && picked.length < nTests; i += stride) picked.push(i);
    const where = (i: number) => ({ file: promptsFile, record: i, fields: { target: "answer" } });
    const tests: Array<TestCase & { record: number; subject?: string; relation?: string }> = picked.map(
      (i) => {
        const r = allRecs[i];
        return {
          name: `${r.prompt} -> ${r.answer}`,
          ids: attributionIds(model, tok, r.prompt, where(i)),
          target: attributionTarget(tok, r.answer, false, where(i)),
          record: i,
          subject: r.subject,
          relation: r.relation,
        };
      },
    );
    const all = await readTrainingFile(trainFile, tok, model.config.nPositions);
    const subjects = new Set(tests.map((t) => t.subject).filter((s) => s !== undefined));
    const inPool = new Set<number>();
    all.forEach((x, i) => x.meta.subject !== undefined && subjects.has(x.meta.subject) && inPool.add(i));
    const rand = mulberry32(seed);
    const others = all.map((_, i) => i).filter((i) => !inPool.has(i));
    for (let i = 0; i < Math.min(nPool, others.length); i++) {
      const j = i + Math.floor(rand() * (others.length - i));
      [others[i], others[j]] = [others[j], others[i]];
      inPool.add(others[i]);
    }
    const pool: TrainRecord[] = [...inPool].sort((a, b) => a - b).map((i) => all[i]);
    const settings = {
      prompts: promptsFile,
      train: trainFile,
      tests: tests.length,
      stride,
      pool_random: nPool,
      pool: pool.length,
      k,
      method,
      train_loss: trainLoss,
      ig_steps: steps,
      ig_points: na.points,
      ig_activation: na.activation,
      coarse_threshold: na.threshold,
      coarse_strict: na.strict,
      top_neurons: topNeurons,
      ia_cutoff: iaCutoff,
      z_score_ddof: ddof,
      ks,
      faithfulness_random_draws: faithDraws,
      faithfulness_ranking: faithRanking,
      ft_steps: ftSteps,
      ft_lr: lr,
      ft_optimizer: "AdamW, full batch of the k instances",
      ft_random_draws_per_seed: draws,
      seeds,
    };
    const fingerprint = modelFingerprint(model);
    if (out) {
      await openAttributionFolder(out, {
        kind: "engram attribution study",
        fingerprint,
        model: dir,
        settings,
      }, {
        overwrite: f.overwrite === true,
        resume: f.resume === true,
      });
    }
    const t0 = performance.now();
    const barN = progress("study: NA of candidates", pool.length);
    const answerPrompts = pool.map((x) => instancePrompt(x, tok));
    const iaInput = trainLoss === "answer" ? answerPrompts : undefined;
    const records: TestRecord[] = [];
    const todo: number[] = [];
    for (let i = 0; i < tests.length; i++) {
      const done = out ? await readTest(out, i) : undefined;
      if (done) records.push(done);
      else todo.push(i);
    }
    const candN = todo.length ? await candidateNeurons(model, answerPrompts, na, (d) => barN.update(d)) : [];
    barN.done();
    const sameFact = (j: number, t: { subject?: string; relation?: string }) =>
      t.subject !== undefined && pool[j].meta.subject === t.subject && pool[j].meta.relation === t.relation;
    const precision = (list: number[], t: { subject?: string; relation?: string }) =>
      t.subject === undefined ? null : list.filter((j) => sameFact(j, t)).length / list.length;
    const text = (j: number) => pool[j].ids.slice(0, -1);
    const bar = progress("study: tests", tests.length);
    bar.update(records.length, `(${records.length} on disk)`);
    for (const i of todo) {
      const ts = performance.now();
      const t = tests[i];
      const [o] = await overlapStudy(model, pool, candN, [t], {
        method,
        k,
        steps,
        na,
        topNeurons,
        iaNeuronCutoff: iaCutoff,
        ddof,
        answerPrompts: iaInput,
      });
      const ranked = faithRanking === "all" ? o.testRanking : o.testNeurons;
      const faith = await faithfulness(model, t.ids, t.target, ranked, ks, {
        randomTrials: faithDraws,
        seed: drawSeed(seed, i),
      });
      const r = mulberry32(drawSeed(seed + 7777, i));
      const idx = pool.map((_, j) => j);
      for (let a = 0; a < Math.min(k, idx.length); a++) {
        const b = a + Math.floor(r() * (idx.length - a));
        [idx[a], idx[b]] = [idx[b], idx[a]];
      }
      const [ft] = await finetuneStudy(model, pool, [t], tok.eosId!, {
        method,
        k,
        steps: ftSteps,
        lr,
        randomDraws: draws,
        answerPrompts: iaInput,
        seeds,
        firstIndex: i,
        topInstances: [o.iaTop],
      });
      const rec: TestRecord = {
        index: i,
        name: t.name,
        record: t.record,
        subject: t.subject ?? null,
        relation: t.relation ?? null,
        target: t.target,
        label: faith.label,
        p_label: faith.labelProb,
        p_target: faith.targetProb,
        coarse_neurons: o.testNeurons.length,
        faithfulness: faithfulnessRecords(ks, faith),
        overlap: {
          ia_top: o.iaTop.map((j) => pool[j].id),
          na_instances_top: o.naTop.map((j) => pool[j].id),
          ia_precision_at_k: precision(o.iaTop, t),
          na_instances_precision_at_k: precision(o.naTop, t),
          instance_jaccard: o.instanceJaccard,
          rank_correlation: o.rankCorrelation,
          na_neurons: neuronRecords(o.naNeurons),
          ia_neurons: neuronRecords(o.iaNeurons),
          neuron_jaccard: o.neuronJaccard,
        },
        diversity: {
          ia_cos_mean: await meanPairwiseCosine(model, o.iaTop.map(text)),
          na_instances_cos_mean: await meanPairwiseCosine(model, o.naTop.map(text)),
          random_cos_mean: await meanPairwiseCosine(model, idx.slice(0, k).map(text)),
        },
        finetune: {
          logp_before: ft.logpBefore,
          delta_top: ft.deltaTop,
          delta_random_by_seed: ft.deltaRandomBySeed,
          seeds: ft.seeds,
          top_ids: ft.topIds,
        },
        seconds: (performance.now() - ts) / 1000,
      };
      if (out) await writeTest(out, rec);
      records.push(rec);
      bar.update(records.length, `(${rec.seconds.toFixed(1)}s last)`);
    }
    bar.done();
    const summary = summarize(records, {
      model: dir,
      fingerprint,
      settings,
      pool: pool.length,
      // This run's time plus the time of the tests kept from an earlier run.
      seconds: (performance.now() - t0) / 1000 +
        records.filter((r) => !todo.includes(r.index)).reduce((s, r) => s + r.seconds, 0),
    });
    if (out) {
      await writeFileAtomic(`${out}/summary.json`, JSON.stringify(summary, null, 1) + "\n");
      await writeAttributionReport(out, summary, records);
    }
    if (f.json) console.log(JSON.stringify(summary, null, 2));
    else printSummary(summary, out);
  } finally {
    lm.model.destroy();
  }
}

/** The text report: faithfulness per k, overlap, fine-tuning and the findings table. */
function printSummary(s: AttributionSummary, out: string | undefined): void {
  const fx = (x: number | null | undefined, d = 4) => (x === null || x === undefined ? "-" : x.toFixed(d));
  console.log(`Yu et al.'s study on ${s.tests} tests, pool of ${s.pool} training instances (${s.model})`);
  console.log(
    "k     k_used  mode               flips       prob_drop  kept_pred  ratio   | random: flips  prob_drop",
  );
  for (const f of s.faithfulness) {
    for (const m of ["sufficiency", "comprehensiveness"] as const) {
      const a = f[m], r = f[m === "sufficiency" ? "random_sufficiency" : "random_comprehensiveness"];
      console.log(
        `${String(f.k).padEnd(5)} ${f.k_used_mean.toFixed(1).padStart(6)}  ${m.padEnd(17)}  ${
          `${a.flips}/${a.runs}`.padStart(9)
        }  ${fx(a.prob_drop_mean).padStart(10)}  ${fx(a.kept_predictions, 3).padStart(9)}  ${
          fx(a.kept_probability_ratio, 3).padStart(6)
        }  | ${`${r.flips}/${r.runs}`.padStart(12)}  ${fx(r.prob_drop_mean).padStart(9)}`,
      );
    }
  }
  const o = s.overlap, ft = s.finetune;
  console.log(
    `overlap: instance Jaccard ${fx(o.instance_jaccard.mean, 3)}, Spearman ${
      fx(o.rank_correlation.mean, 3)
    }, ` +
      `neuron Jaccard ${
        fx(o.neuron_jaccard.mean, 3)
      }; unique instances IA ${o.unique_instances.ia}, NA ${o.unique_instances.na_instances} of ${o.unique_instances.slots}`,
  );
  console.log(
    `diversity (mean pairwise cos): IA ${fx(s.diversity.ia_cos_mean.mean, 3)}, NA-Instances ${
      fx(s.diversity.na_instances_cos_mean.mean, 3)
    }, random ${fx(s.diversity.random_cos_mean.mean, 3)}`,
  );
  const g = ft.gain_over_random;
  console.log(
    `fine-tuning (${ft.seeds.length} seeds): dlogp top-k ${fx(ft.delta_top.mean)}, random ${
      fx(ft.delta_random.mean)
    }; gain ${fx(g.mean)} [${fx(g.lo)}, ${fx(g.hi)}] (95% t, over seeds)`,
  );
  console.log("findings:");
  for (const x of s.findings) {
    const h = x.holds === null ? "n/a" : x.holds ? "holds" : "does not hold";
    console.log(
      `  ${x.id}. ${x.claim}: ${h} (${x.statistic} = ${
        fx(x.value)
      } ${x.comparison} ${x.threshold}; ${x.baseline})`,
    );
  }
  if (out) console.log(`wrote ${out}/summary.json, ${out}/report.html`);
}

/**
 * Studies comparing instance attribution (IA) and neuron attribution (NA), after Yu, Atanasova and
 * Augenstein 2024:
 * - {@link overlapStudy}: per test prompt, the top-k IA instances vs the top-k NA-Instances (Jaccard) and
 *   the rank correlation of the two scorings over the candidate pool (Spearman); the IA-Neurons vs the
 *   test prompt's own top NA neurons (Jaccard).
 * - NA follows Yu et al.'s `gpt_neuron_attr.py`: their fork of EleutherAI's `get_coarse_neurons` with
 *   steps 20 and adaptive_threshold 0.1, so by default IG over the pre-GELU c_fc output at
 *   α = linspace(0, 1, m), and the neurons scoring > 0.1 × max, for training and test instances alike.
 *   NA-Instances uses the test's top 5 of those neurons; IA-Neurons the top-1 IA instance's top neuron
 *   (`cutoff = 1`), compared with the test's own top neuron. Yu et al.'s IA (`grad-sim`) is the dot
 *   product of the gradients.
 * - {@link finetuneStudy}: fine-tune a copy of the model on the top-k influential instances vs the same
 *   number of random instances and compare the change of the test target's log-probability.
 */
import { adamw } from "../gpu/adamw.ts";
import { fill } from "../gpu/reduce.ts";
import { createTensor, type GpuTensor } from "../gpu/tensor.ts";
import { Gradients, lossAndGradients } from "../model/backward.ts";
import type { WeightMap } from "../model/config.ts";
import { mulberry32 } from "../model/generate.ts";
import { TransformerModel } from "../model/transformer.ts";
import { makeBatch, type TrainingInstance } from "../train/corpus.ts";
import { iaNeurons, jaccard, naInstanceScores, neuronJaccard, spearman } from "./bridges.ts";
import { type IaMethod, instanceScores, promptExample, topK, trainingExample } from "./instances.ts";
import {
  coarseNeurons,
  type IgActivation,
  type IgPoints,
  integratedGradients,
  type Neuron,
  rankNeurons,
} from "./neurons.ts";

/** A test prompt: token ids and the one target token. */
export interface TestCase {
  /** A name for the test in reports. */
  name: string;
  /** The prompt's token ids. */
  ids: number[];
  /** The target token. */
  target: number;
}

/** Per-test result of {@link overlapStudy}. */
export interface OverlapRow {
  /** The test's name. */
  name: string;
  /** Candidate indices: top-k by IA and by NA-Instances. */
  iaTop: number[];
  /** Top-k candidate indices by NA-Instances. */
  naTop: number[];
  /** Jaccard overlap of the two top-k sets. */
  instanceJaccard: number;
  /** Spearman correlation of IA and NA-Instances scores over the candidates. */
  rankCorrelation: number;
  /** The test's top `iaNeuronCutoff` coarse neurons (by IG) and the IA-Neurons. */
  naNeurons: Neuron[];
  /** The IA-Neurons (neurons of the top IA instances). */
  iaNeurons: Neuron[];
  /** Jaccard overlap of the two neuron sets. */
  neuronJaccard: number;
  /** All the test's coarse neurons, highest first (the ranking the faithfulness tests block). */
  testNeurons: Neuron[];
  /** Every neuron of the test ranked by its IG score, highest first. */
  testRanking: Neuron[];
}

/** How the studies attribute neurons; defaults are Yu et al.'s (see the module comment). */
export interface StudyNaOptions {
  /** IG steps (default 20). */
  steps?: number;
  /** IG interpolation points (default "linspace", EleutherAI's). */
  points?: IgPoints;
  /** Scaled activation (default "pre", EleutherAI's c_fc output on GPT-2). */
  activation?: IgActivation;
  /** Coarse threshold as a fraction of the largest score (default 0.1). */
  threshold?: number;
  /** Keep scores > the threshold (default true, EleutherAI) instead of >=. */
  strict?: boolean;
}

/** Options shared by the studies. */
export interface StudyOptions {
  /** IA method (default "grad-dot", Yu et al.'s grad-sim). */
  method?: IaMethod;
  /** Top-k instances compared (default 5). */
  k?: number;
  /** IG steps (default 20). */
  steps?: number;
  /** Neuron attribution settings of the test prompts (steps above win over na.steps). */
  na?: StudyNaOptions;
  /** Test neurons used by NA-Instances (default 5). */
  topNeurons?: number;
  /**
   * IA-Neurons: how many top neurons of the top-1 IA instance are compared with as many top neurons of
   * the test (default 1, Yu et al.'s `cutoff`).
   */
  iaNeuronCutoff?: number;
  /** Delta degrees of freedom of NA-Instances' z-score (default 0, scipy). */
  ddof?: 0 | 1;
  /** Progress callback: `done` of `total` units of the named stage. */
  onProgress?: (what: string, done: number, total: number) => void;
  /**
   * When given, IA differentiates only each candidate's answer, −log p(target | ids) (one entry per
   * candidate), instead of its whole training loss.
   */
  answerPrompts?: Array<{ ids: number[]; target: number }>;
}

/** The coarse NA neurons of one prompt, highest first, with the study's settings. */
export async function studyNeurons(
  model: TransformerModel,
  ids: number[],
  target: number,
  na: StudyNaOptions = {},
): Promise<Neuron[]> {
  return (await studyAttribution(model, ids, target, na)).coarse;
}

/** The coarse NA neurons of one prompt (see {@link studyNeurons}) and every neuron ranked by its score. */
export async function studyAttribution(
  model: TransformerModel,
  ids: number[],
  target: number,
  na: StudyNaOptions = {},
): Promise<{ coarse: Neuron[]; ranking: Neuron[] }> {
  const attr = await integratedGradients(model, ids, target, {
    steps: na.steps ?? 20,
    points: na.points ?? "linspace",
    activation: na.activation ?? "pre",
  });
  return {
    coarse: coarseNeurons(attr, na.threshold ?? 0.1, { strict: na.strict ?? true }),
    ranking: rankNeurons(attr),
  };
}

function iaExamples(candidates: TrainingInstance[], opts: StudyOptions) {
  return opts.answerPrompts
    ? opts.answerPrompts.map((p) => promptExample(p.ids, p.target))
    : candidates.map((c) => trainingExample(c.ids));
}

/**
 * NA of every candidate training instance (coarse neurons, see {@link studyNeurons}) — computed once
 * and shared by all test prompts. `prompts[i]` is the candidate's prompt/target (see instancePrompt).
 * A number for `na` is the IG steps (the other settings at their defaults).
 */
export async function candidateNeurons(
  model: TransformerModel,
  prompts: Array<{ ids: number[]; target: number }>,
  na: StudyNaOptions | number = {},
  onProgress?: (done: number, total: number) => void,
): Promise<Neuron[][]> {
  const opts = typeof na === "number" ? { steps: na } : na;
  const out: Neuron[][] = [];
  for (const [i, p] of prompts.entries()) {
    out.push(await studyNeurons(model, p.ids, p.target, opts));
    onProgress?.(i + 1, prompts.length);
  }
  return out;
}

/** IA/NA overlap per test prompt over a pool of training candidates (see the module comment). */
export async function overlapStudy(
  model: TransformerModel,
  candidates: TrainingInstance[],
  candNeurons: Neuron[][],
  tests: TestCase[],
  opts: StudyOptions = {},
): Promise<OverlapRow[]> {
  const k = opts.k ?? 5;
  const nTop = opts.topNeurons ?? 5;
  const cutoff = opts.iaNeuronCutoff ?? 1;
  const rows: OverlapRow[] = [];
  const train = iaExamples(candidates, opts);
  for (const [ti, t] of tests.entries()) {
    const ia = await instanceScores(model, train, promptExample(t.ids, t.target), {
      method: opts.method ?? "grad-dot",
    });
    const { coarse: testNeurons, ranking } = await studyAttribution(model, t.ids, t.target, {
      ...opts.na,
      steps: opts.steps ?? opts.na?.steps,
    });
    // No positive attribution leaves no neuron to map through: every candidate scores −∞ then.
    const na = testNeurons.length
      ? naInstanceScores(testNeurons, candNeurons, nTop, { ddof: opts.ddof })
      : new Float64Array(candNeurons.length).fill(-Infinity);
    const iaTop = topK(ia, k), naTop = topK(na, k);
    const naN = testNeurons.slice(0, cutoff);
    const iaN = iaNeurons(topK(ia, 1), candNeurons, cutoff);
    rows.push({
      name: t.name,
      iaTop,
      naTop,
      instanceJaccard: jaccard(iaTop, naTop),
      rankCorrelation: spearman(ia, na),
      naNeurons: naN,
      iaNeurons: iaN,
      neuronJaccard: neuronJaccard(naN, iaN),
      testNeurons,
      testRanking: ranking,
    });
    opts.onProgress?.("overlap", ti + 1, tests.length);
  }
  return rows;
}

/** Fine-tuning settings of {@link finetuneStudy}. */
export interface FinetuneOptions {
  /** AdamW steps on the chosen instances (full batch; default 10). */
  steps?: number;
  /** AdamW learning rate. */
  lr?: number;
  /** Random draws averaged for the baseline, per seed (default 3). */
  randomDraws?: number;
  /** Seed of the random draws (used when `seeds` is absent). */
  seed?: number;
  /**
   * Seeds of the random baseline: each seed draws its own `randomDraws` k-instance sets per test (from
   * {@link drawSeed}(seed, test index)), so the baseline is repeated once per seed. Default `[seed]`.
   */
  seeds?: number[];
  /** Index of `tests[0]` in the whole study (the draws depend on it; default 0). */
  firstIndex?: number;
  /** Per test, the pool indices of its top-k IA instances when already known (skips recomputing IA). */
  topInstances?: number[][];
}

/** The seed of the random draws of one (seed, test index) pair: independent of how the study is split. */
export function drawSeed(seed: number, testIndex: number): number {
  return (Math.imul(seed, 1_000_003) + Math.imul(testIndex + 1, 7919)) >>> 0;
}

/** Per-test row of {@link finetuneStudy}. */
export interface FinetuneRow {
  /** The test's name. */
  name: string;
  /** log p(target) before fine-tuning. */
  logpBefore: number;
  /** Change of log p(target) after fine-tuning on the top-k IA instances. */
  deltaTop: number;
  /** Mean change over random k-instance draws (all seeds). */
  deltaRandom: number;
  /** Mean change over each seed's random draws, in the order of `seeds`. */
  deltaRandomBySeed: number[];
  /** The seeds of `deltaRandomBySeed`. */
  seeds: number[];
  /** Ids of the top-k IA instances used. */
  topIds: string[];
}

function cloneWeights(w: WeightMap): WeightMap {
  const out: WeightMap = new Map();
  for (const [n, t] of w) out.set(n, { shape: [...t.shape], data: t.data.slice() });
  return out;
}

/** Fine-tunes a copy of `model` on `instances` and returns log p(target | test) after it. */
export async function finetuneAndScore(
  model: TransformerModel,
  instances: TrainingInstance[],
  test: TestCase,
  pad: number,
  opts: FinetuneOptions = {},
): Promise<number> {
  const gpu = model.gpu;
  const copy = TransformerModel.create(gpu, model.config, cloneWeights(model.weights));
  const grads = new Gradients(copy);
  const moments: GpuTensor[] = [];
  try {
    const names = copy.weightNames();
    const mv = new Map<string, [GpuTensor, GpuTensor]>();
    for (const n of names) {
      const m = createTensor(gpu, copy.weight(n).shape, { name: `ft.m:${n}` });
      const v = createTensor(gpu, copy.weight(n).shape, { name: `ft.v:${n}` });
      await fill(gpu, m, 0);
      await fill(gpu, v, 0);
      moments.push(m, v);
      mv.set(n, [m, v]);
    }
    const { batch, targets } = makeBatch(instances, pad);
    for (let s = 0; s < (opts.steps ?? 10); s++) {
      await lossAndGradients(copy, batch, { targets }, { grads });
      for (const n of names) {
        const [m, v] = mv.get(n)!;
        await adamw(gpu, copy.weight(n), grads.get(n), m, v, { lr: opts.lr ?? 1e-3, step: s + 1 });
      }
    }
    const { logprobs } = await copy.forward([test.ids]);
    return logprobs[0][test.target];
  } finally {
    for (const t of moments) t.destroy();
    grads.destroy();
    copy.destroy();
  }
}

/**
 * For each test: fine-tune copies on its top-k IA instances and on k random instances of the pool (never
 * modifying `model`), and report the change of log p(target).
 */
export async function finetuneStudy(
  model: TransformerModel,
  pool: TrainingInstance[],
  tests: TestCase[],
  pad: number,
  opts: StudyOptions & FinetuneOptions = {},
): Promise<FinetuneRow[]> {
  const k = opts.k ?? 5;
  const seeds = opts.seeds ?? [opts.seed ?? 1];
  const train = iaExamples(pool, opts);
  const rows: FinetuneRow[] = [];
  for (const [ti, t] of tests.entries()) {
    const before = (await model.forward([t.ids])).logprobs[0][t.target];
    const known = opts.topInstances?.[ti];
    const topIdx = known ?? topK(
      await instanceScores(model, train, promptExample(t.ids, t.target), {
        method: opts.method ?? "grad-dot",
      }),
      k,
    );
    const top = topIdx.map((i) => pool[i]);
    const deltaTop = (await finetuneAndScore(model, top, t, pad, opts)) - before;
    const draws = opts.randomDraws ?? 3;
    const bySeed: number[] = [];
    for (const seed of seeds) {
      const rand = mulberry32(drawSeed(seed, (opts.firstIndex ?? 0) + ti));
      let sum = 0;
      for (let d = 0; d < draws; d++) {
        const idx = Array.from({ length: pool.length }, (_, i) => i);
        for (let i = 0; i < k; i++) {
          const j = i + Math.floor(rand() * (idx.length - i));
          [idx[i], idx[j]] = [idx[j], idx[i]];
        }
        sum += (await finetuneAndScore(model, idx.slice(0, k).map((i) => pool[i]), t, pad, opts)) - before;
      }
      bySeed.push(sum / draws);
    }
    rows.push({
      name: t.name,
      logpBefore: before,
      deltaTop,
      deltaRandom: bySeed.reduce((a, b) => a + b, 0) / bySeed.length,
      deltaRandomBySeed: bySeed,
      seeds: [...seeds],
      topIds: top.map((x) => x.id),
    });
    opts.onProgress?.("finetune", ti + 1, tests.length);
  }
  return rows;
}

/**
 * Yu et al.'s diversity of a set of instances (`analysis/diversity_measurement.py: cal_kl_divergence`):
 * the mean cosine similarity over all pairs of the instances' last hidden states (here the final
 * layer norm's output, `ln_f`) at each sequence's last token; lower means more diverse. Null for fewer
 * than two sequences.
 */
export async function meanPairwiseCosine(model: TransformerModel, seqs: number[][]): Promise<number | null> {
  if (seqs.length < 2) return null;
  const vecs: Float32Array[] = [];
  for (const ids of seqs) {
    const { captured } = await model.forward([ids], { hooks: { capture: ["ln_f"] } });
    const w = model.config.nEmbd;
    vecs.push(captured.get("ln_f")!.data.slice((ids.length - 1) * w, ids.length * w));
  }
  let sum = 0, n = 0;
  for (let i = 0; i < vecs.length; i++) {
    for (let j = i + 1; j < vecs.length; j++) {
      let d = 0, a = 0, b = 0;
      for (let x = 0; x < vecs[i].length; x++) {
        d += vecs[i][x] * vecs[j][x];
        a += vecs[i][x] * vecs[i][x];
        b += vecs[j][x] * vecs[j][x];
      }
      sum += d / Math.max(Math.sqrt(a * b), 1e-30);
      n++;
    }
  }
  return sum / n;
}

/**
 * One test instance of `engram study attribution --out DIR` as written to `tests/test_<i>.json`
 * (snake_case, like every result file), and the conversion of the attribute layer's results into it.
 *
 * @module
 */
import type { BlockStats, FaithfulnessResult, Neuron } from "../../attribute/neurons.ts";

/** Blocking statistics of one (k, mode) cell for one test (the random cells pool their draws). */
export interface BlockRecord {
  /** Yu et al.'s mean of p_baseline(label) − p_blocked(label), label = the unblocked argmax. */
  prob_drop: number;
  /** Runs whose blocked argmax differs from the unblocked one (Yu et al.'s "prediction changed"). */
  flips: number;
  /** Blocked forward passes pooled (1 for the attributed neurons, the draws for the random ones). */
  runs: number;
  /** engram's ratio: mean p_blocked(target) / p(target). A ratio, not Yu et al.'s statistic. */
  retained_ratio_target: number;
}

/** One k of the faithfulness tests of one test instance. */
export interface FaithfulnessRecord {
  /** The requested k. */
  k: number;
  /** Neurons actually blocked: k clipped to the test's coarse neurons (Yu et al.'s `use_top`). */
  k_used: number;
  /** Only the k neurons kept at the target position, every other FFN neuron of every layer zeroed. */
  sufficiency: BlockRecord;
  /** The k neurons zeroed at the target position. */
  comprehensiveness: BlockRecord;
  /** Sufficiency with k_used random neurons (pooled over the draws). */
  random_sufficiency: BlockRecord;
  /** Comprehensiveness with k_used random neurons (pooled over the draws). */
  random_comprehensiveness: BlockRecord;
}

/** A neuron in result files. */
export interface NeuronRecord {
  layer: number;
  neuron: number;
  score: number;
}

/** Everything the study measured for one test instance. */
export interface TestRecord {
  /** 0-based index of the test among the studied prompts. */
  index: number;
  /** "prompt -> answer". */
  name: string;
  /** The prompt's record number in the prompts file (0-based). */
  record: number;
  subject: string | null;
  relation: string | null;
  /** The attributed target token (the answer's first token). */
  target: number;
  /** The unblocked model's prediction (argmax) at the target position. */
  label: number;
  /** p(label) and p(target) unblocked. */
  p_label: number;
  p_target: number;
  /** How many coarse NA neurons the test has (the ranking blocked by the faithfulness tests). */
  coarse_neurons: number;
  /** One entry per k. */
  faithfulness: FaithfulnessRecord[];
  /** IA vs NA on this test. */
  overlap: {
    ia_top: string[];
    na_instances_top: string[];
    ia_precision_at_k: number | null;
    na_instances_precision_at_k: number | null;
    instance_jaccard: number;
    rank_correlation: number;
    na_neurons: NeuronRecord[];
    ia_neurons: NeuronRecord[];
    neuron_jaccard: number;
  };
  /** Yu et al.'s diversity (mean pairwise cosine of the last hidden states; lower = more diverse). */
  diversity: {
    ia_cos_mean: number | null;
    na_instances_cos_mean: number | null;
    random_cos_mean: number | null;
  };
  /** Fine-tuning on the top-k IA instances vs k random ones: changes of log p(target). */
  finetune: {
    logp_before: number;
    delta_top: number;
    delta_random_by_seed: number[];
    seeds: number[];
    top_ids: string[];
  };
  /** Wall-clock seconds spent on this test. */
  seconds: number;
}

/** BlockStats as a record. */
export function blockRecord(b: BlockStats): BlockRecord {
  return { prob_drop: b.probDrop, flips: b.flips, runs: b.runs, retained_ratio_target: b.retainedRatio };
}

/** The faithfulness rows of one test as records (`ks` the requested ks, in the rows' order). */
export function faithfulnessRecords(ks: number[], f: FaithfulnessResult): FaithfulnessRecord[] {
  return f.rows.map((r, i) => ({
    k: ks[i],
    k_used: r.k,
    sufficiency: blockRecord(r.sufficiency),
    comprehensiveness: blockRecord(r.comprehensiveness),
    random_sufficiency: blockRecord(r.randomSufficiency),
    random_comprehensiveness: blockRecord(r.randomComprehensiveness),
  }));
}

/** Neurons as records. */
export function neuronRecords(ns: Neuron[]): NeuronRecord[] {
  return ns.map((n) => ({ layer: n.layer, neuron: n.neuron, score: n.score }));
}

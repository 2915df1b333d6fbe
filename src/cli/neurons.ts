/**
 * `engram neurons --model DIR --prompt "..." [--prompt "..." ...] --target T [--steps N]
 * [--points left|linspace] [--activation post|pre] [--threshold R] [--strict] [--share S] [--min-count N]
 * [--top K] [--ks 2,100] [--random-trials N] [--seed S] [--bos auto|on|off] [--no-prefix] [--first-token] [--json]`:
 * knowledge neurons by integrated gradients (see src/attribute/neurons.ts). With several --prompt
 * (paraphrases of one fact) the coarse neurons of each are refined to those shared by at least --share of
 * the prompts and by at least --min-count prompts (Dai et al.: 0.7 and 3). Defaults follow Dai et al.;
 * `--points linspace --activation pre --strict` follows EleutherAI/knowledge-neurons. Faithfulness (Yu et
 * al.) blocks each prompt's own top-k neurons and pools the prompts.
 */
import { InputError } from "../errors.ts";
import { loadModel } from "../model/load.ts";
import { attributionIds, attributionTarget } from "../attribute/inputs.ts";
import {
  type BlockStats,
  coarseNeurons,
  faithfulness,
  type IgActivation,
  type IgPoints,
  integratedGradients,
  type Neuron,
  type NeuronAttribution,
  poolFaithfulness,
  rankNeurons,
  refineNeurons,
  suppressAmplify,
} from "../attribute/neurons.ts";
import { bosFlag, choiceFlag, COMMON_FLAGS, FACT_FLAGS, intFlag, numFlag, required } from "./args.ts";
import { type CommandSpec, parseCommand } from "./spec.ts";
import { log } from "./log.ts";
import { withFieldNames } from "../prompt/errors.ts";
import { progress } from "./progress.ts";
import type { NeuronsOutput } from "../schema/attribute_output.ts";
import { schemaTag, snakeKeys } from "../schema/common.ts";

/** What each faithfulness statistic in the report means (printed into the JSON). */
export const FAITHFULNESS_STATISTICS = {
  sufficiency: "at the last token, every MLP neuron of every layer zeroed except the k blocked ones",
  comprehensiveness: "the k neurons zeroed at the last token",
  probDrop: "mean of p(label) - p_blocked(label), label = the unblocked model's argmax (Yu et al.)",
  flips: "runs whose blocked argmax differs from the unblocked argmax (Yu et al.)",
  retainedRatio: "mean of p_blocked(target) / p(target) (engram; 1 = unchanged)",
  runs: "blocked forward passes pooled (prompts, times random draws for the random baseline)",
};

/** Parses "1,10,100" into positive integers. */
export function parseKs(s: string, flag = "--ks"): number[] {
  const ks = s.split(",").map((x) => x.trim());
  if (ks.length === 0 || ks.some((x) => !/^\d+$/.test(x) || Number(x) < 1)) {
    throw new InputError(`${flag} must be comma-separated positive integers, got '${s}'`, { field: flag });
  }
  return ks.map(Number);
}

/** Flags and help of `engram neurons`. */
export const neuronsSpec: CommandSpec = {
  name: "neurons",
  summary: "knowledge neurons by integrated gradients of p(target); suppress / amplify; faithfulness",
  usage: 'neurons --model DIR --prompt "..." [--prompt "..." ...] --target T [--steps N] ' +
    "[--points left|linspace] [--activation post|pre] [--threshold R] [--strict] [--share S] [--min-count N] " +
    "[--top K] [--ks 2,100] [--random-trials N] [--seed S] [--bos auto|on|off] [--first-token] [--json]",
  description:
    `Integrated gradients of p(target) over every MLP neuron at the prompt's last token (Dai et al.).
    With several --prompt (paraphrases of one fact) each prompt's coarse neurons are refined to those shared
    by at least --share of the prompts and by --min-count of them. Defaults follow Dai et al.; --points linspace
    --activation pre --strict follows EleutherAI/knowledge-neurons. Faithfulness (Yu et al.) blocks each
    prompt's own top-k neurons (--ks) and compares with random neurons.`,
  flags: {
    model: COMMON_FLAGS.model,
    prompt: { type: "string", value: '"..."', required: true, multiple: true, help: "a prompt of the fact" },
    target: { type: "string", value: "T", required: true, help: "the answer" },
    steps: { type: "int", value: "N", default: 20, help: "integration steps" },
    points: {
      type: "string",
      choices: ["left", "linspace"],
      default: "left",
      help: "integration points: left Riemann sum (Dai et al.) or linspace including both ends (EleutherAI)",
    },
    activation: {
      type: "string",
      choices: ["post", "pre"],
      default: "post",
      help: "the neuron's value scaled: after the activation function (Dai et al.) or before (EleutherAI)",
    },
    threshold: {
      type: "number",
      value: "R",
      default: 0.2,
      help: "coarse neurons: attribution above R x the prompt's largest attribution",
    },
    strict: {
      type: "boolean",
      help: "strictly above the threshold and the share (EleutherAI) instead of at least",
    },
    share: {
      type: "number",
      value: "S",
      default: 0.7,
      help: "refined neurons: shared by this fraction of the prompts",
    },
    "min-count": {
      type: "int",
      value: "N",
      default: 3,
      unit: "prompts",
      help: "refined neurons: shared by N prompts",
    },
    top: { type: "int", value: "K", default: 20, help: "neurons listed" },
    ks: {
      type: "string",
      value: "K,K",
      default: "2,100",
      help: "numbers of neurons blocked for faithfulness",
    },
    "random-trials": {
      type: "int",
      value: "N",
      default: 3,
      help: "random draws of the faithfulness baseline",
    },
    seed: { type: "int", value: "S", default: 1, help: "seed of the random baseline" },
    "no-prefix": { type: "boolean", help: "the older spelling of --bos off" },
    bos: COMMON_FLAGS.bos,
    "first-token": { type: "boolean", help: "attribute only the target's first token" },
    json: COMMON_FLAGS.json,
  },
  examples: [
    'neurons --model fixtures/world/model --prompt "Narnux Zava was born in" --target Frostwick --json',
  ],
};

/** Runs `neurons`. */
export async function neuronsCommand(argv: string[]): Promise<void> {
  const f = parseCommand(neuronsSpec, argv);
  const dir = required(f, "model", "neurons");
  const prompts = (f.prompt as unknown as string[] | undefined) ?? [];
  if (prompts.length === 0) throw new InputError("neurons: --prompt is required", { field: "--prompt" });
  const targetText = required(f, "target", "neurons");
  const steps = intFlag(f, "steps", 20, 1, 1000);
  const points = choiceFlag<IgPoints>(f, "points", ["left", "linspace"], "left");
  const activation = choiceFlag<IgActivation>(f, "activation", ["post", "pre"], "post");
  const threshold = numFlag(f, "threshold", 0.2, 0, 1);
  const strict = f.strict === true;
  const share = numFlag(f, "share", 0.7, 0.01, 1);
  const minCount = intFlag(f, "min-count", 3, 0);
  const top = intFlag(f, "top", 20, 1);
  const ks = parseKs(typeof f.ks === "string" ? f.ks : "2,100");
  const trials = intFlag(f, "random-trials", 3, 0, 1000);
  const seed = intFlag(f, "seed", 1);
  const lm = await loadModel(dir, { bos: bosFlag(f, "no-prefix") });
  try {
    if (!lm.tokenizer) throw new InputError(`${dir} has no tokenizer`, { file: dir, field: "--model" });
    const target = withFieldNames(
      FACT_FLAGS,
      () => attributionTarget(lm.tokenizer!, targetText, f["first-token"] === true),
    );
    const model = lm.model;
    const bar = progress("neurons", prompts.length * model.config.nLayer);
    const attrs: NeuronAttribution[] = [];
    for (const [pi, p] of prompts.entries()) {
      const ids = withFieldNames(FACT_FLAGS, () => attributionIds(model, lm.tokenizer!, p));
      attrs.push(
        await integratedGradients(model, ids, target, {
          steps,
          points,
          activation,
          onLayer: (d) => bar.update(pi * model.config.nLayer + d),
        }),
      );
    }
    bar.done();
    const coarse = attrs.map((a) => coarseNeurons(a, threshold, { strict }));
    const refined = prompts.length > 1 ? refineNeurons(coarse, share, { minCount, strict }) : undefined;
    if (refined && refined.length === 0 && prompts.length < minCount) {
      log.warn(
        `no neuron is shared by ${minCount} prompts (--min-count, Dai et al.'s minimum) with only ` +
          `${prompts.length} prompts; pass --min-count ${prompts.length} or more --prompt`,
      );
    }
    const found: Array<{ layer: number; neuron: number }> = refined ?? coarse[0];
    const first = attrs[0];
    const scale = await suppressAmplify(model, first.ids, target, found);
    // Yu et al. block each instance's own top neurons and pool the instances.
    const faithPer = [];
    for (const [i, a] of attrs.entries()) {
      // Each prompt draws its own random neurons (seed + prompt index), reproducibly.
      faithPer.push(
        await faithfulness(model, a.ids, target, rankNeurons(a), ks, {
          randomTrials: trials,
          seed: seed + i,
        }),
      );
    }
    const pooled = poolFaithfulness(faithPer);
    const report = {
      model: dir,
      target: targetText,
      targetToken: target,
      attributed:
        "f = p(target | prompt), the probability of the target token after the prompt's last token; " +
        `IG over the ${activation === "post" ? "post-GELU" : "pre-GELU (c_fc output)"} MLP activations at ` +
        `the last token, baseline 0, ${
          points === "left" ? "alpha = k/m, k < m (left Riemann)" : "alpha = linspace(0, 1, m)"
        }, sum / m`,
      prefix: lm.tokenizer.bosId ?? null,
      steps,
      points,
      activation,
      threshold,
      thresholdRule: strict ? "score > threshold x max" : "score >= threshold x max",
      prompts: attrs.map((a, i) => ({
        prompt: prompts[i],
        prob: a.prob,
        completeness: a.layers.map((l, li) => ({
          layer: l,
          sumScores: a.scores[li].reduce((s, x) => s + x, 0),
          probMinusBaseline: a.prob - a.baselineProb[li],
        })),
        coarse: coarse[i].length,
        top: rankNeurons(a).slice(0, top).map((n: Neuron) => ({
          layer: n.layer,
          neuron: n.neuron,
          score: n.score,
        })),
      })),
      neurons: (refined ?? coarse[0]).slice(0, top).map((n) => ({
        layer: n.layer,
        neuron: n.neuron,
        score: "score" in n ? n.score : n.meanScore,
        ...("count" in n ? { share: n.share } : {}),
      })),
      refined: refined !== undefined,
      refine: refined
        ? { share, minCount, rule: strict ? "count > share x prompts" : "count >= share x prompts" }
        : null,
      suppressAmplify: { neurons: found.length, ...scale },
      faithfulness: {
        statistics: FAITHFULNESS_STATISTICS,
        ks,
        randomTrials: trials,
        seed,
        pooled,
        perPrompt: faithPer.map((r, i) => ({ prompt: prompts[i], ...r })),
      },
    };
    // The library's camelCase fields, written snake_case (schemas/engram-neurons.json).
    const out: NeuronsOutput = { schema: schemaTag("neurons", 1), ...snakeKeys(report) };
    if (f.json) console.log(JSON.stringify(out, null, 2));
    else {
      console.log(
        `target ${JSON.stringify(targetText)} (token ${target}); f = p(target): ${first.prob.toFixed(4)}`,
      );
      for (const p of report.prompts) {
        console.log(
          `prompt ${JSON.stringify(p.prompt)}: p = ${p.prob.toFixed(4)}, ${p.coarse} neurons ${
            strict ? ">" : ">="
          } ${threshold} x max`,
        );
        for (const c of p.completeness) {
          console.log(
            `  layer ${c.layer}: sum IG ${c.sumScores.toFixed(4)} vs p(x) - p(baseline) ${
              c.probMinusBaseline.toFixed(4)
            }`,
          );
        }
      }
      console.log(
        `${
          refined
            ? `refined (shared by ${strict ? ">" : ">="} ${share} of prompts and >= ${minCount} prompts)`
            : "coarse"
        } neurons:`,
      );
      for (const n of report.neurons) console.log(`  L${n.layer} N${n.neuron}  ${n.score.toFixed(5)}`);
      console.log(
        `suppress ${found.length} neurons: p ${scale.prob.toFixed(4)} -> ${scale.suppressed.toFixed(4)} (${
          (100 * scale.suppressChange).toFixed(1)
        }%); ` +
          `amplify x2: -> ${scale.amplified.toFixed(4)} (${(100 * scale.amplifyChange).toFixed(1)}%)`,
      );
      const cell = (b: BlockStats) =>
        `${b.probDrop.toFixed(4).padStart(8)} ${`${b.flips}/${b.runs}`.padStart(6)} ${
          b.retainedRatio.toFixed(3).padStart(8)
        }`;
      console.log(
        `faithfulness over ${attrs.length} prompt(s), each blocking its own top-k at the last token ` +
          `(prob_drop = p(label) - p_blocked(label), label = unblocked argmax; flips = argmax changed; ` +
          `retained = p_blocked(target) / p(target)):`,
      );
      const head = `${"prob_drop".padStart(8)} ${"flips".padStart(6)} ${"retained".padStart(8)}`;
      console.log(`${"".padEnd(6)} ${"sufficiency".padEnd(24)}   ${"comprehensiveness".padEnd(24)}`);
      console.log(`${"k".padEnd(6)} ${head}   ${head}   (random: sufficiency | comprehensiveness)`);
      for (const r of pooled) {
        console.log(
          `${String(r.k).padEnd(6)} ${cell(r.sufficiency)}   ${cell(r.comprehensiveness)}   (${
            cell(r.randomSufficiency)
          } | ${cell(r.randomComprehensiveness)})`,
        );
      }
    }
  } finally {
    lm.model.destroy();
  }
}

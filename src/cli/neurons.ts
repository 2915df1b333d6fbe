/**
 * `engram neurons --model DIR --prompt "..." [--prompt "..." ...] --target T [--steps N] [--threshold R]
 * [--share S] [--top K] [--ks 1,10,100] [--bos auto|on|off] [--no-prefix] [--first-token] [--json]`: knowledge neurons by
 * integrated gradients (see src/attribute/neurons.ts). With several --prompt (paraphrases of one fact) the
 * coarse neurons of each are refined to those shared by at least --share of the prompts.
 */
import { InputError } from "../errors.ts";
import { loadModel } from "../model/load.ts";
import { attributionIds, attributionTarget } from "../attribute/inputs.ts";
import {
  coarseNeurons,
  faithfulness,
  integratedGradients,
  type Neuron,
  type NeuronAttribution,
  rankNeurons,
  refineNeurons,
  suppressAmplify,
} from "../attribute/neurons.ts";
import { bosFlag, FACT_FLAGS, intFlag, numFlag, parseFlags, required } from "./args.ts";
import { withFieldNames } from "../prompt/errors.ts";
import { progress } from "./progress.ts";

/** Parses "1,10,100" into positive integers. */
export function parseKs(s: string, flag = "--ks"): number[] {
  const ks = s.split(",").map((x) => x.trim());
  if (ks.length === 0 || ks.some((x) => !/^\d+$/.test(x) || Number(x) < 1)) {
    throw new InputError(`${flag} must be comma-separated positive integers, got '${s}'`, { field: flag });
  }
  return ks.map(Number);
}

/** Runs `neurons`. */
export async function neuronsCommand(argv: string[]): Promise<void> {
  const f = parseFlags("neurons", argv, {
    model: { type: "string" },
    prompt: { type: "string", multiple: true },
    target: { type: "string" },
    steps: { type: "string" },
    threshold: { type: "string" },
    share: { type: "string" },
    top: { type: "string" },
    ks: { type: "string" },
    "no-prefix": { type: "boolean" },
    bos: { type: "string" },
    "first-token": { type: "boolean" },
    json: { type: "boolean" },
  });
  const dir = required(f, "model", "neurons");
  const prompts = (f.prompt as unknown as string[] | undefined) ?? [];
  if (prompts.length === 0) throw new InputError("neurons: --prompt is required", { field: "--prompt" });
  const targetText = required(f, "target", "neurons");
  const steps = intFlag(f, "steps", 20, 1, 1000);
  const threshold = numFlag(f, "threshold", 0.2, 0, 1);
  const share = numFlag(f, "share", 0.7, 0.01, 1);
  const top = intFlag(f, "top", 20, 1);
  const ks = parseKs(typeof f.ks === "string" ? f.ks : "1,10,100");
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
          onLayer: (d) => bar.update(pi * model.config.nLayer + d),
        }),
      );
    }
    bar.done();
    const coarse = attrs.map((a) => coarseNeurons(a, threshold));
    const refined = prompts.length > 1 ? refineNeurons(coarse, share) : undefined;
    const found: Array<{ layer: number; neuron: number }> = refined ?? coarse[0];
    const first = attrs[0];
    const ranking = rankNeurons(first);
    const scale = await suppressAmplify(model, first.ids, target, found);
    const faith = await faithfulness(model, first.ids, target, ranking, ks);
    const report = {
      model: dir,
      target: targetText,
      targetToken: target,
      attributed:
        "f = p(target | prompt), the probability of the target token after the prompt's last token; " +
        "IG over the post-GELU MLP activations at the last token, baseline 0, left Riemann sum",
      prefix: lm.tokenizer.bosId ?? null,
      steps,
      threshold,
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
      suppressAmplify: { neurons: found.length, ...scale },
      faithfulness: faith,
    };
    if (f.json) console.log(JSON.stringify(report, null, 2));
    else {
      console.log(
        `target ${JSON.stringify(targetText)} (token ${target}); f = p(target): ${first.prob.toFixed(4)}`,
      );
      for (const p of report.prompts) {
        console.log(
          `prompt ${JSON.stringify(p.prompt)}: p = ${
            p.prob.toFixed(4)
          }, ${p.coarse} neurons >= ${threshold} x max`,
        );
        for (const c of p.completeness) {
          console.log(
            `  layer ${c.layer}: sum IG ${c.sumScores.toFixed(4)} vs p(x) - p(baseline) ${
              c.probMinusBaseline.toFixed(4)
            }`,
          );
        }
      }
      console.log(`${refined ? `refined (shared by >= ${share} of prompts)` : "coarse"} neurons:`);
      for (const n of report.neurons) console.log(`  L${n.layer} N${n.neuron}  ${n.score.toFixed(5)}`);
      console.log(
        `suppress ${found.length} neurons: p ${scale.prob.toFixed(4)} -> ${scale.suppressed.toFixed(4)} (${
          (100 * scale.suppressChange).toFixed(1)
        }%); ` +
          `amplify x2: -> ${scale.amplified.toFixed(4)} (${(100 * scale.amplifyChange).toFixed(1)}%)`,
      );
      console.log("k      sufficiency  comprehensiveness  (random: suff / comp)");
      for (const r of faith) {
        console.log(
          `${String(r.k).padEnd(6)} ${r.sufficiency.toFixed(3).padStart(11)}  ${
            r.comprehensiveness.toFixed(3).padStart(17)
          }  (${r.randomSufficiency.toFixed(3)} / ${r.randomComprehensiveness.toFixed(3)})`,
        );
      }
    }
  } finally {
    lm.model.destroy();
  }
}

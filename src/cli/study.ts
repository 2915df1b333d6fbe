/**
 * `engram study attribution --model DIR --train FILE --prompts FILE [--tests N] [--pool N] [--k K]
 * [--method grad-dot|grad-cos] [--steps N] [--points linspace|left] [--activation pre|post]
 * [--threshold R] [--no-strict] [--top-neurons N] [--ia-cutoff N] [--ddof 0|1] [--ft-steps N] [--lr X]
 * [--draws N] [--seed S] [--train-loss answer|all] [--bos auto|on|off] [--no-prefix] [--json]`: the IA/NA study
 * (src/attribute/study.ts; defaults are Yu et al.'s) on the first --tests prompts of a JSONL
 * file of {"prompt", "answer"[, "subject", "relation"]} records. The candidate pool is every training
 * instance whose `subject` is a test prompt's subject (when both files have subjects) plus --pool random
 * instances (seeded); precision@k counts top instances stating the same (subject, relation) fact.
 */
import { InputError } from "../errors.ts";
import { readJsonl } from "../io/world.ts";
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
import type { IgActivation, IgPoints } from "../attribute/neurons.ts";
import {
  candidateNeurons,
  finetuneStudy,
  overlapStudy,
  type StudyNaOptions,
  type TestCase,
} from "../attribute/study.ts";
import { bosFlag, choiceFlag, COMMON_FLAGS, intFlag, numFlag, required } from "./args.ts";
import { type CommandSpec, parseCommand } from "./spec.ts";
import { progress } from "./progress.ts";
import { localizationStudyCommand } from "./study_localization.ts";
import type { StudyAttributionOutput } from "../schema/study_output.ts";
import { schemaTag, snakeKeys } from "../schema/common.ts";

/** Unique neurons of each side pooled over tests, and how many both share (Yu et al.'s Counter sets). */
function pooledOverlap(
  na: Array<Array<{ layer: number; neuron: number }>>,
  ia: Array<Array<{ layer: number; neuron: number }>>,
): { naUnique: number; iaUnique: number; overlap: number } {
  const keys = (xs: Array<Array<{ layer: number; neuron: number }>>) =>
    new Set(xs.flat().map((n) => `${n.layer}:${n.neuron}`));
  const a = keys(na), b = keys(ia);
  return { naUnique: a.size, iaUnique: b.size, overlap: [...a].filter((x) => b.has(x)).length };
}

/** Flags and help of `engram study` (its one study, `attribution`). */
export const studySpec: CommandSpec = {
  name: "study",
  summary: "the field's studies: attribution (Yu et al.: IA vs NA) and localization (Hase et al.)",
  usage: "study attribution --model DIR --train FILE --prompts FILE [--tests N] [--pool N] [--k K] " +
    "[--method grad-dot|grad-cos] [--steps N] [--points linspace|left] [--activation pre|post] " +
    "[--threshold R] [--no-strict] [--top-neurons N] [--ia-cutoff N] [--ddof 0|1] [--ft-steps N] [--lr X] " +
    "[--draws N] [--seed S] [--train-loss answer|all] [--bos auto|on|off] [--json]",
  description: `Two studies. \`study localization\` (Hase et al. 2023): engram study localization --help.

    \`study attribution\`: Yu et al.'s study (defaults are theirs) on the first --tests prompts of a JSONL file of
    {"prompt", "answer"[, "subject", "relation"]} records. The candidate pool is every training instance
    whose subject is a test prompt's subject plus --pool random instances (seeded); precision@k counts top
    instances stating the same (subject, relation) fact.`,
  flags: {
    model: COMMON_FLAGS.model,
    train: { type: "string", value: "FILE", required: true, help: 'the training corpus (JSONL with "text")' },
    prompts: {
      type: "string",
      value: "FILE",
      required: true,
      help: 'test prompts (JSONL {"prompt", "answer"})',
    },
    tests: { type: "int", value: "N", default: 4, unit: "prompts", help: "test prompts studied" },
    pool: {
      type: "int",
      value: "N",
      default: 40,
      unit: "instances",
      help: "random instances added to the pool",
    },
    k: { type: "int", value: "K", default: 5, help: "top-k influential instances" },
    method: {
      type: "string",
      choices: ["grad-dot", "grad-cos"],
      default: "grad-dot",
      help: "instance score",
    },
    steps: { type: "int", value: "N", default: 20, help: "integration steps of the neuron attribution" },
    points: {
      type: "string",
      choices: ["linspace", "left"],
      default: "linspace",
      help: "integration points",
    },
    activation: { type: "string", choices: ["pre", "post"], default: "pre", help: "neuron value scaled" },
    threshold: {
      type: "number",
      value: "R",
      default: 0.1,
      help: "coarse-neuron threshold (fraction of the largest)",
    },
    "no-strict": { type: "boolean", help: "at least the threshold instead of strictly above" },
    "top-neurons": { type: "int", value: "N", default: 5, help: "test neurons NA-Instances uses" },
    "ia-cutoff": {
      type: "int",
      value: "N",
      default: 1,
      help:
        "IA-Neurons: top neurons of the top-1 IA instance compared with as many of the test (Yu et al.'s cutoff)",
    },
    ddof: {
      type: "int",
      value: "0|1",
      default: 0,
      help: "delta degrees of freedom of NA-Instances' z-score",
    },
    "ft-steps": { type: "int", value: "N", default: 10, unit: "steps", help: "fine-tuning steps" },
    lr: { type: "number", value: "X", default: 1e-3, help: "fine-tuning learning rate" },
    draws: { type: "int", value: "N", default: 3, help: "random draws of the baseline" },
    seed: { type: "int", value: "S", default: 1, help: "seed of the pool and the draws" },
    "train-loss": {
      type: "string",
      choices: ["answer", "all"],
      default: "answer",
      help: "the training instance's loss: its answer token only, or every token",
    },
    "no-prefix": { type: "boolean", help: "the older spelling of --bos off" },
    bos: COMMON_FLAGS.bos,
    json: COMMON_FLAGS.json,
  },
  examples: [
    "study attribution --model fixtures/world/model --train fixtures/world/train.jsonl " +
    "--prompts fixtures/world/train_prompts.jsonl --tests 2",
  ],
};

/** Runs `study`. */
export async function studyCommand(argv: string[]): Promise<void> {
  const [kind, ...rest] = argv;
  if (kind === "localization") return await localizationStudyCommand(rest);
  if (kind !== "attribution") {
    throw new InputError(`study: unknown study '${kind ?? ""}' (available: attribution, localization)`, {
      field: "study",
    });
  }
  const f = parseCommand(studySpec, rest);
  const dir = required(f, "model", "study");
  const trainFile = required(f, "train", "study");
  const promptsFile = required(f, "prompts", "study");
  const nTests = intFlag(f, "tests", 4, 1);
  const nPool = intFlag(f, "pool", 40, 0);
  const k = intFlag(f, "k", 5, 1);
  const method = (typeof f.method === "string" ? f.method : "grad-dot") as IaMethod;
  if (!IA_METHODS.includes(method) || method === "tracin") {
    throw new InputError(`study --method must be grad-dot or grad-cos, got '${method}'`, {
      field: "--method",
    });
  }
  const steps = intFlag(f, "steps", 20, 1, 1000);
  const na = {
    steps,
    points: choiceFlag<IgPoints>(f, "points", ["linspace", "left"], "linspace"),
    activation: choiceFlag<IgActivation>(f, "activation", ["pre", "post"], "pre"),
    threshold: numFlag(f, "threshold", 0.1, 0, 1),
    strict: f["no-strict"] !== true,
  } satisfies StudyNaOptions;
  const topNeurons = intFlag(f, "top-neurons", 5, 1);
  const iaCutoff = intFlag(f, "ia-cutoff", 1, 1);
  const ddof = intFlag(f, "ddof", 0, 0, 1) as 0 | 1;
  const ftSteps = intFlag(f, "ft-steps", 10, 1);
  const lr = numFlag(f, "lr", 1e-3, 0);
  const draws = intFlag(f, "draws", 3, 1);
  const seed = intFlag(f, "seed", 1);
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
    const recs =
      (await readJsonl<{ prompt: string; answer: string; subject?: string; relation?: string }>(promptsFile, {
        prompt: "string",
        answer: "string",
      })).slice(0, nTests);
    const where = (i: number) => ({ file: promptsFile, record: i, fields: { target: "answer" } });
    const tests: Array<TestCase & { subject?: string; relation?: string }> = recs.map((r, i) => ({
      name: `${r.prompt} -> ${r.answer}`,
      ids: attributionIds(model, tok, r.prompt, where(i)),
      target: attributionTarget(tok, r.answer, false, where(i)),
      subject: r.subject,
      relation: r.relation,
    }));
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
    const t0 = performance.now();
    const barN = progress("study: NA of candidates", pool.length);
    const answerPrompts = pool.map((x) => instancePrompt(x, tok));
    const candN = await candidateNeurons(model, answerPrompts, na, (d) => barN.update(d));
    const iaInput = trainLoss === "answer" ? answerPrompts : undefined;
    barN.done();
    const barO = progress("study: IA/NA overlap", tests.length);
    const overlap = await overlapStudy(model, pool, candN, tests, {
      method,
      k,
      steps,
      na,
      topNeurons,
      iaNeuronCutoff: iaCutoff,
      ddof,
      answerPrompts: iaInput,
      onProgress: (_, d) => barO.update(d),
    });
    barO.done();
    const barF = progress("study: fine-tune top-k vs random", tests.length);
    const ft = await finetuneStudy(model, pool, tests, tok.eosId!, {
      method,
      k,
      steps: ftSteps,
      lr,
      randomDraws: draws,
      answerPrompts: iaInput,
      seed,
      onProgress: (_, d) => barF.update(d),
    });
    barF.done();
    const sameFact = (i: number, t: { subject?: string; relation?: string }) =>
      t.subject !== undefined && pool[i].meta.subject === t.subject && pool[i].meta.relation === t.relation;
    const precision = (list: number[], t: { subject?: string; relation?: string }) =>
      list.filter((i) => sameFact(i, t)).length / list.length;
    const rows = tests.map((t, i) => ({
      test: t.name,
      iaTop: overlap[i].iaTop.map((j) => pool[j].id),
      naInstancesTop: overlap[i].naTop.map((j) => pool[j].id),
      iaPrecisionAtK: t.subject !== undefined ? precision(overlap[i].iaTop, t) : null,
      naInstancesPrecisionAtK: t.subject !== undefined ? precision(overlap[i].naTop, t) : null,
      instanceJaccard: overlap[i].instanceJaccard,
      rankCorrelation: overlap[i].rankCorrelation,
      naNeurons: overlap[i].naNeurons,
      iaNeurons: overlap[i].iaNeurons,
      neuronJaccard: overlap[i].neuronJaccard,
      finetune: ft[i],
    }));
    const mean = (xs: Array<number | null>) => {
      const v = xs.filter((x): x is number => x !== null && Number.isFinite(x));
      return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
    };
    const summary = {
      iaPrecisionAtK: mean(rows.map((r) => r.iaPrecisionAtK)),
      naInstancesPrecisionAtK: mean(rows.map((r) => r.naInstancesPrecisionAtK)),
      instanceJaccard: mean(rows.map((r) => r.instanceJaccard)),
      rankCorrelation: mean(rows.map((r) => r.rankCorrelation)),
      neuronJaccard: mean(rows.map((r) => r.neuronJaccard)),
      // Yu et al.'s ia_neurons_compare: the pooled sets of top neurons over all tests.
      iaNeuronsPooled: pooledOverlap(overlap.map((o) => o.naNeurons), overlap.map((o) => o.iaNeurons)),
      finetuneDeltaTop: mean(ft.map((r) => r.deltaTop)),
      finetuneDeltaRandom: mean(ft.map((r) => r.deltaRandom)),
    };
    const report = {
      model: dir,
      method,
      trainLoss: trainLoss as "all" | "answer",
      k,
      pool: pool.length,
      igSteps: steps,
      neuronAttribution: { ...na, topNeurons, iaNeuronCutoff: iaCutoff, zScoreDdof: ddof },
      finetune: {
        steps: ftSteps,
        lr,
        randomDraws: draws,
        optimizer: "AdamW, full batch of the k instances",
        measure: "change of log p(target)",
      },
      seconds: (performance.now() - t0) / 1000,
      summary,
      rows,
    };
    if (f.json) {
      // The library's camelCase fields, written snake_case (schemas/engram-study-attribution.json).
      const out: StudyAttributionOutput = { schema: schemaTag("study-attribution", 1), ...snakeKeys(report) };
      console.log(JSON.stringify(out, null, 2));
    } else {
      const fx = (x: number | null, d = 3) => (x === null ? "-" : x.toFixed(d));
      console.log(
        `IA (${method}) vs NA on ${tests.length} prompts, pool of ${pool.length} training instances, k = ${k}`,
      );
      console.log(
        "test                                              P@k IA  P@k NA-Inst  Jacc inst  Spearman  Jacc neurons  dlogp top-k  dlogp random",
      );
      for (const r of rows) {
        console.log(
          `${r.test.slice(0, 48).padEnd(48)}  ${fx(r.iaPrecisionAtK, 2).padStart(6)}  ${
            fx(r.naInstancesPrecisionAtK, 2).padStart(11)
          }  ${fx(r.instanceJaccard, 2).padStart(9)}  ${fx(r.rankCorrelation).padStart(8)}  ${
            fx(r.neuronJaccard, 2).padStart(12)
          }  ${fx(r.finetune.deltaTop, 4).padStart(11)}  ${fx(r.finetune.deltaRandom, 4).padStart(12)}`,
        );
      }
      const s = summary;
      console.log(
        `${"mean".padEnd(48)}  ${fx(s.iaPrecisionAtK, 2).padStart(6)}  ${
          fx(s.naInstancesPrecisionAtK, 2).padStart(11)
        }  ${fx(s.instanceJaccard, 2).padStart(9)}  ${fx(s.rankCorrelation).padStart(8)}  ${
          fx(s.neuronJaccard, 2).padStart(12)
        }  ${fx(s.finetuneDeltaTop, 4).padStart(11)}  ${fx(s.finetuneDeltaRandom, 4).padStart(12)}`,
      );
      const p = s.iaNeuronsPooled;
      console.log(
        `IA-Neurons (top ${iaCutoff} of the top-1 IA instance) vs the tests' own top ${iaCutoff}, pooled over ` +
          `tests: ${p.naUnique} unique NA, ${p.iaUnique} unique IA, ${p.overlap} shared`,
      );
    }
  } finally {
    lm.model.destroy();
  }
}

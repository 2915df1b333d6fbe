/**
 * Training a GPT-2 or a Llama-family model ({@link trainedModelConfig}) from a JSONL corpus on WebGPU:
 * seeded shuffling, AdamW (WGSL), linear warm-up and cosine decay, global gradient-norm clipping,
 * intermediate checkpoints (Hugging Face folders, which TracIn reads) and a progress line. Deterministic
 * for a seed: every GPU reduction is ordered.
 *
 * Nothing is lost: training runs in a hidden sibling work folder (`.<out>.training-<id>`) that is renamed
 * to `out` only once the final model is written; an existing `out` is refused unless `overwrite`, and even
 * then when engram did not write it (no src/io/atomic.ts OUTPUT_MARKER). `out` must not be, contain or lie
 * inside the corpus, tokenizer or init model. One run per `out` at a time (`<out>.lock`, src/io/lock.ts).
 * Work folders of killed runs are named in the next run's notes and removed by
 * {@link cleanTrainingLeftovers} (`engram train --clean`). If the loss stops being finite, training stops
 * with a {@link TrainingDivergedError} that names the last good checkpoint, which is kept.
 */
import { snakeKeys } from "../schema/common.ts";
import { basename, dirname, join } from "node:path";
import { EngramError } from "../errors.ts";
import { checkReplaceable, markerText, OUTPUT_MARKER, recoverLeftovers } from "../io/atomic.ts";
import { acquireLock } from "../io/lock.ts";
import { checkOutputs, realPathOf } from "../io/output_paths.ts";
import type { Gpu } from "../gpu/device.ts";
import { adamw } from "../gpu/adamw.ts";
import { fill, sumSquaresAll } from "../gpu/reduce.ts";
import { createTensor, type GpuTensor, readTensor } from "../gpu/tensor.ts";
import { loadHFModel, saveHFModel } from "../io/hf_model.ts";
import { loadTokenizer, type Tokenizer } from "../io/tokenizer.ts";
import { Gradients, lossAndGradients } from "../model/backward.ts";
import type { ModelConfig, WeightMap } from "../model/config.ts";
import { TransformerModel } from "../model/transformer.ts";
import { mulberry32 } from "../model/generate.ts";
import { randomWeights } from "../model/random.ts";
import { checkTrainingMemory, type TrainConfig, trainedModelConfig } from "./config.ts";
import { makeBatch, readCorpus, type TrainingInstance } from "./corpus.ts";

/** The loss became NaN or infinite. */
export class TrainingDivergedError extends EngramError {
  constructor(message: string, opts: { file?: string; field?: string } = {}) {
    super("diverged", message, opts);
  }
}

/** One logged optimizer step. */
export interface StepLog {
  step: number;
  epoch: number;
  loss: number;
  gradNorm: number;
  lr: number;
  tokensPerSecond: number;
}

/** What {@link train} returns. */
export interface TrainResult {
  out: string;
  steps: number;
  finalLoss: number;
  checkpoints: string[];
  seconds: number;
  log: StepLog[];
}

/** Options of {@link train}. */
export interface TrainOptions {
  overwrite?: boolean;
  /** Progress callback (the CLI draws a progress line with it). */
  onStep?: (s: StepLog, totalSteps: number) => void;
  /** Stop after this many steps (for tests and benchmarks). */
  maxSteps?: number;
  /** Notes about leftovers of interrupted runs (the CLI prints them). */
  onNote?: (msg: string) => void;
}

/** The work folders of runs that trained into `out` and did not finish (killed, or diverged). */
export async function trainingLeftovers(out: string): Promise<string[]> {
  const real = await realPathOf(out);
  const parent = dirname(real), prefix = `.${basename(real)}.training-`;
  const found: string[] = [];
  try {
    for await (const e of Deno.readDir(parent)) {
      if (e.isDirectory && e.name.startsWith(prefix)) found.push(join(parent, e.name));
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return found.sort();
}

/**
 * Removes the work folders {@link trainingLeftovers} finds for `out`, under `out`'s lock (so never the
 * work folder of a run in progress), and repairs an interrupted final rename. Returns what it removed.
 */
export async function cleanTrainingLeftovers(out: string): Promise<string[]> {
  const real = await realPathOf(out);
  const lock = await acquireLock(real, "out");
  try {
    const gone = await trainingLeftovers(real);
    for (const p of gone) await Deno.remove(p, { recursive: true });
    await recoverLeftovers(real);
    return gone;
  } finally {
    await lock.release();
  }
}

/** Fisher–Yates shuffle with a seeded generator. */
export function shuffled<T>(xs: T[], rand: () => number): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/**
 * One epoch's batches: the instances in a seeded random order, cut into batches of `batchSize`. With
 * `lengthBuckets` > 1, each window of `lengthBuckets` batches is sorted by length before it is cut and the
 * batches are then shuffled, so a batch pads to a length close to its own instances' (padding costs
 * compute: every batch is as long as its longest instance) while each epoch still sees every instance
 * once in a random batch order.
 */
export function epochBatches<T extends { ids: number[] }>(
  data: T[],
  batchSize: number,
  lengthBuckets: number,
  rand: () => number,
): T[][] {
  const order = shuffled(data, rand);
  const batches: T[][] = [];
  const window = batchSize * Math.max(1, lengthBuckets);
  for (let w = 0; w < order.length; w += window) {
    const part = order.slice(w, w + window);
    if (lengthBuckets > 1) part.sort((a, b) => a.ids.length - b.ids.length);
    for (let i = 0; i < part.length; i += batchSize) batches.push(part.slice(i, i + batchSize));
  }
  return lengthBuckets > 1 ? shuffled(batches, rand) : batches;
}

/** Learning rate at `step` (0-based): linear warm-up, then cosine decay to lr * minLrRatio. */
export function learningRate(cfg: TrainConfig, step: number, total: number): number {
  if (step < cfg.warmupSteps) return (cfg.lr * (step + 1)) / cfg.warmupSteps;
  const p = total <= cfg.warmupSteps ? 1 : (step - cfg.warmupSteps) / Math.max(1, total - cfg.warmupSteps);
  const min = cfg.lr * cfg.minLrRatio;
  return min + 0.5 * (cfg.lr - min) * (1 + Math.cos(Math.PI * Math.min(1, p)));
}

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** The tokenizer files of folder `dir` that exist (or `dir` itself when it is a file or has none). */
async function tokenizerFiles(dir: string): Promise<string[]> {
  const names = [
    "tokenizer.json",
    "vocab.json",
    "merges.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
  ];
  const found = [];
  for (const n of names) if (await exists(join(dir, n))) found.push(join(dir, n));
  return found.length > 0 ? found : [dir];
}

/** Copies the model's GPU weights back into a host weight map. */
export async function readWeights(model: TransformerModel): Promise<WeightMap> {
  // By checkpoint name: a tensor fused on the GPU (Llama's q, k and v in one) is cut out of its slice.
  const gpu = new Map<string, Float32Array>();
  for (const name of model.weightNames()) gpu.set(name, await readTensor(model.weight(name)));
  const out: WeightMap = new Map();
  for (const [name, host] of model.weights) {
    const r = model.weightRef(name);
    out.set(name, { shape: [...host.shape], data: gpu.get(r.gpuName)!.slice(r.offset, r.offset + r.numel) });
  }
  return out;
}

/** Trains a model as `cfg` says; see the module comment. */
export async function train(gpu: Gpu, cfg: TrainConfig, opts: TrainOptions = {}): Promise<TrainResult> {
  const t0 = performance.now();
  await checkOutputs([{ path: cfg.out, flag: "out" }], [
    { path: cfg.corpus, flag: "corpus" },
    // The tokenizer's files, not its folder: the shipped world config trains into a folder beside them.
    ...(await tokenizerFiles(cfg.tokenizer)).map((p) => ({ path: p, flag: "tokenizer" })),
    ...(cfg.init ? [{ path: cfg.init, flag: "init" }] : []),
  ]);
  if ((await exists(cfg.out)) && !opts.overwrite) {
    throw new EngramError("exists", "output folder already exists; pass --overwrite to replace it", {
      file: cfg.out,
    });
  }
  await Deno.mkdir(dirname(cfg.out), { recursive: true }).catch(() => {});
  const lock = await acquireLock(await realPathOf(cfg.out), "out");
  try {
    for (const n of await recoverLeftovers(await realPathOf(cfg.out))) opts.onNote?.(n);
    const left = await trainingLeftovers(cfg.out);
    if (left.length > 0) {
      opts.onNote?.(
        `${left.length} work folder(s) of interrupted runs into ${cfg.out}: ${left.join(", ")} ` +
          `(their checkpoints are kept; engram train --config FILE --clean removes them)`,
      );
    }
    await checkReplaceable(cfg.out, Boolean(opts.overwrite), "out");
    return await trainLocked(gpu, cfg, opts, t0);
  } finally {
    await lock.release();
  }
}

async function trainLocked(gpu: Gpu, cfg: TrainConfig, opts: TrainOptions, t0: number): Promise<TrainResult> {
  const tokenizer: Tokenizer = await loadTokenizer(cfg.tokenizer);
  let config: ModelConfig;
  let weights: WeightMap;
  if (cfg.init) {
    const hf = await loadHFModel(cfg.init);
    config = hf.config;
    weights = hf.weights;
    if (config.vocabSize !== tokenizer.vocabSize) {
      throw new EngramError(
        "config",
        `model vocabulary ${config.vocabSize} != tokenizer's ${tokenizer.vocabSize}`,
        { file: cfg.init },
      );
    }
  } else {
    // The config check could not know the vocabulary or the adapter: bound the run again before allocating.
    const lim = gpu.device.limits;
    checkTrainingMemory(cfg, tokenizer.vocabSize, {
      maxBufferSize: lim.maxBufferSize,
      maxStorageBufferBindingSize: lim.maxStorageBufferBindingSize,
    }, cfg.corpus);
    config = trainedModelConfig(cfg.model, tokenizer.vocabSize);
    weights = randomWeights(config, cfg.seed, { std: cfg.initStd, biasStd: 0, normStd: 0 });
  }
  const data: TrainingInstance[] = await readCorpus(cfg.corpus, tokenizer, config.nPositions + 1);
  const model = TransformerModel.create(gpu, config, weights);
  const names = model.weightNames();
  const grads = new Gradients(model, names);
  const moments = new Map<string, [GpuTensor, GpuTensor]>();
  for (const n of names) {
    const w = model.weight(n);
    const m = createTensor(gpu, w.shape, { name: `adam_m:${n}` });
    const v = createTensor(gpu, w.shape, { name: `adam_v:${n}` });
    await fill(gpu, m, 0);
    await fill(gpu, v, 0);
    moments.set(n, [m, v]);
  }
  const sumsq = createTensor(gpu, [1], { name: "grad_sumsq" });
  const stepsPerEpoch = Math.ceil(data.length / cfg.batchSize);
  const totalSteps = Math.min(cfg.epochs * stepsPerEpoch, opts.maxSteps ?? Infinity);
  const work = join(dirname(cfg.out), `.${basename(cfg.out)}.training-${crypto.randomUUID().slice(0, 8)}`);
  await Deno.mkdir(join(work, "checkpoints"), { recursive: true });
  await Deno.writeTextFile(join(work, OUTPUT_MARKER), markerText("trained model"));
  const checkpoints: string[] = [];
  const saveTo = async (dir: string) => {
    await saveHFModel(dir, {
      config,
      weights: await readWeights(model),
      tokenizerFrom: cfg.tokenizer,
      extraConfig: { bos_token_id: tokenizer.eosId, eos_token_id: tokenizer.eosId },
    });
  };
  const checkpoint = async (step: number) => {
    const dir = join(work, "checkpoints", `step-${String(step).padStart(6, "0")}`);
    await saveTo(dir);
    checkpoints.push(dir);
  };
  const log: StepLog[] = [];
  const rand = mulberry32(cfg.seed);
  const pad = tokenizer.eosId!;
  let step = 0;
  let finalLoss = NaN;
  try {
    for (let epoch = 0; epoch < cfg.epochs && step < totalSteps; epoch++) {
      const batches = epochBatches(data, cfg.batchSize, cfg.lengthBuckets, rand);
      for (let b = 0; b < batches.length && step < totalSteps; b++) {
        const ts = performance.now();
        const chunk = batches[b];
        const { batch, targets } = makeBatch(chunk, pad);
        // The squared gradient norm is recorded after the backward and read in its one map.
        const res = await lossAndGradients(model, batch, { targets }, {
          grads,
          allowNonFinite: true,
          afterGradients: async () => {
            await sumSquaresAll(gpu, names.map((n) => grads.get(n)), sumsq);
            return [sumsq];
          },
        });
        if (!Number.isFinite(res.loss)) {
          const last = checkpoints.at(-1);
          throw new TrainingDivergedError(
            `loss became ${res.loss} at step ${step + 1} (epoch ${epoch + 1}); ` +
              (last ? `the last good checkpoint is kept at ${last}` : "no checkpoint was saved yet") +
              "; lower the learning rate or raise warm-up",
            { file: cfg.corpus },
          );
        }
        const norm = Math.sqrt(res.after[0][0]);
        if (!Number.isFinite(norm)) {
          throw new TrainingDivergedError(`gradient norm became ${norm} at step ${step + 1}`, {
            file: cfg.corpus,
          });
        }
        const gradScale = cfg.gradClip > 0 && norm > cfg.gradClip ? cfg.gradClip / norm : 1;
        const lr = learningRate(cfg, step, totalSteps);
        for (const n of names) {
          const [m, v] = moments.get(n)!;
          const decay = model.weight(n).shape.length >= 2 ? cfg.weightDecay : 0;
          await adamw(gpu, model.weight(n), grads.get(n), m, v, {
            lr,
            weightDecay: decay,
            step: step + 1,
            gradScale,
          });
        }
        step++;
        const tokens = chunk.reduce((s, x) => s + x.ids.length - 1, 0);
        const entry: StepLog = {
          step,
          epoch: epoch + 1,
          loss: res.loss,
          gradNorm: norm,
          lr,
          tokensPerSecond: tokens / ((performance.now() - ts) / 1000),
        };
        log.push(entry);
        finalLoss = res.loss;
        opts.onStep?.(entry, totalSteps);
        if (cfg.checkpointEvery > 0 && step % cfg.checkpointEvery === 0 && step < totalSteps) {
          await checkpoint(step);
        }
      }
      if (cfg.checkpointEpochs && step < totalSteps) await checkpoint(step);
    }
    // The final model goes in the work folder, which then takes the output's name.
    const files = new Map<string, Uint8Array>();
    const finalDir = join(work, "final");
    await saveTo(finalDir);
    for await (const e of Deno.readDir(finalDir)) {
      files.set(e.name, await Deno.readFile(join(finalDir, e.name)));
    }
    for (const [name, bytes] of files) {
      if (name !== OUTPUT_MARKER) await Deno.writeFile(join(work, name), bytes);
    }
    await Deno.remove(finalDir, { recursive: true });
    await Deno.writeTextFile(
      join(work, "train_log.jsonl"),
      // snake_case, as every engram document (grad_norm, tokens_per_second).
      log.map((l) => JSON.stringify(snakeKeys(l))).join("\n") + "\n",
    );
    if (await exists(cfg.out)) {
      await checkReplaceable(cfg.out, true, "out"); // still an engram output (checked again: time passed)
      const aside = join(dirname(cfg.out), `.${basename(cfg.out)}.old-${crypto.randomUUID().slice(0, 8)}`);
      await Deno.rename(cfg.out, aside);
      await Deno.rename(work, cfg.out);
      await Deno.remove(aside, { recursive: true });
    } else {
      await Deno.rename(work, cfg.out);
    }
  } catch (e) {
    // Keep the work folder only if it holds a checkpoint worth keeping.
    if (checkpoints.length === 0) await Deno.remove(work, { recursive: true }).catch(() => {});
    throw e;
  } finally {
    model.destroy();
    grads.destroy();
    for (const [m, v] of moments.values()) {
      m.destroy();
      v.destroy();
    }
    sumsq.destroy();
  }
  return {
    out: cfg.out,
    steps: step,
    finalLoss,
    checkpoints: checkpoints.map((c) => c.replace(work, cfg.out)),
    seconds: (performance.now() - t0) / 1000,
    log,
  };
}

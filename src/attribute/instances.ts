/**
 * Instance attribution (IA): which training instances most influence a test prediction, from
 * per-example gradients of the loss over chosen parameters (Yu, Atanasova, Augenstein 2024, §2(g);
 * Pruthi et al.'s TracIn).
 *
 * - A training instance's loss is the mean next-token cross-entropy over its tokens ([eos] + text +
 *   [eos], as in training, see src/train/corpus.ts); the test loss is −log p(target | prompt).
 * - Parameters: by default the MLP output matrices `h.L.mlp.c_proj.weight` [nInner, nEmbd] of every
 *   layer, flattened and concatenated in layer order. For exactly these matrices the per-example
 *   gradient is Σ_t a_t ⊗ g_t (a = `mlp_post.L`, g = ∂loss/∂`mlp_out.L`), so a whole batch of instances
 *   gets its per-example gradients from one forward/backward pass plus one batched GPU matmul. Any other
 *   parameter list is computed one instance at a time with {@link Gradients}.
 * - Grad-Dot = g_train · g_test; Grad-Cos = the cosine; TracIn = Σ_checkpoints lr_c · g_train(c) · g_test(c).
 * Training gradients are streamed (never all held in memory): only the scores are kept.
 */
import { join } from "node:path";
import { ConfigError, InputError } from "../errors.ts";
import { matmul } from "../gpu/matmul.ts";
import { createTensor, type GpuTensor, readTensors } from "../gpu/tensor.ts";
import { loadHFModel } from "../io/hf_model.ts";
import { backward, Gradients, lossAndGradients } from "../model/backward.ts";
import { type ModelConfig, resolveConfig } from "../model/config.ts";
import { familySpec } from "../model/families/mod.ts";
import { TransformerModel } from "../model/transformer.ts";
import { NonFiniteError } from "../model/nonfinite.ts";

/** An example to differentiate: input tokens and the next-token target at each position (−1 = ignore). */
export interface GradExample {
  /** Input token ids. */
  input: number[];
  /** Next-token target of each position (−1: no loss there). */
  targets: number[];
}

/** The instance-attribution methods. */
export type IaMethod = "grad-dot" | "grad-cos" | "tracin";
/** Every {@link IaMethod}. */
export const IA_METHODS: IaMethod[] = ["grad-dot", "grad-cos", "tracin"];

/** Default parameters: the MLP output projection's weight of every layer (GPT-2 c_proj, Llama down_proj, ...). */
export function defaultIaParams(config: ModelConfig): string[] {
  const c = resolveConfig(config), spec = familySpec(c);
  return Array.from({ length: c.nLayer }, (_, l) => spec.layer(c, l).down.weight);
}

/** A training instance (token ids including both eos markers) as a {@link GradExample}. */
export function trainingExample(ids: number[]): GradExample {
  return { input: ids.slice(0, -1), targets: ids.slice(1) };
}

/** A prompt and its next-token target as a {@link GradExample} (only the last position counts). */
export function promptExample(ids: number[], target: number): GradExample {
  return { input: ids, targets: ids.map((_, t) => (t === ids.length - 1 ? target : -1)) };
}

/** Most bytes of per-example products read back in one map by the fast path. */
const READ_GROUP_BYTES = 256 * 2 ** 20;

/**
 * Calls `onGrad(index, grad)` with the flattened gradient (over `params`, concatenated in order) of the
 * mean loss of each example; `grad` is reused between calls only if you keep it — copy it to keep it.
 * Examples of equal input length are batched (no padding) (`batchSize`, default 32) on the fast path (see module comment).
 */
export async function forEachExampleGradient(
  model: TransformerModel,
  examples: GradExample[],
  params: string[],
  onGrad: (index: number, grad: Float32Array) => void,
  opts: { batchSize?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<void> {
  const names = new Set(model.weightNames());
  if (params.length === 0) {
    throw new InputError("no parameters chosen for the gradients", { field: "params" });
  }
  for (const p of params) {
    if (!names.has(p)) throw new InputError(`unknown parameter '${p}'`, { field: "params" });
  }
  for (const [i, ex] of examples.entries()) {
    if (ex.input.length !== ex.targets.length || ex.input.length === 0) {
      throw new InputError(`example ${i}: ${ex.input.length} inputs but ${ex.targets.length} targets`, {
        field: "examples",
      });
    }
    if (!ex.targets.some((t) => t !== -1)) {
      throw new InputError(`example ${i} has no target to score`, { field: "examples" });
    }
  }
  const sizes = params.map((p) => model.weight(p).numel);
  const P = sizes.reduce((a, b) => a + b, 0);
  let done = 0;
  // The fast path: every parameter is an MLP output projection's weight (its gradient is A_bᵀ G_b).
  const downLayer = new Map(
    Array.from({ length: model.config.nLayer }, (_, l) => [model.spec.layer(model.config, l).down.weight, l]),
  );
  const linear = model.spec.layer(model.config, 0).down.layout === "linear";
  if (!params.every((p) => downLayer.has(p))) {
    // The backward pass writes every weight's gradient, so buffers exist for all; only `params` are read.
    const grads = new Gradients(model);
    try {
      for (const [i, ex] of examples.entries()) {
        await lossAndGradients(model, [ex.input], { targets: [ex.targets] }, { grads });
        const flat = new Float32Array(P);
        let off = 0;
        // Every parameter's gradient in one map (one completion wait per example).
        for (const [j, g] of (await grads.readMany(params)).entries()) {
          flat.set(g, off);
          off += sizes[j];
        }
        onGrad(i, flat);
        opts.onProgress?.(++done, examples.length);
      }
    } finally {
      grads.destroy();
    }
    return;
  }
  const { nEmbd: C, nInner: I } = model.config;
  const layers = params.map((p) => downLayer.get(p)!);
  const bs = opts.batchSize ?? 32;
  const byLen = new Map<number, number[]>();
  examples.forEach((ex, i) => byLen.set(ex.input.length, [...(byLen.get(ex.input.length) ?? []), i]));
  const gpu = model.gpu;
  for (const [T, idx] of [...byLen.entries()].sort((a, b) => a[0] - b[0])) {
    for (let s = 0; s < idx.length; s += bs) {
      const part = idx.slice(s, s + bs);
      const B = part.length;
      const batch = part.map((i) => examples[i].input);
      // The forward reads nothing back: the products take each layer's saved mlp_post activations on
      // the GPU, so a batch costs two completion waits (the backward's, the products').
      const { saved } = await model.forwardForBackward(batch, { noReadback: true });
      const perLayer: Float32Array[] = [];
      try {
        const { siteGrads, rowLosses } = await backward(model, saved, {
          targets: part.map((i) => examples[i].targets),
          reduction: "sum",
        }, {
          siteGrads: layers.map((l) => `mlp_out.${l}`),
        });
        if (!rowLosses.every(Number.isFinite)) {
          // The forward with its readback names the first non-finite site.
          await model.forward(batch);
          throw new NonFiniteError("instance gradients: a non-finite loss", "logits");
        }
        // The layers' per-example products, then one map for a group of them: as many layers per group
        // as fit in READ_GROUP_BYTES (at least one).
        const layerProducts = async (ls: number[]): Promise<Float32Array[]> => {
          const tensors: GpuTensor[] = [];
          const outs: GpuTensor[] = [];
          try {
            for (const l of ls) {
              const aT = saved.layers[l].act;
              const gT = createTensor(gpu, [B * T, C], {
                name: "ia.dout",
                data: siteGrads.get(`mlp_out.${l}`)!,
              });
              const oT = createTensor(gpu, [B, I * C], { name: "ia.grads" });
              tensors.push(gT, oT);
              outs.push(oT);
              // Per example b: dW_b = A_b^T G_b [I, C] (Conv1D), or G_b^T A_b [C, I] (nn.Linear); A_b [T, I], G_b [T, C].
              if (linear) {
                await matmul(gpu, gT, aT, oT, {
                  M: C,
                  N: I,
                  K: T,
                  batch: B,
                  transA: true,
                  strideA: T * C,
                  strideB: T * I,
                  strideOut: I * C,
                });
              } else {
                await matmul(gpu, aT, gT, oT, {
                  M: I,
                  N: C,
                  K: T,
                  batch: B,
                  transA: true,
                  strideA: T * I,
                  strideB: T * C,
                  strideOut: I * C,
                });
              }
            }
            return await readTensors(outs);
          } finally {
            for (const t of tensors) t.destroy();
          }
        };
        const group = Math.max(1, Math.floor(READ_GROUP_BYTES / (B * I * C * 4)));
        for (let g0 = 0; g0 < layers.length; g0 += group) {
          perLayer.push(...await layerProducts(layers.slice(g0, g0 + group)));
        }
      } finally {
        saved.destroy();
      }
      part.forEach((i, b) => {
        const counted = examples[i].targets.filter((t) => t !== -1).length;
        const flat = new Float32Array(P);
        let off = 0;
        for (const g of perLayer) {
          const src = g.subarray(b * I * C, (b + 1) * I * C);
          for (let j = 0; j < I * C; j++) flat[off + j] = src[j] / counted;
          off += I * C;
        }
        onGrad(i, flat);
      });
      done += B;
      opts.onProgress?.(done, examples.length);
    }
  }
}

/** All gradients of {@link forEachExampleGradient} as an array (small example sets only). */
export async function exampleGradients(
  model: TransformerModel,
  examples: GradExample[],
  params: string[],
): Promise<Float32Array[]> {
  const out: Float32Array[] = new Array(examples.length);
  await forEachExampleGradient(model, examples, params, (i, g) => (out[i] = g));
  return out;
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** A checkpoint for TracIn: a Hugging Face folder and the learning rate used at its step. */
export interface Checkpoint {
  /** The checkpoint's model folder. */
  dir: string;
  /** Training step of the checkpoint. */
  step: number;
  /** Learning rate at that step (TracIn's weight). */
  lr: number;
}

/**
 * The `step-*` folders of `dir`, in step order, with the learning rate at each step read from
 * `train_log.jsonl` in `dir` or its parent (the model folder); 1 when no log entry exists.
 */
export async function listCheckpoints(dir: string): Promise<Checkpoint[]> {
  const out: Checkpoint[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      const m = /^step-(\d+)$/.exec(e.name);
      if (e.isDirectory && m) out.push({ dir: join(dir, e.name), step: Number(m[1]), lr: 1 });
    }
  } catch (e) {
    throw new InputError(`cannot read the checkpoints folder: ${(e as Error).message}`, {
      file: dir,
      field: "--checkpoints",
    });
  }
  if (out.length === 0) {
    throw new InputError("no step-* checkpoint folders", { file: dir, field: "--checkpoints" });
  }
  out.sort((a, b) => a.step - b.step);
  const lrs = new Map<number, number>();
  for (const f of [join(dir, "train_log.jsonl"), join(dir, "..", "train_log.jsonl")]) {
    let text: string;
    try {
      text = await Deno.readTextFile(f);
    } catch {
      continue;
    }
    for (const line of text.split("\n")) {
      if (!line.trim()) continue;
      try {
        const r = JSON.parse(line);
        if (typeof r.step === "number" && typeof r.lr === "number") lrs.set(r.step, r.lr);
      } catch {
        throw new InputError("train_log.jsonl line is not JSON", { file: f });
      }
    }
    break;
  }
  for (const c of out) c.lr = lrs.get(c.step) ?? 1;
  return out;
}

function sameArch(a: ModelConfig, b: ModelConfig): string | undefined {
  for (const k of ["nLayer", "nHead", "nEmbd", "vocabSize", "nPositions", "nInner"] as const) {
    if (a[k] !== b[k]) return `${k} ${b[k]} != the model's ${a[k]}`;
  }
  return undefined;
}

/** Options of {@link instanceScores}. */
export interface IaOptions {
  /** The attribution score: grad-dot, grad-cos or tracin. */
  method: IaMethod;
  /** Parameters (default {@link defaultIaParams}). */
  params?: string[];
  /** TracIn checkpoints (required for "tracin"). */
  checkpoints?: Checkpoint[];
  /** Training examples per backward batch. */
  batchSize?: number;
  /** Progress callback: `done` of `total` training examples. */
  onProgress?: (done: number, total: number) => void;
}

/** Influence score of every training example on the test example; higher = more helpful. */
export async function instanceScores(
  model: TransformerModel,
  train: GradExample[],
  test: GradExample,
  opts: IaOptions,
): Promise<Float64Array> {
  const params = opts.params ?? defaultIaParams(model.config);
  const scores = new Float64Array(train.length);
  if (opts.method === "tracin") {
    const cks = opts.checkpoints ?? [];
    if (cks.length === 0) {
      throw new InputError("tracin needs checkpoints (--checkpoints DIR)", { field: "--checkpoints" });
    }
    let done = 0;
    for (const c of cks) {
      const hf = await loadHFModel(c.dir);
      const bad = sameArch(model.config, hf.config);
      if (bad) {
        throw new ConfigError(`checkpoint has a different architecture: ${bad}`, {
          file: join(c.dir, "config.json"),
          field: "config",
        });
      }
      const m = TransformerModel.create(model.gpu, hf.config, hf.weights);
      try {
        const [gTest] = await exampleGradients(m, [test], params);
        await forEachExampleGradient(m, train, params, (i, g) => (scores[i] += c.lr * dot(g, gTest)), {
          batchSize: opts.batchSize,
          onProgress: (d) => opts.onProgress?.(done + d, train.length * cks.length),
        });
      } finally {
        m.destroy();
      }
      done += train.length;
    }
    return scores;
  }
  if (opts.method !== "grad-dot" && opts.method !== "grad-cos") {
    throw new InputError(`unknown method '${opts.method}' (expected ${IA_METHODS.join(", ")})`, {
      field: "--method",
    });
  }
  const [gTest] = await exampleGradients(model, [test], params);
  const nTest = Math.sqrt(dot(gTest, gTest));
  await forEachExampleGradient(model, train, params, (i, g) => {
    const d = dot(g, gTest);
    scores[i] = opts.method === "grad-dot" ? d : d / (Math.sqrt(dot(g, g)) * nTest + 1e-30);
  }, { batchSize: opts.batchSize, onProgress: opts.onProgress });
  return scores;
}

/** Indices of the `k` highest scores, highest first (ties by index); src/numeric's topK. */
export { topK } from "../numeric/mod.ts";

/**
 * Training throughput: forward vs forward+backward vs a full AdamW step on one batch (tokens/s and the
 * backward/forward ratio), and the backward matmuls (dW = Xᵀ·dY, dX = dY·Wᵀ) in GFLOP/s beside the
 * forward matmul, all measured in the same run.
 */
import { getGpu } from "../src/gpu/device.ts";
import { matmul, matmulFlops } from "../src/gpu/matmul.ts";
import { adamw } from "../src/gpu/adamw.ts";
import { fill } from "../src/gpu/reduce.ts";
import { createTensor } from "../src/gpu/tensor.ts";
import { Gradients, lossAndGradients } from "../src/model/backward.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { benchConfig } from "../src/model/measure.ts";
import { randomGPT2 } from "../src/model/random.ts";

const gpu = await getGpu();
const cfg = benchConfig(2, 128, 4, 2048, 64);
const model = TransformerModel.create(gpu, cfg, randomGPT2(cfg, 1, { std: 0.02 }));
const B = 8, T = 32;
const batch = Array.from(
  { length: B },
  (_, b) => Array.from({ length: T }, (_, t) => (b * 131 + t * 17) % cfg.vocabSize),
);
const targets = batch.map((s) => s.map((_, t) => (t + 1 < T ? s[t + 1] : -1)));
const grads = new Gradients(model);
const moments = model.weightNames().map((n) => {
  const w = model.weight(n);
  const m = createTensor(gpu, w.shape), v = createTensor(gpu, w.shape);
  return [n, m, v] as const;
});
for (const [, m, v] of moments) {
  await fill(gpu, m, 0);
  await fill(gpu, v, 0);
}
let stepNo = 0;
const fwd = () => model.forward(batch);
const fwdBwd = () => lossAndGradients(model, batch, { targets }, { grads });
const trainStep = async () => {
  await fwdBwd();
  stepNo++;
  for (const [n, m, v] of moments) {
    await adamw(gpu, model.weight(n), grads.get(n), m, v, { lr: 1e-4, step: stepNo });
  }
  await gpu.flush();
};

async function timeIt(fn: () => Promise<unknown>, iters = 3): Promise<number> {
  await fn();
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) await fn();
  return (performance.now() - t0) / iters;
}
const tf = await timeIt(fwd), tb = await timeIt(fwdBwd), ts = await timeIt(trainStep);
console.log(
  `model 2x128, batch ${B}x${T}: forward ${tf.toFixed(1)} ms (${((B * T) / tf * 1000).toFixed(0)} tok/s), ` +
    `forward+backward ${tb.toFixed(1)} ms, train step ${ts.toFixed(1)} ms (${
      ((B * T) / ts * 1000).toFixed(0)
    } tok/s); ` +
    `backward/forward ratio ${((tb - tf) / tf).toFixed(2)}`,
);

// Backward matmuls at an MLP-like shape: forward Y[R,N] = X[R,K]·W[K,N].
const R = 256, K = 128, N = 512;
const X = createTensor(gpu, [R, K]), W = createTensor(gpu, [K, N]), Y = createTensor(gpu, [R, N]);
const dW = createTensor(gpu, [K, N]), dX = createTensor(gpu, [R, K]);
for (const t of [X, W, Y]) await fill(gpu, t, 0.5);
const mm = {
  forward: () => matmul(gpu, X, W, Y, { M: R, N, K }),
  "dW = X^T dY": () => matmul(gpu, X, Y, dW, { M: K, N, K: R, transA: true }),
  "dX = dY W^T": () => matmul(gpu, Y, W, dX, { M: R, N: K, K: N, transB: true }),
};
const flops = matmulFlops(R, N, K);
for (const [name, fn] of Object.entries(mm)) {
  const ms = await timeIt(async () => {
    for (let i = 0; i < 8; i++) await fn();
    await gpu.flush();
  }) / 8;
  console.log(`matmul ${name} [${R}x${K}x${N}]: ${(flops / ms / 1e6).toFixed(2)} GFLOP/s`);
}

Deno.bench("forward (8x32 tokens)", { group: "train", baseline: true }, async () => void (await fwd()));
Deno.bench("forward + backward", { group: "train" }, async () => void (await fwdBwd()));
Deno.bench("train step (forward, backward, AdamW)", { group: "train" }, trainStep);

/**
 * The row-reduction kernels at the adapter's workgroup size (src/gpu/row_workgroup.ts) against the GPU
 * default (64 lanes for the norms, 128 for cross-entropy, 8 row lanes for the bias gradient) in one run, at the fixture world's training
 * shapes (1,024 rows of 96 columns; 1,284 logits per row). Each iteration records 10 calls and awaits one
 * flush, so the ~11 ms completion wait is shared. `deno bench -A benchmarks/row_kernels_bench.ts`.
 */
import { getGpu } from "../src/gpu/device.ts";
import { biasGrad } from "../src/gpu/bias_grad.ts";
import { crossEntropy } from "../src/gpu/cross_entropy.ts";
import { layerNorm } from "../src/gpu/layernorm.ts";
import { layerNormBackward } from "../src/gpu/layernorm_backward.ts";
import { setRowWorkgroup } from "../src/gpu/row_workgroup.ts";
import { createTensor } from "../src/gpu/tensor.ts";

const gpu = await getGpu();
const R = 1024, C = 96, V = 1284, CALLS = 10;
const data = (n: number, s: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * s));
const x = createTensor(gpu, [R, C], { name: "x", data: data(R * C, 0.37) });
const dout = createTensor(gpu, [R, C], { name: "dout", data: data(R * C, 0.91) });
const gamma = createTensor(gpu, [C], { name: "gamma", data: data(C, 1.3) });
const beta = createTensor(gpu, [C], { name: "beta", data: data(C, 0.2) });
const out = createTensor(gpu, [R, C], { name: "out" });
const dx = createTensor(gpu, [R, C], { name: "dx" });
const dg = createTensor(gpu, [C], { name: "dgamma" });
const db = createTensor(gpu, [C], { name: "dbeta" });
const stats = createTensor(gpu, [R, 2], { name: "stats" });
const logits = createTensor(gpu, [R, V], { name: "logits", data: data(R * V, 0.013) });
const targets = createTensor(gpu, [R], {
  name: "targets",
  dtype: "u32",
  data: Uint32Array.from({ length: R }, (_, i) => (i * 37) % V),
});
const losses = createTensor(gpu, [R], { name: "losses" });
const hidden = createTensor(gpu, [R, 4 * C], { name: "hidden", data: data(R * 4 * C, 0.53) });
const dbias = createTensor(gpu, [4 * C], { name: "dbias" });
const dlogits = createTensor(gpu, [R, V], { name: "dlogits" });

const cases: Array<[string, number, () => Promise<void>]> = [
  ["layerNorm 1024x96", 64, () => layerNorm(gpu, x, gamma, beta, out, { rows: R, cols: C, stats })],
  [
    "layerNormBackward 1024x96",
    64,
    () => layerNormBackward(gpu, dout, x, gamma, stats, dx, dg, db, { rows: R, cols: C }),
  ],
  // The column sums' override is RS (row lanes per column, GPU default 8).
  ["biasGrad 1024x384", 8, () => biasGrad(gpu, hidden, dbias, { rows: R, cols: 4 * C })],
  [
    "crossEntropy + gradient 1024x1284",
    128,
    () => crossEntropy(gpu, logits, targets, losses, dlogits, { rows: R, cols: V }),
  ],
];
for (const [name, gpuDefault, run] of cases) {
  const bench = (size: number | undefined) => async () => {
    setRowWorkgroup(gpu, size);
    for (let i = 0; i < CALLS; i++) await run();
    await gpu.flush();
    setRowWorkgroup(gpu, undefined);
  };
  Deno.bench(`${name} x${CALLS}, workgroup ${gpuDefault} (GPU default)`, {
    group: name,
    baseline: true,
    n: 5,
    warmup: 1,
  }, bench(gpuDefault));
  Deno.bench(
    `${name} x${CALLS}, the adapter's workgroup`,
    { group: name, n: 5, warmup: 1 },
    bench(undefined),
  );
}

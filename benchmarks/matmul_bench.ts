/**
 * Matmul throughput: the register-blocked kernel (`kernels/matmul.wgsl`) against the 16x16
 * shared-memory baseline (`kernels/matmul_naive.wgsl`) on the same shapes, in one group per shape
 * with the naive kernel as baseline, so `deno bench` prints the speed-up directly. Each iteration
 * records one call and awaits `gpu.flush()`, so the rows include execution and submission latency.
 * A GFLOP/s summary from {@link measureMatmul} (several calls per flush, so kernel-bound) follows.
 *
 * Iteration counts are fixed and small: on llvmpipe the naive 512^3 product takes ~0.5 s.
 */
import { getGpu } from "../src/gpu/device.ts";
import { matmul, matmulFlops, matmulNaive, measureMatmul } from "../src/gpu/matmul.ts";
import { createTensor } from "../src/gpu/tensor.ts";

const gpu = await getGpu();

/** [M, N, K]: a square product, GPT-2 small's c_attn for 64 tokens, and a larger square. */
const SHAPES: Array<[number, number, number]> = [[256, 256, 256], [64, 2304, 768], [512, 512, 512]];

for (const [M, N, K] of SHAPES) {
  const fill = (n: number, s: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * s) * 0.5);
  const a = createTensor(gpu, [M, K], { name: "a", data: fill(M * K, 0.7368) });
  const b = createTensor(gpu, [K, N], { name: "b", data: fill(K * N, 1.3137) });
  const out = createTensor(gpu, [M, N], { name: "out" });
  const group = `matmul ${M}x${N}x${K}`;
  const mflop = (matmulFlops(M, N, K) / 1e6).toFixed(0);
  Deno.bench(`blocked 4x4 ${M}x${N}x${K} (${mflop} MFLOP)`, { group, n: 10, warmup: 2 }, async () => {
    await matmul(gpu, a, b, out, { M, N, K });
    await gpu.flush();
  });
  Deno.bench(`naive 16x16 shared ${M}x${N}x${K}`, { group, baseline: true, n: 3, warmup: 1 }, async () => {
    await matmulNaive(gpu, a, b, out, { M, N, K });
    await gpu.flush();
  });
}

// GFLOP/s summary, printed once (deno bench loads this module once for all benches).
for (const r of await measureMatmul(gpu, SHAPES)) {
  const [M, N, K] = r.shape;
  console.log(
    `matmul ${M}x${N}x${K}: blocked ${r.gflops.toFixed(2)} GFLOP/s (${r.ms.toFixed(2)} ms), ` +
      `naive ${r.naiveGflops.toFixed(2)} GFLOP/s (${r.naiveMs.toFixed(2)} ms), ratio ${r.ratio.toFixed(1)}x`,
  );
}

/**
 * The cost of windows past the storage-binding limit: each launcher that splits (fill, scale, AdamW, sum
 * of squares, the non-finite scan, attention forward with probabilities and backward) timed at one shape
 * with the device's limit (one dispatch) and with the limit lowered to 1 MiB (many windows or blocks),
 * interleaved, median of `REPS` runs. Each run ends with a 4-byte read of the op's last-written element
 * (same submission, so the read waits for the op). Prints one line per op; no Deno.bench cases, so
 * `deno task bench` runs it as a script too.
 *
 *   nice -n 15 npx -y deno@2 run -A benchmarks/split_bench.ts [reps]
 */
import { attention } from "../src/gpu/attention.ts";
import { attentionBackward } from "../src/gpu/attention_backward.ts";
import { adamw } from "../src/gpu/adamw.ts";
import { getGpu } from "../src/gpu/device.ts";
import { firstNonFinite } from "../src/gpu/nonfinite.ts";
import { fill, scaleInPlace, sumSquares } from "../src/gpu/reduce.ts";
import { copyTensor, createTensor, type GpuTensor, readTensor } from "../src/gpu/tensor.ts";

const REPS = Number(Deno.args[0] ?? 7);
const gpu = await getGpu();
const LOW = 1 << 20;
const N = 4 << 20; // 16 MB per tensor: 17 windows at 1 MiB
const big = (name: string) => createTensor(gpu, [N], { name, data: new Float32Array(N).fill(0.5) });
const [p, g, m, v] = ["p", "g", "m", "v"].map(big);
const one = createTensor(gpu, [1], { name: "one" });

/** Milliseconds of `f` at `limit` (undefined: the device's), waiting on the last element of `last`. */
async function time(limit: number | undefined, f: () => Promise<unknown>, last?: GpuTensor): Promise<number> {
  const t0 = performance.now();
  gpu.setBindingLimit(limit);
  try {
    await f();
    if (last) copyTensor(last, one, 1, last.numel - 1, 0);
    await readTensor(one);
  } finally {
    gpu.setBindingLimit(undefined);
  }
  return performance.now() - t0;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// GPT-2-small-like heads at T 128: probs [16, 12, 128, 128] are 12.6 MB; one sequence's qkv rows are
// 1.18 MB, so the attention runs at a 2 MiB limit: one sequence per block.
const B = 16, T = 128, C = 768, nHead = 12;
const qkv = createTensor(gpu, [B * T, 3 * C], {
  name: "qkv",
  data: new Float32Array(B * T * 3 * C).fill(0.01),
});
const out = createTensor(gpu, [B * T, C], { name: "out" });
const probs = createTensor(gpu, [B, nHead, T, T], { name: "probs" });
const dout = createTensor(gpu, [B * T, C], { name: "dout", data: new Float32Array(B * T * C).fill(0.01) });
const dqkv = createTensor(gpu, [B * T, 3 * C], { name: "dqkv" });
const shape = { B, T, C, nHead };

const ops: Array<[string, () => Promise<unknown>, GpuTensor | undefined, number?]> = [
  ["fill 16 MB", () => fill(gpu, g, 0), g],
  ["scaleInPlace 16 MB", () => scaleInPlace(gpu, g, 1), g],
  ["adamw 4 x 16 MB", () => adamw(gpu, p, g, m, v, { lr: 1e-6, step: 1 }), p],
  ["sumSquares 16 MB", () => sumSquares(gpu, g, one), undefined],
  ["non-finite scan 16 MB", () => firstNonFinite(gpu, g), undefined],
  ["attention + probs [16,12,128,128]", () => attention(gpu, qkv, out, { ...shape, probs }), probs, 2 * LOW],
  [
    "attentionBackward [16,12,128,128]",
    () => attentionBackward(gpu, qkv, probs, dout, dqkv, shape),
    dqkv,
    2 * LOW,
  ],
];
console.log(`load ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}, ${REPS} reps, median ms`);
for (const [name, f, last, low = LOW] of ops) {
  // Warm-up: pipelines of both paths compiled before timing.
  await time(undefined, f, last);
  await time(low, f, last);
  const whole: number[] = [], split: number[] = [];
  for (let i = 0; i < REPS; i++) {
    whole.push(await time(undefined, f, last));
    split.push(await time(low, f, last));
  }
  const a = median(whole), b = median(split);
  console.log(
    `${name}: one dispatch ${a.toFixed(1)}, windows at ${low >> 20} MiB ${b.toFixed(1)} (${
      (b / a).toFixed(2)
    }x)`,
  );
}

/**
 * The cost of windows past the storage-binding limit: each launcher that splits (fill, scale, AdamW,
 * sum of squares, the non-finite scan, attention forward with probabilities and backward) timed at one
 * shape with the device's limit (one dispatch) and with the limit lowered to 1 MiB (many windows or
 * blocks). Each iteration waits for the GPU (`gpu.flush()`).
 *
 *   nice -n 15 npx -y deno@2 bench -A benchmarks/split_bench.ts
 */
import { attention } from "../src/gpu/attention.ts";
import { attentionBackward } from "../src/gpu/attention_backward.ts";
import { adamw } from "../src/gpu/adamw.ts";
import { getGpu } from "../src/gpu/device.ts";
import { firstNonFinite } from "../src/gpu/nonfinite.ts";
import { fill, scaleInPlace, sumSquares } from "../src/gpu/reduce.ts";
import { createTensor } from "../src/gpu/tensor.ts";

const gpu = await getGpu();
const LOW = 1 << 20;
const N = 4 << 20; // 16 MB per tensor: 17 windows at 1 MiB
const big = (name: string) => createTensor(gpu, [N], { name, data: new Float32Array(N).fill(0.5) });
const [p, g, m, v] = ["p", "g", "m", "v"].map(big);
const one = createTensor(gpu, [1], { name: "one" });

/** Runs `f` at `limit` (undefined: the device's) and waits for the GPU. */
async function at(limit: number | undefined, f: () => Promise<void>): Promise<void> {
  gpu.setBindingLimit(limit);
  try {
    await f();
    await gpu.flush();
  } finally {
    gpu.setBindingLimit(undefined);
  }
}

const opts = { n: 10, warmup: 2 };
for (const [label, limit] of [["one dispatch", undefined], ["1 MiB windows", LOW]] as const) {
  const baseline = limit === undefined;
  Deno.bench(
    `fill ${label}`,
    { group: "fill 16 MB", baseline, ...opts },
    () => at(limit, () => fill(gpu, g, 0)),
  );
  Deno.bench(
    `scale ${label}`,
    { group: "scale 16 MB", baseline, ...opts },
    () => at(limit, () => scaleInPlace(gpu, g, 1)),
  );
  Deno.bench(
    `adamw ${label}`,
    { group: "adamw 4 x 16 MB", baseline, ...opts },
    () => at(limit, () => adamw(gpu, p, g, m, v, { lr: 1e-6, step: 1 })),
  );
  Deno.bench(
    `sumSquares ${label}`,
    { group: "sumSquares 16 MB", baseline, ...opts },
    () => at(limit, () => sumSquares(gpu, g, one)),
  );
  Deno.bench(`non-finite scan ${label}`, { group: "non-finite 16 MB", baseline, ...opts }, async () => {
    gpu.setBindingLimit(limit);
    try {
      await firstNonFinite(gpu, g);
    } finally {
      gpu.setBindingLimit(undefined);
    }
  });
}

// GPT-2-small-like heads at T 128: probs [16, 12, 128, 128] are 12.6 MB, 1 sequence per 1 MiB block.
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
for (const [label, limit] of [["one dispatch", undefined], ["1 MiB blocks", LOW]] as const) {
  const baseline = limit === undefined;
  Deno.bench(
    `attention+probs ${label}`,
    { group: "attention fwd", baseline, n: 5, warmup: 1 },
    () => at(limit, () => attention(gpu, qkv, out, { ...shape, probs })),
  );
  Deno.bench(
    `attention backward ${label}`,
    { group: "attention bwd", baseline, n: 5, warmup: 1 },
    () => at(limit, () => attentionBackward(gpu, qkv, probs, dout, dqkv, shape)),
  );
}

/**
 * Causal self-attention backward (`kernels/attention_backward.wgsl`) against the forward it
 * differentiates (`kernels/attention.wgsl`, with the probs it must save), GPT-2 small's shape, in the
 * same run. Each Deno.bench iteration records one call and awaits `gpu.flush()` (includes submission
 * latency). After the benches, a summary timed with 4 calls per flush (kernel-bound) prints ms per call,
 * GFLOP/s (forward 4·B·nHead·D·T(T+1)/2 FLOPs, backward twice that) and the backward/forward ratio.
 */
import { attention, attentionFlops, type AttentionShape } from "../src/gpu/attention.ts";
import { attentionBackward, attentionBackwardFlops } from "../src/gpu/attention_backward.ts";
import { getGpu } from "../src/gpu/device.ts";
import { createTensor } from "../src/gpu/tensor.ts";

const gpu = await getGpu();

const c: AttentionShape = { B: 1, T: 128, C: 768, nHead: 12 };
const { B, T, C, nHead } = c;
const x = new Float32Array(B * T * 3 * C);
for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.7368) * 1.3;
const g = new Float32Array(B * T * C);
for (let i = 0; i < g.length; i++) g[i] = Math.cos(i * 0.3111);
const qkv = createTensor(gpu, [B * T, 3 * C], { name: "qkv", data: x });
const out = createTensor(gpu, [B * T, C], { name: "att" });
const probs = createTensor(gpu, [B, nHead, T, T], { name: "probs" });
const dout = createTensor(gpu, [B * T, C], { name: "datt", data: g });
const dqkv = createTensor(gpu, [B * T, 3 * C], { name: "dqkv" });
const fwd = () => attention(gpu, qkv, out, { ...c, probs });
const bwd = () => attentionBackward(gpu, qkv, probs, dout, dqkv, c);
await fwd();
await bwd();
await gpu.flush();

const name = `B=${B} T=${T} C=${C} nHead=${nHead}`;
Deno.bench(`attention forward + probs ${name}`, { group: "attn-bwd", baseline: true }, async () => {
  await fwd();
  await gpu.flush();
});
Deno.bench(`attention backward ${name}`, { group: "attn-bwd" }, async () => {
  await bwd();
  await gpu.flush();
});

// Kernel-bound summary, printed once (deno bench loads this module once for all benches).
async function time(f: () => Promise<void>, iters = 3, perFlush = 4): Promise<number> {
  await f();
  await gpu.flush();
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) {
    for (let j = 0; j < perFlush; j++) await f();
    await gpu.flush();
  }
  return (performance.now() - t0) / (iters * perFlush);
}
const msF = await time(fwd);
const msB = await time(bwd);
console.log(
  `attention ${name}, 4 calls/flush: forward+probs ${msF.toFixed(2)} ms (${
    (attentionFlops(c) / (msF * 1e6)).toFixed(2)
  } GFLOP/s), backward ${msB.toFixed(2)} ms (${
    (attentionBackwardFlops(c) / (msB * 1e6)).toFixed(2)
  } GFLOP/s), backward/forward ${(msB / msF).toFixed(2)}x`,
);

/**
 * Causal self-attention throughput (`kernels/attention.wgsl`). Each iteration records one attention
 * call and awaits `gpu.flush()`, so the figure includes submission latency. After the Deno.bench runs,
 * a GFLOP/s summary (4·B·nHead·D·T(T+1)/2 FLOPs per call) is printed from {@link measureAttention},
 * both with one call per flush (latency-bound, as the bench rows) and with 8 calls per flush (kernel-bound).
 */
import { attention, attentionFlops, type AttentionShape, measureAttention } from "../src/gpu/attention.ts";
import { getGpu } from "../src/gpu/device.ts";
import { createTensor } from "../src/gpu/tensor.ts";

const gpu = await getGpu();

const CONFIGS: AttentionShape[] = [
  { B: 1, T: 128, C: 768, nHead: 12 },
  { B: 4, T: 64, C: 256, nHead: 4 },
];

for (const c of CONFIGS) {
  const { B, T, C, nHead } = c;
  const data = new Float32Array(B * T * 3 * C);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.7368) * 1.3;
  const qkv = createTensor(gpu, [B, T, 3 * C], { name: "qkv", data });
  const out = createTensor(gpu, [B, T, C], { name: "att" });
  const probs = createTensor(gpu, [B, nHead, T, T], { name: "probs" });
  const mflop = (attentionFlops(c) / 1e6).toFixed(1);
  Deno.bench(`attention B=${B} T=${T} C=${C} nHead=${nHead} (${mflop} MFLOP)`, {
    group: `attn-${B}-${T}-${C}`,
    baseline: true,
  }, async () => {
    await attention(gpu, qkv, out, c);
    await gpu.flush();
  });
  Deno.bench(
    `attention + probs B=${B} T=${T} C=${C} nHead=${nHead}`,
    { group: `attn-${B}-${T}-${C}` },
    async () => {
      await attention(gpu, qkv, out, { ...c, probs });
      await gpu.flush();
    },
  );
}

// GFLOP/s summary, printed once (deno bench loads this module once for all benches).
const all = [...CONFIGS, ...CONFIGS.map((c) => ({ ...c, probs: true }))];
const results = [...await measureAttention(gpu, all, 5, 1), ...await measureAttention(gpu, all, 3, 8)];
for (const r of results) {
  const c = r.config;
  console.log(
    `attention B=${c.B} T=${c.T} C=${c.C} nHead=${c.nHead}${
      c.probs ? " +probs" : ""
    }, ${r.callsPerFlush}/flush: ` +
      `${r.ms.toFixed(2)} ms, ${r.gflops.toFixed(2)} GFLOP/s, ${
        ((c.B * c.T) / (r.ms / 1000)).toFixed(0)
      } tokens/s`,
  );
}

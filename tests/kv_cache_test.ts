/**
 * The KV-cache kernels (kernels/kv_append.wgsl, kernels/attention_cached.wgsl) against their float64 twin
 * (src/reference/attention_cached.ts): the cache filled in several appends (a prompt, then single tokens,
 * then two at once), grouped-query and NeoX layouts, odd head sizes, a sliding window, poisoned outputs.
 */
import assert from "node:assert/strict";
import { blockedQkvLayout, neoxQkvLayout, type QkvLayout } from "../src/gpu/attention.ts";
import { getGpu } from "../src/gpu/device.ts";
import { attentionCached, kvAppend, KvCache } from "../src/gpu/kv_cache.ts";
import { createTensor, poison, readTensor } from "../src/gpu/tensor.ts";
import { attentionCachedRef } from "../src/reference/attention_cached.ts";
import { randn, relErr, rng } from "./_util.ts";

const CASES: Array<{ name: string; layout: QkvLayout; window?: number }> = [
  { name: "GQA 4/2 heads, D = 5", layout: blockedQkvLayout(4, 2, 5) },
  { name: "MHA 3 heads, D = 7, window 3", layout: blockedQkvLayout(3, 3, 7), window: 3 },
  { name: "NeoX 2 heads, D = 6", layout: neoxQkvLayout(2, 6) },
  { name: "MQA 3/1 heads, D = 64", layout: blockedQkvLayout(3, 1, 64) },
];

for (const c of CASES) {
  Deno.test(`cached attention matches the float64 twin: ${c.name}`, async () => {
    const gpu = await getGpu();
    const B = 2, maxLen = 11, l = c.layout;
    const r = rng(7);
    const steps = [5, 1, 1, 2]; // prompt, two single tokens, two at once
    const total = steps.reduce((a, b) => a + b, 0);
    const rows = Array.from({ length: B }, () => randn(r, total * l.rowStride, 1.5));
    const cache = new KvCache(gpu, B, maxLen, l, 1);
    let start = 0;
    for (const T of steps) {
      const data = new Float32Array(B * T * l.rowStride);
      for (let b = 0; b < B; b++) {
        data.set(rows[b].subarray(start * l.rowStride, (start + T) * l.rowStride), b * T * l.rowStride);
      }
      const qkv = createTensor(gpu, [B * T, l.rowStride], { data });
      const out = createTensor(gpu, [B * T, l.nHead * l.headDim]);
      poison(out);
      const o = { B, T, start, maxLen, layout: l, window: c.window };
      await kvAppend(gpu, qkv, cache.layers[0], o);
      await attentionCached(gpu, qkv, cache.layers[0], out, o);
      const got = await readTensor(out);
      const hist = rows.map((x) => Float64Array.from(x.subarray(0, (start + T) * l.rowStride)));
      const want = attentionCachedRef(hist, l, T, c.window);
      const err = relErr(got, want);
      assert.ok(err < 2e-6, `${c.name}, start ${start}, T ${T}: rel err ${err}`);
      qkv.destroy();
      out.destroy();
      start += T;
    }
    cache.destroy();
  });
}

Deno.test("cached attention refuses to write past the cache", async () => {
  const gpu = await getGpu();
  const l = blockedQkvLayout(1, 1, 4);
  const cache = new KvCache(gpu, 1, 3, l, 1);
  const qkv = createTensor(gpu, [2, l.rowStride]);
  await assert.rejects(() =>
    kvAppend(gpu, qkv, cache.layers[0], { B: 1, T: 2, start: 2, maxLen: 3, layout: l })
  );
  qkv.destroy();
  cache.destroy();
});

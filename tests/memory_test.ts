/**
 * The memory estimate (src/model/memory.ts) against the bytes actually allocated, counted by the Gpu's
 * live-buffer counter: each case runs on a device of its own, so nothing else (another test's model, the
 * attention backward's cached scratch) is counted. And the typed error before any allocation.
 */
import assert from "node:assert/strict";
import { getGpu, Gpu } from "../src/gpu/device.ts";
import { OutOfMemoryError } from "../src/errors.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { Gradients, lossAndGradients } from "../src/model/backward.ts";
import { type FamilyVariant, randomFamilyConfig, randomWeights } from "../src/model/random.ts";
import type { Family, ModelConfig, WeightMap } from "../src/model/config.ts";
import { checkFits, envBudget, estimateMemory, gpuWeightTensors, parseBytes } from "../src/model/memory.ts";
import { weightShapes } from "../src/model/families/mod.ts";
import { setMatmulVariant } from "../src/gpu/matmul.ts";

/** A second device on a fresh adapter, with the same limits getGpu requests. */
async function freshGpu(): Promise<Gpu> {
  const shared = await getGpu();
  const adapter = (await navigator.gpu.requestAdapter({ powerPreference: "high-performance" }))!;
  const l = shared.device.limits;
  const want: Record<string, number> = {};
  for (
    const k of [
      "maxStorageBufferBindingSize",
      "maxBufferSize",
      "maxStorageBuffersPerShaderStage",
      "maxComputeWorkgroupStorageSize",
      "maxComputeInvocationsPerWorkgroup",
      "maxComputeWorkgroupSizeX",
      "maxComputeWorkgroupSizeY",
      "maxComputeWorkgroupsPerDimension",
    ] as const
  ) want[k] = l[k];
  const gpu = new Gpu(adapter, await adapter.requestDevice({ requiredLimits: want }));
  // Fixed variants: a first-use autotune inside a measured forward would count its own buffers (it runs when
  // no other test process has written this kernel set's tune cache yet).
  for (const key of ["nn", "nt", "tn", "tt"]) setMatmulVariant(gpu, key, "blocked4x4");
  return gpu;
}

const CASES: Array<[Family, FamilyVariant, number]> = [
  ["gpt2", "gpt2", 3],
  ["llama", "qwen3", 5],
  ["neox", "parallel", 7],
  ["gptj", "gptj", 11],
];

/** B sequences of T distinct ids (distinct over the batch when the vocabulary allows). */
function batchOf(cfg: ModelConfig, B: number, T: number): number[][] {
  return Array.from(
    { length: B },
    (_, b) => Array.from({ length: T }, (_, t) => (b * T + t) % cfg.vocabSize),
  );
}

Deno.test("memory estimate: GPU weight tensors are the model's, by name and size", async () => {
  const gpu = await freshGpu();
  for (const [family, variant, seed] of CASES) {
    const cfg = randomFamilyConfig(family, seed, variant);
    const m = TransformerModel.create(gpu, cfg, randomWeights(cfg, seed));
    const est = gpuWeightTensors(cfg, false);
    assert.deepEqual(est.tensors.map((t) => t.name).sort(), m.weightNames().sort(), family);
    for (const t of est.tensors) assert.deepEqual(t.shape, m.weight(t.name).shape, t.name);
    m.destroy();
  }
  gpu.device.destroy();
});

for (const [family, variant, seed] of CASES) {
  Deno.test(`memory estimate equals the counted allocations: ${family}/${variant} inference`, async () => {
    const gpu = await freshGpu();
    const cfg = randomFamilyConfig(family, seed, variant);
    const weights = randomWeights(cfg, seed);
    // randomWeights ties the head where the family allows it (the estimate's default too).
    const untiedHead = false;
    const base = gpu.allocatedBytes;
    const loadEst = estimateMemory(cfg, { untiedHead });
    // A fresh model per batch: a smaller batch after a larger one would find the larger workspace held.
    const cap = [`attn_pattern.0`, `mlp_post.0`];
    for (
      const [B, T, allLogits, capture] of [[2, 5, false, []], [3, 7, true, []], [1, 4, false, []], [
        2,
        6,
        false,
        cap,
      ]] as const
    ) {
      const m = TransformerModel.create(gpu, cfg, weights);
      assert.equal(gpu.allocatedBytes - base, loadEst.parts.weights, "weights");
      const est = estimateMemory(cfg, { batch: B, seqLen: T, untiedHead, allLogits, capture: [...capture] });
      for (let rep = 0; rep < 2; rep++) {
        gpu.resetPeak();
        await m.forward(batchOf(cfg, B, T), { allLogits, hooks: { capture: [...capture] } });
        assert.equal(gpu.peakAllocatedBytes - base, est.peak, `peak of ${B}×${T} (run ${rep})`);
        assert.equal(gpu.allocatedBytes - base, est.resident, `resident after ${B}×${T} (run ${rep})`);
      }
      assert.ok(est.parts.workspace > 0 && est.parts.scratch > 0);
      assert.equal(est.parts.logits > 0, allLogits);
      assert.equal(est.parts.attentionProbs > 0, capture.length > 0);
      m.destroy();
      assert.equal(gpu.allocatedBytes, base, "destroy frees every counted byte");
    }
    gpu.device.destroy();
  });

  Deno.test(`memory estimate equals the counted allocations: ${family}/${variant} backward`, async () => {
    for (const [B, T, sparse, grads] of [[2, 5, false, "all"], [3, 6, true, "some"]] as const) {
      const gpu = await freshGpu();
      const cfg = randomFamilyConfig(family, seed, variant);
      const m = TransformerModel.create(gpu, cfg, randomWeights(cfg, seed));
      const names = grads === "all" ? "all" : [m.spec.layer(m.config, 0).down.weight, m.spec.embed];
      const g = new Gradients(m, names === "all" ? undefined : names);
      const batch = batchOf(cfg, B, T);
      // sparse: one counted target per sequence, so the head runs on B rows only.
      const targets = batch.map((s) =>
        s.map((id, t) => (sparse && t < T - 1 ? -1 : (id + 1) % cfg.vocabSize))
      );
      const est = estimateMemory(cfg, {
        batch: B,
        seqLen: T,
        backward: true,
        gradients: names,
        lossRows: sparse ? B : B * T,
      });
      assert.equal(gpu.allocatedBytes, est.parts.weights + est.parts.gradients, "weights + gradient buffers");
      gpu.resetPeak();
      await lossAndGradients(m, batch, { targets }, { grads: g });
      assert.equal(gpu.peakAllocatedBytes, est.peak, `backward peak ${B}×${T} (sparse ${sparse})`);
      assert.equal(gpu.allocatedBytes, est.resident, "resident after the backward");
      assert.ok(
        est.parts.savedActivations > 0 && est.parts.attentionProbs > 0 && est.parts.attentionScratch > 0,
      );
      g.destroy();
      m.destroy();
      gpu.device.destroy();
    }
  });
}

/** The error `f` throws (an AssertionError when it returns). */
function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  assert.fail("expected an error");
}

/** Host tensors of the right shapes but no data: enough to reach the checks, never uploaded. */
function hollowWeights(cfg: ModelConfig): WeightMap {
  const w: WeightMap = new Map();
  for (const [name, shape] of weightShapes(cfg, false)) w.set(name, { shape, data: new Float32Array(0) });
  return w;
}

Deno.test("a model larger than the (lowered) device budget: OutOfMemoryError before any allocation", async () => {
  const gpu = await getGpu();
  const cfg = randomFamilyConfig("llama", 5, "llama");
  const est = estimateMemory(cfg);
  const before = gpu.allocatedBytes;
  const limit = gpu.allocatedBytes + est.parts.weights - 1;
  gpu.setMemoryBudget(limit);
  try {
    const e = thrown(() => TransformerModel.create(gpu, cfg, randomWeights(cfg, 5)));
    assert.ok(e instanceof OutOfMemoryError, String(e));
    assert.equal(e.neededBytes, est.parts.weights);
    assert.equal(e.allowedBytes, est.parts.weights - 1);
    assert.match(e.message, new RegExp(`needs ${est.parts.weights} bytes`));
    assert.match(e.message, new RegExp(`allows ${est.parts.weights - 1} bytes`));
    assert.match(e.message, /LlamaForCausalLM/);
    assert.match(e.message, /setMemoryBudget/);
    assert.equal(gpu.allocatedBytes, before, "nothing allocated");
    // Enough for the weights but not for a forward of 64×24 tokens: refused before the workspace.
    gpu.setMemoryBudget(gpu.allocatedBytes + est.parts.weights + 4096);
    const m = TransformerModel.create(gpu, cfg, randomWeights(cfg, 5));
    const held = gpu.allocatedBytes;
    const big = batchOf(cfg, 64, 24);
    await assert.rejects(() => m.forward(big), (err: Error) => {
      assert.ok(err instanceof OutOfMemoryError, String(err));
      assert.match(err.message, /inference on 64×24 tokens/);
      return true;
    });
    await assert.rejects(() => m.forwardForBackward(big), OutOfMemoryError);
    assert.equal(gpu.allocatedBytes, held, "no workspace allocated");
    m.destroy();
  } finally {
    gpu.setMemoryBudget(undefined);
  }
  // The variable: its size is the budget; a malformed one is a typed error naming it. (The process
  // environment is not changed: it is shared by the workers of a parallel test run.)
  assert.equal(envBudget("4096", 1000, 1 << 20)!.freeBytes, 3096);
  assert.equal(envBudget("4096", 1000, 1 << 20)!.source, "ENGRAM_GPU_MEMORY");
  assert.equal(envBudget(undefined, 0, 1 << 20), undefined);
  assert.throws(() => envBudget("lots", 0, 1 << 20), /ENGRAM_GPU_MEMORY/);
});

Deno.test("a tensor over maxBufferSize: OutOfMemoryError naming it, before any allocation", async () => {
  const gpu = await getGpu();
  // Vocabulary × width past the adapter's largest buffer (no host data is ever made for it).
  const max = gpu.device.limits.maxBufferSize;
  const C = 1024;
  const cfg: ModelConfig = {
    nLayer: 1,
    nHead: 8,
    nEmbd: C,
    vocabSize: Math.ceil(max / (4 * C)) + 1,
    nPositions: 16,
    nInner: 4 * C,
    layerNormEpsilon: 1e-5,
  };
  const before = gpu.allocatedBytes;
  const e = thrown(() => TransformerModel.create(gpu, cfg, hollowWeights(cfg)));
  assert.ok(e instanceof OutOfMemoryError, String(e));
  assert.equal(e.field, "wte.weight");
  assert.equal(e.allowedBytes, max);
  assert.ok(e.neededBytes > max);
  assert.match(e.message, new RegExp(`needs ${e.neededBytes} bytes`));
  assert.match(e.message, /maxBufferSize/);
  assert.equal(gpu.allocatedBytes, before, "nothing allocated");
  // The same check with a lowered limit, on a small model, directly.
  const small = randomFamilyConfig("neox", 7, "parallel");
  const est = estimateMemory(small, { batch: 2, seqLen: 9 });
  assert.throws(
    () =>
      checkFits(gpu, est, "test", {
        budget: { totalBytes: 1e12, freeBytes: 1e12, maxBufferSize: est.largest.bytes - 1, source: "test" },
      }),
    (err: Error) => err instanceof OutOfMemoryError && err.message.includes(`'${est.largest.name}'`),
  );
  checkFits(gpu, est, "test", {
    budget: { totalBytes: est.peak, freeBytes: est.peak, maxBufferSize: est.largest.bytes, source: "test" },
  });
});

Deno.test("parseBytes reads ENGRAM_GPU_MEMORY sizes", () => {
  assert.equal(parseBytes("123"), 123);
  assert.equal(parseBytes("24GB"), 24e9);
  assert.equal(parseBytes("80GiB"), 80 * 2 ** 30);
  assert.equal(parseBytes("1.5 M"), 1.5e6);
  assert.ok(Number.isNaN(parseBytes("lots")));
  assert.ok(Number.isNaN(parseBytes("-5GB")));
});

/**
 * 16-bit weights on the GPU (issue 14 §2): tiny BF16 / F16 checkpoints load with their matmul weights and
 * embeddings kept in 16 bits, predict within tolerance of the float64 twin run on the decoded weights,
 * hold about half the GPU weight bytes of an f32 load (exactly what the memory estimate says), re-encode
 * edits to the tensor's dtype (fused q/k/v with odd offsets included), and a ROME edit on the BF16 Llama
 * saves BF16 and reverts bit-exact.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { type GpuTensor, readTensorBits16 } from "../src/gpu/tensor.ts";
import { applyComputed } from "../src/edit/apply.ts";
import { getEditor } from "../src/edit/editors.ts";
import { InputError } from "../src/errors.ts";
import { loadHFModel } from "../src/io/hf_model.ts";
import { readSafetensors, roundToDtype } from "../src/io/safetensors.ts";
import { loadModel } from "../src/model/load.ts";
import { estimateMemory } from "../src/model/memory.ts";
import { saveModel } from "../src/model/save.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { transformerForwardRef } from "../src/reference/transformer.ts";
import { decode16Ref } from "../src/reference/half.ts";
import { refRequests, refWordTokenizer, writeCorpus } from "./_edit_ref_util.ts";
import { type TinyFamily, writeTinyCheckpoint } from "./_hf_fixtures.ts";
import { freshSeed, rng } from "./_util.ts";

/** Odd widths (odd element counts of the embedding and MLP weights; GPT-J's fused q/k/v at odd offsets). */
const CASES: Array<{ family: TinyFamily; dtype: "BF16" | "F16"; overrides: Record<string, unknown> }> = [
  {
    family: "llama",
    dtype: "BF16",
    overrides: { hidden_size: 15, head_dim: 6, intermediate_size: 29, vocab_size: 47, num_hidden_layers: 3 },
  },
  {
    family: "gpt_neox",
    dtype: "F16",
    overrides: { hidden_size: 15, rotary_pct: 0.4, intermediate_size: 29, vocab_size: 47 },
  },
  { family: "gptj", dtype: "F16", overrides: { n_embd: 15, n_inner: 29, vocab_size: 47 } },
];

function logSoftmax(x: ArrayLike<number>, off: number, V: number): Float64Array {
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, x[off + v]);
  let s = 0;
  for (let v = 0; v < V; v++) s += Math.exp(x[off + v] - m);
  return Float64Array.from({ length: V }, (_, v) => x[off + v] - m - Math.log(s));
}

/** Max |GPU − float64| of the last-position log-probabilities over `batch`. */
async function forwardError(model: TransformerModel, batch: number[][]): Promise<number> {
  const { logprobs } = await model.forward(batch);
  let worst = 0;
  batch.forEach((ids, b) => {
    const { logits } = transformerForwardRef(model.config, model.weights, ids);
    const V = model.config.vocabSize;
    const want = logSoftmax(logits, (ids.length - 1) * V, V);
    for (let v = 0; v < V; v++) worst = Math.max(worst, Math.abs(logprobs[b][v] - want[v]));
  });
  return worst;
}

/** The 16-bit patterns of GPU tensor `gpuName` as the host copy says they should be. */
function hostBits(model: TransformerModel, names: string[], dtype: "BF16" | "F16"): Uint16Array {
  const parts = names.map((n) => model.weights.get(n)!.data);
  const all = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) (all.set(p, o), (o += p.length));
  const u = new Uint32Array(roundToDtype(all, dtype).buffer);
  // Exact: the values are already of the dtype; bf16 = upper half, f16 via the file encoder.
  if (dtype === "BF16") return Uint16Array.from(u, (x) => x >>> 16);
  return Uint16Array.from(all, (x) => f16Bits(x));
}

function f16Bits(x: number): number {
  // Values here are f16-exact and finite: search the pattern whose float64 value equals x.
  const lo = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  let l = 0, h = 0x7bff;
  while (l < h) {
    const m = (l + h) >> 1;
    if (decode16Ref([m], "f16")[0] < a) l = m + 1;
    else h = m;
  }
  return lo | l;
}

for (const c of CASES) {
  Deno.test(`${c.family} ${c.dtype}: 16-bit storage predicts as the float64 twin, half the weight bytes`, async () => {
    const seed = freshSeed();
    const dir = await Deno.makeTempDir({ prefix: "engram_model16_" });
    try {
      await writeTinyCheckpoint(dir, { family: c.family, dtype: c.dtype, seed, overrides: c.overrides });
      const lm = await loadModel(dir);
      const lm32 = await loadModel(dir, { weightDtype: "f32" });
      const m = lm.model, spec = m.spec;
      const want16 = c.dtype === "BF16" ? "bf16" : "f16";
      const l0 = spec.layer(m.config, 0);
      for (
        const n of [
          spec.embed,
          l0.o.weight,
          l0.up.weight,
          l0.down.weight,
          ...l0.qkv.map((p) => p.weight),
        ]
      ) {
        assert.equal(m.weightStorage(n), want16, n);
        assert.equal(lm32.model.weightStorage(n), "f32", n);
      }
      assert.equal(m.weightStorage(l0.ln1.weight), "f32", "norms stay f32");
      // GPU weight bytes: measured, and as estimated before allocation.
      const b16 = m.weightBytes(), b32 = lm32.model.weightBytes();
      const storage = new Map(
        m.weightNames().filter((n) => m.weightStorage(n) !== "f32").map((n) => [n, want16] as const),
      );
      const est = estimateMemory(m.config, { untiedHead: m.weights.has(spec.head), weightDtypes: storage });
      assert.equal(est.parts.weights, b16, "estimate = allocated 16-bit weight bytes");
      assert.equal(estimateMemory(m.config, { untiedHead: m.weights.has(spec.head) }).parts.weights, b32);
      const ratio = b16 / b32;
      assert.ok(ratio > 0.45 && ratio < 0.6, `16-bit / f32 weight bytes ${ratio}`);
      // Predictions: the float64 twin runs on the decoded (host) weights.
      const r = rng(seed);
      const V = m.config.vocabSize;
      const batch = [0, 1].map(() => Array.from({ length: 7 }, () => Math.floor(r() * V)));
      // Loading and running in 16-bit storage decode no weight on the host (no float32 copy); the f32
      // storage decodes every one.
      await m.forward(batch);
      let kept = 0;
      for (const [n, t] of m.weights) {
        if (m.weightStorage(n) !== "f32") {
          assert.equal(t.undecoded16?.dtype, c.dtype, `${n} decoded on the host`);
          kept++;
        }
        assert.equal(lm32.model.weights.get(n)!.undecoded16, undefined, `${n} (f32 storage) still undecoded`);
      }
      assert.ok(kept >= 5, `${kept} weights kept undecoded`);
      const e16 = await forwardError(m, batch), e32 = await forwardError(lm32.model, batch);
      console.log(
        `${c.family} ${c.dtype} (seed ${seed}): weight bytes ${b16} vs f32 ${b32} (${ratio.toFixed(3)}); ` +
          `max |log-prob error| vs float64: 16-bit ${e16.toExponential(2)}, f32 ${e32.toExponential(2)}`,
      );
      assert.ok(e16 < 1e-4, `16-bit storage log-prob error ${e16}`);
      // An edit is rounded to the dtype on host and GPU; the originals restore bit for bit.
      const names = l0.qkv.map((p) => p.weight);
      const gpuName = m.weightRef(names[0]).gpuName;
      const before = names.map((n) => Float32Array.from(m.weights.get(n)!.data));
      const bitsBefore = await readTensorBits16(gpuTensor(m, gpuName));
      const last = names[names.length - 1];
      const edit = Float32Array.from(m.weights.get(last)!.data, (x, i) => x + 1e-3 * Math.sin(i + 0.5));
      m.setWeight(last, edit);
      assert.deepEqual(
        m.weights.get(last)!.data,
        roundToDtype(edit, c.dtype),
        "host copy rounded to the dtype",
      );
      assert.deepEqual(
        await readTensorBits16(gpuTensor(m, gpuName)),
        hostBits(m, names, c.dtype),
        "GPU = host",
      );
      names.forEach((n, i) => m.setWeight(n, before[i]));
      assert.deepEqual(
        await readTensorBits16(gpuTensor(m, gpuName)),
        bitsBefore,
        "revert bit-exact on the GPU",
      );
      lm.model.destroy();
      lm32.model.destroy();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/** The GPU tensor `gpuName` without converting it (weight() would make an f32 copy). */
function gpuTensor(m: TransformerModel, gpuName: string): GpuTensor {
  return (m as unknown as { w: Map<string, GpuTensor> }).w.get(gpuName)!;
}

Deno.test("a weight dtype no kernel computes is a typed error before any allocation", async () => {
  const dir = await Deno.makeTempDir({ prefix: "engram_model16_" });
  try {
    await writeTinyCheckpoint(dir, { family: "llama", dtype: "BF16" });
    const hf = await loadHFModel(dir);
    const gpu = await getGpu();
    const held = gpu.allocatedBytes;
    const bad = new Map<string, string>(hf.dtypes);
    bad.set("layers.0.mlp.down_proj.weight", "Q8_0");
    assert.throws(
      () => TransformerModel.create(gpu, hf.config, hf.weights, { weightDtypes: bad }),
      (e) => e instanceof InputError && e.field === "layers.0.mlp.down_proj.weight",
    );
    assert.equal(gpu.allocatedBytes, held, "nothing allocated");
    await assert.rejects(() => loadModel(dir, { weightDtype: "f8" as "f32" }), InputError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ROME on a BF16 Llama kept in 16 bits: same edit as f32 storage, saved BF16, revert bit-exact", async () => {
  const seed = freshSeed();
  const dir = await Deno.makeTempDir({ prefix: "engram_model16_rome_" });
  try {
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    await writeTinyCheckpoint(src, { family: "llama", dtype: "BF16", seed, overrides: CASES[0].overrides });
    const lm = await loadModel(src), lm32 = await loadModel(src, { weightDtype: "f32" });
    const m = lm.model;
    const V = m.config.vocabSize;
    const tok = refWordTokenizer(V);
    const { file } = await writeCorpus(dir, seed + 1, 60, tok, { nPositions: m.config.nPositions });
    const requests = refRequests(seed + 2, 1, V);
    const layer = 1;
    const opts = {
      layers: [layer],
      statsCorpus: file,
      statsDir: `${dir}/stats`,
      hparams: {
        v_num_grad_steps: 8,
        v_lr: 0.5,
        mom2_adjustment: true,
        mom2_n_samples: 200,
        context_template_length_params: [[3, 2]],
        fact_token: "subject_last",
        prefix_eos: false,
      },
    };
    const name = m.spec.layer(m.config, layer).down.weight;
    assert.equal(m.weightStorage(name), "bf16");
    const source = await readSafetensors(`${src}/model.safetensors`);
    const bitsBefore = await readTensorBits16(gpuTensor(m, name));
    const d16 = await getEditor("rome")(m, tok, requests, opts);
    const d32 = await getEditor("rome")(lm32.model, tok, requests, opts);
    // The editor reads the same (decoded) values either way: the deltas agree to float32 rounding.
    const a = d16.deltas.get(name)!.data, b = d32.deltas.get(name)!.data;
    let num = 0, den = 0;
    for (let i = 0; i < a.length; i++) (num += (a[i] - b[i]) ** 2, den += b[i] ** 2);
    const rel = Math.sqrt(num / den);
    assert.ok(rel < 1e-4, `ΔW 16-bit vs f32 storage: relative error ${rel}`);
    assert.equal(m.weightStorage(name), "bf16", "the editor left the weight 16-bit");
    const edit = applyComputed(m, d16);
    const w = m.weights.get(name)!.data;
    assert.deepEqual(w, roundToDtype(w, "BF16"), "applied edit is BF16-exact on the host");
    const gpuBits = await readTensorBits16(gpuTensor(m, name));
    assert.deepEqual(gpuBits, hostBits(m, [name], "BF16"), "GPU = host after the edit");
    const changed = gpuBits.filter((x, i) => x !== bitsBefore[i]).length;
    assert.ok(changed > 0, "the edit moved some BF16 values");
    const r = rng(seed);
    const e = await forwardError(m, [Array.from({ length: 6 }, () => Math.floor(r() * V))]);
    assert.ok(e < 1e-4, `edited model's log-prob error vs float64 ${e}`);
    // Saved in BF16: the file holds exactly the edited host values.
    await saveModel(`${dir}/edited`, lm);
    const saved = await readSafetensors(`${dir}/edited/model.safetensors`);
    const savedName = [...saved.tensors.keys()].find((n) => n.endsWith(name))!;
    assert.equal(saved.tensors.get(savedName)!.dtype, "BF16");
    assert.deepEqual(saved.tensors.get(savedName)!.data, w);
    for (const n of saved.tensors.keys()) assert.equal(saved.tensors.get(n)!.dtype, "BF16", n);
    // Revert: the source's bytes back, on the GPU and in a saved folder.
    edit.restore();
    const want = (await loadModel(src)).model;
    assert.deepEqual(
      await readTensorBits16(gpuTensor(m, name)),
      await readTensorBits16(gpuTensor(want, name)),
    );
    want.destroy();
    await saveModel(`${dir}/reverted`, lm);
    const rev = await readSafetensors(`${dir}/reverted/model.safetensors`);
    assert.deepEqual([...rev.tensors.keys()].sort(), [...source.tensors.keys()].sort());
    for (const [n, t] of source.tensors) {
      assert.equal(rev.tensors.get(n)!.dtype, "BF16", n);
      assert.deepEqual(rev.tensors.get(n)!.bytes, t.bytes, `reverted ${n}: the source's bytes`);
    }
    console.log(
      `ROME BF16 (seed ${seed}): ΔW 16-bit vs f32 storage rel ${
        rel.toExponential(2)
      }, ${changed}/${w.length} ` +
        `BF16 values changed, after-edit log-prob error ${e.toExponential(2)}`,
    );
    m.destroy();
    lm32.model.destroy();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("F16 storage: a value beyond the F16 range is refused, nothing set; f32 storage takes it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "engram_model16_" });
  try {
    await writeTinyCheckpoint(dir, { family: "gpt_neox", dtype: "F16", overrides: CASES[1].overrides });
    const lm = await loadModel(dir), m = lm.model;
    const name = m.spec.layer(m.config, 1).down.weight;
    const before = Float32Array.from(m.weights.get(name)!.data);
    const bits = await readTensorBits16(gpuTensor(m, name));
    const big = Float32Array.from(before);
    big[3] = 70000;
    assert.throws(() => m.setWeight(name, big), (e) => e instanceof InputError && e.field === name);
    assert.deepEqual(m.weights.get(name)!.data, before, "host unchanged");
    assert.deepEqual(await readTensorBits16(gpuTensor(m, name)), bits, "GPU unchanged");
    big[3] = 65519; // rounds to 65504, the largest F16
    m.setWeight(name, big);
    assert.equal(m.weights.get(name)!.data[3], 65504);
    m.destroy();
    const lm32 = await loadModel(dir, { weightDtype: "f32" });
    big[3] = 70000;
    lm32.model.setWeight(name, big);
    assert.equal(lm32.model.weights.get(name)!.data[3], 70000);
    lm32.model.destroy();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

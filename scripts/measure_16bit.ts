/**
 * Measures 16-bit weight storage on the GPU (issue 14 §2) on a Llama-shaped random checkpoint of about
 * 50M parameters written in BF16 at run time (never committed): load with 16-bit storage, GPU weight bytes
 * vs f32, predict vs the float64 twin on the decoded weights, a ROME edit, save BF16, revert bit-exact;
 * then the packed-B matmul's speed against the f32 one on the model's shapes.
 *
 *   deno run -A scripts/measure_16bit.ts [--quick] [--matmul-only] [--no-rome] [--keep DIR]
 *
 * `--quick`: a 4-layer model of ~30M parameters; `--matmul-only`: only the matmul speeds; `--no-rome`: a
 * random rank-one delta instead of ROME (same apply / save / revert path, without ROME's host work). Prints one JSON
 * object of the numbers, progress on stderr.
 */
import { getGpu } from "../src/gpu/device.ts";
import { matmul } from "../src/gpu/matmul.ts";
import { createTensor, type GpuTensor, readTensorBits16 } from "../src/gpu/tensor.ts";
import { applyComputed, type EditDeltas } from "../src/edit/apply.ts";
import { getEditor } from "../src/edit/editors.ts";
import { saveHFModel } from "../src/io/hf_model.ts";
import { encodeFloats, readSafetensors, roundToDtype, type WeightDtype } from "../src/io/safetensors.ts";
import type { Tokenizer } from "../src/io/tokenizer.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { loadModel } from "../src/model/load.ts";
import { estimateMemory } from "../src/model/memory.ts";
import { randomWeights } from "../src/model/random.ts";
import { saveModel } from "../src/model/save.ts";
import { transformerForwardRef } from "../src/reference/transformer.ts";

const quick = Deno.args.includes("--quick");
const matmulOnly = Deno.args.includes("--matmul-only");
const noRome = Deno.args.includes("--no-rome");
let name16 = "";
const keepAt = Deno.args.indexOf("--keep");
const V = 24000, C = 512, I = 1408, L = quick ? 4 : 8;
const cfg: ModelConfig = {
  family: "llama",
  architecture: "LlamaForCausalLM",
  nLayer: L,
  nHead: 8,
  nKvHead: 8,
  headDim: 64,
  nEmbd: C,
  nInner: I,
  vocabSize: V,
  nPositions: 64,
  layerNormEpsilon: 1e-5,
  norm: "rmsnorm",
  activation: "silu",
  rope: { dim: 64, style: "half", theta: 10000, maxPositionEmbeddings: 64 },
  qkvBias: false,
  attnOutBias: false,
  mlpBias: false,
};

/** Words "w1".."w{V-2}" are their ids; anything else hashes to an id (every text encodes). */
function wordTokenizer(V: number): Tokenizer {
  const word = (w: string) => {
    const m = /^w(\d+)$/.exec(w);
    if (m && Number(m[1]) >= 1 && Number(m[1]) <= V - 2) return Number(m[1]);
    let h = 2166136261;
    for (let i = 0; i < w.length; i++) h = Math.imul(h ^ w.charCodeAt(i), 16777619) >>> 0;
    return 1 + (h % (V - 2));
  };
  const str = (i: number) => (i === V - 1 ? "<|endoftext|>" : ` w${i}`);
  return {
    encode: (t) => t.split(/\s+/).filter(Boolean).map(word),
    decode: (ids) => ids.map(str).join(""),
    tokenString: str,
    vocabSize: V,
    eosId: V - 1,
    source: "measure_16bit word tokenizer",
  };
}

let seed = 12345;
const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
const words = (n: number) => Array.from({ length: n }, () => `w${1 + Math.floor(rnd() * 2000)}`).join(" ");
const ms = (t0: number) => Math.round(performance.now() - t0);
const T0 = performance.now();
// Progress, with the numbers so far (a run cut short still leaves them).
const step = (what: string) =>
  console.error(`[${((performance.now() - T0) / 1000).toFixed(0)} s] ${what} ${JSON.stringify(out)}`);
const out: Record<string, unknown> = { layers: L, width: C, inner: I, vocab: V };
const dir = keepAt >= 0 ? Deno.args[keepAt + 1] : await Deno.makeTempDir({ prefix: "engram_16bit_" });

try {
  if (!matmulOnly) await modelChecks();
  await matmulSpeed();
  console.log(JSON.stringify(out, null, 1));
} finally {
  if (keepAt < 0) await Deno.remove(dir, { recursive: true });
}

/** A rank-one delta u vᵀ on a [rows, cols] weight, as an editor's result (for --no-rome). */
function rankOneDelta(shape: readonly number[]): EditDeltas {
  const [rows, cols] = shape;
  const u = Float32Array.from({ length: rows }, () => rnd() - 0.5);
  const v = Float32Array.from({ length: cols }, () => (rnd() - 0.5) * 0.05);
  const d = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) d[i * cols + j] = u[i] * v[j];
  return {
    method: "rank-one",
    deltas: new Map([[name16, { shape: [rows, cols], data: d }]]),
    tensors: new Map(),
    hparams: {},
    info: {},
    warnings: [],
  };
}

/** Write, load, predict, ROME, save, revert (the numbers go into `out`). */
async function modelChecks(): Promise<void> {
  let t0 = performance.now();
  const weights = randomWeights(cfg, 7, { std: 0.02, untiedHead: true });
  const params = [...weights.values()].reduce((a, t) => a + t.data.length, 0);
  const dtypes = new Map<string, WeightDtype>([...weights.keys()].map((k) => [k, "BF16"]));
  await saveHFModel(`${dir}/src`, { config: cfg, weights, dtypes });
  out.parameters = params;
  out.write_ms = ms(t0);

  step(`wrote ${params} parameters`);
  t0 = performance.now();
  const lm = await loadModel(`${dir}/src`);
  out.load_ms = ms(t0);
  const m = lm.model;
  const w16 = m.weightBytes();
  const est32 = estimateMemory(m.config, { untiedHead: true }).parts.weights;
  out.gpu_weight_bytes_16bit = w16;
  out.gpu_weight_bytes_f32_estimate = est32;
  out.ratio = w16 / est32;
  t0 = performance.now();
  const lm32 = await loadModel(`${dir}/src`, { weightDtype: "f32" });
  out.load_f32_ms = ms(t0);
  out.gpu_weight_bytes_f32 = lm32.model.weightBytes();

  step("loaded twice");
  // Predict vs the float64 twin on the decoded weights (the host copy).
  const tok = wordTokenizer(V);
  const ids = tok.encode(words(12));
  const lp = async (mm: typeof m) => {
    await mm.forward([ids]);
    const t = performance.now();
    const r = await mm.forward([ids]);
    return { lp: r.logprobs[0], ms: ms(t) };
  };
  const g16 = await lp(m), g32 = await lp(lm32.model);
  out.forward_ms_16bit = g16.ms;
  out.forward_ms_f32 = g32.ms;
  t0 = performance.now();
  const { logits } = transformerForwardRef(m.config, m.weights, ids);
  out.reference_ms = ms(t0);
  const off = (ids.length - 1) * V;
  let mx = -Infinity;
  for (let v = 0; v < V; v++) mx = Math.max(mx, logits[off + v]);
  let s = 0;
  for (let v = 0; v < V; v++) s += Math.exp(logits[off + v] - mx);
  let e16 = 0, e32 = 0;
  for (let v = 0; v < V; v++) {
    const want = logits[off + v] - mx - Math.log(s);
    e16 = Math.max(e16, Math.abs(g16.lp[v] - want));
    e32 = Math.max(e32, Math.abs(g32.lp[v] - want));
  }
  out.logprob_max_abs_err_16bit = e16;
  out.logprob_max_abs_err_f32 = e32;
  lm32.model.destroy();

  step("predicted");
  // ROME at the middle layer, key statistics from a small random corpus.
  const corpus = `${dir}/corpus.txt`;
  await Deno.writeTextFile(
    corpus,
    Array.from({ length: 200 }, () => words(10 + Math.floor(rnd() * 10))).join("\n"),
  );
  const layer = Math.floor(L / 2);
  const name = m.spec.layer(m.config, layer).down.weight;
  name16 = name;
  const gpuW = (m as unknown as { w: Map<string, GpuTensor> }).w.get(name)!;
  const before = await readTensorBits16(gpuW);
  t0 = performance.now();
  // --no-rome: a random rank-one delta through the same apply path (ROME's host work dominates on llvmpipe).
  const computed: EditDeltas = noRome
    ? rankOneDelta(m.weights.get(name)!.shape)
    : await getEditor("rome")(m, tok, [{
      prompt: `${words(3)} {} ${words(2)}`,
      subject: words(2),
      target_new: words(1),
    }], {
      layers: [layer],
      statsCorpus: corpus,
      statsDir: `${dir}/stats`,
      // Small settings: the point is the 16-bit path, not the edit's quality (llvmpipe, shared cores).
      hparams: { mom2_n_samples: 40, v_num_grad_steps: 5, context_template_length_params: [[5, 1]] },
      onWarning: (w) => step(`warning: ${w}`),
    });
  out.edit = noRome ? "random rank-one delta (--no-rome)" : "ROME";
  out.rome_ms = ms(t0);
  out.rome_storage_after = m.weightStorage(name);
  const edit = applyComputed(m, computed);
  const host = m.weights.get(name)!.data;
  const hostBits = new Uint16Array(encodeFloats(host, "BF16").buffer);
  const gpuBits = await readTensorBits16(gpuW);
  const rounded = roundToDtype(host, "BF16");
  out.rome_host_is_bf16 = host.every((x, i) => Object.is(x, rounded[i]));
  out.rome_gpu_equals_host = gpuBits.every((x, i) => x === hostBits[i]);
  out.rome_values_changed = gpuBits.filter((x, i) => x !== before[i]).length;
  out.rome_values = gpuBits.length;
  step("edited");
  t0 = performance.now();
  await saveModel(`${dir}/edited`, lm);
  out.save_ms = ms(t0);
  const saved = await readSafetensors(`${dir}/edited/model.safetensors`);
  const sn = [...saved.tensors.keys()].find((n) => n.endsWith(name))!;
  out.saved_dtypes = [...new Set([...saved.tensors.values()].map((t) => t.dtype))];
  out.saved_edit_equals_host = saved.tensors.get(sn)!.data.every((x, i) => Object.is(x, host[i]));
  edit.restore();
  out.revert_gpu_bit_exact = (await readTensorBits16(gpuW)).every((x, i) => x === before[i]);
  await saveModel(`${dir}/reverted`, lm);
  const a = await readSafetensors(`${dir}/src/model.safetensors`);
  const b = await readSafetensors(`${dir}/reverted/model.safetensors`);
  out.revert_file_bit_exact = [...a.tensors].every(([n, t]) => {
    const u = b.tensors.get(n);
    return u !== undefined && u.dtype === t.dtype && u.bytes.every((x, i) => x === t.bytes[i]);
  });
  m.destroy();

  step("saved and reverted");
}

/** Packed-B matmul vs f32 on the model's products, into `out.matmul_speed`. */
async function matmulSpeed(): Promise<void> {
  const gpu = await getGpu();
  // Packed-B matmul vs f32 on the model's products (M = 32 rows): y = x Wᵀ and dX = dY W.
  const speed: Record<string, unknown>[] = [];
  for (const [N, K, transB] of [[I, C, true], [C, I, true], [C, I, false], [V, C, true]] as const) {
    const M = 32;
    const x = createTensor(gpu, [M, K], { data: Float32Array.from({ length: M * K }, () => rnd() - 0.5) });
    const wf = Float32Array.from({ length: N * K }, () => (rnd() - 0.5) * 0.04);
    const b32 = createTensor(gpu, [N * K], { data: roundToDtype(wf, "BF16") });
    const b16 = createTensor(gpu, [N * K], {
      dtype: "bf16",
      data: new Uint16Array(encodeFloats(wf, "BF16").buffer),
    });
    const o = createTensor(gpu, [M, N]);
    const time = async (b: GpuTensor) => {
      await matmul(gpu, x, b, o, { M, N, K, transB });
      await gpu.flush();
      const t = performance.now();
      for (let i = 0; i < 8; i++) await matmul(gpu, x, b, o, { M, N, K, transB });
      await gpu.flush();
      return (performance.now() - t) / 8;
    };
    // Alternating twice, so drift of the shared machine's load shows.
    const r = [await time(b32), await time(b16), await time(b32), await time(b16)];
    const f32ms = Math.min(r[0], r[2]), p16ms = Math.min(r[1], r[3]);
    speed.push({
      shape: `${M}x${N}x${K}${transB ? " transB" : ""}`,
      f32_ms: +f32ms.toFixed(2),
      bf16_ms: +p16ms.toFixed(2),
      f32_gflops: +((2 * M * N * K) / (f32ms * 1e6)).toFixed(2),
      bf16_gflops: +((2 * M * N * K) / (p16ms * 1e6)).toFixed(2),
    });
    for (const t of [x, b32, b16, o]) t.destroy();
  }
  out.matmul_speed = speed;
}

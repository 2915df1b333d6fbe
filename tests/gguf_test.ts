/**
 * GGUF reading: the tiny random Llama-2 from ollama (header, config, every tensor's shape, values
 * against the raw bytes decoded here), hand-built files with F32, F16 and Q8_0 tensors against values
 * computed here, the q/k rotary un-permutation against a numpy-style reshape/swapaxes written here,
 * and typed errors for unknown types, architectures and truncated files.
 */
import assert from "node:assert/strict";
import { EngramError, GgufError } from "../src/errors.ts";
import {
  GGML_TYPE,
  readGgufHeader,
  readGgufModel,
  readGgufTensor,
  unpermuteRotaryRows,
} from "../src/io/gguf.ts";
import { buildGguf, f16Bytes, f32Bytes, q8Bytes } from "./_gguf_writer.ts";
import type { GgufTensorSpec, GgufValue } from "./_gguf_writer.ts";
import { freshSeed, rng } from "./_util.ts";
import { SHARED } from "./_util.ts";

const TINY = `${SHARED}llama-tiny-random-gguf-ollama/llama-2-tiny-random.gguf`;
const VOCAB = `${SHARED}llamacpp-vocab-gguf`;

/**
 * convert_hf_to_gguf.py's LlamaModel.permute, spelled as numpy does it: view [rows, cols] as
 * (n, 2, rows/n/2, cols), swap axes 1 and 2, flatten again.
 */
function llamaCppPermute(w: Float32Array, n: number, cols: number): Float32Array {
  const rows = w.length / cols, half = rows / n / 2;
  const dims = [n, 2, half, cols];
  const src = [2 * half * cols, half * cols, cols, 1]; // strides of the (n, 2, half, cols) view
  const outDims = [dims[0], dims[2], dims[1], dims[3]];
  const outStrides = [src[0], src[2], src[1], src[3]];
  const out = new Float32Array(w.length);
  let o = 0;
  for (let a = 0; a < outDims[0]; a++) {
    for (let b = 0; b < outDims[1]; b++) {
      for (let c = 0; c < outDims[2]; c++) {
        for (let d = 0; d < outDims[3]; d++) {
          out[o++] = w[a * outStrides[0] + b * outStrides[1] + c * outStrides[2] + d * outStrides[3]];
        }
      }
    }
  }
  return out;
}

/** f16 values of a tensor read straight from the file bytes (DataView.getFloat16, not the reader's decoder). */
function rawF16(bytes: Uint8Array, offset: number, n: number): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset + offset, 2 * n);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = dv.getFloat16(2 * i, true);
  return out;
}

async function tempFile(bytes: Uint8Array): Promise<string> {
  const p = await Deno.makeTempFile({ suffix: ".gguf" });
  await Deno.writeFile(p, bytes);
  return p;
}

async function rejectsGguf(p: Promise<unknown>, field: string | undefined, re: RegExp): Promise<GgufError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof GgufError, `expected a GgufError, got ${e}`);
    if (field !== undefined) assert.equal(e.field, field);
    assert.match(e.message, re);
    return e;
  }
  assert.fail("expected a GgufError");
}

Deno.test("un-permute inverts llama.cpp's q/k permutation (MHA and GQA, odd column counts)", () => {
  const seed = freshSeed(), r = rng(seed);
  for (const [n, D, cols] of [[2, 4, 3], [3, 8, 5], [1, 2, 1], [4, 6, 7]]) {
    const w = new Float32Array(n * D * cols).map(() => r() - 0.5);
    const p = llamaCppPermute(w, n, cols);
    if (D > 2) assert.notDeepEqual(p, w, `seed ${seed}: the permutation moves rows`);
    assert.deepEqual(unpermuteRotaryRows(p, n, cols), w, `seed ${seed} n=${n} D=${D}`);
  }
  // The permuted order pairs rotate-half partners: HF rows [0 1 2 3] of one D=4 head become [0 2 1 3].
  const rows = Float32Array.from([0, 1, 2, 3]);
  assert.deepEqual(Array.from(llamaCppPermute(rows, 1, 1)), [0, 2, 1, 3]);
  assert.deepEqual(Array.from(unpermuteRotaryRows(Float32Array.from([0, 2, 1, 3]), 1, 1)), [0, 1, 2, 3]);
});

Deno.test("tiny random Llama-2 GGUF: header, HF config, every tensor's shape and values", async () => {
  const g = await readGgufHeader(TINY);
  assert.equal(g.version, 3);
  assert.equal(g.size, 1_750_560);
  assert.equal(g.tensors.size, 12);
  assert.equal(g.metadata["general.architecture"], "llama");
  assert.equal(g.metadata["general.file_type"], 1);
  const m = await readGgufModel(TINY);
  assert.deepEqual(m.hfConfig, {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: 8,
    intermediate_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 2,
    head_dim: 4,
    hidden_act: "silu",
    attention_bias: false,
    mlp_bias: false,
    rms_norm_eps: Math.fround(1e-5),
    rope_theta: 10000,
    max_position_embeddings: 4096,
    vocab_size: 32000,
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 2,
  });
  const shapes = Object.fromEntries([...m.weights].map(([k, v]) => [k, v.shape]));
  assert.deepEqual(shapes, {
    "embed_tokens.weight": [32000, 8],
    "layers.0.self_attn.q_proj.weight": [8, 8],
    "layers.0.self_attn.k_proj.weight": [8, 8],
    "layers.0.self_attn.v_proj.weight": [8, 8],
    "layers.0.self_attn.o_proj.weight": [8, 8],
    "layers.0.mlp.gate_proj.weight": [32, 8],
    "layers.0.mlp.up_proj.weight": [32, 8],
    "layers.0.mlp.down_proj.weight": [8, 32],
    "layers.0.input_layernorm.weight": [8],
    "layers.0.post_attention_layernorm.weight": [8],
    "norm.weight": [8],
    "lm_head.weight": [32000, 8],
  });
  // Values against the raw bytes: F16 matrices decoded here; q/k must be the raw rows un-permuted.
  const bytes = await Deno.readFile(TINY);
  const raw = (gg: string) => {
    const t = g.tensors.get(gg)!;
    assert.equal(t.type, GGML_TYPE.F16, gg);
    return rawF16(bytes, t.offset, t.ne[0] * t.ne[1]);
  };
  const pairs: [string, string][] = [
    ["token_embd.weight", "embed_tokens.weight"],
    ["blk.0.attn_v.weight", "layers.0.self_attn.v_proj.weight"],
    ["blk.0.attn_output.weight", "layers.0.self_attn.o_proj.weight"],
    ["blk.0.ffn_gate.weight", "layers.0.mlp.gate_proj.weight"],
    ["blk.0.ffn_down.weight", "layers.0.mlp.down_proj.weight"],
    ["output.weight", "lm_head.weight"],
  ];
  for (const [gg, hf] of pairs) assert.deepEqual(m.weights.get(hf)!.data, raw(gg), hf);
  for (const [gg, hf] of [["blk.0.attn_q.weight", "q_proj"], ["blk.0.attn_k.weight", "k_proj"]]) {
    const w = m.weights.get(`layers.0.self_attn.${hf}.weight`)!.data;
    assert.deepEqual(llamaCppPermute(w, 2, 8), raw(gg), hf);
    assert.notDeepEqual(w, raw(gg), `${hf}: un-permuting changes the row order`);
  }
  // A few values at fixed places: row 1 of the embedding is token 1 (<s>); element [r][c] is ne0-fastest.
  const emb = m.weights.get("embed_tokens.weight")!;
  const embRaw = raw("token_embd.weight");
  for (const [row, col] of [[0, 0], [1, 7], [31999, 3], [12345, 5]]) {
    assert.equal(emb.data[row * 8 + col], embRaw[row * 8 + col]);
    assert.ok(Number.isFinite(emb.data[row * 8 + col]));
  }
  assert.ok(emb.data.some((x) => x !== 0), "real values, not zeros");
  assert.deepEqual(Array.from(m.weights.get("norm.weight")!.data), Array(8).fill(1));
  const tok = m.tokenizer!;
  assert.equal(tok.model, "llama");
  assert.equal(tok.tokens.length, 32000);
  assert.deepEqual(tok.tokens.slice(0, 4), ["<unk>", "<s>", "</s>", "<0x00>"]);
  assert.deepEqual(tok.tokenTypes!.slice(0, 4), [2, 3, 3, 6]);
  assert.equal(tok.bosId, 1);
  assert.equal(tok.eosId, 2);
  assert.equal(tok.unkId, 0);
});

/** A tiny llama GGUF: C=32, H=4, KV=2 (D=8), I=64, V=37, 2 layers, random HF weights in several types. */
function syntheticLlama(seed: number, opts: { tied?: boolean; types?: Record<string, number> } = {}) {
  const r = rng(seed);
  const C = 32, H = 4, KV = 2, D = 8, I = 64, V = 37, L = 2;
  const hf = new Map<string, { shape: number[]; data: Float32Array }>();
  const files: GgufTensorSpec[] = [];
  // An f16-exact random value: integer mantissa 1024..2047 times a power of two, random sign.
  const f16Exact = (lo: number, hi: number) =>
    (r() < 0.5 ? -1 : 1) * (1024 + Math.floor(r() * 1024)) * 2 ** (lo + Math.floor(r() * (hi - lo)) - 10);
  const add = (gg: string, name: string, shape: number[], type: number, permuteHeads?: number) => {
    const rows = shape.length === 2 ? shape[0] : 1, cols = shape[shape.length - 1];
    const n = rows * cols;
    // GGUF row g holds HF row order[g]: llama.cpp's permutation applied to the row indices.
    const ids = Float32Array.from({ length: rows }, (_, i) => i);
    const order = Array.from(permuteHeads ? llamaCppPermute(ids, permuteHeads, 1) : ids);
    let data: Float32Array, bytes: Uint8Array;
    if (type === GGML_TYPE.Q8_0) {
      // One f16 scale per block of 32 along a row; HF value = d * q exactly.
      const bpr = cols / 32;
      const d = Array.from({ length: n / 32 }, () => f16Exact(-8, -4));
      const q = new Int8Array(n).map(() => Math.floor(r() * 255) - 127);
      data = Float32Array.from(q, (x, i) => d[Math.floor(i / 32)] * x);
      const gd: number[] = [], gq = new Int8Array(n);
      order.forEach((h, g) => {
        for (let k = 0; k < bpr; k++) gd.push(d[h * bpr + k]);
        gq.set(q.subarray(h * cols, (h + 1) * cols), g * cols);
      });
      bytes = q8Bytes(gd, gq);
    } else {
      data = type === GGML_TYPE.F16
        ? Float32Array.from({ length: n }, () => f16Exact(-10, 2))
        : Float32Array.from({ length: n }, () => r() - 0.5);
      const gdata = new Float32Array(n);
      order.forEach((h, g) => gdata.set(data.subarray(h * cols, (h + 1) * cols), g * cols));
      bytes = type === GGML_TYPE.F16
        ? f16Bytes(gdata)
        : type === GGML_TYPE.F32
        ? f32Bytes(gdata)
        : new Uint8Array(n);
    }
    hf.set(name, { shape, data });
    files.push({ name: gg, ne: shape.slice().reverse(), type, data: bytes });
  };
  const t = (k: string, def: number) => opts.types?.[k] ?? def;
  add("token_embd.weight", "embed_tokens.weight", [V, C], t("embd", GGML_TYPE.F16));
  for (let l = 0; l < L; l++) {
    const p = `layers.${l}.`, b = `blk.${l}.`;
    add(`${b}attn_norm.weight`, `${p}input_layernorm.weight`, [C], GGML_TYPE.F32);
    add(`${b}attn_q.weight`, `${p}self_attn.q_proj.weight`, [H * D, C], t("q", GGML_TYPE.Q8_0), H);
    add(`${b}attn_k.weight`, `${p}self_attn.k_proj.weight`, [KV * D, C], t("k", GGML_TYPE.F16), KV);
    add(`${b}attn_v.weight`, `${p}self_attn.v_proj.weight`, [KV * D, C], t("v", GGML_TYPE.Q8_0));
    add(`${b}attn_output.weight`, `${p}self_attn.o_proj.weight`, [C, H * D], t("o", GGML_TYPE.F32));
    add(`${b}ffn_norm.weight`, `${p}post_attention_layernorm.weight`, [C], GGML_TYPE.F32);
    add(`${b}ffn_gate.weight`, `${p}mlp.gate_proj.weight`, [I, C], t("gate", GGML_TYPE.F16));
    add(`${b}ffn_up.weight`, `${p}mlp.up_proj.weight`, [I, C], t("up", GGML_TYPE.Q8_0));
    add(`${b}ffn_down.weight`, `${p}mlp.down_proj.weight`, [C, I], t("down", GGML_TYPE.Q8_0));
  }
  add("output_norm.weight", "norm.weight", [C], GGML_TYPE.F32);
  if (!opts.tied) add("output.weight", "lm_head.weight", [V, C], t("out", GGML_TYPE.F32));
  const meta: Record<string, GgufValue> = {
    "general.architecture": { str: "llama" },
    "general.alignment": { u32: 32 },
    "llama.context_length": { u32: 128 },
    "llama.embedding_length": { u32: C },
    "llama.block_count": { u32: L },
    "llama.feed_forward_length": { u32: I },
    "llama.rope.dimension_count": { u32: D },
    "llama.attention.head_count": { u32: H },
    "llama.attention.head_count_kv": { u32: KV },
    "llama.attention.layer_norm_rms_epsilon": { f32: 1e-6 },
    "llama.rope.freq_base": { f32: 500000 },
    "llama.rope.scaling.type": { str: "linear" },
    "llama.rope.scaling.factor": { f32: 2 },
    "tokenizer.ggml.model": { str: "llama" },
    "tokenizer.ggml.tokens": { strs: Array.from({ length: V }, (_, i) => `t${i}`) },
    "tokenizer.ggml.bos_token_id": { u32: 1 },
    "tokenizer.ggml.eos_token_id": { u32: 2 },
  };
  return { hf, files, meta, dims: { C, H, KV, D, I, V, L } };
}

Deno.test("hand-built GGUF with F32, F16 and Q8_0 tensors reads back HF weights exactly", async () => {
  const seed = freshSeed();
  for (const tied of [false, true]) {
    const s = syntheticLlama(seed, { tied });
    const path = await tempFile(buildGguf(s.meta, s.files));
    try {
      const m = await readGgufModel(path);
      assert.deepEqual(m.hfConfig.rope_scaling, { type: "linear", rope_type: "linear", factor: 2 });
      assert.equal(m.hfConfig.rope_theta, 500000);
      assert.equal(m.hfConfig.num_key_value_heads, 2);
      assert.equal(m.hfConfig.vocab_size, 37);
      assert.equal(m.hfConfig.tie_word_embeddings, tied);
      assert.equal(m.weights.has("lm_head.weight"), !tied);
      assert.equal(m.weights.size, s.hf.size);
      for (const [name, want] of s.hf) {
        const got = m.weights.get(name)!;
        assert.ok(got, `${name} present`);
        assert.deepEqual(got.shape, want.shape, name);
        assert.deepEqual(got.data, want.data, `seed ${seed} ${name}`);
      }
      const types = new Set([...m.file.tensors.values()].map((t) => t.type));
      assert.deepEqual([...types].sort(), [GGML_TYPE.F32, GGML_TYPE.F16, GGML_TYPE.Q8_0].sort());
    } finally {
      await Deno.remove(path);
    }
  }
});

Deno.test("Q8_0 blocks: value = d * q for a known block, f16 scale rounding included", async () => {
  const q = Int8Array.from({ length: 64 }, (_, i) => (i * 37) % 255 - 127);
  // d = 0.1 is not f16-exact: the file stores its nearest f16, 0.0999755859375.
  const bytes = buildGguf({ "general.architecture": { str: "llama" } }, [
    { name: "x", ne: [32, 2], type: GGML_TYPE.Q8_0, data: q8Bytes([0.1, -2], q) },
    { name: "h", ne: [3], type: GGML_TYPE.F16, data: f16Bytes([1 / 3, 65504, 2 ** -24]) },
  ]);
  const path = await tempFile(bytes);
  try {
    const g = await readGgufHeader(path);
    const x = await readGgufTensor(g, "x");
    assert.deepEqual(x.shape, [2, 32]);
    for (let i = 0; i < 64; i++) {
      const d = i < 32 ? 0.0999755859375 : -2;
      assert.equal(x.data[i], Math.fround(d * q[i]), `element ${i}`);
    }
    const h = await readGgufTensor(g, "h");
    assert.deepEqual(Array.from(h.data), [0.333251953125, 65504, 5.960464477539063e-8]);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("unknown quantization type and unknown architecture are GgufErrors naming the file and field", async () => {
  const s = syntheticLlama(7, { types: { gate: 2 /* Q4_0 */ } });
  let path = await tempFile(buildGguf(s.meta, s.files));
  try {
    const e = await rejectsGguf(readGgufModel(path), "blk.0.ffn_gate.weight", /Q4_0/);
    assert.equal(e.file, path);
    assert.ok(e.message.includes(path));
  } finally {
    await Deno.remove(path);
  }
  const s2 = syntheticLlama(7);
  s2.meta["general.architecture"] = { str: "falcon" };
  path = await tempFile(buildGguf(s2.meta, s2.files));
  try {
    await rejectsGguf(readGgufModel(path), "general.architecture", /falcon/);
  } finally {
    await Deno.remove(path);
  }
  await rejectsGguf(readGgufModel(`${VOCAB}/ggml-vocab-gpt-2.gguf`), "general.architecture", /gpt2/);
  // Q8_0 rows must be whole blocks.
  path = await tempFile(buildGguf({ "general.architecture": { str: "llama" } }, [
    { name: "x", ne: [20, 2], type: GGML_TYPE.Q8_0, data: new Uint8Array(68) },
  ]));
  try {
    await rejectsGguf(readGgufHeader(path), "x", /whole blocks/);
  } finally {
    await Deno.remove(path);
  }
  // A tensor beyond the llama set (llama3's rope factors) is refused by name.
  const s3 = syntheticLlama(3);
  s3.files.push({ name: "rope_freqs.weight", ne: [4], type: GGML_TYPE.F32, data: f32Bytes([1, 1, 2, 4]) });
  path = await tempFile(buildGguf(s3.meta, s3.files));
  try {
    await rejectsGguf(readGgufModel(path), "rope_freqs.weight", /not part of the llama architecture/);
  } finally {
    await Deno.remove(path);
  }
  await rejectsGguf(readGgufModel("/nonexistent/x.gguf"), undefined, /file not found/);
});

Deno.test("truncated or corrupt files give GgufErrors, never a crash", async () => {
  const full = await Deno.readFile(TINY);
  const g = await readGgufHeader(TINY);
  const dataStart = Math.min(...[...g.tensors.values()].map((t) => t.offset));
  const cuts = [
    0,
    3,
    4,
    8,
    23,
    24,
    40,
    1000,
    100_000,
    400_000,
    dataStart - 1,
    dataStart,
    dataStart + 1001,
    full.length - 1,
  ];
  for (const cut of cuts) {
    const path = await tempFile(full.slice(0, cut));
    try {
      await rejectsGguf(readGgufModel(path), undefined, /truncated|not a readable GGUF header/);
    } finally {
      await Deno.remove(path);
    }
  }
  // Not GGUF at all, and a bad version.
  const junk = new TextEncoder().encode('{"not": "gguf"}............................');
  const bad = full.slice(0, 4096);
  new DataView(bad.buffer).setUint32(4, 77, true);
  for (const bytes of [junk, bad]) {
    const path = await tempFile(bytes);
    try {
      const e = await rejectsGguf(readGgufHeader(path), undefined, /not a readable GGUF header|truncated/);
      assert.ok(e instanceof EngramError);
    } finally {
      await Deno.remove(path);
    }
  }
});

Deno.test("missing tensors, shapes that contradict the config, and rope scaling types", async () => {
  const cases: [(s: ReturnType<typeof syntheticLlama>) => void, string, RegExp][] = [
    [
      (s) => (s.files = s.files.filter((f) => f.name !== "blk.1.ffn_up.weight")),
      "blk.1.ffn_up.weight",
      /missing/,
    ],
    [(s) => (s.meta["llama.feed_forward_length"] = { u32: 96 }), "blk.0.ffn_gate.weight", /contradicts/],
    [
      (s) => (s.meta["llama.attention.head_count_kv"] = { u32: 3 }),
      "llama.attention.head_count_kv",
      /divide/,
    ],
    [(s) => (s.meta["llama.rope.scaling.type"] = { str: "longrope" }), "llama.rope.scaling.type", /longrope/],
    [(s) => delete s.meta["llama.embedding_length"], "llama.embedding_length", /missing/],
  ];
  for (const [mutate, field, re] of cases) {
    const s = syntheticLlama(11);
    mutate(s);
    const path = await tempFile(buildGguf(s.meta, s.files));
    try {
      await rejectsGguf(readGgufModel(path), field, re);
    } finally {
      await Deno.remove(path);
    }
  }
  const s = syntheticLlama(5);
  s.meta["llama.rope.scaling.type"] = { str: "yarn" };
  s.meta["llama.rope.scaling.factor"] = { f32: 4 };
  s.meta["llama.rope.scaling.original_context_length"] = { u32: 32 };
  const path = await tempFile(buildGguf(s.meta, s.files));
  try {
    const m = await readGgufModel(path);
    assert.deepEqual(m.hfConfig.rope_scaling, {
      type: "yarn",
      rope_type: "yarn",
      factor: 4,
      original_max_position_embeddings: 32,
    });
  } finally {
    await Deno.remove(path);
  }
});

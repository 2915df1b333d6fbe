/**
 * Tiny random Hugging Face checkpoints of every family, for tests: a real HF-style `config.json` (HF
 * field names) and safetensors files with full HF tensor names (base-model prefixes included), in F32,
 * F16 or BF16, in one file or sharded with a `model.safetensors.index.json`.
 *
 * This writer is INDEPENDENT of engram's loader: names and shapes come from the HF modeling
 * conventions written out below (not from src/model/families), the safetensors bytes and the F16/BF16
 * rounding and decoding are written here (not with src/io/safetensors.ts), so a loader test compares
 * two separate readings of the same conventions.
 *
 * @example
 * ```ts
 * const ck = await writeTinyCheckpoint(dir, { family: "llama", dtype: "BF16", shards: 2 });
 * const m = await loadHFModel(dir);
 * // m.weights.get("layers.0.self_attn.q_proj.weight") equals ck.weights.get(...) bit for bit
 * ```
 */
import type { HostTensor } from "../src/model/config.ts";

/** The HF model_type of a tiny checkpoint. */
export type TinyFamily = "llama" | "mistral" | "qwen2" | "qwen3" | "gpt_neox" | "gptj" | "gpt2";

/** Options of {@link writeTinyCheckpoint}. */
export interface TinyCheckpointOptions {
  family: TinyFamily;
  /** Storage dtype of the weights (default F32). */
  dtype?: "F32" | "F16" | "BF16";
  /** Number of safetensors shards (default 1: a single model.safetensors, no index). */
  shards?: number;
  /** PRNG seed of the weights (default 1). */
  seed?: number;
  /** config.json fields on top of the family's tiny defaults; the weights follow them. */
  overrides?: Record<string, unknown>;
  /**
   * config.json fields written on top of everything but NOT used for the weight shapes: a config that
   * contradicts its weights (e.g. `{ head_dim: 5 }`). A value `undefined` deletes the field.
   */
  configOnly?: Record<string, unknown>;
  /**
   * Tie the head to the embedding: no head tensor, `tie_word_embeddings: true` (default: true for
   * gpt2, false for the others). NeoX and GPT-J cannot tie: for them this makes a broken folder.
   */
  tied?: boolean;
  /** Also write the buffers real checkpoints carry (causal masks, masked_bias, rotary inv_freq). */
  extraBuffers?: boolean;
}

/** What {@link writeTinyCheckpoint} wrote. */
export interface TinyCheckpoint {
  /** The config.json object written. */
  config: Record<string, unknown>;
  /**
   * Every weight by engram name (HF name without the base-model prefix; heads keep theirs), as float32
   * values after the dtype round trip (what a correct loader must return bit for bit). No buffers.
   */
  weights: Map<string, HostTensor>;
  /** engram name -> the HF name in the file. */
  hfNames: Map<string, string>;
  /** Files written (config.json, shards, index). */
  files: string[];
}

/** The tiny config of each family (HF field names, odd sizes, grouped-query attention where it exists). */
export const TINY_CONFIGS: Readonly<Record<TinyFamily, Record<string, unknown>>> = {
  llama: {
    model_type: "llama",
    architectures: ["LlamaForCausalLM"],
    hidden_size: 12,
    num_attention_heads: 3,
    num_key_value_heads: 1,
    intermediate_size: 20,
    num_hidden_layers: 2,
    vocab_size: 17,
    max_position_embeddings: 32,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    hidden_act: "silu",
    attention_bias: false,
    mlp_bias: false,
    bos_token_id: 1,
    eos_token_id: 2,
  },
  mistral: {
    model_type: "mistral",
    architectures: ["MistralForCausalLM"],
    hidden_size: 12,
    num_attention_heads: 3,
    num_key_value_heads: 1,
    intermediate_size: 20,
    num_hidden_layers: 2,
    vocab_size: 17,
    max_position_embeddings: 32,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    hidden_act: "silu",
    sliding_window: 5,
  },
  qwen2: {
    model_type: "qwen2",
    architectures: ["Qwen2ForCausalLM"],
    hidden_size: 12,
    num_attention_heads: 3,
    num_key_value_heads: 1,
    intermediate_size: 20,
    num_hidden_layers: 2,
    vocab_size: 17,
    max_position_embeddings: 32,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000,
    hidden_act: "silu",
    use_sliding_window: false,
    sliding_window: 32,
    max_window_layers: 2,
  },
  qwen3: {
    model_type: "qwen3",
    architectures: ["Qwen3ForCausalLM"],
    hidden_size: 12,
    num_attention_heads: 3,
    num_key_value_heads: 1,
    head_dim: 6,
    intermediate_size: 20,
    num_hidden_layers: 2,
    vocab_size: 17,
    max_position_embeddings: 32,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000,
    hidden_act: "silu",
    attention_bias: false,
    use_sliding_window: false,
  },
  gpt_neox: {
    model_type: "gpt_neox",
    architectures: ["GPTNeoXForCausalLM"],
    hidden_size: 12,
    num_attention_heads: 3,
    intermediate_size: 20,
    num_hidden_layers: 2,
    vocab_size: 17,
    max_position_embeddings: 32,
    layer_norm_eps: 1e-5,
    rotary_pct: 0.5,
    rotary_emb_base: 10000,
    hidden_act: "gelu",
    use_parallel_residual: true,
    attention_bias: true,
  },
  gptj: {
    model_type: "gptj",
    architectures: ["GPTJForCausalLM"],
    n_embd: 12,
    n_head: 3,
    n_inner: 20,
    n_layer: 2,
    vocab_size: 17,
    n_positions: 32,
    rotary_dim: 2,
    layer_norm_epsilon: 1e-5,
    activation_function: "gelu_new",
  },
  gpt2: {
    model_type: "gpt2",
    architectures: ["GPT2LMHeadModel"],
    n_embd: 12,
    n_head: 3,
    n_inner: null,
    n_layer: 2,
    vocab_size: 17,
    n_positions: 32,
    n_ctx: 32,
    layer_norm_epsilon: 1e-5,
    activation_function: "gelu_new",
  },
};

/** The base-model prefix of each family's checkpoint names. */
const PREFIX: Record<TinyFamily, string> = {
  llama: "model.",
  mistral: "model.",
  qwen2: "model.",
  qwen3: "model.",
  gpt_neox: "gpt_neox.",
  gptj: "transformer.",
  gpt2: "transformer.",
};

/** One tensor to write: full HF name, shape, kind of init, and whether it is a buffer. */
interface Spec {
  name: string;
  shape: number[];
  init: "weight" | "norm" | "bias";
  buffer?: { dtype: "F32" | "BOOL"; fill: number };
}

function num(c: Record<string, unknown>, k: string, dflt?: number): number {
  const v = c[k];
  if (typeof v === "number") return v;
  if (dflt !== undefined) return dflt;
  throw new Error(`tiny config needs ${k}`);
}

/** The HF tensors of `family` under config `c` (names as transformers saves them). */
function tensorSpecs(
  family: TinyFamily,
  c: Record<string, unknown>,
  tied: boolean,
  buffers: boolean,
): Spec[] {
  const out: Spec[] = [];
  const add = (name: string, shape: number[], init: Spec["init"] = "weight") =>
    out.push({ name, shape, init });
  const buf = (name: string, shape: number[], dtype: "F32" | "BOOL", fill: number) =>
    buffers && out.push({ name, shape, init: "bias", buffer: { dtype, fill } });
  const lin = (name: string, o: number, i: number, bias: boolean) => {
    add(name + ".weight", [o, i]); // nn.Linear: [out, in]
    if (bias) add(name + ".bias", [o], "bias");
  };
  const ln = (name: string, w: number, bias: boolean) => {
    add(name + ".weight", [w], "norm");
    if (bias) add(name + ".bias", [w], "bias");
  };
  if (family === "gpt2" || family === "gptj") {
    const C = num(c, "n_embd"), H = num(c, "n_head"), L = num(c, "n_layer"), V = num(c, "vocab_size");
    const P = num(c, "n_positions"), I = c.n_inner == null ? 4 * C : num(c, "n_inner");
    add("transformer.wte.weight", [V, C]);
    if (family === "gpt2") add("transformer.wpe.weight", [P, C]);
    for (let l = 0; l < L; l++) {
      const p = `transformer.h.${l}.`;
      ln(p + "ln_1", C, true);
      if (family === "gpt2") {
        // Conv1D: [in, out]
        add(p + "attn.c_attn.weight", [C, 3 * C]);
        add(p + "attn.c_attn.bias", [3 * C], "bias");
        add(p + "attn.c_proj.weight", [C, C]);
        add(p + "attn.c_proj.bias", [C], "bias");
        ln(p + "ln_2", C, true);
        add(p + "mlp.c_fc.weight", [C, I]);
        add(p + "mlp.c_fc.bias", [I], "bias");
        add(p + "mlp.c_proj.weight", [I, C]);
        add(p + "mlp.c_proj.bias", [C], "bias");
        buf(p + "attn.bias", [1, 1, P, P], "F32", 1);
        buf(p + "attn.masked_bias", [], "F32", -1e4);
      } else {
        for (const x of ["q_proj", "k_proj", "v_proj", "out_proj"]) lin(p + "attn." + x, C, C, false);
        lin(p + "mlp.fc_in", I, C, true);
        lin(p + "mlp.fc_out", C, I, true);
        buf(p + "attn.bias", [1, 1, P, P], "BOOL", 1);
        buf(p + "attn.masked_bias", [], "F32", -1e9);
      }
    }
    ln("transformer.ln_f", C, true);
    if (!tied) {
      add("lm_head.weight", [V, C]);
      if (family === "gptj") add("lm_head.bias", [V], "bias");
    }
    void H;
    return out;
  }
  const C = num(c, "hidden_size"), H = num(c, "num_attention_heads"), L = num(c, "num_hidden_layers");
  const V = num(c, "vocab_size"), I = num(c, "intermediate_size"), P = num(c, "max_position_embeddings");
  if (family === "gpt_neox") {
    add("gpt_neox.embed_in.weight", [V, C]);
    const rot = Math.floor((C / H) * num(c, "rotary_pct", 0.25));
    for (let l = 0; l < L; l++) {
      const p = `gpt_neox.layers.${l}.`;
      ln(p + "input_layernorm", C, true);
      ln(p + "post_attention_layernorm", C, true);
      lin(p + "attention.query_key_value", 3 * C, C, true);
      lin(p + "attention.dense", C, C, true);
      lin(p + "mlp.dense_h_to_4h", I, C, true);
      lin(p + "mlp.dense_4h_to_h", C, I, true);
      buf(p + "attention.bias", [1, 1, P, P], "BOOL", 1);
      buf(p + "attention.masked_bias", [], "F32", -1e9);
      buf(p + "attention.rotary_emb.inv_freq", [rot / 2], "F32", 0.5);
    }
    ln("gpt_neox.final_layer_norm", C, true);
    if (!tied) add("embed_out.weight", [V, C]); // NeoX never ties: `tied` here only makes a broken folder
    return out;
  }
  // The Llama family.
  const KV = num(c, "num_key_value_heads", H);
  const D = c.head_dim == null ? C / H : num(c, "head_dim");
  const attnBias = family === "llama" || family === "qwen3" ? c.attention_bias === true : false;
  const qkvBias = family === "qwen2" || attnBias;
  const mlpBias = family === "llama" && c.mlp_bias === true;
  add("model.embed_tokens.weight", [V, C]);
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`;
    ln(p + "input_layernorm", C, false);
    lin(p + "self_attn.q_proj", H * D, C, qkvBias);
    lin(p + "self_attn.k_proj", KV * D, C, qkvBias);
    lin(p + "self_attn.v_proj", KV * D, C, qkvBias);
    lin(p + "self_attn.o_proj", C, H * D, attnBias);
    if (family === "qwen3") {
      ln(p + "self_attn.q_norm", D, false);
      ln(p + "self_attn.k_norm", D, false);
    }
    ln(p + "post_attention_layernorm", C, false);
    lin(p + "mlp.gate_proj", I, C, mlpBias);
    lin(p + "mlp.up_proj", I, C, mlpBias);
    lin(p + "mlp.down_proj", C, I, mlpBias);
    buf(p + "self_attn.rotary_emb.inv_freq", [D / 2], "F32", 0.5);
  }
  ln("model.norm", C, false);
  if (!tied) add("lm_head.weight", [V, C]);
  return out;
}

/** mulberry32: a small seeded PRNG in [0, 1). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/** float32 -> IEEE half bits, round to nearest even (subnormals, overflow to inf, NaN). */
export function f32ToF16Bits(x: number): number {
  F32[0] = x;
  const u = U32[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let man = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    man |= 0x800000; // implicit bit
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = man >>> shift;
    const rest = man & ((1 << shift) - 1);
    if (rest > half || (rest === half && (m & 1))) m++;
    return sign | m;
  }
  let h = (e << 10) | (man >>> 13);
  const rest = man & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++; // may carry into the exponent: still right
  return sign | h;
}

/** IEEE half bits -> float32 value, built as float32 bits (not by arithmetic). */
export function f16BitsToF32(h: number): number {
  const sign = (h & 0x8000) << 16;
  let exp = (h >>> 10) & 0x1f;
  let man = h & 0x3ff;
  if (exp === 0x1f) U32[0] = sign | 0x7f800000 | (man << 13);
  else if (exp === 0) {
    if (man === 0) U32[0] = sign;
    else {
      // Normalize the subnormal: shift until the implicit bit appears.
      exp = 1;
      while ((man & 0x400) === 0) {
        man <<= 1;
        exp--;
      }
      U32[0] = sign | ((exp - 15 + 127) << 23) | ((man & 0x3ff) << 13);
    }
  } else U32[0] = sign | ((exp - 15 + 127) << 23) | (man << 13);
  return F32[0];
}

/** float32 -> bfloat16 bits, round to nearest even (NaN kept quiet). */
export function f32ToBF16Bits(x: number): number {
  F32[0] = x;
  const u = U32[0];
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** bfloat16 bits -> float32 value. */
export function bf16BitsToF32(b: number): number {
  U32[0] = (b & 0xffff) << 16;
  return F32[0];
}

interface Stored {
  name: string;
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** A safetensors file: u64 header length, space-padded JSON header, data in the given order. */
function safetensorsBytes(tensors: Stored[]): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let off = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.bytes.length] };
    off += t.bytes.length;
  }
  let h = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - (h.length % 8)) % 8;
  if (pad) {
    const p = new Uint8Array(h.length + pad).fill(0x20);
    p.set(h);
    h = p;
  }
  const out = new Uint8Array(8 + h.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  let p = 8 + h.length;
  for (const t of tensors) (out.set(t.bytes, p), p += t.bytes.length);
  return out;
}

/**
 * Writes a tiny random checkpoint of `opts.family` into `dir` (created if needed) and returns what a
 * loader must read back (see {@link TinyCheckpoint}). Values are uniform in about (-0.5, 0.5) (norm
 * weights around 1), with element 0 of every weight scaled by 1e-6 so that F16 files hold subnormals.
 */
export async function writeTinyCheckpoint(dir: string, opts: TinyCheckpointOptions): Promise<TinyCheckpoint> {
  const family = opts.family;
  const dtype = opts.dtype ?? "F32";
  const tied = opts.tied ?? family === "gpt2";
  const base = { ...TINY_CONFIGS[family], ...opts.overrides };
  const specs = tensorSpecs(family, base, tied, opts.extraBuffers ?? false);
  const config: Record<string, unknown> = {
    ...base,
    tie_word_embeddings: tied,
    torch_dtype: dtype === "F32" ? "float32" : dtype === "F16" ? "float16" : "bfloat16",
  };
  for (const [k, v] of Object.entries(opts.configOnly ?? {})) {
    if (v === undefined) delete config[k];
    else config[k] = v;
  }
  const rand = rng(opts.seed ?? 1);
  const weights = new Map<string, HostTensor>();
  const hfNames = new Map<string, string>();
  const stored: Stored[] = [];
  const prefix = PREFIX[family];
  for (const s of specs) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    if (s.buffer) {
      const bytes = s.buffer.dtype === "BOOL"
        ? new Uint8Array(n).fill(s.buffer.fill)
        : new Uint8Array(new Float32Array(n).fill(s.buffer.fill).buffer);
      stored.push({ name: s.name, dtype: s.buffer.dtype, shape: s.shape, bytes });
      continue;
    }
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const r = rand() - 0.5;
      v[i] = s.init === "norm" ? 1 + 0.2 * r : r;
    }
    if (n > 1 && s.init === "weight") v[0] *= 1e-6;
    let bytes: Uint8Array;
    if (dtype === "F32") bytes = new Uint8Array(v.buffer.slice(0));
    else {
      const half = new Uint16Array(n);
      for (let i = 0; i < n; i++) {
        half[i] = dtype === "F16" ? f32ToF16Bits(v[i]) : f32ToBF16Bits(v[i]);
        v[i] = dtype === "F16" ? f16BitsToF32(half[i]) : bf16BitsToF32(half[i]);
      }
      bytes = new Uint8Array(half.buffer);
    }
    stored.push({ name: s.name, dtype, shape: s.shape, bytes });
    const engramName = s.name.startsWith(prefix) ? s.name.slice(prefix.length) : s.name;
    weights.set(engramName, { shape: [...s.shape], data: v });
    hfNames.set(engramName, s.name);
  }
  await Deno.mkdir(dir, { recursive: true });
  const files = [`${dir}/config.json`];
  await Deno.writeTextFile(files[0], JSON.stringify(config, null, 2) + "\n");
  const shards = opts.shards ?? 1;
  if (shards <= 1) {
    files.push(`${dir}/model.safetensors`);
    await Deno.writeFile(files[1], safetensorsBytes(stored));
  } else {
    // Contiguous runs of tensors per shard, as transformers' size-based sharding makes them.
    const per = Math.ceil(stored.length / shards);
    const weightMap: Record<string, string> = {};
    let total = 0;
    for (let s = 0; s < shards; s++) {
      const part = stored.slice(s * per, (s + 1) * per);
      const file = `model-${String(s + 1).padStart(5, "0")}-of-${
        String(shards).padStart(5, "0")
      }.safetensors`;
      for (const t of part) (weightMap[t.name] = file, total += t.bytes.length);
      files.push(`${dir}/${file}`);
      await Deno.writeFile(`${dir}/${file}`, safetensorsBytes(part));
    }
    files.push(`${dir}/model.safetensors.index.json`);
    await Deno.writeTextFile(
      `${dir}/model.safetensors.index.json`,
      JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + "\n",
    );
  }
  return { config, weights, hfNames, files };
}

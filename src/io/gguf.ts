/**
 * Reading GGUF files (llama.cpp's format, https://github.com/ggml-org/ggml/blob/master/docs/gguf.md):
 *
 *   "GGUF" u32 version, u64 tensor count, u64 key/value count, key/values, tensor infos, padding to
 *   `general.alignment` (32), then the tensor data; each tensor info is a name, its dims listed
 *   fastest-varying first (ggml's ne[0], ne[1], ...), a ggml type and an offset into the data.
 *
 * The header is parsed by the `@huggingface/gguf` package, fed from the local file through its `fetch`
 * hook (ranges read with a file handle, so a multi-gigabyte file is never read whole). The tensor data
 * readers (F32, F16, Q8_0) are ours. {@link readGgufModel} turns a llama-architecture file into a Hugging
 * Face LlamaForCausalLM config and HF-named, HF-laid-out float32 weights. Every error is a
 * {@link GgufError} naming the file and the key or tensor.
 */
import { gguf as parseGgufHeader } from "npm:@huggingface/gguf@0.4.6";
import type { GGUFParseOutput, MetadataValue } from "npm:@huggingface/gguf@0.4.6";
import { GgufError } from "../errors.ts";
import type { HostTensor } from "../model/config.ts";
import { f16ToF32 } from "./safetensors.ts";
import { excerpt } from "./excerpt.ts";

/** ggml tensor type ids this reader decodes (ggml.h `enum ggml_type`). */
export const GGML_TYPE = Object.freeze({ F32: 0, F16: 1, Q8_0: 8 });

/** Names of the ggml types, for messages (ggml.h order; gaps are removed types). */
const GGML_TYPE_NAMES: Readonly<Record<number, string>> = Object.freeze({
  0: "F32",
  1: "F16",
  2: "Q4_0",
  3: "Q4_1",
  6: "Q5_0",
  7: "Q5_1",
  8: "Q8_0",
  9: "Q8_1",
  10: "Q2_K",
  11: "Q3_K",
  12: "Q4_K",
  13: "Q5_K",
  14: "Q6_K",
  15: "Q8_K",
  16: "IQ2_XXS",
  17: "IQ2_XS",
  18: "IQ3_XXS",
  19: "IQ1_S",
  20: "IQ4_NL",
  21: "IQ3_S",
  22: "IQ2_S",
  23: "IQ4_XS",
  24: "I8",
  25: "I16",
  26: "I32",
  27: "I64",
  28: "F64",
  29: "IQ1_M",
  30: "BF16",
  34: "TQ1_0",
  35: "TQ2_0",
  39: "MXFP4",
});

/** Name of ggml type `t` ("type 99" when unknown). */
export function ggmlTypeName(t: number): string {
  return GGML_TYPE_NAMES[t] ?? `type ${t}`;
}

/** Elements per Q8_0 block; a block is one f16 scale then 32 int8 (34 bytes). */
export const Q8_0_BLOCK = 32;
const Q8_0_BYTES = 2 + Q8_0_BLOCK;

/** One tensor of a GGUF file, as its header describes it. */
export interface GgufTensorInfo {
  name: string;
  /** Dims as the file lists them, fastest-varying first (ggml `ne`). */
  ne: number[];
  /** ggml type id (see {@link GGML_TYPE}). */
  type: number;
  /** Absolute byte offset of the data in the file. */
  offset: number;
  /** Byte length of the data, or undefined for a type this reader cannot size. */
  byteLength?: number;
}

/** A parsed GGUF header; tensor data stays in the file until {@link readGgufTensor}. */
export interface GgufFile {
  path: string;
  version: number;
  /** Every key/value pair (u64/i64 values are bigints, as the parser returns them). */
  metadata: Record<string, MetadataValue>;
  tensors: Map<string, GgufTensorInfo>;
  /** Byte size of the file. */
  size: number;
}

/** Reads `length` bytes at `position` (fewer at the end of the file). */
async function readAt(file: Deno.FsFile, position: number, length: number): Promise<Uint8Array<ArrayBuffer>> {
  const out = new Uint8Array(length);
  await file.seek(position, Deno.SeekMode.Start);
  let got = 0;
  while (got < length) {
    const n = await file.read(out.subarray(got));
    if (n === null) break;
    got += n;
  }
  return got === length ? out : out.slice(0, got);
}

function toNumber(v: MetadataValue | undefined): number | undefined {
  if (typeof v === "number") return v;
  if (
    typeof v === "bigint" && v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER)
  ) {
    return Number(v);
  }
  return undefined;
}

/** Bytes of a tensor of type `type` with dims `ne`, or undefined for a type without a reader. */
function tensorBytes(type: number, ne: number[]): number | undefined {
  const n = ne.reduce((a, b) => a * b, 1);
  if (type === GGML_TYPE.F32) return 4 * n;
  if (type === GGML_TYPE.F16) return 2 * n;
  if (type === GGML_TYPE.Q8_0) return (n / Q8_0_BLOCK) * Q8_0_BYTES;
  return undefined;
}

/**
 * Parses the header of the GGUF file at `path` and checks that every tensor's data of a readable type
 * lies inside the file. A truncated or corrupt file is a {@link GgufError}.
 */
export async function readGgufHeader(path: string): Promise<GgufFile> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    const what = e instanceof Deno.errors.NotFound
      ? "file not found"
      : `cannot open: ${(e as Error).message}`;
    throw new GgufError(what, { file: path, cause: e });
  }
  try {
    const size = (await file.stat()).size;
    if (size < 24) {
      throw new GgufError(`truncated: ${size} bytes is shorter than a GGUF header`, { file: path });
    }
    // The parser reads the header in 2 MB ranges through `fetch`; past the end it gets nothing and sees
    // zeros, so the end of the tensor infos is checked against the file size below.
    const fetchRange = (async (_uri: string | URL | Request, init?: RequestInit) => {
      const range = (init?.headers as Record<string, string> | undefined)?.Range ?? "";
      const m = /^bytes=(\d+)-(\d+)$/.exec(range);
      if (!m) throw new Error(`unexpected range request '${range}'`);
      const start = Math.min(Number(m[1]), size), end = Math.min(Number(m[2]) + 1, size);
      const body = await readAt(file, start, end - start);
      return new Response(body, {
        status: 206,
        headers: { "content-range": `bytes ${start}-${Math.max(start, end - 1)}/${size}` },
      });
    }) as typeof fetch;
    let parsed: GGUFParseOutput;
    try {
      parsed = await parseGgufHeader(`https://local.gguf/${encodeURIComponent(path)}`, { fetch: fetchRange });
    } catch (e) {
      throw new GgufError(`not a readable GGUF header: ${(e as Error).message ?? e}`, {
        file: path,
        cause: e,
      });
    }
    const headerEnd = parsed.tensorInfoByteRange[1];
    if (headerEnd > size) {
      throw new GgufError(`truncated: the header runs to byte ${headerEnd} of a ${size}-byte file`, {
        file: path,
      });
    }
    const metadata = parsed.metadata as unknown as Record<string, MetadataValue>;
    const dataStart = Number(parsed.tensorDataOffset);
    const alignment = toNumber(metadata["general.alignment"]) ?? 32;
    const tensors = new Map<string, GgufTensorInfo>();
    for (const t of parsed.tensorInfos) {
      const ne = t.shape.map(Number);
      const rel = Number(t.offset);
      if (!Number.isSafeInteger(rel) || rel % alignment !== 0) {
        throw new GgufError(`data offset ${t.offset} is not a multiple of the alignment ${alignment}`, {
          file: path,
          field: t.name,
        });
      }
      if (tensors.has(t.name)) throw new GgufError("tensor listed twice", { file: path, field: t.name });
      const info: GgufTensorInfo = {
        name: t.name,
        ne,
        type: t.dtype,
        offset: dataStart + rel,
        byteLength: tensorBytes(t.dtype, ne),
      };
      if (info.type === GGML_TYPE.Q8_0 && (ne[0] ?? 1) % Q8_0_BLOCK !== 0) {
        throw new GgufError(`Q8_0 rows of ${ne[0]} elements are not whole blocks of ${Q8_0_BLOCK}`, {
          file: path,
          field: t.name,
        });
      }
      if (info.byteLength !== undefined && info.offset + info.byteLength > size) {
        throw new GgufError(
          `truncated: the data of this ${ggmlTypeName(info.type)} tensor [${ne}] ends at byte ${
            info.offset + info.byteLength
          } of a ${size}-byte file`,
          { file: path, field: t.name },
        );
      }
      tensors.set(t.name, info);
    }
    return { path, version: Number(metadata.version), metadata, tensors, size };
  } finally {
    file.close();
  }
}

/**
 * Decodes raw tensor bytes of ggml type `type` into float32 (F32, F16, or Q8_0: per block of 32,
 * value = d * q with d the block's f16 scale and q its int8). Other types: {@link GgufError}.
 */
export function decodeGgmlData(
  bytes: Uint8Array,
  type: number,
  n: number,
  where: { file?: string; field?: string } = {},
): Float32Array {
  const out = new Float32Array(n);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (type === GGML_TYPE.F32) {
    for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
  } else if (type === GGML_TYPE.F16) {
    for (let i = 0; i < n; i++) out[i] = f16ToF32(view.getUint16(2 * i, true));
  } else if (type === GGML_TYPE.Q8_0) {
    for (let b = 0; b < n / Q8_0_BLOCK; b++) {
      const base = b * Q8_0_BYTES;
      const d = f16ToF32(view.getUint16(base, true));
      for (let j = 0; j < Q8_0_BLOCK; j++) out[b * Q8_0_BLOCK + j] = d * view.getInt8(base + 2 + j);
    }
  } else {
    throw new GgufError(
      `tensor type ${ggmlTypeName(type)} (${type}) is not supported: engram reads F32, F16 and Q8_0`,
      where,
    );
  }
  return out;
}

/**
 * The float32 data of tensor `name` of `g`, with its shape in row-major order (the file's dims
 * reversed: ne [in, out] becomes [out, in], as nn.Linear stores it). Unknown tensor names and types
 * are {@link GgufError}s.
 */
export async function readGgufTensor(g: GgufFile, name: string): Promise<HostTensor> {
  const t = g.tensors.get(name);
  if (!t) throw new GgufError("no such tensor in the file", { file: g.path, field: name });
  if (t.byteLength === undefined) decodeGgmlData(new Uint8Array(0), t.type, 0, { file: g.path, field: name });
  const file = await Deno.open(g.path, { read: true });
  let bytes: Uint8Array;
  try {
    bytes = await readAt(file, t.offset, t.byteLength!);
  } finally {
    file.close();
  }
  if (bytes.length !== t.byteLength) {
    throw new GgufError("truncated: the file ended inside the tensor data", { file: g.path, field: name });
  }
  const n = t.ne.reduce((a, b) => a * b, 1);
  return {
    shape: t.ne.slice().reverse(),
    data: decodeGgmlData(bytes, t.type, n, { file: g.path, field: name }),
  };
}

/**
 * Undoes llama.cpp's rotary row permutation of a q_proj or k_proj weight [nHead*D, cols].
 * convert_hf_to_gguf.py's `LlamaModel.permute` views the HF rows as (nHead, 2, D/2) and swaps the last
 * two axes, so HF row h*D + i*D/2 + j (i in {0,1}) is GGUF row h*D + 2j + i: the GGUF rows pair each
 * rotary element with its partner for ggml's interleaved rope. `nHead` is the key/value head count for
 * k_proj. Works row-wise, so it applies to a bias (cols = 1) too.
 */
export function unpermuteRotaryRows(data: Float32Array, nHead: number, cols: number): Float32Array {
  const rows = data.length / cols;
  if (!Number.isInteger(rows) || rows % nHead !== 0 || (rows / nHead) % 2 !== 0) {
    throw new RangeError(`cannot un-permute ${rows} rows for ${nHead} heads of even size`);
  }
  const D = rows / nHead, half = D / 2;
  const out = new Float32Array(data.length);
  for (let h = 0; h < nHead; h++) {
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < half; j++) {
        const hf = h * D + i * half + j, gg = h * D + 2 * j + i;
        out.set(data.subarray(gg * cols, (gg + 1) * cols), hf * cols);
      }
    }
  }
  return out;
}

/** What a GGUF file says about its tokenizer (`tokenizer.ggml.*`); see src/io/gguf_tokenizer.ts. */
export interface GgufTokenizerMetadata {
  /** tokenizer.ggml.model: "llama" (SentencePiece), "gpt2" (byte-level BPE), ... */
  model: string;
  /** tokenizer.ggml.pre: the pre-tokenizer name ("default", "gpt-2", "llama-bpe", ...), if given. */
  pre?: string;
  tokens: string[];
  scores?: number[];
  /** Per token: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte. */
  tokenTypes?: number[];
  /** "left right" pairs, highest priority first (byte-level BPE). */
  merges?: string[];
  bosId?: number;
  eosId?: number;
  unkId?: number;
  padId?: number;
  addBos?: boolean;
  addEos?: boolean;
  chatTemplate?: string;
}

/** The `tokenizer.ggml.*` metadata of `g`, or undefined when the file carries no vocabulary. */
export function ggufTokenizerMetadata(g: GgufFile): GgufTokenizerMetadata | undefined {
  const m = g.metadata;
  const model = m["tokenizer.ggml.model"];
  if (model === undefined) return undefined;
  const field = (k: string) => ({ file: g.path, field: k });
  if (typeof model !== "string") throw new GgufError("must be a string", field("tokenizer.ggml.model"));
  const strings = (k: string): string[] | undefined => {
    const v = m[k];
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
      throw new GgufError("must be an array of strings", field(k));
    }
    return v as string[];
  };
  const numbers = (k: string): number[] | undefined => {
    const v = m[k];
    if (v === undefined) return undefined;
    const out = Array.isArray(v) ? v.map((x) => toNumber(x as MetadataValue)) : undefined;
    if (!out || out.some((x) => x === undefined)) {
      throw new GgufError("must be an array of numbers", field(k));
    }
    return out as number[];
  };
  const id = (k: string): number | undefined => {
    if (m[k] === undefined) return undefined;
    const v = toNumber(m[k]);
    if (v === undefined || !Number.isInteger(v) || v < 0) {
      throw new GgufError(`must be a token id, got ${excerpt(m[k], 40)}`, field(k));
    }
    return v;
  };
  const bool = (k: string): boolean | undefined => {
    if (m[k] === undefined) return undefined;
    if (typeof m[k] !== "boolean") throw new GgufError("must be a boolean", field(k));
    return m[k] as boolean;
  };
  const tokens = strings("tokenizer.ggml.tokens");
  if (!tokens) {
    throw new GgufError(
      "missing: the file names a tokenizer model but has no tokens",
      field("tokenizer.ggml.tokens"),
    );
  }
  const scores = numbers("tokenizer.ggml.scores");
  const tokenTypes = numbers("tokenizer.ggml.token_type");
  for (
    const [k, a] of [["tokenizer.ggml.scores", scores], ["tokenizer.ggml.token_type", tokenTypes]] as const
  ) {
    if (a && a.length !== tokens.length) {
      throw new GgufError(`has ${a.length} entries for ${tokens.length} tokens`, field(k));
    }
  }
  const out: GgufTokenizerMetadata = {
    model,
    tokens,
    scores,
    tokenTypes,
    merges: strings("tokenizer.ggml.merges"),
  };
  const pre = m["tokenizer.ggml.pre"];
  if (typeof pre === "string") out.pre = pre;
  const ids = [["bosId", "bos"], ["eosId", "eos"], ["unkId", "unknown"], ["padId", "padding"]] as const;
  for (const [key, name] of ids) {
    const v = id(`tokenizer.ggml.${name}_token_id`);
    if (v !== undefined && v >= tokens.length) {
      throw new GgufError(`token id ${v} is outside the ${tokens.length}-token vocabulary`, {
        file: g.path,
        field: `tokenizer.ggml.${name}_token_id`,
      });
    }
    if (v !== undefined) out[key] = v;
  }
  const addBos = bool("tokenizer.ggml.add_bos_token"), addEos = bool("tokenizer.ggml.add_eos_token");
  if (addBos !== undefined) out.addBos = addBos;
  if (addEos !== undefined) out.addEos = addEos;
  if (typeof m["tokenizer.chat_template"] === "string") {
    out.chatTemplate = m["tokenizer.chat_template"] as string;
  }
  return out;
}

/** A llama-architecture GGUF as engram uses it: an HF config, HF-named weights, and the vocabulary. */
export interface GgufModel {
  /** The LlamaForCausalLM config.json equivalent of the file's `llama.*` keys. */
  hfConfig: Record<string, unknown>;
  /** Weights under HF Llama names without `model.` (lm_head.weight absent when tied), in HF layout. */
  weights: Map<string, HostTensor>;
  /** The file's tokenizer metadata, if it has a vocabulary. */
  tokenizer?: GgufTokenizerMetadata;
  /** The parsed header. */
  file: GgufFile;
}

/** GGUF tensor name (after `blk.L.`) -> HF name (after `layers.L.`). */
const BLOCK_TENSORS: Readonly<Record<string, string>> = Object.freeze({
  "attn_norm.weight": "input_layernorm.weight",
  "attn_q.weight": "self_attn.q_proj.weight",
  "attn_k.weight": "self_attn.k_proj.weight",
  "attn_v.weight": "self_attn.v_proj.weight",
  "attn_output.weight": "self_attn.o_proj.weight",
  "ffn_norm.weight": "post_attention_layernorm.weight",
  "ffn_gate.weight": "mlp.gate_proj.weight",
  "ffn_up.weight": "mlp.up_proj.weight",
  "ffn_down.weight": "mlp.down_proj.weight",
});

const TOP_TENSORS: Readonly<Record<string, string>> = Object.freeze({
  "token_embd.weight": "embed_tokens.weight",
  "output_norm.weight": "norm.weight",
  "output.weight": "lm_head.weight",
});

/** The GGUF name of HF tensor name `hf` (for messages). */
function ggufName(hf: string): string {
  for (const [g, h] of Object.entries(TOP_TENSORS)) if (h === hf) return g;
  const m = /^layers\.(\d+)\.(.+)$/.exec(hf);
  for (const [g, h] of Object.entries(BLOCK_TENSORS)) if (m && h === m[2]) return `blk.${m[1]}.${g}`;
  return hf;
}

/** The HF config of a llama-architecture header (throws for any other architecture). */
export function llamaHfConfig(g: GgufFile): Record<string, unknown> {
  const m = g.metadata;
  const arch = m["general.architecture"];
  if (arch !== "llama") {
    throw new GgufError(
      `architecture ${excerpt(arch, 40)} is not supported: engram loads GGUF files of architecture "llama"`,
      { file: g.path, field: "general.architecture" },
    );
  }
  const num = (k: string, opts: { int?: boolean; def?: number } = {}): number => {
    const key = `llama.${k}`;
    const v = m[key] === undefined ? opts.def : toNumber(m[key]);
    if (v === undefined) throw new GgufError("missing", { file: g.path, field: key });
    if (!Number.isFinite(v) || (opts.int && (!Number.isInteger(v) || v <= 0))) {
      throw new GgufError(
        `must be a ${opts.int ? "positive integer" : "number"}, got ${excerpt(m[key], 40)}`,
        {
          file: g.path,
          field: key,
        },
      );
    }
    return v;
  };
  const C = num("embedding_length", { int: true });
  const H = num("attention.head_count", { int: true });
  const KV = num("attention.head_count_kv", { int: true, def: H });
  if (H % KV !== 0) {
    throw new GgufError(`${KV} key/value heads do not divide ${H} heads`, {
      file: g.path,
      field: "llama.attention.head_count_kv",
    });
  }
  const headDim = num("attention.key_length", { int: true, def: C / H });
  if (!Number.isInteger(headDim)) {
    throw new GgufError(`${H} heads do not divide the width ${C}`, {
      file: g.path,
      field: "llama.attention.head_count",
    });
  }
  const valueLen = num("attention.value_length", { int: true, def: headDim });
  if (valueLen !== headDim) {
    throw new GgufError(`value heads of ${valueLen} differ from key heads of ${headDim}`, {
      file: g.path,
      field: "llama.attention.value_length",
    });
  }
  const ropeDim = num("rope.dimension_count", { int: true, def: headDim });
  if (ropeDim !== headDim) {
    throw new GgufError(`partial rotary (${ropeDim} of ${headDim}) is not part of the llama architecture`, {
      file: g.path,
      field: "llama.rope.dimension_count",
    });
  }
  const tok = ggufTokenizerMetadata(g);
  const embd = g.tensors.get("token_embd.weight");
  const vocab = m["llama.vocab_size"] !== undefined
    ? num("vocab_size", { int: true })
    : embd?.ne[1] ?? tok?.tokens.length;
  const cfg: Record<string, unknown> = {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: C,
    intermediate_size: num("feed_forward_length", { int: true }),
    num_hidden_layers: num("block_count", { int: true }),
    num_attention_heads: H,
    num_key_value_heads: KV,
    head_dim: headDim,
    hidden_act: "silu",
    attention_bias: false,
    mlp_bias: false,
    rms_norm_eps: num("attention.layer_norm_rms_epsilon"),
    rope_theta: num("rope.freq_base", { def: 10000 }),
    max_position_embeddings: num("context_length", { int: true }),
    vocab_size: vocab,
    tie_word_embeddings: !g.tensors.has("output.weight"),
  };
  if (tok?.bosId !== undefined) cfg.bos_token_id = tok.bosId;
  if (tok?.eosId !== undefined) cfg.eos_token_id = tok.eosId;
  if (tok?.padId !== undefined) cfg.pad_token_id = tok.padId;
  const scaling = ropeScaling(g);
  if (scaling) cfg.rope_scaling = scaling;
  return cfg;
}

/** HF rope_scaling from `llama.rope.scaling.*` (or the older `llama.rope.scale_linear`); undefined: none. */
function ropeScaling(g: GgufFile): Record<string, unknown> | undefined {
  const m = g.metadata;
  const where = (k: string) => ({ file: g.path, field: k });
  const factorOf = (k: string): number => {
    const f = toNumber(m[k]);
    if (f === undefined || !(f > 0)) {
      throw new GgufError(`must be a positive number, got ${excerpt(m[k], 40)}`, where(k));
    }
    return f;
  };
  const type = m["llama.rope.scaling.type"];
  if (type === undefined) {
    if (m["llama.rope.scale_linear"] === undefined) return undefined;
    const factor = factorOf("llama.rope.scale_linear");
    return factor === 1 ? undefined : { type: "linear", rope_type: "linear", factor };
  }
  if (type === "none") return undefined;
  if (type === "linear") {
    return { type: "linear", rope_type: "linear", factor: factorOf("llama.rope.scaling.factor") };
  }
  if (type === "yarn") {
    const orig = toNumber(m["llama.rope.scaling.original_context_length"]);
    const out: Record<string, unknown> = {
      type: "yarn",
      rope_type: "yarn",
      factor: factorOf("llama.rope.scaling.factor"),
    };
    if (orig !== undefined) out.original_max_position_embeddings = orig;
    return out;
  }
  throw new GgufError(
    `rope scaling ${excerpt(type, 40)} is not supported (none, linear, yarn)`,
    where("llama.rope.scaling.type"),
  );
}

/**
 * Reads a llama-architecture GGUF file: its HF config (see {@link llamaHfConfig}), every tensor as
 * float32 under its HF name with HF shapes ([out, in]) and q/k rows un-permuted back to HF's rotate-half
 * layout, and its tokenizer metadata. Tensors the llama architecture does not have (e.g. llama3's
 * `rope_freqs.weight`, MoE experts) and shapes that contradict the config are {@link GgufError}s.
 */
export async function readGgufModel(path: string): Promise<GgufModel> {
  const g = await readGgufHeader(path);
  const hfConfig = llamaHfConfig(g);
  const C = hfConfig.hidden_size as number, H = hfConfig.num_attention_heads as number;
  const KV = hfConfig.num_key_value_heads as number, D = hfConfig.head_dim as number;
  const I = hfConfig.intermediate_size as number, L = hfConfig.num_hidden_layers as number;
  const V = hfConfig.vocab_size as number;
  const expected = new Map<string, number[]>([
    ["embed_tokens.weight", [V, C]],
    ["norm.weight", [C]],
    ["lm_head.weight", [V, C]],
  ]);
  for (let l = 0; l < L; l++) {
    const p = `layers.${l}.`;
    expected.set(`${p}input_layernorm.weight`, [C]);
    expected.set(`${p}post_attention_layernorm.weight`, [C]);
    expected.set(`${p}self_attn.q_proj.weight`, [H * D, C]);
    expected.set(`${p}self_attn.k_proj.weight`, [KV * D, C]);
    expected.set(`${p}self_attn.v_proj.weight`, [KV * D, C]);
    expected.set(`${p}self_attn.o_proj.weight`, [C, H * D]);
    expected.set(`${p}mlp.gate_proj.weight`, [I, C]);
    expected.set(`${p}mlp.up_proj.weight`, [I, C]);
    expected.set(`${p}mlp.down_proj.weight`, [C, I]);
  }
  const weights = new Map<string, HostTensor>();
  for (const name of g.tensors.keys()) {
    let hf = TOP_TENSORS[name];
    const blk = /^blk\.(\d+)\.(.+)$/.exec(name);
    if (blk && BLOCK_TENSORS[blk[2]] && Number(blk[1]) < L) {
      hf = `layers.${Number(blk[1])}.${BLOCK_TENSORS[blk[2]]}`;
    }
    if (hf === undefined) {
      throw new GgufError("tensor is not part of the llama architecture engram loads", {
        file: path,
        field: name,
      });
    }
    const t = await readGgufTensor(g, name);
    const want = expected.get(hf)!;
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
      throw new GgufError(`shape [${t.shape}] (HF order) contradicts the config, which gives [${want}]`, {
        file: path,
        field: name,
      });
    }
    if (hf.endsWith("q_proj.weight")) t.data = unpermuteRotaryRows(t.data, H, C);
    if (hf.endsWith("k_proj.weight")) t.data = unpermuteRotaryRows(t.data, KV, C);
    weights.set(hf, t);
  }
  for (const hf of expected.keys()) {
    if (!weights.has(hf) && hf !== "lm_head.weight") {
      throw new GgufError(`missing (engram's ${hf})`, { file: path, field: ggufName(hf) });
    }
  }
  return { hfConfig, weights, tokenizer: ggufTokenizerMetadata(g), file: g };
}

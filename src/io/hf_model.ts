/**
 * Loading and saving Hugging Face model folders of every family engram runs (GPT-2, Llama, Mistral,
 * Qwen2, Qwen3, GPT-NeoX / Pythia, GPT-J): `config.json` + `model.safetensors` or a sharded
 * `model.safetensors.index.json` (+ tokenizer).
 *
 * Weights are returned under engram's names (HF names without the family's base-model prefix, HF
 * layouts; see ../model/config.ts and ../model/families/), as float32 whatever the file's dtype (F32,
 * F16, BF16). The loader is strict: the config must describe a model engram can run (./hf_config.ts),
 * every expected tensor must be present with the shape the config implies, buffers real checkpoints
 * carry (causal masks, rotary caches) are dropped by name, and any other tensor is an error.
 */
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { ConfigError, EngramError, SafetensorsError } from "../errors.ts";
import {
  type HostTensor,
  type ModelConfig,
  resolveConfig,
  type ResolvedConfig,
  type WeightMap,
} from "../model/config.ts";
import { type FamilySpec, familySpec, familyWeightShapes } from "../model/families/mod.ts";
import { type FileContent, OUTPUT_MARKER, writeDirAtomic } from "./atomic.ts";
import { readGgufModel } from "./gguf.ts";
import { ggufTokenizer, ggufTokenizerFiles } from "./gguf_tokenizer.ts";
import { excerpt } from "./excerpt.ts";
import { hfConfigFields, type ModelType, modelTypeFor, parseHFConfig } from "./hf_config.ts";
import {
  DTYPE_SIZES,
  isWeightDtype,
  readSafetensors,
  safetensorsContent,
  type WeightDtype,
} from "./safetensors.ts";
import { SafetensorsTensor } from "./safetensors.ts";
import { isJsonObject, parseStrictJson } from "./strict_json.ts";
import { loadTokenizerIfPresent } from "./tokenizer.ts";
import type { BosMode, Tokenizer } from "./tokenizer.ts";

export {
  type ActivationFunction,
  configFromHF,
  configToHF,
  type HFConfigInfo,
  parseHFConfig,
  SUPPORTED_ACTIVATIONS,
} from "./hf_config.ts";

/** A loaded Hugging Face folder. */
export interface HFModel {
  /** The model's configuration. */
  config: ModelConfig;
  /** engram names; the head (`lm_head.weight`) of a tying family only when it is not tied to the embedding. */
  weights: WeightMap;
  /** True when the head is the embedding (no head tensor, or one identical to the embedding). */
  tiedLmHead: boolean;
  /** The folder's tokenizer, or undefined when it has no tokenizer files. */
  tokenizer?: Tokenizer;
  /** config.json's `model_type`. */
  modelType: ModelType;
  /** The activation as config.json names it (`activation_function` / `hidden_act`). */
  activationFunction: string;
  /** The raw config.json object. */
  hfConfig: Record<string, unknown>;
  /** The folder (or GGUF file) it was loaded from. */
  dir: string;
  /** The weight files read: model.safetensors, or the index followed by its shards. */
  weightFiles: string[];
  /**
   * The file dtype of each weight (engram names): what {@link SaveHFModelInput.dtypes} takes to write
   * every tensor back in its own dtype. F64 tensors are recorded as F32 (their float32 values are what
   * engram holds). Empty for a GGUF file (its edited model is written in F32).
   */
  dtypes: Map<string, WeightDtype>;
}

/** The sharded-checkpoint index transformers writes beside its shards. */
export const INDEX_FILE = "model.safetensors.index.json";

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function shapeStr(s: readonly number[]): string {
  return `[${s.join(", ")}]`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Whether two file tensors hold the same values: their bytes when stored alike (nothing decoded), else their bits. */
function sameTensor(x: SafetensorsTensor, y: SafetensorsTensor): boolean {
  if (x.dtype === y.dtype) {
    const a = x.bytes, b = y.bytes;
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }
  return sameBits(x.data, y.data);
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length),
    ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return false;
  return true;
}

/** config.json names of the sizes, per family, for "config says ..." messages. */
function hfNames(c: ResolvedConfig) {
  const gptStyle = c.family === "gpt2" || c.family === "gptj";
  return {
    layers: gptStyle ? "n_layer" : "num_hidden_layers",
    heads: gptStyle ? "n_head" : "num_attention_heads",
    width: gptStyle ? "n_embd" : "hidden_size",
    inner: gptStyle ? "n_inner" : "intermediate_size",
    positions: gptStyle ? "n_positions" : "max_position_embeddings",
  };
}

/** Which config fields determine the shape of tensor `name`. */
function shapeReason(name: string, c: ResolvedConfig, spec: FamilySpec): string {
  const n = hfNames(c);
  if (name === spec.embed || name === spec.head || name === spec.headBias) {
    return `vocab_size=${c.vocabSize}, ${n.width}=${c.nEmbd}`;
  }
  if (name === spec.positions) return `${n.positions}=${c.nPositions}, ${n.width}=${c.nEmbd}`;
  if (/(q_norm|k_norm)\./.test(name)) return `head_dim=${c.headDim}`;
  if (/(mlp|ffn)\./.test(name)) return `${n.width}=${c.nEmbd}, ${n.inner}=${c.nInner}`;
  if (/\.(self_attn|attn|attention)\./.test(name) && c.family === "llama") {
    return `${n.width}=${c.nEmbd}, ${n.heads}=${c.nHead}, num_key_value_heads=${c.nKvHead}, head_dim=${c.headDim}`;
  }
  if (/\.(self_attn|attn|attention)\./.test(name)) return `${n.width}=${c.nEmbd}, ${n.heads}=${c.nHead}`;
  return `${n.width}=${c.nEmbd}`;
}

/** The block-name root of a family ("h." or "layers."), from its layer-0 names. */
function layerRoot(spec: FamilySpec, c: ResolvedConfig): string {
  const first = spec.layer(c, 0).ln1.weight;
  return first.slice(0, first.indexOf("0."));
}

/**
 * Bounds the layer count by the layers actually in the file, before any per-layer map is built: a
 * config.json with `n_layer: 3000000` would otherwise make a 36-million-entry expected-shape map (29 s,
 * 2.6 GB) only to report the first missing tensor. The other sizes only enter the expected shapes, which
 * are compared with the file's tensors one by one without allocating.
 */
function boundLayers(
  byName: Map<string, SafetensorsTensor>,
  c: ResolvedConfig,
  spec: FamilySpec,
  file: string,
): void {
  const root = layerRoot(spec, c);
  let layers = 0;
  for (const name of byName.keys()) {
    if (!name.startsWith(root)) continue;
    const m = /^(\d{1,9})\./.exec(name.slice(root.length));
    if (m) layers = Math.max(layers, Number(m[1]) + 1);
  }
  if (c.nLayer > layers) {
    // The same error the full check gives for the first missing layer, found without building the map.
    const name = spec.layer({ ...c, nLayer: layers + 1 }, layers).ln1.weight;
    throw new SafetensorsError(
      `missing tensor '${name}' (expected shape [${c.nEmbd}]): config says ${
        hfNames(c).layers
      }=${c.nLayer}, the weights hold ${layers === 0 ? "no layers" : `layers 0..${layers - 1}`}`,
      { file, field: name },
    );
  }
}

/**
 * Maps the tensors of a checkpoint (one file or all shards) to engram weights for `config`: strips the
 * family's prefix (names may carry it or not), drops the buffers {@link FamilySpec.ignored} names,
 * converts to float32, and checks presence and shape of every tensor the family expects. A head
 * identical to the embedding is dropped (tied); a different one is kept. Missing tensor ->
 * {@link SafetensorsError}; wrong shape or unknown extra tensor -> {@link ConfigError}; both name the
 * tensor and the file (`file` for what is missing, the tensor's own file otherwise).
 */
export function weightsFromSafetensors(
  tensors: Map<string, SafetensorsTensor>,
  config: ModelConfig,
  file: string,
  opts: { tieWordEmbeddings?: boolean } = {},
): { weights: WeightMap; tiedLmHead: boolean; dtypes: Map<string, WeightDtype> } {
  const c = resolveConfig(config, file);
  const spec = familySpec(c);
  const byName = new Map<string, SafetensorsTensor>();
  for (const [raw, t] of tensors) {
    const name = raw.startsWith(spec.prefix) ? raw.slice(spec.prefix.length) : raw;
    if (spec.ignored.test(name)) continue;
    if (byName.has(name)) {
      throw new SafetensorsError(
        `tensor '${name}' is stored twice (with and without the '${spec.prefix}' prefix)`,
        { file: t.file, field: raw },
      );
    }
    byName.set(name, t);
  }
  boundLayers(byName, c, spec, file);
  const weights: WeightMap = new Map();
  const dtypes = new Map<string, WeightDtype>();
  const taken = new Map<string, SafetensorsTensor>();
  const take = (name: string, shape: number[]) => {
    const t = byName.get(name)!;
    taken.set(name, t);
    if (!sameShape(t.shape, shape)) {
      throw new ConfigError(
        `config says '${name}' is ${shapeStr(shape)} (${shapeReason(name, c, spec)}) but weights have ${
          shapeStr(t.shape)
        }`,
        { file: t.file, field: name },
      );
    }
    byName.delete(name);
    dtypes.set(name, isWeightDtype(t.dtype) ? t.dtype : "F32");
    // Converted on first use: a 16-bit file uploaded to 16-bit storage is never decoded on the host.
    return t.toLazyHost(shape);
  };
  for (const [name, shape] of familyWeightShapes(spec, c, false)) {
    if (!byName.has(name)) {
      const why = name === spec.head && opts.tieWordEmbeddings === false
        ? " (config.json has tie_word_embeddings=false)"
        : "";
      throw new SafetensorsError(`missing tensor '${name}' (expected shape ${shapeStr(shape)})${why}`, {
        file,
        field: name,
      });
    }
    weights.set(name, take(name, shape));
  }
  let tiedLmHead = spec.tiedHeadAllowed;
  if (spec.tiedHeadAllowed) {
    if (byName.has(spec.head)) {
      const head = take(spec.head, [c.vocabSize, c.nEmbd]);
      if (!sameTensor(taken.get(spec.head)!, taken.get(spec.embed)!)) {
        tiedLmHead = false;
        weights.set(spec.head, head);
      } else dtypes.delete(spec.head);
    } else if (opts.tieWordEmbeddings === false) {
      throw new SafetensorsError(
        `missing tensor '${spec.head}' (config.json has tie_word_embeddings=false)`,
        { file, field: spec.head },
      );
    }
  }
  if (byName.size > 0) {
    const extra = [...byName.keys()];
    const list = extra.slice(0, 8).map((n) => `'${n}'`).join(", ") +
      (extra.length > 8 ? ` and ${extra.length - 8} more` : "");
    throw new ConfigError(
      `unexpected tensor(s) ${list} not part of a ${c.architecture} with ${hfNames(c).layers}=${c.nLayer}`,
      { file: byName.get(extra[0])!.file, field: extra[0] },
    );
  }
  return { weights, tiedLmHead, dtypes };
}

async function readConfigJson(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ConfigError("config.json not found", { file: path, cause: e });
    }
    throw new ConfigError(`cannot read: ${(e as Error).message}`, { file: path, cause: e });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`not valid JSON: ${(e as Error).message}`, { file: path, cause: e });
  }
  if (!isObject(json)) throw new ConfigError("must hold a JSON object", { file: path });
  return json;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw new SafetensorsError(`cannot access: ${(e as Error).message}`, { file: path, cause: e });
  }
}

/** The tensors of a folder's weights and the file that names them (model.safetensors or the index). */
export interface CheckpointTensors {
  tensors: Map<string, SafetensorsTensor>;
  /** model.safetensors, or the index of a sharded checkpoint. */
  file: string;
  /** Every file read (the index first, then its shards). */
  files: string[];
}

/**
 * Reads a folder's weights: `model.safetensors` when present (transformers prefers it too), else the
 * shards a `model.safetensors.index.json` names. The index and its shards must agree exactly: a shard
 * file that is missing, a tensor the index maps to a shard that does not hold it, and a shard tensor the
 * index does not map there are {@link SafetensorsError}s naming the tensor, the shard and the index.
 */
export async function readCheckpointTensors(dir: string): Promise<CheckpointTensors> {
  const stPath = join(dir, "model.safetensors");
  if (await exists(stPath)) {
    const f = await readSafetensors(stPath);
    return { tensors: f.tensors, file: stPath, files: [stPath] };
  }
  const indexPath = join(dir, INDEX_FILE);
  if (!(await exists(indexPath))) {
    const hint = (await exists(join(dir, "pytorch_model.bin")))
      ? " (found pytorch_model.bin: PyTorch pickles are not supported; convert to safetensors)"
      : "";
    throw new SafetensorsError(`model.safetensors not found (nor ${INDEX_FILE})${hint}`, { file: stPath });
  }
  const weightMap = await readIndex(indexPath);
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of weightMap) {
    if (!byShard.has(shard)) byShard.set(shard, []);
    byShard.get(shard)!.push(name);
  }
  const tensors = new Map<string, SafetensorsTensor>();
  const files = [indexPath];
  for (const [shard, names] of byShard) {
    const path = join(dir, shard);
    if (!(await exists(path))) {
      throw new SafetensorsError(
        `shard '${shard}' is missing: ${indexPath} maps ${names.length} tensor(s) to it, e.g. '${names[0]}'`,
        { file: path, field: names[0] },
      );
    }
    const f = await readSafetensors(path);
    files.push(path);
    for (const [name, t] of f.tensors) {
      const want = weightMap.get(name);
      if (want !== shard) {
        throw new SafetensorsError(
          want === undefined
            ? `tensor '${name}' of shard '${shard}' is not in the index ${indexPath}`
            : `tensor '${name}' is in shard '${shard}' but the index ${indexPath} maps it to '${want}'`,
          { file: path, field: name },
        );
      }
      tensors.set(name, t);
    }
    for (const name of names) {
      if (!f.tensors.has(name)) {
        throw new SafetensorsError(
          `the index ${indexPath} maps tensor '${name}' to shard '${shard}', which does not hold it`,
          { file: path, field: name },
        );
      }
    }
  }
  return { tensors, file: indexPath, files };
}

/** The `weight_map` of an index: tensor name -> shard file name (a plain name in the same folder). */
async function readIndex(path: string): Promise<Map<string, string>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new SafetensorsError(`cannot read: ${(e as Error).message}`, { file: path, cause: e });
  }
  const err = (msg: string, field?: string) => new SafetensorsError(msg, { file: path, field });
  const json = parseStrictJson(text, {
    file: path,
    maxDepth: 8,
    error: (msg, field) => err(`is ${msg}`, field ?? "index"),
  });
  if (!isJsonObject(json)) throw err("must hold a JSON object");
  const wm = Object.hasOwn(json, "weight_map") ? json.weight_map : undefined;
  if (!isJsonObject(wm)) {
    throw err(`'weight_map' must be an object of tensor -> shard file, got ${excerpt(wm, 60)}`, "weight_map");
  }
  const out = new Map<string, string>();
  for (const name of Object.keys(wm)) {
    const shard = wm[name];
    if (typeof shard !== "string" || shard === "" || /[/\\]/.test(shard) || shard === "." || shard === "..") {
      throw err(
        `shard of '${excerpt(name, 60)}' must be a file name in the folder, got ${excerpt(shard, 60)}`,
        name,
      );
    }
    out.set(name, shard);
  }
  if (out.size === 0) throw err("'weight_map' names no tensor", "weight_map");
  return out;
}

/** Options of {@link loadHFModel}. */
export interface LoadHFModelOptions {
  /**
   * BOS policy of the prompts engram encodes with the folder's tokenizer (default "auto": what the
   * tokenizer itself does, read from its files; config.json's bos_token_id does not decide it).
   */
  bos?: BosMode;
}

/**
 * Loads a Hugging Face folder of any supported family: `config.json` (validated by
 * {@link parseHFConfig}), the weights ({@link readCheckpointTensors}, mapped by
 * {@link weightsFromSafetensors}) and the tokenizer if the folder has one. Errors are
 * {@link EngramError}s naming the file and field or tensor.
 */
export async function loadHFModel(dir: string, opts: LoadHFModelOptions = {}): Promise<HFModel> {
  // The folder is read file by file. An engram output replaced meanwhile (`--overwrite` renames a new
  // folder into place) would mix two models' files: the folder's identity is compared before and after,
  // and a swapped folder is read again.
  for (let attempt = 0;; attempt++) {
    const before = await folderIdentity(dir);
    const m = await loadHFModelOnce(dir, opts);
    const after = await folderIdentity(dir);
    if (before === after) return m;
    if (attempt >= 2) {
      throw new EngramError("io", "the model folder was replaced three times while it was read", {
        file: dir,
      });
    }
  }
}

/**
 * Device and inode of `path` plus its engram output marker (which carries a unique id), to notice a
 * rename over it: inodes alone can be reused by a folder created after the old one was deleted.
 */
async function folderIdentity(path: string): Promise<string | undefined> {
  try {
    const st = await Deno.stat(path);
    let marker = "";
    if (st.isDirectory) {
      try {
        marker = await Deno.readTextFile(join(path, OUTPUT_MARKER));
      } catch {
        // not an engram output: nothing engram swaps
      }
    }
    return `${st.dev}:${st.ino}:${marker}`;
  } catch {
    return undefined;
  }
}

async function loadHFModelOnce(dir: string, opts: LoadHFModelOptions): Promise<HFModel> {
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(dir);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new EngramError("config", "model folder not found", { file: dir, cause: e });
    }
    throw new EngramError("config", `cannot access model folder: ${(e as Error).message}`, {
      file: dir,
      cause: e,
    });
  }
  if (st.isFile && dir.toLowerCase().endsWith(".gguf")) return await loadGgufAsHF(dir, opts);
  if (!st.isDirectory) {
    throw new EngramError("config", "not a folder (give the model folder, or a llama .gguf file)", {
      file: dir,
    });
  }
  const cfgPath = join(dir, "config.json");
  const hfConfig = await readConfigJson(cfgPath);
  const info = parseHFConfig(hfConfig, cfgPath);
  const ck = await readCheckpointTensors(dir);
  const { weights, tiedLmHead, dtypes } = weightsFromSafetensors(ck.tensors, info.config, ck.file, {
    tieWordEmbeddings: info.tieWordEmbeddings,
  });
  const tokenizer = await loadTokenizerIfPresent(dir, { bos: opts.bos });
  return {
    config: info.config,
    weights,
    tiedLmHead,
    tokenizer,
    modelType: info.modelType,
    activationFunction: info.activationFunction,
    hfConfig,
    dir,
    weightFiles: ck.files,
    dtypes,
  };
}

/** Whether `path` names a GGUF file (a model given as one file rather than a folder). */
export function isGgufFile(path: string): boolean {
  if (!path.toLowerCase().endsWith(".gguf")) return false;
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * A llama-architecture GGUF file (llama.cpp's format; F32, F16 and Q8_0 tensors, ./gguf.ts) as a
 * Hugging Face Llama model: its metadata becomes the config.json it stands for (validated like one), its
 * tensors the Llama weights (dequantized to float32, q/k rows in HF's rotary order), its vocabulary the
 * tokenizer. `dir` is the file; an edited model is saved as a Hugging Face folder.
 */
async function loadGgufAsHF(path: string, opts: LoadHFModelOptions): Promise<HFModel> {
  const g = await readGgufModel(path);
  const info = parseHFConfig(g.hfConfig, path);
  const tensors = new Map<string, SafetensorsTensor>();
  for (const [name, t] of g.weights) {
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    tensors.set(name, new SafetensorsTensor(name, "F32", t.shape, bytes, path));
  }
  const { weights, tiedLmHead } = weightsFromSafetensors(tensors, info.config, path, {
    tieWordEmbeddings: info.tieWordEmbeddings,
  });
  const tokenizer = g.tokenizer ? ggufTokenizer(g.file, { bos: opts.bos }) : undefined;
  return {
    config: info.config,
    weights,
    tiedLmHead,
    tokenizer,
    modelType: info.modelType,
    activationFunction: info.activationFunction,
    hfConfig: g.hfConfig,
    dir: path,
    weightFiles: [path],
    // GGUF tensors (F16, Q8_0) are not written back in their dtype: the folder engram writes is F32.
    dtypes: new Map(),
  };
}

/** What {@link saveHFModel} writes. */
export interface SaveHFModelInput {
  /** The model's configuration. */
  config: ModelConfig;
  /** engram weights; include the head (`lm_head.weight`) for an untied head of a tying family. */
  weights: WeightMap;
  /** Folder to copy tokenizer files from (tokenizer.json, tokenizer.model, vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json — those present). */
  tokenizerFrom?: string;
  /** Recorded as activation_function (GPT-2, GPT-J) or hidden_act (the others); must match the config. */
  activationFunction?: string;
  /** Extra config.json fields (e.g. bos_token_id, eos_token_id). */
  extraConfig?: Record<string, unknown>;
  /**
   * The source folder's config.json: its fields (unknown ones included) are kept, in their order, under
   * the ones engram writes. A tied head is written as `tie_word_embeddings: true`.
   */
  baseConfig?: Record<string, unknown>;
  /**
   * Further files of the folder (name -> content), e.g. from src/io/model_folder.ts otherModelFiles.
   * Weight files among them (`*.safetensors`, the shard index) are not written: the folder gets one
   * model.safetensors.
   */
  otherFiles?: Record<string, Uint8Array | string>;
  /**
   * The file dtype of each weight (engram names; {@link HFModel.dtypes} of the loaded source): each is
   * written in its dtype, F16/BF16 rounded to nearest even from float32 (exact for values read from
   * that dtype). Weights not named, or all when absent (a model trained from scratch, a GGUF), are F32.
   */
  dtypes?: ReadonlyMap<string, WeightDtype>;
  /** Write every tensor as F32 whatever {@link dtypes} says (config.json's torch_dtype follows). */
  forceF32?: boolean;
  /**
   * Largest shard in bytes of tensor data (default 5e9, transformers' `max_shard_size="5GB"`). A model
   * over it is written as `model-00001-of-0000N.safetensors` shards with `model.safetensors.index.json`,
   * as `save_pretrained` does; a tensor larger than a shard gets a shard of its own.
   */
  maxShardBytes?: number;
  /**
   * The loaded source's config.json ({@link HFModel.hfConfig}): used as {@link baseConfig} when that is
   * not given, so that a loaded model saved as it is (`saveHFModel(dir, { ...model, weights })`) keeps
   * bos_token_id, eos_token_id and every other field.
   */
  hfConfig?: Record<string, unknown>;
  /**
   * The loaded source's folder ({@link HFModel.dir}): with {@link tokenizer} set, its tokenizer files are
   * copied when {@link tokenizerFrom} is not given.
   */
  dir?: string;
  /** The loaded source's tokenizer ({@link HFModel.tokenizer}); only its presence is read (see {@link dir}). */
  tokenizer?: unknown;
}

/**
 * The dtype {@link hfModelFiles} writes weight `name` in: its recorded dtype, F32 when none is recorded
 * or `forceF32`. Callers that must know the saved values (the edit log's checksums) round with
 * src/io/safetensors.ts roundToDtype to it.
 */
export function savedDtype(
  model: Pick<SaveHFModelInput, "dtypes" | "forceF32">,
  name: string,
): WeightDtype {
  return model.forceF32 ? "F32" : model.dtypes?.get(name) ?? "F32";
}

/** config.json's torch_dtype of each dtype engram writes. */
const TORCH_DTYPE: Readonly<Record<WeightDtype, string>> = {
  F32: "float32",
  F16: "float16",
  BF16: "bfloat16",
};

/** GPT-2's config.json fields that describe the weights (the rest of the source config is kept as is). */
const GPT2_STRUCTURAL = new Set([
  "model_type",
  "n_layer",
  "n_head",
  "n_embd",
  "n_inner",
  "n_positions",
  "n_ctx",
  "vocab_size",
  "layer_norm_epsilon",
]);

/** Keys in canonical order, undefined dropped, for comparing two configurations. */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (isObject(v)) {
    return Object.fromEntries(
      Object.keys(v).filter((k) => v[k] !== undefined).sort().map((k) => [k, canonical(v[k])]),
    );
  }
  return v;
}

/** Whether `a` and `b` describe the same model (the recorded architecture name aside). */
function sameModel(a: ModelConfig, b: ModelConfig): boolean {
  const strip = (c: ModelConfig) => ({ ...resolveConfig(c), architecture: undefined });
  return isDeepStrictEqual(canonical(strip(a)), canonical(strip(b)));
}

/**
 * The config.json engram writes: the source config's fields in its order, with engram's values for the
 * structural fields and `extra`, engram's defaults for what the source lacks. When the source's other
 * fields still contradict `config` (another activation, a rope scaling), every field engram knows is
 * written with engram's value. The result always parses back to `config`.
 */
function mergedConfig(
  config: ModelConfig,
  base: Record<string, unknown> | undefined,
  extra: Record<string, unknown>,
  file: string,
): Record<string, unknown> {
  const { structural, cosmetic } = hfConfigFields(config);
  const written: Record<string, unknown> = { ...cosmetic, ...structural, ...extra };
  const sorted = Object.fromEntries(Object.keys(written).sort().map((k) => [k, written[k]]));
  const attempt = (override: (k: string) => boolean): Record<string, unknown> => {
    if (!base) return sorted;
    // No prototype: a key named "__proto__" in the source config stays a plain key.
    const out: Record<string, unknown> = Object.create(null);
    for (const k of Object.keys(base)) out[k] = base[k];
    for (const [k, v] of Object.entries(sorted)) if (!Object.hasOwn(base, k) || override(k)) out[k] = v;
    return out;
  };
  const structuralKeys = modelTypeFor(config) === "gpt2"
    ? GPT2_STRUCTURAL
    : new Set(Object.keys(structural).filter((k) => k !== "architectures"));
  const parsesBack = (o: Record<string, unknown>) => {
    try {
      return sameModel(parseHFConfig(o, file).config, config);
    } catch {
      return false;
    }
  };
  const first = attempt((k) => structuralKeys.has(k) || Object.hasOwn(extra, k));
  if (parsesBack(first)) return first;
  const second = attempt((k) =>
    Object.hasOwn(structural, k) || Object.hasOwn(extra, k) || k === "activation_function"
  );
  if (parsesBack(second)) return second;
  throw new ConfigError(
    "the config.json to write does not describe the model (a field of the source config or of the extra fields contradicts it)",
    { file },
  );
}

/**
 * Writes a Hugging Face folder atomically (see {@link writeDirAtomic}): config.json (the family's HF
 * fields, see {@link mergedConfig}), one model.safetensors (each tensor in the dtype
 * {@link SaveHFModelInput.dtypes} records, F32 otherwise; names with the family's prefix as
 * transformers saves them, plus the head when untied; a sharded source is written as this one file)
 * and tokenizer files copied from `tokenizerFrom`.
 * Weights are checked against the config first. Refuses an existing `dir` (code "exists") unless
 * `overwrite`.
 */
export async function saveHFModel(
  dir: string,
  model: SaveHFModelInput,
  opts: { overwrite?: boolean } = {},
): Promise<void> {
  await writeDirAtomic(dir, await hfModelFiles(dir, model), { ...opts, kind: "model" });
}

/** transformers' default `max_shard_size` ("5GB", decimal). */
const DEFAULT_MAX_SHARD_BYTES = 5e9;

/**
 * The weight files of a saved folder: one `model.safetensors`, or, when the tensor data exceeds
 * `maxShardBytes`, shards filled in the weights' order (a new shard when the next tensor would overflow
 * the current one, as huggingface_hub's split_state_dict_into_shards does) plus the index that maps each
 * tensor to its shard and records `total_size` (tensor bytes, headers excluded).
 */
function safetensorsShards(
  tensors: Map<string, HostTensor>,
  dtypes: Map<string, WeightDtype>,
  maxShardBytes: number,
  label: string,
): Record<string, FileContent> {
  if (!(maxShardBytes > 0)) {
    throw new EngramError("input", `maxShardBytes must be a positive number, got ${maxShardBytes}`, {
      file: label,
      field: "maxShardBytes",
    });
  }
  const bytesOf = (name: string, t: HostTensor) =>
    DTYPE_SIZES[dtypes.get(name) ?? "F32"] * t.shape.reduce((a, b) => a * b, 1);
  const shards: Array<Map<string, HostTensor>> = [];
  let current = new Map<string, HostTensor>(), currentBytes = 0, total = 0;
  for (const [name, t] of tensors) {
    const b = bytesOf(name, t);
    total += b;
    if (current.size > 0 && currentBytes + b > maxShardBytes) {
      shards.push(current);
      current = new Map();
      currentBytes = 0;
    }
    current.set(name, t);
    currentBytes += b;
  }
  if (current.size > 0 || shards.length === 0) shards.push(current);
  const meta = { format: "pt" };
  if (shards.length === 1) return { "model.safetensors": safetensorsContent(shards[0], meta, { dtypes }) };
  const files: Record<string, FileContent> = {};
  const weightMap: Record<string, string> = {};
  const n = String(shards.length).padStart(5, "0");
  shards.forEach((shard, i) => {
    const file = `model-${String(i + 1).padStart(5, "0")}-of-${n}.safetensors`;
    files[file] = safetensorsContent(shard, meta, { dtypes });
    for (const name of shard.keys()) weightMap[name] = file;
  });
  const sortedMap = Object.fromEntries(
    Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  );
  files[INDEX_FILE] = JSON.stringify({ metadata: { total_size: total }, weight_map: sortedMap }, null, 2) +
    "\n";
  return files;
}

/** Tokenizer files {@link SaveHFModelInput.tokenizerFrom} copies; the last two alone are no tokenizer. */
const TOKENIZER_FILES = [
  "tokenizer.json",
  "tokenizer.model",
  "vocab.json",
  "merges.txt",
  "tokenizer_config.json",
  "special_tokens_map.json",
];

/**
 * The files of the folder {@link saveHFModel} writes (name -> content), for callers that stage several
 * folders as one unit (src/io/atomic.ts stageDir). `dir` only names the folder in errors.
 */
export async function hfModelFiles(
  dir: string,
  model: SaveHFModelInput,
): Promise<Record<string, FileContent>> {
  const label = join(dir, "model.safetensors");
  const c = resolveConfig(model.config, label);
  const spec = familySpec(c);
  const untied = !spec.tiedHeadAllowed || model.weights.has(spec.head);
  const expected = familyWeightShapes(spec, c, untied);
  for (const [name, shape] of expected) {
    const t = model.weights.get(name);
    if (!t) {
      throw new SafetensorsError(`missing tensor '${name}' in the weights to save`, {
        file: label,
        field: name,
      });
    }
    if (!sameShape(t.shape, shape)) {
      throw new ConfigError(
        `config says '${name}' is ${shapeStr(shape)} but weights have ${shapeStr(t.shape)}`,
        { file: label, field: name },
      );
    }
  }
  for (const name of model.weights.keys()) {
    if (!expected.has(name)) {
      throw new ConfigError(`unexpected tensor '${name}' in the weights to save`, {
        file: label,
        field: name,
      });
    }
  }
  // A loaded HFModel passed as it is: its config.json and tokenizer folder stand in for the explicit fields.
  const baseConfig = model.baseConfig ?? model.hfConfig;
  const tokenizerFrom = model.tokenizerFrom ??
    (model.tokenizer !== undefined && model.dir !== undefined ? model.dir : undefined);
  const out = new Map<string, HostTensor>();
  const fileDtypes = new Map<string, WeightDtype>();
  for (const [name, t] of model.weights) {
    const fileName = name === spec.head || name === spec.headBias ? name : spec.prefix + name;
    out.set(fileName, t);
    fileDtypes.set(fileName, savedDtype(model, name));
  }
  const extra: Record<string, unknown> = { ...model.extraConfig };
  // torch_dtype describes the file written (a BF16 source forced to F32 no longer says bfloat16); a
  // file of mixed dtypes keeps the source's value.
  const written = new Set(fileDtypes.values());
  if (written.size === 1 && !Object.hasOwn(extra, "torch_dtype")) {
    extra.torch_dtype = TORCH_DTYPE[[...written][0]];
  }
  if (model.activationFunction !== undefined) {
    extra[c.family === "gpt2" || c.family === "gptj" ? "activation_function" : "hidden_act"] =
      model.activationFunction;
  }
  if (spec.tiedHeadAllowed) {
    if (untied) extra.tie_word_embeddings = false;
    // GPT-2's default is tied; every other family's default is untied, so a tied head is written.
    else if (c.family !== "gpt2" || baseConfig?.tie_word_embeddings === false) {
      extra.tie_word_embeddings = true;
    }
  }
  const files: Record<string, FileContent> = {};
  for (const [name, content] of Object.entries(model.otherFiles ?? {})) {
    if (name.endsWith(".safetensors") || name === INDEX_FILE) continue;
    files[name] = content;
  }
  const cfgLabel = join(dir, "config.json");
  files["config.json"] = JSON.stringify(mergedConfig(model.config, baseConfig, extra, cfgLabel), null, 2) +
    "\n";
  Object.assign(
    files,
    safetensorsShards(out, fileDtypes, model.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES, label),
  );
  if (tokenizerFrom !== undefined && isGgufFile(tokenizerFrom)) {
    Object.assign(files, await ggufTokenizerFiles(tokenizerFrom));
  } else if (tokenizerFrom !== undefined) {
    let copied = 0;
    for (const f of TOKENIZER_FILES) {
      const p = join(tokenizerFrom, f);
      try {
        files[f] = await Deno.readFile(p);
        if (f !== "tokenizer_config.json" && f !== "special_tokens_map.json") copied++;
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) {
          throw new EngramError("tokenizer", `cannot read: ${(e as Error).message}`, { file: p, cause: e });
        }
      }
    }
    if (copied === 0) {
      throw new EngramError(
        "tokenizer",
        "no tokenizer files (tokenizer.json, tokenizer.model, or vocab.json + merges.txt) to copy",
        { file: tokenizerFrom },
      );
    }
  }
  return files;
}

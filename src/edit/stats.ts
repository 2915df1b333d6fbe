/**
 * Second-moment statistics of MLP keys: C = E[k kᵀ] over the tokens of a text corpus, where k is the
 * input of `mlp.c_proj` (the post-GELU activations, hook site `mlp_post.L`, width nInner). This is
 * ROME's `layer_stats` (uncentered second moment, `SecondMoment`): every token of every record counts.
 *
 * Where C comes from, in order:
 * 1. prebuilt statistics files ({@link StatsOptions.files}): ROME's `*_mom2_100000.npz` (the sum
 *    `mom2.mom2` and the token count `mom2.count` of `util/runningstats.py` `SecondMoment`, saved through
 *    `CombinedStat` by `rome/layer_stats.py`) or engram's own cache files;
 * 2. a corpus ({@link StatsOptions.corpus}): a JSONL file with a "text" field per line, or plain text.
 *    A model folder may declare its corpus in {@link STATS_DECLARATION} (the world model does);
 * 3. nothing else: without either, {@link layerStats} stops with an {@link InputError} asking for
 *    `--stats-corpus` or `--stats`. There is no silent default corpus.
 *
 * kᵀk is accumulated on the GPU (matmul with transA + accumulate) in float32 and divided by the token
 * count. The result is cached as safetensors (tensor "mom2" [nInner, nInner] F32 = the mean, metadata
 * "count" = tokens, "layer") under a key made of a streaming hash of exactly the weights the keys at
 * that layer depend on ({@link keyWeightNames}: not the edited `mlp.c_proj`, so sequential edits of a
 * layer hit the cache), and of the corpus, the tokenizer, the framing and the sample limit.
 */
import { parseStrictJson } from "../io/strict_json.ts";
import { STATS_DECLARATION_FILE } from "../schema/train.ts";
import { parseInput } from "../schema/validate.ts";
import { createHash } from "node:crypto";
import { basename, isAbsolute, join, relative, resolve } from "node:path";
import { InputError } from "../errors.ts";
import { envOverride, envRequired, PermissionError, withPermissions } from "../io/permissions.ts";
import type { Gpu } from "../gpu/device.ts";
import { matmul } from "../gpu/matmul.ts";
import { createTensor, type GpuTensor, readTensors } from "../gpu/tensor.ts";
import { fill } from "../gpu/reduce.ts";
import { kahanAccumulate } from "../gpu/kahan.ts";
import { readNpz } from "../io/npz.ts";
import { readSafetensors, writeSafetensors } from "../io/safetensors.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import { type ModelConfig, resolveConfig, type WeightMap } from "../model/config.ts";
import { familySpec } from "../model/families/mod.ts";
import type { TransformerModel } from "../model/transformer.ts";
import { NonFiniteError } from "../model/nonfinite.ts";

/** Second moment of one layer's keys. */
export interface LayerStats {
  /** Block index (0-based) whose MLP output-projection input (the keys k) was measured. */
  layer: number;
  /** E[k kᵀ], row-major [nInner, nInner], float64. */
  mom2: Float64Array;
  /** Number of tokens averaged. */
  count: number;
  /** File it was read from (cache or prebuilt statistics) or written to. */
  file: string;
  /** True when read from a file rather than computed. */
  cached: boolean;
}

/** A statistics corpus and how its JSONL records are framed. */
export interface StatsCorpus {
  /** JSONL with a "text" field per line, or plain text (cut into context-sized chunks). */
  file: string;
  /**
   * Frame each JSONL record as [eos] text [eos], as engram's training does (default false: ROME's
   * `TokenizedDataset` encodes each text as it is).
   */
  eosDelimit?: boolean;
}

/** Options of {@link layerStats}. */
export interface StatsOptions {
  /**
   * The corpus: a file name or a {@link StatsCorpus}. ROME's dataset names "wikipedia" / "wikitext"
   * (the `mom2_dataset` of its hparams files), when no such file exists, ask for ROME's prebuilt files.
   */
  corpus?: string | StatsCorpus;
  /**
   * Prebuilt statistics: ROME `.npz` files, engram `.safetensors` statistics files, or folders of them.
   * The layer of a file comes from ROME's name (`transformer.h.L.mlp.c_proj_..._mom2_....npz`), from
   * engram's metadata, or, for a single file and a single layer, is that layer.
   */
  files?: string[];
  /** Maximum number of records (JSONL lines or context-sized text chunks); the first ones are used. */
  maxSamples?: number;
  /** Cache folder (default $ENGRAM_CACHE/stats, or ~/.cache/engram/stats). */
  cacheDir?: string;
  /** Tokens per forward pass (default 4096). */
  batchTokens?: number;
  /**
   * Stop after this many tokens (keys), cutting the last record (default: no limit beyond
   * {@link maxSamples}). FastMEMIT's reduced sample is about 10 × d_k tokens
   * ({@link reducedSampleTokens}); a reduced C is named as such in the edit's log (`tokens`, `reduced`).
   */
  maxTokens?: number;
  /**
   * How Σ kkᵀ is summed over batches on the GPU: "f32" (default; ROME's `mom2_dtype` "float32", a
   * running f32 sum) or "kahan" (each batch's f32 product added with Kahan compensation, so the total
   * is good to a few roundings however many tokens: what ROME's "float64" buys, at 3× the GPU memory
   * of C).
   */
  accumulation?: StatsAccumulation;
  /**
   * Records tokenized and held at a time (default 8192): the corpus is streamed in windows of this many,
   * each window's sequences grouped by length into batches, so memory does not grow with the corpus.
   */
  windowRecords?: number;
  /** Records done of the total (JSONL lines, or context-sized chunks of plain text). */
  onProgress?: (done: number, total: number) => void;
}

/** How {@link layerStats} sums the batches of keys ({@link StatsOptions.accumulation}). */
export type StatsAccumulation = "f32" | "kahan";

/** FastMEMIT's reduced sample for keys of width `dK`: 10 × d_k tokens. */
export function reducedSampleTokens(dK: number): number {
  return 10 * dK;
}

/**
 * The summation and token limit an editor's hparams ask of {@link layerStats}: `mom2_dtype` "float64" is
 * Kahan-compensated accumulation, `mom2_reduced` FastMEMIT's 10 × d_k tokens for keys of width `dK`.
 */
export function statsSumOptions(
  hp: { mom2_dtype?: "float32" | "float64"; mom2_reduced?: boolean },
  dK: number,
): Pick<StatsOptions, "accumulation" | "maxTokens"> {
  return {
    accumulation: hp.mom2_dtype === "float64" ? "kahan" : "f32",
    ...(hp.mom2_reduced ? { maxTokens: reducedSampleTokens(dK) } : {}),
  };
}

/** What an edit's log records of its statistics: file, tokens, whether cached, and how they were summed. */
export function statsLogInfo(
  st: LayerStats,
  sum: Pick<StatsOptions, "accumulation" | "maxTokens">,
): Record<string, unknown> {
  return {
    file: st.file,
    tokens: st.count,
    cached: st.cached,
    accumulation: sum.accumulation ?? "f32",
    ...(sum.maxTokens !== undefined
      ? { reduced: `FastMEMIT reduced sample: the first ${sum.maxTokens} tokens (10 × d_k)` }
      : {}),
  };
}

/** What a denied write of the statistics cache says besides the flag. */
const CACHE_WRITE = {
  why: "the key statistics are cached there",
  hint: "give a writable cache folder with --stats-dir DIR or ENGRAM_CACHE=DIR (--allow-env=ENGRAM_CACHE)",
};

/** The default cache folder for statistics. */
export function defaultStatsDir(): string {
  // ENGRAM_CACHE and XDG_CACHE_HOME only override: without --allow-env for them the next default applies.
  // HOME is the default itself: a denied HOME is an error (not a cache silently put in the working folder).
  const env = envOverride("ENGRAM_CACHE");
  if (env) return join(env, "stats");
  const xdg = envOverride("XDG_CACHE_HOME");
  if (xdg) return join(xdg, "engram", "stats");
  const home = envRequired("HOME", {
    why: "the statistics cache is ~/.cache/engram/stats",
    hint: "give the cache folder with --stats-dir DIR or ENGRAM_CACHE (--allow-env=ENGRAM_CACHE)",
  }) ?? ".";
  return join(home, ".cache", "engram", "stats");
}

/**
 * Names of the weights the keys k (input of the MLP output projection) at `layer` depend on: the
 * embeddings, every weight of the blocks before it, and the block's own weights except the MLP output
 * projection (what ROME, MEMIT and FT-L edit). Later blocks, the final norm and the head are left out.
 * `config` gives the family (GPT-2 when absent).
 */
export function keyWeightNames(names: Iterable<string>, layer: number, config?: ModelConfig): string[] {
  const spec = familySpec(config ?? {});
  const esc = spec.blockPrefix.replace(".", "\\.");
  const block = new RegExp(`^${esc}(\\d+)\\.`);
  const down = config ? spec.layer(resolveConfig(config), layer).down : undefined;
  const edited = new Set(
    down ? [down.weight, down.bias] : [`h.${layer}.mlp.c_proj.weight`, `h.${layer}.mlp.c_proj.bias`],
  );
  return [...names].filter((n) => {
    const m = block.exec(n);
    if (!m) return n === spec.embed || n === spec.positions;
    const l = Number(m[1]);
    return l < layer || (l === layer && !edited.has(n));
  }).sort();
}

/**
 * SHA-256 (hex) of the config and of the weights the keys at `layer` depend on ({@link keyWeightNames}),
 * fed tensor by tensor into one streaming hash (no copy of a model of gigabytes).
 */
export function modelKeyHash(model: { config: ModelConfig; weights: WeightMap }, layer: number): string {
  const h = createHash("sha256");
  const names = keyWeightNames(model.weights.keys(), layer, model.config);
  h.update(JSON.stringify({ config: model.config, layer, names }));
  for (const n of names) {
    const t = model.weights.get(n)!;
    h.update(JSON.stringify(t.shape));
    h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return h.digest("hex");
}

/** The file a model folder names its statistics corpus in. */
export const STATS_DECLARATION = "engram_stats.json";

/**
 * The corpus a model folder declares in {@link STATS_DECLARATION}: `{"corpus": PATH, "eos_delimit":
 * BOOL}`, PATH relative to the folder. Undefined when the folder declares none.
 */
export async function declaredStatsCorpus(modelDir: string): Promise<StatsCorpus | undefined> {
  // A model given as one file (GGUF) declares no corpus.
  try {
    if ((await Deno.stat(modelDir)).isFile) return undefined;
  } catch {
    // reported below, where the declaration is read
  }
  const file = join(modelDir, STATS_DECLARATION);
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw new InputError(`cannot read: ${(e as Error).message}`, { file });
  }
  const rec = parseInput(STATS_DECLARATION_FILE, parseStrictJson(text, { file, maxDepth: 8 }), { file });
  const corpus = isAbsolute(rec.corpus) ? rec.corpus : resolve(modelDir, rec.corpus);
  try {
    await Deno.stat(corpus);
  } catch (e) {
    throw new InputError(`corpus ${corpus}: ${(e as Error).message}`, { file, field: "corpus" });
  }
  return { file: corpus, eosDelimit: rec.eos_delimit === true };
}

/**
 * Writes `corpus` as the declaration of the model folder `toDir` (path relative to it), so that a copy
 * of a model (e.g. `engram edit --out`) keeps pointing at the corpus of the model it came from.
 */
export async function writeStatsDeclaration(toDir: string, corpus: StatsCorpus): Promise<void> {
  const rel = relative(resolve(toDir), resolve(corpus.file));
  await Deno.writeTextFile(
    join(toDir, STATS_DECLARATION),
    JSON.stringify({ corpus: rel, eos_delimit: corpus.eosDelimit ?? false }, null, 2) + "\n",
  );
}

/** Message of the error raised when there is no source of statistics. */
export const NO_STATS_MESSAGE =
  `no corpus for the key statistics C = E[kkᵀ]: give --stats-corpus FILE (JSONL with a "text" field per line, or plain text) or --stats FILE (ROME's *_mom2_100000.npz, or an engram statistics .safetensors); a model folder can name its corpus in ${STATS_DECLARATION}`;

function fileOf(c: string | StatsCorpus): StatsCorpus {
  return typeof c === "string" ? { file: c } : c;
}

/** Default {@link StatsOptions.windowRecords}. */
const WINDOW_RECORDS = 8192;

function checkEosDelimit(tokenizer: Tokenizer, eosDelimit: boolean, file: string): void {
  if (eosDelimit && tokenizer.eosId === undefined) {
    throw new InputError("eos_delimit needs a tokenizer with an end-of-text token", { file });
  }
}

/** One JSONL record's token ids (line `lineNo`, 1-based in the file): its "text", framed, truncated to the context. */
function jsonlRecordIds(
  line: string,
  lineNo: number,
  file: string,
  tokenizer: Tokenizer,
  nPositions: number,
  eosDelimit: boolean,
): number[] {
  let rec: unknown;
  try {
    rec = JSON.parse(line);
  } catch {
    throw new InputError(`line ${lineNo} is not JSON (a .jsonl corpus needs {"text": ...} per line)`, {
      file,
      field: "text",
    });
  }
  const t = (rec as { text?: unknown })?.text;
  if (typeof t !== "string") {
    throw new InputError(`line ${lineNo} has no string "text" field`, { file, field: "text" });
  }
  let ids = tokenizer.encode(t);
  if (eosDelimit) ids = [tokenizer.eosId!, ...ids, tokenizer.eosId!];
  // As ROME's TokenizedDataset: truncated to the context, not split.
  return ids.slice(0, nPositions);
}

/** Lines of a file read in chunks (never the whole file as one string), with their 1-based numbers. */
async function* fileLines(file: string): AsyncGenerator<[string, number]> {
  const f = await Deno.open(file);
  const dec = new TextDecoder();
  let rest = "", lineNo = 0;
  try {
    for await (const chunk of f.readable) {
      rest += dec.decode(chunk, { stream: true });
      let start = 0;
      for (let nl = rest.indexOf("\n"); nl >= 0; nl = rest.indexOf("\n", start)) {
        yield [rest.slice(start, nl), ++lineNo];
        start = nl + 1;
      }
      rest = rest.slice(start);
    }
  } finally {
    try {
      f.close();
    } catch {
      // already closed by the finished stream
    }
  }
  rest += dec.decode();
  if (rest !== "") yield [rest, ++lineNo];
}

/** What one streaming pass over the corpus file gives before any tokenizing: its key and its size. */
interface CorpusScan {
  /** {@link corpusKeyHash} of the file and options. */
  key: string;
  /** JSONL (first non-empty line starts with "{") or plain text. */
  jsonl: boolean;
  /** Non-empty lines (JSONL records). */
  records: number;
}

/** Opens a corpus file for reading; ROME's dataset names without such a file ask for ROME's prebuilt statistics. */
async function openCorpus(file: string, layers: number[]): Promise<Deno.FsFile> {
  try {
    return await Deno.open(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound && (file === "wikipedia" || file === "wikitext")) {
      const names = layers.map((l) => `transformer.h.${l}.mlp.c_proj_float32_mom2_100000.npz`).join(", ");
      throw new InputError(
        `ROME computes C from the '${file}' data set, which engram does not download: give ROME's prebuilt statistics with --stats (${names}, from https://rome.baulab.info/data/stats/<model>/${file}_stats/) or a corpus with --stats-corpus FILE`,
        { field: "mom2_dataset" },
      );
    }
    throw new InputError(`cannot read statistics corpus: ${(e as Error).message}`, { file });
  }
}

/** Options that change the token sequences or the sum, hashed into the corpus key. */
interface CorpusKeyOptions {
  eosDelimit: boolean;
  maxSamples: number;
  nPositions: number;
  maxTokens?: number;
  accumulation?: StatsAccumulation;
}

/**
 * Streams the corpus file once: hashes its bytes (the corpus key, {@link corpusKeyHash}), and counts its
 * non-empty lines, holding only one chunk and the first 16 KiB at a time.
 */
async function scanCorpus(
  file: string,
  layers: number[],
  tokenizer: Tokenizer,
  opts: CorpusKeyOptions,
): Promise<CorpusScan> {
  const f = await openCorpus(file, layers);
  const h = createHash("sha256");
  const head: Uint8Array[] = [];
  let headBytes = 0, records = 0, inLine = false, firstByte: number | undefined;
  try {
    for await (const chunk of f.readable) {
      h.update(chunk);
      if (headBytes < 16384) {
        head.push(chunk.subarray(0, 16384 - headBytes));
        headBytes += Math.min(chunk.length, 16384 - headBytes);
      }
      for (const b of chunk) {
        if (b === 0x0a) {
          inLine = false;
        } else if (b !== 0x20 && b !== 0x09 && b !== 0x0d) {
          if (!inLine) records++;
          inLine = true;
          firstByte ??= b;
        }
      }
    }
  } catch (e) {
    throw new InputError(`cannot read statistics corpus: ${(e as Error).message}`, { file });
  }
  const headText = new Uint8Array(headBytes);
  let o = 0;
  for (const c of head) {
    headText.set(c, o);
    o += c.length;
  }
  return {
    key: corpusKeyHash(h, headText, tokenizer, opts),
    jsonl: firstByte === 0x7b,
    records,
  };
}

/**
 * Hash of what the token sequences depend on besides the model: the corpus bytes (already fed to `h`),
 * the framing, the limits, the summation, and the tokenizer (its source, size, end-of-text id and its
 * encoding of the corpus's first 16 KiB, so that a different tokenizer gives a different key without
 * tokenizing the whole corpus). Default options hash as before they existed, so old caches stay valid.
 */
function corpusKeyHash(
  h: ReturnType<typeof createHash>,
  headBytes: Uint8Array,
  tokenizer: Tokenizer,
  opts: CorpusKeyOptions,
): string {
  // The text the tokenizer sees: the records' "text" for JSONL, else the text itself.
  const head = new TextDecoder().decode(headBytes).replace(/[^\n]*$/, "");
  const probe = head.trimStart().startsWith("{")
    ? head.split("\n").map((l) => {
      try {
        const t = (JSON.parse(l) as { text?: unknown })?.text;
        return typeof t === "string" ? t : "";
      } catch {
        return "";
      }
    }).join("\n")
    : head;
  const { maxTokens, accumulation, ...base } = opts;
  h.update(JSON.stringify({
    ...base,
    dtype: "float32",
    ...(maxTokens !== undefined ? { maxTokens } : {}),
    ...(accumulation === "kahan" ? { accumulation } : {}),
    tokenizer: [tokenizer.source, tokenizer.vocabSize, tokenizer.eosId ?? null],
    probe: tokenizer.encode(probe),
  }));
  return h.digest("hex");
}

/**
 * The corpus's token sequences in windows of up to `window` records, at most `maxSamples`
 * records and `maxTokens` tokens in all (the record that crosses `maxTokens` is cut). JSONL is read line
 * by line; plain text is tokenized whole (a BPE split at an arbitrary boundary would change the tokens
 * there) and cut into context-sized chunks.
 */
async function* corpusWindows(
  file: string,
  scan: CorpusScan,
  tokenizer: Tokenizer,
  nPositions: number,
  maxSamples: number,
  eosDelimit: boolean,
  maxTokens: number,
  window: number,
): AsyncGenerator<number[][]> {
  let records = 0, tokens = 0, any = false;
  const take = (ids: number[]): number[] | undefined => {
    if (ids.length === 0 || records >= maxSamples || tokens >= maxTokens) return undefined;
    const cut = ids.slice(0, Math.min(ids.length, maxTokens - tokens));
    records++;
    tokens += cut.length;
    any = true;
    return cut;
  };
  const done = () => records >= maxSamples || tokens >= maxTokens;
  if (scan.jsonl) {
    checkEosDelimit(tokenizer, eosDelimit, file);
    let win: number[][] = [];
    for await (const [line, lineNo] of fileLines(file)) {
      if (line.trim() === "") continue;
      const ids = take(jsonlRecordIds(line, lineNo, file, tokenizer, nPositions, eosDelimit));
      if (ids) win.push(ids);
      if (win.length >= window) {
        yield win;
        win = [];
      }
      if (done()) break;
    }
    if (win.length > 0) yield win;
  } else {
    const ids = tokenizer.encode(await Deno.readTextFile(file));
    let win: number[][] = [];
    for (let i = 0; i < ids.length && !done(); i += nPositions) {
      const s = take(ids.slice(i, i + nPositions));
      if (s) win.push(s);
      if (win.length >= window) {
        yield win;
        win = [];
      }
    }
    if (win.length > 0) yield win;
  }
  if (!any) throw new InputError("statistics corpus has no text", { file });
}

/** C and count of a statistics file read by {@link readStatsFile}. */
export interface StatsFile {
  mom2: Float64Array;
  count: number;
  /** Layer named by the file (ROME's file name or engram's metadata), if any. */
  layer?: number;
}

const ROME_NAME = /(?:^|[._])h\.(\d+)\.mlp\.(?:c_proj|fc_out)_.*mom2.*\.npz$/;

/**
 * Reads a statistics file: ROME's `.npz` (C = `mom2.mom2` / `mom2.count`) or engram's `.safetensors`
 * (tensor "mom2" = C, metadata "count"). C must be [nInner, nInner]; errors name the file and entry.
 */
export async function readStatsFile(file: string, nInner: number): Promise<StatsFile> {
  const checkShape = (shape: number[], field: string) => {
    if (shape.length !== 2 || shape[0] !== nInner || shape[1] !== nInner) {
      throw new InputError(
        `statistics of shape [${shape}] do not fit the model: its MLP keys need [${nInner}, ${nInner}]`,
        { file, field },
      );
    }
  };
  if (file.endsWith(".npz")) {
    const npz = await readNpz(file);
    const m = npz.get("mom2.mom2");
    checkShape(m.shape, "mom2.mom2");
    const c = npz.get("mom2.count");
    const count = c.data.length === 1 ? c.data[0] : NaN;
    if (!(count > 0) || !Number.isInteger(count)) {
      throw new InputError(
        `must be a positive token count, got ${c.data.length === 1 ? count : `shape [${c.shape}]`}`,
        {
          file,
          field: "mom2.count",
        },
      );
    }
    const mom2 = new Float64Array(m.data.length);
    for (let i = 0; i < mom2.length; i++) mom2[i] = m.data[i] / count;
    const layer = ROME_NAME.exec(basename(file))?.[1];
    return { mom2, count, layer: layer === undefined ? undefined : Number(layer) };
  }
  if (file.endsWith(".safetensors")) {
    const st = await readSafetensors(file);
    const t = st.tensors.get("mom2");
    if (!t) throw new InputError("no tensor 'mom2' (an engram statistics file)", { file, field: "mom2" });
    checkShape(t.shape, "mom2");
    const count = Number(st.metadata.count);
    if (!(count > 0)) {
      throw new InputError("metadata 'count' must be a positive number", { file, field: "count" });
    }
    const layer = st.metadata.layer === undefined ? undefined : Number(st.metadata.layer);
    return { mom2: Float64Array.from(t.data), count, layer: Number.isInteger(layer) ? layer : undefined };
  }
  throw new InputError("statistics files are ROME .npz or engram .safetensors", { file, field: "--stats" });
}

/** Maps each of `layers` to its statistics file among `paths` (files or folders of them). */
export async function findStatsFiles(
  paths: string[],
  layers: number[],
  nInner: number,
): Promise<Map<number, { file: string; stats: StatsFile }>> {
  const files: string[] = [];
  for (const p of paths) {
    let st: Deno.FileInfo;
    try {
      st = await Deno.stat(p);
    } catch (e) {
      throw new InputError(`cannot read statistics: ${(e as Error).message}`, { file: p, field: "--stats" });
    }
    if (st.isDirectory) {
      const names: string[] = [];
      for await (const e of Deno.readDir(p)) {
        if (e.isFile && (ROME_NAME.test(e.name) || e.name.endsWith(".safetensors"))) names.push(e.name);
      }
      files.push(...names.sort().map((n) => join(p, n)));
    } else files.push(p);
  }
  const out = new Map<number, { file: string; stats: StatsFile }>();
  const want = new Set(layers);
  for (const file of files) {
    // Only files whose layer is wanted need reading; ROME's names tell it without opening the file.
    const named = ROME_NAME.exec(basename(file))?.[1];
    if (named !== undefined && !want.has(Number(named))) continue;
    const stats = await readStatsFile(file, nInner);
    let layer = stats.layer;
    if (layer === undefined) {
      if (files.length === 1 && layers.length === 1) layer = layers[0];
      else {
        throw new InputError(
          "cannot tell which layer these statistics are for (name it as ROME does, transformer.h.L.mlp.c_proj_float32_mom2_100000.npz)",
          { file, field: "--stats" },
        );
      }
    }
    if (!want.has(layer)) continue;
    const prev = out.get(layer);
    if (prev) {
      throw new InputError(`two statistics files for layer ${layer}: ${prev.file} and ${file}`, {
        file,
        field: "--stats",
      });
    }
    out.set(layer, { file, stats });
  }
  const missing = layers.filter((l) => !out.has(l));
  if (missing.length) {
    throw new InputError(
      `no statistics for layer(s) ${missing.join(", ")} in ${
        paths.join(", ")
      } (ROME names them transformer.h.L.mlp.c_proj_float32_mom2_100000.npz)`,
      { field: "--stats" },
    );
  }
  return out;
}

/** Cache file of the statistics of `layer` for a model key hash and a corpus key hash. */
function cacheFile(dir: string, modelHash: string, layer: number, corpusHash: string): string {
  return join(dir, `mom2_${modelHash.slice(0, 16)}_L${layer}_${corpusHash.slice(0, 16)}.safetensors`);
}

/**
 * The cache file {@link layerStats} uses for `layer` with this corpus (for tests and tools: it changes
 * exactly when the keys' inputs change).
 */
export async function statsCacheFile(
  model: { config: ModelConfig; weights: WeightMap },
  tokenizer: Tokenizer,
  layer: number,
  corpus: string | StatsCorpus,
  opts: Pick<StatsOptions, "maxSamples" | "cacheDir" | "maxTokens" | "accumulation"> = {},
): Promise<string> {
  const c = fileOf(corpus);
  const scan = await scanCorpus(c.file, [layer], tokenizer, {
    eosDelimit: c.eosDelimit ?? false,
    maxSamples: opts.maxSamples ?? 100000,
    nPositions: model.config.nPositions,
    maxTokens: opts.maxTokens,
    accumulation: opts.accumulation,
  });
  return cacheFile(opts.cacheDir ?? defaultStatsDir(), modelKeyHash(model, layer), layer, scan.key);
}

function allFinite(a: ArrayLike<number>): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return false;
  return true;
}

/** Chunks of the statistics pass between two completion waits. */
const FLUSH_CHUNKS = 32;

/** Most bytes of accumulated sums read back in one map at the end of the statistics pass. */
const READ_GROUP_BYTES = 256 * 2 ** 20;

/**
 * C = E[k kᵀ] of `mlp_post.L` for each layer in `layers`: from prebuilt files when `opts.files` is
 * given, else from the cache when present, otherwise computed in one pass over the corpus (all missing
 * layers at once) and cached. Without files or a corpus: an {@link InputError} ({@link NO_STATS_MESSAGE}).
 */
export async function layerStats(
  model: TransformerModel,
  tokenizer: Tokenizer,
  layers: number[],
  opts: StatsOptions = {},
): Promise<Map<number, LayerStats>> {
  const I = model.config.nInner;
  const out = new Map<number, LayerStats>();
  if (opts.files && opts.files.length > 0) {
    for (const [layer, { file, stats }] of await findStatsFiles(opts.files, layers, I)) {
      out.set(layer, { layer, mom2: stats.mom2, count: stats.count, file, cached: true });
    }
    return out;
  }
  if (opts.corpus === undefined || fileOf(opts.corpus).file === "") {
    throw new InputError(NO_STATS_MESSAGE, { field: "--stats-corpus" });
  }
  const { file: corpus, eosDelimit = false } = fileOf(opts.corpus);
  const maxSamples = opts.maxSamples ?? 100000;
  const accumulation = opts.accumulation ?? "f32";
  if (accumulation !== "f32" && accumulation !== "kahan") {
    throw new InputError(`accumulation must be "f32" or "kahan", got ${JSON.stringify(accumulation)}`, {
      field: "accumulation",
    });
  }
  if (opts.maxTokens !== undefined && !(Number.isSafeInteger(opts.maxTokens) && opts.maxTokens > 0)) {
    throw new InputError(`maxTokens must be a positive integer, got ${opts.maxTokens}`, {
      field: "maxTokens",
    });
  }
  if (
    opts.windowRecords !== undefined && !(Number.isSafeInteger(opts.windowRecords) && opts.windowRecords > 0)
  ) {
    throw new InputError(`windowRecords must be a positive integer, got ${opts.windowRecords}`, {
      field: "windowRecords",
    });
  }
  const dir = opts.cacheDir ?? defaultStatsDir();
  const scan = await scanCorpus(corpus, layers, tokenizer, {
    eosDelimit,
    maxSamples,
    nPositions: model.config.nPositions,
    maxTokens: opts.maxTokens,
    accumulation: opts.accumulation === "kahan" ? "kahan" : undefined,
  });
  const corpusHash = scan.key;
  const todo: Array<{ layer: number; file: string }> = [];
  for (const layer of layers) {
    const file = cacheFile(dir, modelKeyHash(model, layer), layer, corpusHash);
    try {
      const st = await readSafetensors(file);
      const t = st.tensors.get("mom2");
      const count = Number(st.metadata.count);
      // The name is a hash of the model and corpus keys; the metadata must agree (a renamed or copied
      // file is recomputed, never trusted). Writes are atomic renames of identical content, so two runs
      // filling the same cache need no lock.
      const keyOk = st.metadata.corpus_key === corpusHash && st.metadata.layer === String(layer);
      if (keyOk && t && t.shape.length === 2 && t.shape[0] === I && t.shape[1] === I && count > 0) {
        out.set(layer, { layer, mom2: Float64Array.from(t.data), count, file, cached: true });
        continue;
      }
    } catch {
      // Not cached (or unreadable): recompute.
    }
    todo.push({ layer, file });
  }
  if (todo.length === 0) return out;
  // Fail before minutes of GPU work, not after, when the cache cannot be written (a prompt on a terminal
  // is left to Deno).
  const write = Deno.permissions.querySync({ name: "write", path: dir }).state;
  if (write === "denied" || (write === "prompt" && !Deno.stdin.isTerminal())) {
    throw new PermissionError("write", dir, CACHE_WRITE);
  }

  const gpu: Gpu = model.gpu;
  const kahan = accumulation === "kahan";
  const acc = new Map<number, { sum: GpuTensor; comp?: GpuTensor }>();
  const batchTokens = opts.batchTokens ?? 4096;
  const stopAfter = Math.max(...todo.map(({ layer }) => layer));
  // Progress in records: JSONL lines (known from the scan) or, for plain text, unknown until read.
  const totalRecords = scan.jsonl ? Math.min(maxSamples, scan.records) : 0;
  let done = 0, count = 0, records = 0;
  let product: GpuTensor | undefined;
  let chunks = 0;
  try {
    for (const { layer } of todo) {
      const sum = createTensor(gpu, [I, I], { name: `mom2.${layer}` });
      await fill(gpu, sum, 0);
      let comp: GpuTensor | undefined;
      if (kahan) {
        comp = createTensor(gpu, [I, I], { name: `mom2_comp.${layer}` });
        await fill(gpu, comp, 0);
      }
      acc.set(layer, { sum, comp });
    }
    if (kahan) product = createTensor(gpu, [I, I], { name: "mom2_batch" });
    const windows = corpusWindows(
      corpus,
      scan,
      tokenizer,
      model.config.nPositions,
      maxSamples,
      eosDelimit,
      opts.maxTokens ?? Number.MAX_SAFE_INTEGER,
      opts.windowRecords ?? WINDOW_RECORDS,
    );
    for await (const win of windows) {
      records += win.length;
      const byLen = new Map<number, number[][]>();
      for (const s of win) {
        const list = byLen.get(s.length) ?? [];
        list.push(s);
        byLen.set(s.length, list);
      }
      for (const [T, list] of byLen) {
        const bs = Math.max(1, Math.floor(batchTokens / T));
        for (let i = 0; i < list.length; i += bs) {
          const chunk = list.slice(i, i + bs);
          const rows = chunk.length * T;
          // Blocks above the highest layer asked for, the final norm and the head do not run, and the
          // keys never leave the GPU: each layer's kᵀk is recorded on its mlp_post tensor as the forward
          // reaches it (a tap), so a chunk costs no completion wait.
          const taps = new Map(todo.map(({ layer }) => {
            const a = acc.get(layer)!;
            // f32: one running sum (ROME's mom2_dtype float32); kahan: this batch's product, then a
            // compensated add into (sum, comp).
            const tap = async (k: GpuTensor) => {
              await matmul(gpu, k, k, kahan ? product! : a.sum, {
                M: I,
                N: I,
                K: rows,
                transA: true,
                accumulate: !kahan,
              });
              if (kahan) await kahanAccumulate(gpu, a.sum, a.comp!, product!);
            };
            return [`mlp_post.${layer}`, tap] as const;
          }));
          await model.forward(chunk, { stopAfter, taps });
          // A wait now and then keeps the recorded work from running far ahead of the GPU.
          if (++chunks % FLUSH_CHUNKS === 0) await gpu.flush();
          count += rows;
          done += chunk.length;
          opts.onProgress?.(done, Math.max(totalRecords, done));
        }
      }
    }
    await withPermissions(() => Deno.mkdir(dir, { recursive: true }), CACHE_WRITE);
    // The layers' sums (and compensations) come back in one map (one completion wait) per group of
    // layers whose host copies fit in READ_GROUP_BYTES (at least one layer).
    const group = Math.max(1, Math.floor(READ_GROUP_BYTES / (I * I * 4 * (kahan ? 2 : 1))));
    let sums: Float32Array[] = [];
    let at = 0;
    for (const [li, { layer, file }] of todo.entries()) {
      if (li % group === 0) {
        sums = await readTensors(
          todo.slice(li, li + group).flatMap(({ layer: l }) => {
            const g = acc.get(l)!;
            return g.comp ? [g.sum, g.comp] : [g.sum];
          }),
        );
        at = 0;
      }
      const a = acc.get(layer)!;
      const sum = Float64Array.from(sums[at++]);
      if (a.comp) {
        const comp = sums[at++];
        for (let k = 0; k < sum.length; k++) sum[k] -= comp[k];
      }
      // The keys stayed on the GPU: a non-finite key (or a sum past the float32 range) shows here, before
      // anything reaches the cache.
      if (!allFinite(sum)) {
        throw new NonFiniteError(
          `key statistics: a non-finite key (or a sum past float32) at mlp_post.${layer}`,
          `mlp_post.${layer}`,
        );
      }
      const mom2 = new Float64Array(I * I);
      // Symmetrise (the GPU sum is symmetric up to rounding) and divide by the token count.
      for (let x = 0; x < I; x++) {
        for (let y = 0; y < I; y++) mom2[x * I + y] = 0.5 * (sum[x * I + y] + sum[y * I + x]) / count;
      }
      await withPermissions(
        () =>
          writeSafetensors(file, { mom2: { shape: [I, I], data: Float32Array.from(mom2) } }, {
            count: String(count),
            layer: String(layer),
            corpus,
            corpus_key: corpusHash,
            eos_delimit: String(eosDelimit),
            samples: String(records),
            accumulation,
            ...(opts.maxTokens !== undefined ? { max_tokens: String(opts.maxTokens) } : {}),
          }),
        CACHE_WRITE,
      );
      // Use exactly what the cache holds, so a cached run gives the same edit.
      out.set(layer, { layer, mom2: Float64Array.from(Float32Array.from(mom2)), count, file, cached: false });
    }
  } finally {
    product?.destroy();
    for (const a of acc.values()) {
      a.sum.destroy();
      a.comp?.destroy();
    }
  }
  return out;
}

/** Where the CLI takes key statistics from ({@link resolveStatsSource}). */
export interface StatsSource {
  /** The corpus: `--stats-corpus`, else the one the model folder declares. */
  statsCorpus?: StatsCorpus;
  /** Prebuilt statistics files or folders (`--stats`, comma-separated). */
  stats?: string[];
  /** The model folder's own declaration, if any. */
  declared?: StatsCorpus;
}

/**
 * Resolves `--stats-corpus FILE` / `--stats FILE[,FILE...]` against the model folder's declaration.
 * An explicit corpus is framed the way the model folder declares (`eos_delimit` is the model's
 * convention, not the corpus's); without a declaration, as ROME does (no framing).
 */
export async function resolveStatsSource(
  modelDir: string,
  corpusFlag?: string,
  statsFlag?: string,
): Promise<StatsSource> {
  if (corpusFlag !== undefined && statsFlag !== undefined) {
    throw new InputError("give --stats (prebuilt statistics) or --stats-corpus (a corpus), not both", {
      field: "--stats",
    });
  }
  if (corpusFlag !== undefined && corpusFlag.trim() === "") {
    throw new InputError("must name a corpus file", { field: "--stats-corpus" });
  }
  const declared = await declaredStatsCorpus(modelDir);
  let stats: string[] | undefined;
  if (statsFlag !== undefined) {
    stats = statsFlag.split(",").map((s) => s.trim()).filter((s) => s !== "");
    if (stats.length === 0) throw new InputError("must name statistics files", { field: "--stats" });
  }
  const statsCorpus = corpusFlag !== undefined
    ? { file: corpusFlag, eosDelimit: declared?.eosDelimit ?? false }
    : stats
    ? undefined
    : declared;
  return { statsCorpus, stats, declared };
}

/**
 * Stops before any work when `method` needs key statistics (ROME with `mom2_adjustment`, MEMIT, AlphaEdit,
 * EMMET) and
 * neither `src` nor the user's hparams (`mom2_dataset` naming a file) provide them.
 */
export function checkStatsSource(
  method: string,
  hparams: Record<string, unknown> | undefined,
  src: StatsSource,
) {
  if (!["rome", "memit", "alphaedit", "emmet"].includes(method)) return;
  if (method === "rome" && hparams?.mom2_adjustment === false) return;
  if (src.stats || src.statsCorpus) return;
  const ds = hparams?.mom2_dataset;
  if (typeof ds === "string" && ds !== "" && ds !== "wikipedia" && ds !== "wikitext") return;
  throw new InputError(`${method}: ${NO_STATS_MESSAGE}`, { field: "--stats-corpus" });
}

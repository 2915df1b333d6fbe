/**
 * GPU memory of a model and of an analysis, estimated from the configuration before anything is
 * allocated, and the check that turns "does not fit" into one typed error.
 *
 * The estimate mirrors, buffer by buffer, what ./transformer.ts and ./backward.ts allocate through
 * `createTensor` (4-byte elements, 2-byte ones for weights kept in 16 bits, each buffer rounded up to 16 bytes); tests/memory_test.ts compares it
 * with the bytes the GPU's allocation counter (`Gpu.allocatedBytes`) actually saw. Not counted:
 * uniform buffers and the host-visible staging buffers of reads (small, or host memory on a discrete GPU).
 *
 * WebGPU has no query for a device's memory. The bound {@link deviceBudget} uses is, in order:
 * - a budget set on the Gpu ({@link Gpu.setMemoryBudget}: tests, embedders), else
 * - `ENGRAM_GPU_MEMORY` (bytes, or with a K/M/G/T[i]B suffix, e.g. `24GB`, `80GiB`) when set;
 * - for a CPU adapter (llvmpipe, lavapipe, SwiftShader, or any fallback adapter), whose buffers are host
 *   memory: the host memory available now (`Deno.systemMemoryInfo().available`) plus the counted buffers;
 * - otherwise the host's total memory, a loose upper bound (engram keeps a host copy of every weight, so
 *   a model larger than the host cannot run either); set `ENGRAM_GPU_MEMORY` to the card's size for a
 *   real bound, else the driver's out-of-memory error still surfaces, later, as a GpuError at a flush.
 * Independently of that, every tensor must fit the adapter's `maxBufferSize`: a tensor larger than a
 * storage binding can be bound in windows, but never split across buffers.
 */
import { OutOfMemoryError, ShapeError } from "../errors.ts";
import { blockedQkvLayout, neoxQkvLayout } from "../gpu/attention.ts";
import type { Gpu } from "../gpu/device.ts";
import { GpuTensor } from "../gpu/tensor.ts";
import { type ModelConfig, resolveConfig, type ResolvedConfig } from "./config.ts";
import { familySpec, familyWeightShapes, linearShape } from "./families/mod.ts";
import { siteWidth } from "./hooks.ts";
import { normStatsWidth } from "./layers.ts";
import { envOverride, sysOptional } from "../io/permissions.ts";

/** Options of {@link estimateMemory}: the analysis whose memory is estimated. */
export interface MemoryOptions {
  /** Sequences per batch (B). With `seqLen`, absent or 0: only the weights (loading the model). */
  batch?: number;
  /** Tokens per sequence (T). */
  seqLen?: number;
  /** A forward that saves every layer's activations plus the backward pass (default: inference). */
  backward?: boolean;
  /** Weights that get gradient buffers (checkpoint or GPU names), "all", or none (default). */
  gradients?: "all" | string[];
  /** The checkpoint has its own head (not tied to the embedding); families that cannot tie always do. */
  untiedHead?: boolean;
  /** Inference returns the logits of every position [B·T, V] (`allLogits`). */
  allLogits?: boolean;
  /** Hook sites captured by the forward (each a snapshot of the site, held until it is read back). */
  capture?: string[];
  /**
   * GPU weight tensors kept in 16 bits, by GPU name ({@link gpuWeightDtypes}): counted at 2 bytes per
   * element. Gradient buffers stay f32. Default: every weight f32.
   */
  weightDtypes?: ReadonlyMap<string, Weight16>;
  /**
   * Backward: rows with a counted target (default B·T). As in `lossAndGradients`, when at most half the
   * rows count, the head runs on those rows only.
   */
  lossRows?: number;
}

/** Bytes by part. {@link MemoryEstimate.peak} is their sum. */
export interface MemoryParts {
  /** Weight tensors on the GPU (fused q/k/v counted once). */
  weights: number;
  /** Rotary cos/sin tables for T positions (cached by the model); 0 for learned positions. */
  rope: number;
  /** Inference: the activation buffers reused by every layer for B×T rows (attention probabilities apart). */
  workspace: number;
  /** Backward: every layer's saved activations for B×T rows (attention probabilities apart). */
  savedActivations: number;
  /** Attention probabilities [B, H, T, T]: once for inference when captured, once per layer for backward. */
  attentionProbs: number;
  /** Gradient buffers, one per GPU weight tensor asked for. */
  gradients: number;
  /** Inference with `allLogits`: the logits of every position [B·T, V]. */
  logits: number;
  /** Other transient buffers alive at the peak (head outputs, backward scratch, captures). */
  scratch: number;
  /** Backward: the attention backward's scratch [B, H, T, T], cached per device after the call. */
  attentionScratch: number;
}

/** A tensor of the estimate, by name (the largest one is reported). */
export interface EstimatedTensor {
  name: string;
  shape: number[];
  bytes: number;
}

/** What {@link estimateMemory} returns. */
export interface MemoryEstimate {
  /** The model, in words (family, layers × width, vocabulary, parameters). */
  model: string;
  /** The analysis, in words ("loading", "inference on 2×16 tokens", "backward on 2×16 tokens"). */
  analysis: string;
  parts: MemoryParts;
  /** Most bytes alive at once during the call (the sum of the parts). */
  peak: number;
  /** Bytes still allocated when the call returns (weights, cached tables and buffers). */
  resident: number;
  /** The largest single tensor: it must fit the adapter's maxBufferSize. */
  largest: EstimatedTensor;
  /** Parameters of the model. */
  parameters: number;
}

/** Bytes of the buffer `createTensor` allocates for `numel` 4-byte elements (at least 4, rounded to 16). */
export function tensorBytes(numel: number): number {
  return Math.ceil(Math.max(4, numel * 4) / 16) * 16;
}

/** Bytes of the buffer `createTensor` allocates for `numel` packed 16-bit elements (ceil(numel/2) words). */
export function tensorBytes16(numel: number): number {
  return Math.ceil(Math.max(4, Math.ceil(numel / 2) * 4) / 16) * 16;
}

/** GPU storage of a weight kept in 16 bits (src/gpu/tensor.ts DType). */
export type Weight16 = "bf16" | "f16";

/**
 * Which GPU weight tensors keep their file's 16-bit dtype, by GPU name: the token embedding, an untied
 * head, and every linear layer's weight (the matmul B operands and the embedding gather, whose kernels
 * decode 16-bit values); a fused q/k/v tensor only when q, k and v share one 16-bit dtype. Norms, biases
 * and learned position tables stay f32 (small; their kernels read f32). `fileDtypes` are the checkpoint's
 * dtypes by checkpoint name ("F32", "F16", "BF16"; `HFModel.dtypes`); absent names are F32.
 */
export function gpuWeightDtypes(
  config: ModelConfig,
  untiedHead: boolean,
  fileDtypes: ReadonlyMap<string, string>,
): Map<string, Weight16> {
  const c = resolveConfig(config);
  const spec = familySpec(c);
  const as16 = (d: string | undefined): Weight16 | undefined =>
    d === "BF16" ? "bf16" : d === "F16" ? "f16" : undefined;
  const out = new Map<string, Weight16>();
  const keep = (gpuName: string, parts: string[]) => {
    const ds = parts.map((p) => as16(fileDtypes.get(p)));
    if (ds[0] && ds.every((d) => d === ds[0])) out.set(gpuName, ds[0]);
  };
  keep(spec.embed, [spec.embed]);
  if (untiedHead || !spec.tiedHeadAllowed) keep(spec.head, [spec.head]);
  for (let l = 0; l < c.nLayer; l++) {
    const s = spec.layer(c, l);
    if (s.qkv.length > 1) keep(fusedName(s.qkv[0].weight), s.qkv.map((p) => p.weight));
    else keep(s.qkv[0].weight, [s.qkv[0].weight]);
    for (const p of [s.o, s.up, s.gate, s.down]) if (p) keep(p.weight, [p.weight]);
  }
  return out;
}

interface Alloc {
  name: string;
  shape: number[];
}

const prod = (s: number[]) => s.reduce((a, d) => a * d, 1);
const bytesOf = (a: Alloc[]) => a.reduce((s, t) => s + tensorBytes(prod(t.shape)), 0);

/** GPU name of a layer's stacked q/k/v tensor (mirrors ./transformer.ts). */
function fusedName(qName: string): string {
  return qName.replace(/q_proj\.(weight|bias)$/, "qkv_proj.$1");
}

/**
 * The GPU weight tensors of a model (separate q/k/v projections stacked into one, as
 * `TransformerModel.create` does) and the GPU tensor holding each checkpoint tensor.
 */
export function gpuWeightTensors(
  config: ModelConfig,
  untiedHead = false,
): { tensors: EstimatedTensor[]; gpuNameOf: Map<string, string> } {
  // The model checks every forward against the same config object: its weight list is built once.
  const hit = weightCache.get(config)?.[untiedHead ? 1 : 0];
  if (hit) return hit;
  const r = buildWeightTensors(config, untiedHead);
  const entry = weightCache.get(config) ?? [undefined, undefined];
  entry[untiedHead ? 1 : 0] = r;
  weightCache.set(config, entry);
  return r;
}

type WeightTensors = { tensors: EstimatedTensor[]; gpuNameOf: Map<string, string> };
const weightCache = new WeakMap<ModelConfig, [WeightTensors | undefined, WeightTensors | undefined]>();

function buildWeightTensors(config: ModelConfig, untiedHead: boolean): WeightTensors {
  const c = resolveConfig(config);
  const spec = familySpec(c);
  const shapes = familyWeightShapes(spec, c, untiedHead);
  const gpuNameOf = new Map<string, string>();
  const tensors: EstimatedTensor[] = [];
  const add = (name: string, shape: number[]) =>
    tensors.push({ name, shape, bytes: tensorBytes(prod(shape)) });
  for (let l = 0; l < c.nLayer; l++) {
    const s = spec.layer(c, l);
    if (s.qkv.length < 2) continue;
    const w = fusedName(s.qkv[0].weight);
    const rows = s.qkv.reduce((a, p) => a + linearShape(p)[0], 0);
    add(w, [rows, linearShape(s.qkv[0])[1]]);
    for (const p of s.qkv) gpuNameOf.set(p.weight, w);
    if (s.qkv[0].bias) {
      const b = fusedName(s.qkv[0].bias);
      add(b, [s.qkv.reduce((a, p) => a + p.out, 0)]);
      for (const p of s.qkv) gpuNameOf.set(p.bias!, b);
    }
  }
  for (const [name, shape] of shapes) {
    if (gpuNameOf.has(name)) continue;
    gpuNameOf.set(name, name);
    add(name, shape);
  }
  return { tensors, gpuNameOf };
}

/** Activations of one block, as `TransformerModel.allocLayer` makes them (probabilities returned apart). */
function layerAllocs(c: ResolvedConfig, R: number, shared: boolean): Alloc[] {
  const spec = familySpec(c);
  const s = spec.layer(c, 0);
  const { nEmbd: C, nInner: I, nHead: H, headDim: D } = c;
  const W = qkvWidth(c);
  const sw = normStatsWidth(c.norm);
  const a: Alloc[] = [];
  const mk = (name: string, w: number) => a.push({ name, shape: [R, w] });
  if (!shared) mk("resid_pre", C);
  mk("ln_1", C);
  mk("ln_1.stats", sw);
  mk("qkv", W);
  if (c.qkNorm) {
    mk("qkv_normed", W);
    a.push({ name: "q_norm.stats", shape: [R * H] }, { name: "k_norm.stats", shape: [R * c.nKvHead] });
  }
  mk("head_out", H * D);
  mk("attn_out", C);
  if (!shared) mk("resid_mid", C);
  if (s.ln2) {
    mk("ln_2", C);
    mk("ln_2.stats", sw);
  }
  mk("mlp_pre", I);
  if (s.gate) mk("mlp_gate", I);
  mk("mlp_post", I);
  mk("mlp_out", C);
  return a;
}

function qkvWidth(c: ResolvedConfig): number {
  const layout = familySpec(c).layer(c, 0).qkvLayout === "neox"
    ? neoxQkvLayout(c.nHead, c.headDim)
    : blockedQkvLayout(c.nHead, c.nKvHead, c.headDim);
  return layout.rowStride;
}

const gb = (n: number) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : `${(n / 1e6).toFixed(1)} MB`);

/**
 * GPU bytes of loading a model with `config` and running an analysis on a batch of `batch` × `seqLen`
 * tokens (see {@link MemoryOptions}), by part, from the configuration alone. Exact for the buffers
 * ./transformer.ts and ./backward.ts allocate, except the backward's embedding-gradient index lists,
 * counted as if every token of the batch were distinct (an upper bound by at most 32 bytes per token).
 */
export function estimateMemory(config: ModelConfig, opts: MemoryOptions = {}): MemoryEstimate {
  const c = resolveConfig(config);
  const spec = familySpec(c);
  const { nEmbd: C, nInner: I, nHead: H, headDim: D, vocabSize: V, nLayer: L } = c;
  const B = opts.batch ?? 0, T = opts.seqLen ?? 0;
  for (const [k, v] of [["batch", B], ["seqLen", T]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new ShapeError(`${k} must be a whole number, got ${v}`, { field: k });
    }
  }
  const untied = Boolean(opts.untiedHead) || !spec.tiedHeadAllowed;
  const { tensors: f32Weights, gpuNameOf } = gpuWeightTensors(config, untied);
  const w16 = opts.weightDtypes;
  const weightTensors = w16?.size
    ? f32Weights.map((t) => (w16.has(t.name) ? { ...t, bytes: tensorBytes16(prod(t.shape)) } : t))
    : f32Weights;
  const all: EstimatedTensor[] = [...weightTensors];
  const sized = (a: Alloc[]) => {
    for (const t of a) all.push({ ...t, bytes: tensorBytes(prod(t.shape)) });
    return bytesOf(a);
  };
  const parts: MemoryParts = {
    weights: weightTensors.reduce((s, t) => s + t.bytes, 0),
    rope: 0,
    workspace: 0,
    savedActivations: 0,
    attentionProbs: 0,
    gradients: 0,
    logits: 0,
    scratch: 0,
    attentionScratch: 0,
  };
  const parameters = weightTensors.reduce((s, t) => s + prod(t.shape), 0);
  const model = `${c.architecture} (${c.family}, ${L} layers × ${C}, vocabulary ${V}, ${
    (parameters / 1e6).toFixed(1)
  }M parameters)`;
  let gradNames: Set<string> = new Set();
  if (opts.gradients === "all") gradNames = new Set(weightTensors.map((t) => t.name));
  else if (opts.gradients) {
    const gpuNames = new Set(weightTensors.map((t) => t.name));
    for (const n of opts.gradients) {
      const g = gpuNames.has(n) ? n : gpuNameOf.get(n);
      if (!g) throw new ShapeError("no such weight", { field: n });
      gradNames.add(g);
    }
  }
  parts.gradients = sized(
    weightTensors.filter((t) => gradNames.has(t.name)).map((t) => ({
      name: `grad:${t.name}`,
      shape: t.shape,
    })),
  );
  const R = B * T;
  if (R === 0) {
    const analysis = parts.gradients ? "loading, with gradient buffers" : "loading";
    const peak = parts.weights + parts.gradients;
    return { model, analysis, parts, peak, resident: peak, largest: largestOf(all), parameters };
  }
  const sw = normStatsWidth(c.norm);
  const probs: Alloc = { name: "attn_probs", shape: [B, H, T, T] };
  if (c.rope) {
    parts.rope = sized([{ name: "rope.cos", shape: [T, c.rope.dim / 2] }, {
      name: "rope.sin",
      shape: [T, c.rope.dim / 2],
    }]);
  }
  // The head on the last positions and its non-finite flag (./transformer.ts `run`), and the captures.
  const forwardTemps: Alloc[] = [
    { name: "last_hidden", shape: [B, C] },
    { name: "logits", shape: [B, V] },
    { name: "logprobs", shape: [B, V] },
    { name: "logprobs.nonfinite", shape: [1] },
  ];
  for (const s of opts.capture ?? []) {
    const m = /^attn_pattern\./.test(s);
    forwardTemps.push({ name: `capture:${s}`, shape: m ? [B * H * T * T] : [R * siteWidth(c, s)] });
  }
  const wantProbs = Boolean(opts.backward) || (opts.capture ?? []).some((s) => s.startsWith("attn_pattern."));
  const logits = opts.allLogits ? sized([{ name: "all_logits", shape: [R, V] }]) : 0;
  const fwdScratch = sized(forwardTemps);
  const analysis = `${opts.backward ? "backward" : "inference"} on ${B}×${T} tokens`;
  if (!opts.backward) {
    parts.workspace = sized([
      { name: "residual", shape: [R, C] },
      { name: "ids", shape: [R] },
      { name: "positions", shape: [R] },
      { name: "ln_f", shape: [R, C] },
      { name: "ln_f.stats", shape: [R, sw] },
      ...layerAllocs(c, R, true),
    ]);
    parts.attentionProbs = wantProbs ? sized([probs]) : 0;
    parts.logits = logits;
    parts.scratch = fwdScratch;
    const resident = parts.weights + parts.rope + parts.workspace + parts.attentionProbs + parts.gradients;
    return { model, analysis, parts, peak: sum(parts), resident, largest: largestOf(all), parameters };
  }
  // forwardForBackward: every layer's own activations.
  const perLayer = layerAllocs(c, R, false);
  parts.savedActivations = sized([
    { name: "ids", shape: [R] },
    { name: "positions", shape: [R] },
    { name: "resid_final", shape: [R, C] },
    { name: "ln_f", shape: [R, C] },
    { name: "ln_f.stats", shape: [R, sw] },
  ]) + L * bytesOf(perLayer);
  for (const t of perLayer) all.push({ ...t, bytes: tensorBytes(prod(t.shape)) });
  parts.attentionProbs = L * sized([probs]);
  // backward.ts `backwardCore`: the head's logits and their gradient on n rows, then per-block scratch.
  const counted = opts.lossRows ?? R;
  const sparse = counted * 2 <= R;
  const n = sparse ? counted : R;
  const W = qkvWidth(c);
  const bwd: Alloc[] = [
    { name: "zeros", shape: [Math.max(C, I, H * D)] },
    { name: "logits", shape: [n, V] },
    { name: "dlogits", shape: [n, V] },
    { name: "targets", shape: [n] },
    { name: "row_losses", shape: [n] },
    { name: "d_ln", shape: [R, C] },
    { name: "d_resid", shape: [R, C] },
    { name: "d_mlp_branch", shape: [R, C] },
    { name: "d_attn_branch", shape: [R, C] },
    { name: "d_act", shape: [R, I] },
    { name: "d_fc", shape: [R, I] },
    { name: "d_att", shape: [R, H * D] },
    { name: "d_qkv", shape: [R, W] },
  ];
  if (sparse) bwd.push({ name: "head_in", shape: [n, C] }, { name: "d_ln_rows", shape: [n, C] });
  if (c.activation === "silu") bwd.push({ name: "d_gate", shape: [R, I] });
  if (c.qkNorm) bwd.push({ name: "d_qkv_raw", shape: [R, W] });
  if (c.parallelResidual === "two_norms") bwd.push({ name: "d_ln_2", shape: [R, C] });
  // Embedding gradient: index lists of each scatter (one at a time), for at most min(R, V) distinct ids.
  let scatter = 0;
  if (gradNames.has(spec.embed)) {
    const U = Math.min(R, V);
    scatter = bytesOf([{ name: "uniq", shape: [U] }, { name: "offsets", shape: [U + 1] }, {
      name: "rows",
      shape: [R],
    }]);
  }
  if (spec.positions && gradNames.has(spec.positions)) {
    const U = Math.min(T, c.nPositions);
    scatter = Math.max(
      scatter,
      bytesOf([{ name: "uniq", shape: [U] }, { name: "offsets", shape: [U + 1] }, {
        name: "rows",
        shape: [R],
      }]),
    );
  }
  parts.attentionScratch = sized([{ name: "attentionBackward.scratch", shape: [B * H * T * T] }]);
  const bwdScratch = sized(bwd) + scatter;
  // The peak is the backward's (its scratch outweighs the forward's head outputs) unless logits of
  // every position were asked of the forward.
  parts.scratch = Math.max(fwdScratch + logits, bwdScratch);
  const resident = parts.weights + parts.rope + parts.gradients + parts.attentionScratch;
  return { model, analysis, parts, peak: sum(parts), resident, largest: largestOf(all), parameters };
}

function sum(p: MemoryParts): number {
  return Object.values(p).reduce((a, b) => a + b, 0);
}

function largestOf(all: EstimatedTensor[]): EstimatedTensor {
  return all.reduce((a, t) => (t.bytes > a.bytes ? t : a), all[0]);
}

/** What the adapter allows: total bytes of buffers, what is free now, and where the bound comes from. */
export interface DeviceBudget {
  /** Bytes of tensor buffers engram may hold in all. */
  totalBytes: number;
  /** totalBytes minus the buffers held now. */
  freeBytes: number;
  /** Largest single buffer (the adapter's maxBufferSize). */
  maxBufferSize: number;
  /** Where totalBytes comes from (see the module comment). */
  source: string;
}

/** Parses `ENGRAM_GPU_MEMORY`-style sizes: "123456", "24GB", "80GiB", "512M". NaN when malformed. */
export function parseBytes(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B?\s*$/i.exec(s);
  if (!m) return NaN;
  const pow = " KMGT".indexOf(m[2].toUpperCase() || " ");
  const base = m[3] ? 1024 : 1000;
  return Math.floor(Number(m[1]) * base ** pow);
}

/** Whether the adapter computes on the CPU (its buffers are host memory). */
export function isCpuAdapter(gpu: Gpu): boolean {
  const d = gpu.describe();
  return d.isFallbackAdapter ||
    /llvmpipe|lavapipe|swiftshader|softpipe/i.test(`${d.description} ${d.device}`);
}

/**
 * The budget an ENGRAM_GPU_MEMORY value gives (undefined when unset or empty), with `held` bytes in use;
 * a malformed value is a {@link ShapeError} naming the variable.
 */
export function envBudget(
  env: string | undefined,
  held: number,
  maxBufferSize: number,
): DeviceBudget | undefined {
  if (env === undefined || env === "") return undefined;
  const total = parseBytes(env);
  if (!(total > 0)) {
    throw new ShapeError(`ENGRAM_GPU_MEMORY must be a size such as 24GB or 25769803776, got '${env}'`, {
      field: "ENGRAM_GPU_MEMORY",
    });
  }
  return { totalBytes: total, freeBytes: total - held, maxBufferSize, source: "ENGRAM_GPU_MEMORY" };
}

/** The memory bound of {@link checkFits} for `gpu` (see the module comment for the order of sources). */
export function deviceBudget(gpu: Gpu): DeviceBudget {
  const maxBufferSize = gpu.device.limits.maxBufferSize;
  const held = gpu.allocatedBytes;
  if (gpu.memoryBudget !== undefined) {
    const total = gpu.memoryBudget;
    return { totalBytes: total, freeBytes: total - held, maxBufferSize, source: "Gpu.setMemoryBudget" };
  }
  // No --allow-env / --allow-sys: the override / the host's memory is unknown, the next source applies.
  const fromEnv = envBudget(envOverride("ENGRAM_GPU_MEMORY"), held, maxBufferSize);
  if (fromEnv) return fromEnv;
  const info: { total: number; available: number } | undefined = sysOptional(() => Deno.systemMemoryInfo());
  if (!info) {
    return { totalBytes: Infinity, freeBytes: Infinity, maxBufferSize, source: "unknown (no --allow-sys)" };
  }
  if (isCpuAdapter(gpu)) {
    return {
      totalBytes: info.available + held,
      freeBytes: info.available,
      maxBufferSize,
      source: "host memory available to the CPU adapter",
    };
  }
  return {
    totalBytes: info.total,
    freeBytes: info.total - held,
    maxBufferSize,
    source: "host memory (WebGPU reports no device memory; set ENGRAM_GPU_MEMORY to the card's size)",
  };
}

/** Options of {@link checkFits}. */
export interface CheckFitsOptions {
  /** Bytes of the estimate already allocated (e.g. the model's weights before a forward). Default 0. */
  held?: number;
  /** A budget to check against instead of {@link deviceBudget} (tests, callers with their own bound). */
  budget?: DeviceBudget;
}

/**
 * Throws {@link OutOfMemoryError} when `estimate` cannot fit `gpu`: its largest tensor exceeds the
 * adapter's maxBufferSize, or its peak, less the `held` bytes already allocated, exceeds the free
 * budget. `what` names the model or analysis in the message. Returns the budget checked against.
 */
export function checkFits(
  gpu: Gpu,
  estimate: MemoryEstimate,
  what: string,
  opts: CheckFitsOptions = {},
): DeviceBudget {
  const budget = opts.budget ?? deviceBudget(gpu);
  const big = estimate.largest;
  if (big.bytes > budget.maxBufferSize) {
    throw new OutOfMemoryError(
      `${what}: tensor '${big.name}' [${big.shape}] of ${estimate.model} needs ${big.bytes} bytes, more than ` +
        `this adapter's largest buffer (maxBufferSize) of ${budget.maxBufferSize} bytes; a tensor may be ` +
        `bound in windows but not split across buffers`,
      { neededBytes: big.bytes, allowedBytes: budget.maxBufferSize, field: big.name },
    );
  }
  const need = estimate.peak - (opts.held ?? 0);
  if (need > budget.freeBytes) {
    const p = estimate.parts;
    const shown = Object.entries(p).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join(", ");
    throw new OutOfMemoryError(
      `${what}: ${estimate.analysis} of ${estimate.model} needs ${estimate.peak} bytes of GPU buffers ` +
        `(${gb(estimate.peak)}: ${shown})${
          opts.held ? `, ${need} more than it holds` : ""
        }; this adapter allows ` +
        `${Math.max(0, budget.freeBytes)} bytes (${
          gb(Math.max(0, budget.freeBytes))
        } free of ${budget.totalBytes}, ` +
        `from ${budget.source})`,
      { neededBytes: need, allowedBytes: Math.max(0, budget.freeBytes), field: "memory" },
    );
  }
  return budget;
}

/**
 * Bytes of the distinct GPU tensors reachable from `roots` (tensors, maps, arrays and plain objects
 * of them): what a model holds, for {@link CheckFitsOptions.held}.
 */
export function heldBytes(...roots: unknown[]): number {
  const seen = new Set<unknown>();
  let total = 0;
  const walk = (v: unknown): void => {
    if (v === null || typeof v !== "object" || seen.has(v)) return;
    seen.add(v);
    if (v instanceof GpuTensor) total += v.buffer.size;
    else if (v instanceof Map) { for (const x of v.values()) walk(x); }
    else if (Array.isArray(v)) v.forEach(walk);
    else if (Object.getPrototypeOf(v) === Object.prototype) { for (const x of Object.values(v)) walk(x); }
  };
  roots.forEach(walk);
  return total;
}

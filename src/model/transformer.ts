/**
 * A transformer language model of any family (./families/) on WebGPU: weights uploaded once, a
 * batched forward pass with named hook sites (see ./hooks.ts), and log-probabilities of the next token.
 *
 * A batch is B sequences of equal length T (causal tracing runs many corrupted copies of one prompt);
 * all activations are [B * T, width] row-major with rows ordered b * T + t. One block, for every family:
 *
 *   h = norm_1(x);  qkv = h W_qkv;  att = attention(rotary(qk_norm(qkv)));  a = att W_o
 *   sequential:     x = x + a;  m = mlp(norm_2(x));  x = x + m
 *   parallel:       m = mlp(norm_2(x) or h);  x = x + a + m
 *
 * Separate q/k/v projections (Llama, GPT-J) are stacked into one fused weight on the GPU, so the
 * attention kernels always read one qkv buffer; the host copy keeps the checkpoint's tensors.
 */
import { InputError, ShapeError } from "../errors.ts";
import type { Gpu } from "../gpu/device.ts";
import { blockedQkvLayout, neoxQkvLayout, type QkvLayout } from "../gpu/attention.ts";
import { attentionCached, kvAppend, KvCache } from "../gpu/kv_cache.ts";
import { embedding } from "../gpu/embedding.ts";
import { matmul } from "../gpu/matmul.ts";
import { residualAddInPlace } from "../gpu/residual.ts";
import { logSoftmax } from "../gpu/softmax.ts";
import {
  copyTensor,
  createTensor,
  type DType,
  GpuTensor,
  isPacked16,
  numel,
  readTensor,
  readTensors,
  writeTensor,
} from "../gpu/tensor.ts";
import { encodeFloats, isWeightDtype, roundToDtype, type WeightDtype } from "../io/safetensors.ts";
import { firstNonFinite, readWithNonFiniteCheck } from "../gpu/nonfinite.ts";
import { describeNonFinite, NonFiniteError } from "./nonfinite.ts";
import { type ModelConfig, resolveConfig, type ResolvedConfig, type WeightMap } from "./config.ts";
import {
  type FamilySpec,
  familySpec,
  familyWeightShapes,
  type LayerSpec,
  type LinearSpec,
} from "./families/mod.ts";
import {
  type EditSpec,
  type Hooks,
  hookSiteNames,
  type PatchSpec,
  type SiteTensor,
  siteWidth,
} from "./hooks.ts";
import {
  type AttentionCore,
  attentionCoreForward,
  type GpuLinear,
  type GpuNorm,
  type GpuRope,
  linearForward,
  mlpActForward,
  normForward,
  normStatsWidth,
  type QkStats,
} from "./layers.ts";
import { ropeTables } from "./rope.ts";
import { checkFits, estimateMemory, gpuWeightDtypes, heldBytes, type Weight16 } from "./memory.ts";

/** Options of {@link TransformerModel.create}. */
export interface CreateModelOptions {
  /**
   * The checkpoint's dtype of each weight (checkpoint names; `HFModel.dtypes`). Weights whose dtype is
   * F16 or BF16 and that only the matmul and embedding kernels read (see `gpuWeightDtypes` in
   * ./memory.ts) stay 16-bit on the GPU, decoded to f32 in the kernels; everything else, and every weight
   * without an entry, is f32. Absent: every weight f32 (the behaviour before 16-bit storage).
   */
  weightDtypes?: ReadonlyMap<string, string>;
}

const FILE_DTYPE: Record<Weight16, WeightDtype> = { bf16: "BF16", f16: "F16" };

/** What {@link TransformerModel.forward} returns. */
export interface ForwardResult {
  /** Log-probabilities of the next token after each sequence's last position, [B][V]. */
  logprobs: Float32Array[];
  /** Captured hook sites with their shapes, `[B, T, width]` (`attn_pattern.L`: `[B, H, T, T]`). */
  captured: Map<string, SiteTensor>;
  /** Full logits [B * T * V] when `allLogits` was requested. */
  logits?: Float32Array;
}

/** Options of {@link TransformerModel.forward}. */
export interface ForwardOptions {
  /** Forward hooks: capture, patch or corrupt named sites (src/model/hooks.ts). */
  hooks?: Hooks;
  /** Also return logits at every position (large: B * T * V floats). */
  allLogits?: boolean;
  /**
   * Return non-finite log-probabilities instead of throwing {@link NonFiniteError} (default false; used
   * by the re-run that locates the first non-finite site).
   */
  allowNonFinite?: boolean;
  /**
   * Start at block `layer` from the residual `x` [B·T·C] entering it (blocks below are not run, their
   * hooks never fire and, for a backward, their activations are not saved: only gradients at or above the
   * block can be taken). For loops that re-run a batch whose lower blocks do not change (ROME / MEMIT's δ
   * optimisation). `layer` may be nLayer (x is then the final norm's input).
   */
  resume?: { layer: number; x: Float32Array };
  /**
   * Skip the last positions' log-probabilities and their readback (`logprobs` is then empty and nothing
   * is checked for non-finite values): for a forward that only saves activations for a backward whose
   * loss reads its own logits.
   */
  noReadback?: boolean;
  /**
   * Run blocks up to this one only (no final norm, no head) and return only the captured sites, as
   * `noReadback` does (implied): for passes that only read sites at or below the block, such as the key
   * statistics of a few layers. Not with a backward, a KV cache or `allLogits`; a hook site above the block
   * is an InputError.
   */
  stopAfter?: number;
  /**
   * GPU work recorded on a site's tensor ([B·T, width], after its patches and edits) when the forward
   * reaches it, e.g. a product accumulated from the activations without reading them back. A tap must only
   * read the tensor (in inference the blocks share their buffers: the next block overwrites it).
   */
  taps?: ReadonlyMap<string, (t: GpuTensor) => Promise<void>>;
}

/** Activations of one block. In inference all layers share one set; for backward each layer keeps its own. */
export interface LayerActivations {
  /** Residual stream entering the block [R, C] (inference: the running residual itself). */
  xIn: GpuTensor;
  /** Output of the first norm [R, C]. */
  ln1: GpuTensor;
  /** The first norm's saved statistics: [R, 2] (mean, reciprocal std) for layer norm, [R] (reciprocal RMS) for RMS norm. */
  ln1Stats: GpuTensor;
  /** Output of the fused q/k/v projection [R, qkvWidth]. */
  qkvRaw: GpuTensor;
  /** What attention read: after q/k norms and rotary [R, qkvWidth] (qkvRaw itself when neither applies). */
  qkv: GpuTensor;
  /** Saved statistics of the per-head q/k norms (Qwen3), when the family has them. */
  qkStats: QkStats | undefined;
  /** Attention probabilities [B, H, T, T], kept when a backward pass or the attn_pattern site needs them. */
  probs: GpuTensor | undefined;
  /** Heads concatenated, before the output projection [R, H·D] (site head_out). */
  att: GpuTensor;
  /** Attention branch output [R, C] (site attn_out). */
  attnOut: GpuTensor;
  /** Residual after the attention add [R, C] (sequential blocks; the residual itself in inference). */
  xMid: GpuTensor;
  /** Norm before the MLP [R, C]; absent when ln1 feeds the MLP (GPT-J). */
  ln2: GpuTensor | undefined;
  /** The second norm's saved statistics (as {@link LayerActivations.ln1Stats}), when there is a second norm. */
  ln2Stats: GpuTensor | undefined;
  /** MLP input projection output (c_fc / up_proj) [R, I]. */
  fc: GpuTensor;
  /** Gate projection output [R, I] (gated MLPs). */
  gate: GpuTensor | undefined;
  /** MLP activation, the output projection's input [R, I] (site mlp_post). */
  act: GpuTensor;
  /** MLP branch output [R, C] (site mlp_out). */
  mlpOut: GpuTensor;
}

/** Everything a backward pass needs from the forward pass that preceded it. */
export interface SavedForward {
  /** Batch size of the forward pass. */
  B: number;
  /** Sequence length of the forward pass. */
  T: number;
  /** Token ids [B·T]. */
  ids: Uint32Array;
  /** Position of each row [B·T]. */
  positions: Uint32Array;
  /** Activations of each block, in layer order. */
  layers: LayerActivations[];
  /** Residual entering the final norm [R, C]. */
  xFinal: GpuTensor;
  /** Output of the final norm [R, C]. */
  lnf: GpuTensor;
  /** The final norm's saved statistics (as {@link LayerActivations.ln1Stats}). */
  lnfStats: GpuTensor;
  /** Rotary tables of this T (absent for learned positions). */
  rope: GpuRope | undefined;
  /** Rows of each site that a patch overwrote (their upstream gradient is cut). */
  patchedRows: Map<string, Array<[number, number]>>;
  /** The first block that ran ({@link ForwardOptions.resume}; 0 otherwise): blocks below saved nothing. */
  startLayer?: number;
  /** Frees the saved activations. */
  destroy(): void;
}

/** The GPU handles of one block. */
export interface GpuLayer {
  /** The family's description of the block (names, layouts, residual shape). */
  spec: LayerSpec;
  /** The norm before attention (and before the MLP for one-norm blocks). */
  ln1: GpuNorm;
  /** The norm before the MLP; absent for one-norm blocks (GPT-J). */
  ln2?: GpuNorm;
  /** The fused q/k/v projection. */
  qkv: GpuLinear;
  /** Per-head q/k norms (Qwen3). */
  qkNorm?: { q: GpuNorm; k: GpuNorm };
  /** The attention output projection. */
  o: GpuLinear;
  /** The MLP input projection (c_fc / up_proj). */
  up: GpuLinear;
  /** The gate projection of gated MLPs (SwiGLU). */
  gate?: GpuLinear;
  /** The MLP output projection (c_proj / down_proj), the weight ROME and MEMIT edit. */
  down: GpuLinear;
}

/** Where a checkpoint tensor lives on the GPU: its own tensor, or a slice of a fused one. */
export interface GpuWeightRef {
  /** Name of the GPU tensor holding it. */
  gpuName: string;
  /** First element of the tensor inside the GPU tensor. */
  offset: number;
  /** Number of elements of the checkpoint tensor. */
  numel: number;
}

interface Workspace {
  R: number;
  withProbs: boolean;
  ids: GpuTensor;
  pos: GpuTensor;
  x: GpuTensor;
  lnf: GpuTensor;
  lnfStats: GpuTensor;
  layer: LayerActivations;
}

/** A transformer resident on the GPU. */
export class TransformerModel {
  private readonly w = new Map<string, GpuTensor>();
  private readonly refs = new Map<string, GpuWeightRef>();
  /** GPU tensors kept in 16 bits, by GPU name (the rest are f32). */
  private storage = new Map<string, Weight16>();
  private ws: Workspace | undefined;
  private ropeCache: { T: number; cos: GpuTensor; sin: GpuTensor } | undefined;
  /** The family's names and layouts. */
  readonly spec: FamilySpec;
  /** Per-block GPU handles. */
  readonly layers: GpuLayer[] = [];
  /** Layout of the fused qkv buffer the attention kernels read. */
  readonly qkvLayout: QkvLayout;
  /** Resolved configuration (every family default filled in). */
  readonly config: ResolvedConfig;

  private constructor(
    readonly gpu: Gpu,
    config: ModelConfig,
    /** Host copy of the weights (kept for edits and CPU-side helpers), by checkpoint name. */
    readonly weights: WeightMap,
  ) {
    this.config = resolveConfig(config);
    this.spec = familySpec(this.config);
    const c = this.config;
    this.qkvLayout = this.spec.layer(c, 0).qkvLayout === "neox"
      ? neoxQkvLayout(c.nHead, c.headDim)
      : blockedQkvLayout(c.nHead, c.nKvHead, c.headDim);
  }

  /**
   * Uploads `weights` (checkpoint names, see ./families/) to the GPU, keeping 16-bit file dtypes in 16
   * bits where {@link CreateModelOptions.weightDtypes} says so. A dtype that is not F32, F16 or BF16 is an
   * {@link InputError} naming the weight, before anything is allocated (the packed 16-bit kernels need no
   * adapter feature, so every adapter computes both 16-bit dtypes).
   */
  static create(
    gpu: Gpu,
    config: ModelConfig,
    weights: WeightMap,
    opts: CreateModelOptions = {},
  ): TransformerModel {
    const m = new TransformerModel(gpu, config, weights);
    const c = m.config, spec = m.spec;
    for (const [name, d] of opts.weightDtypes ?? []) {
      if (!isWeightDtype(d)) {
        throw new InputError(`weight dtype '${d}' cannot be kept on the GPU (F32, F16 or BF16)`, {
          field: name,
        });
      }
    }
    m.storage = opts.weightDtypes ? gpuWeightDtypes(c, weights.has(spec.head), opts.weightDtypes) : new Map();
    // Before any allocation: every weight must fit one buffer and all of them the device (./memory.ts).
    checkFits(
      gpu,
      estimateMemory(c, { untiedHead: weights.has(spec.head), weightDtypes: m.storage }),
      "loading the model",
    );
    const shapes = familyWeightShapes(spec, c, weights.has(spec.head));
    for (const [name, shape] of shapes) {
      const t = weights.get(name);
      if (!t) throw new ShapeError(`missing weight`, { field: name });
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new ShapeError(`weight has shape [${t.shape}], expected [${shape}]`, { field: name });
      }
    }
    for (const name of weights.keys()) {
      if (!shapes.has(name)) throw new ShapeError("weight is not part of this model", { field: name });
    }
    const fusedParts = new Set<string>();
    for (let l = 0; l < c.nLayer; l++) {
      const s = spec.layer(c, l);
      if (s.qkv.length > 1) {
        m.fuse(s.qkv.map((p) => p.weight), fusedName(s.qkv[0].weight));
        for (const p of s.qkv) fusedParts.add(p.weight);
        if (s.qkv[0].bias) {
          m.fuse(s.qkv.map((p) => p.bias!), fusedName(s.qkv[0].bias));
          for (const p of s.qkv) fusedParts.add(p.bias!);
        }
      }
    }
    for (const [name, shape] of shapes) {
      if (fusedParts.has(name)) continue;
      m.refs.set(name, { gpuName: name, offset: 0, numel: numel(shape) });
      m.w.set(name, m.upload(name, shape, m.storage.get(name)));
    }
    for (let l = 0; l < c.nLayer; l++) m.layers.push(m.gpuLayer(spec.layer(c, l)));
    return m;
  }

  /** Stacks host tensors `parts` (all [rows_i, cols]) into one GPU tensor `name`. */
  private fuse(parts: string[], name: string): void {
    const ts = parts.map((p) => this.weights.get(p)!);
    let off = 0;
    parts.forEach((p, i) => {
      const n = numel(ts[i].shape);
      this.refs.set(p, { gpuName: name, offset: off, numel: n });
      off += n;
    });
    const cols = ts[0].shape.length === 2 ? ts[0].shape[1] : 1;
    const shape = ts[0].shape.length === 2 ? [off / cols, cols] : [off];
    this.w.set(name, this.upload(name, shape, this.storage.get(name)));
  }

  /**
   * GPU tensor `name` of its host part(s) ({@link hostData}), in `dtype`: f32, or packed 16-bit. The host
   * copy of a 16-bit weight holds values of that dtype (decoded from the file, or rounded by
   * {@link setWeight}), so encoding is exact; parts still undecoded in that dtype
   * (`HostTensor.undecoded16`, ./config.ts) are taken as stored, without a float32 copy.
   */
  private upload(name: string, shape: number[], dtype: Weight16 | undefined): GpuTensor {
    if (!dtype) return createTensor(this.gpu, shape, { name, data: this.hostData(name) });
    const parts = this.partsOf(name);
    const raw = parts.map(([n]) => this.weights.get(n)!.undecoded16);
    if (!raw.every((u) => u?.dtype === FILE_DTYPE[dtype])) {
      return createTensor(this.gpu, shape, { name, dtype, data: this.encode16(this.hostData(name), dtype) });
    }
    let bits = raw[0]!.bits;
    if (parts.length > 1) {
      bits = new Uint16Array(numel(shape));
      parts.forEach(([, r], i) => bits.set(raw[i]!.bits, r.offset));
    }
    return createTensor(this.gpu, shape, { name, dtype, data: bits });
  }

  /** The 16-bit patterns of `data` in `dtype` (exact: the values are already of that dtype). */
  private encode16(data: Float32Array, dtype: Weight16): Uint16Array {
    const bytes = encodeFloats(data, FILE_DTYPE[dtype]);
    return new Uint16Array(bytes.buffer, bytes.byteOffset, data.length);
  }

  /** The checkpoint tensors GPU tensor `gpuName` holds, with their places, in offset order. */
  private partsOf(gpuName: string): Array<[string, GpuWeightRef]> {
    return [...this.refs].filter(([, r]) => r.gpuName === gpuName).sort((a, b) => a[1].offset - b[1].offset);
  }

  /** The host values of GPU tensor `gpuName`: its checkpoint tensor, or its parts stacked (fused q/k/v). */
  private hostData(gpuName: string): Float32Array {
    const parts = this.partsOf(gpuName);
    if (parts.length === 1 && parts[0][0] === gpuName) return this.weights.get(gpuName)!.data;
    const out = new Float32Array(parts.reduce((a, [, r]) => a + r.numel, 0));
    for (const [n, r] of parts) out.set(this.weights.get(n)!.data, r.offset);
    return out;
  }

  /**
   * GPU storage dtype of weight `name` (a checkpoint or GPU name): "f32", or "bf16" / "f16" for a weight
   * kept in 16 bits.
   */
  weightStorage(name: string): DType {
    const g = this.w.get(name) ?? this.w.get(this.weightRef(name).gpuName)!;
    return g.dtype;
  }

  /** Shape of GPU tensor `name` (a weight's own or a fused one), without converting a 16-bit one to f32. */
  weightShape(name: string): readonly number[] {
    const g = this.w.get(name);
    if (!g) throw new ShapeError(`no GPU tensor of its own`, { field: name });
    return g.shape;
  }

  /** Bytes of the GPU buffers holding the weights (16-bit ones at 2 bytes per element). */
  weightBytes(): number {
    return heldBytes(this.w);
  }

  /** The GPU handles of block `s` (its weights by name). */
  private gpuLayer(s: LayerSpec): GpuLayer {
    const c = this.config;
    const eps = c.layerNormEpsilon;
    const kind = c.norm;
    const norm = (n: { weight: string; bias?: string }, k = kind): GpuNorm => ({
      kind: k,
      w: this.w.get(n.weight)!,
      b: n.bias ? this.w.get(n.bias) : undefined,
      eps,
      wName: n.weight,
      bName: n.bias,
    });
    const lin = (p: LinearSpec): GpuLinear => ({
      w: this.w.get(p.weight)!,
      b: p.bias ? this.w.get(p.bias) : undefined,
      layout: p.layout,
      in: p.in,
      out: p.out,
      wName: p.weight,
      bName: p.bias,
    });
    let qkv: GpuLinear;
    if (s.qkv.length === 1) qkv = lin(s.qkv[0]);
    else {
      const wName = fusedName(s.qkv[0].weight);
      const bName = s.qkv[0].bias ? fusedName(s.qkv[0].bias) : undefined;
      qkv = {
        w: this.w.get(wName)!,
        b: bName ? this.w.get(bName) : undefined,
        layout: "linear",
        in: s.qkv[0].in,
        out: s.qkv.reduce((a, p) => a + p.out, 0),
        wName,
        bName,
      };
    }
    return {
      spec: s,
      ln1: norm(s.ln1),
      ln2: s.ln2 ? norm(s.ln2) : undefined,
      qkv,
      qkNorm: s.qNorm && s.kNorm ? { q: norm(s.qNorm, "rmsnorm"), k: norm(s.kNorm, "rmsnorm") } : undefined,
      o: lin(s.o),
      up: lin(s.up),
      gate: s.gate ? lin(s.gate) : undefined,
      down: lin(s.down),
    };
  }

  /** Where checkpoint tensor `name` lives on the GPU. */
  weightRef(name: string): GpuWeightRef {
    const r = this.refs.get(name);
    if (!r) throw new ShapeError(`no such weight`, { field: name });
    return r;
  }

  /** Re-uploads one weight from the host copy (after an edit of `weights`); see {@link setWeight}. */
  syncWeight(name: string): void {
    const t = this.weights.get(name);
    if (!t) throw new ShapeError(`no such weight`, { field: name });
    this.setWeight(name, t.data);
  }

  /**
   * Sets weight `name` to `data` on the host and uploads it to the GPU: the one way edits, restores and
   * reverts change a weight (src/edit/apply.ts), so the host and GPU copies never differ. A weight kept
   * in 16 bits on the GPU ({@link weightStorage}) is set to `data` rounded to its dtype (nearest, ties to
   * even; src/io/safetensors.ts `roundToDtype`) on the host too, and its GPU tensor re-encoded: the host
   * copy is what the GPU computes with, and a 16-bit original written back is restored bit for bit. A
   * finite value that the dtype would hold as ±infinity (F16 beyond 65504) is an {@link InputError} naming
   * the weight, before anything is set.
   */
  setWeight(name: string, data: Float32Array): void {
    const t = this.weights.get(name);
    const r = this.refs.get(name);
    if (!t || !r) throw new ShapeError(`no such weight`, { field: name });
    if (data.length !== t.data.length) {
      throw new ShapeError(`weight has ${t.data.length} values, got ${data.length}`, { field: name });
    }
    const g = this.w.get(r.gpuName)!;
    if (isPacked16(g.dtype)) {
      const rounded = roundToDtype(data, FILE_DTYPE[g.dtype]);
      let overflow = 0;
      for (let i = 0; i < data.length; i++) {
        if (Number.isFinite(data[i]) && !Number.isFinite(rounded[i])) overflow++;
      }
      if (overflow > 0) {
        // Infinite weights make every later forward NaN: refuse before changing anything.
        throw new InputError(
          `${overflow} value(s) beyond the ${g.dtype} range, which the weight's 16-bit storage would hold as ` +
            `infinity; nothing set (load with weightDtype "f32"; engram edit: --save-f32)`,
          { field: name },
        );
      }
      t.data.set(rounded);
      // Packed words may straddle the parts of a fused tensor: the whole tensor is encoded again.
      writeTensor(g, this.encode16(this.hostData(r.gpuName), g.dtype));
      return;
    }
    if (data !== t.data) t.data.set(data);
    writeTensor(g, t.data, r.offset);
  }

  /**
   * GPU tensor of a weight, in f32, for kernels that operate on weights directly (AdamW in FT / FT-L and
   * training, read-backs). A checkpoint tensor fused into a larger GPU tensor (Llama's q_proj) has none
   * of its own: ShapeError. A weight kept in 16 bits is first replaced on the GPU by an f32 copy of its
   * host values (which equal the 16-bit ones), for good: a weight that AdamW updates in small steps must
   * not be rounded to 16 bits after each step. The edit commands still round the result to the file's
   * dtype when they save it (src/cli/edit.ts).
   */
  weight(name: string): GpuTensor {
    const g = this.w.get(name);
    if (!g) {
      const r = this.refs.get(name);
      const why = r ? ` (it is part of the fused GPU tensor '${r.gpuName}')` : "";
      throw new ShapeError(`no GPU tensor of its own${why}`, { field: name });
    }
    if (!isPacked16(g.dtype)) return g;
    const f = createTensor(this.gpu, g.shape, { name, data: this.hostData(name) });
    g.destroy();
    this.w.set(name, f);
    this.storage.delete(name);
    // The per-block handles hold the tensors: rebuild them around the new one.
    this.layers.forEach((l, i) => (this.layers[i] = this.gpuLayer(l.spec)));
    return f;
  }

  /** Frees GPU memory. */
  destroy(): void {
    for (const t of this.w.values()) t.destroy();
    this.freeWorkspace();
    if (this.ropeCache) {
      this.ropeCache.cos.destroy();
      this.ropeCache.sin.destroy();
      this.ropeCache = undefined;
    }
  }

  /** Frees the inference workspace. */
  private freeWorkspace(): void {
    if (!this.ws) return;
    const w = this.ws;
    for (const t of [w.ids, w.pos, w.x, w.lnf, w.lnfStats]) t.destroy();
    destroyLayer(w.layer);
    this.ws = undefined;
  }

  /** Width of the fused q/k/v row. */
  get qkvWidth(): number {
    return this.qkvLayout.rowStride;
  }

  /** Allocates one block's activation tensors for `R` rows. */
  private allocLayer(
    R: number,
    B: number,
    T: number,
    withProbs: boolean,
    xIn: GpuTensor | undefined,
  ): LayerActivations {
    const c = this.config;
    const { nEmbd: C, nInner: I, nHead, nKvHead, headDim: D } = c;
    const mk = (name: string, w: number) => createTensor(this.gpu, [R, w], { name });
    const s = this.layers[0]?.spec ?? this.spec.layer(c, 0);
    const sw = normStatsWidth(c.norm);
    const qkvRaw = mk("qkv", this.qkvWidth);
    return {
      xIn: xIn ?? mk("resid_pre", C),
      ln1: mk("ln_1", C),
      ln1Stats: mk("ln_1.stats", sw),
      qkvRaw,
      // Rotary works in place, so attention's input is a separate buffer only when the raw projection
      // output must survive for a backward through the per-head norms.
      qkv: c.qkNorm ? mk("qkv_normed", this.qkvWidth) : qkvRaw,
      qkStats: c.qkNorm
        ? {
          q: createTensor(this.gpu, [R * nHead], { name: "q_norm.stats" }),
          k: createTensor(this.gpu, [R * nKvHead], { name: "k_norm.stats" }),
        }
        : undefined,
      probs: withProbs ? createTensor(this.gpu, [B, nHead, T, T], { name: "attn_probs" }) : undefined,
      att: mk("head_out", nHead * D),
      attnOut: mk("attn_out", C),
      xMid: xIn ?? mk("resid_mid", C),
      ln2: s.ln2 ? mk("ln_2", C) : undefined,
      ln2Stats: s.ln2 ? mk("ln_2.stats", sw) : undefined,
      fc: mk("mlp_pre", I),
      gate: s.gate ? mk("mlp_gate", I) : undefined,
      act: mk("mlp_post", I),
      mlpOut: mk("mlp_out", C),
    };
  }

  /** The inference workspace for B sequences of T tokens, reused while the shape fits. */
  private workspace(R: number, B: number, T: number, withProbs: boolean): Workspace {
    if (
      this.ws && this.ws.R === R &&
      (!withProbs || (this.ws.withProbs && this.ws.layer.probs!.numel === B * this.config.nHead * T * T))
    ) return this.ws;
    this.freeWorkspace();
    const C = this.config.nEmbd;
    const x = createTensor(this.gpu, [R, C], { name: "residual" });
    this.ws = {
      R,
      withProbs,
      ids: createTensor(this.gpu, [R], { name: "ids", dtype: "u32" }),
      pos: createTensor(this.gpu, [R], { name: "positions", dtype: "u32" }),
      x,
      lnf: createTensor(this.gpu, [R, C], { name: "ln_f" }),
      lnfStats: createTensor(this.gpu, [R, normStatsWidth(this.config.norm)], { name: "ln_f.stats" }),
      layer: this.allocLayer(R, B, T, withProbs, x),
    };
    return this.ws;
  }

  /** Rotary cos/sin tables for sequences of T tokens (cached: dynamic scaling depends on T). */
  private ropeFor(T: number, positions: GpuTensor): GpuRope | undefined {
    const rope = this.config.rope;
    if (!rope) return undefined;
    if (!this.ropeCache || this.ropeCache.T !== T) {
      if (this.ropeCache) {
        this.ropeCache.cos.destroy();
        this.ropeCache.sin.destroy();
      }
      const { cos, sin } = ropeTables(rope, T);
      this.ropeCache = {
        T,
        cos: createTensor(this.gpu, [T, rope.dim / 2], { name: "rope.cos", data: cos }),
        sin: createTensor(this.gpu, [T, rope.dim / 2], { name: "rope.sin", data: sin }),
      };
    }
    return { cos: this.ropeCache.cos, sin: this.ropeCache.sin, positions, dim: rope.dim, style: rope.style };
  }

  /** Checks a batch of token-id sequences: non-empty, equal lengths, within context and vocabulary. */
  checkBatch(batch: number[][]): { B: number; T: number } {
    const B = batch.length;
    if (B === 0) throw new InputError("empty batch", { field: "ids" });
    const T = batch[0].length;
    if (T === 0) throw new InputError("empty prompt: at least one token is needed", { field: "ids" });
    // Learned positions end at nPositions; rotary models extrapolate past it, as Hugging Face lets them
    // (dynamic NTK scaling exists for exactly that).
    if (this.spec.positions && T > this.config.nPositions) {
      throw new InputError(
        `prompt has ${T} tokens, longer than the model's context of ${this.config.nPositions}`,
        {
          field: "ids",
        },
      );
    }
    for (const seq of batch) {
      if (seq.length !== T) {
        throw new InputError(`batch sequences differ in length (${seq.length} vs ${T})`, { field: "ids" });
      }
      for (const id of seq) {
        if (!Number.isInteger(id) || id < 0 || id >= this.config.vocabSize) {
          throw new InputError(`token id ${id} out of range [0, ${this.config.vocabSize})`, { field: "ids" });
        }
      }
    }
    return { B, T };
  }

  /**
   * Runs the model on B sequences of T tokens. Returns next-token log-probabilities after each
   * sequence's last token, captured sites, and (optionally) all logits.
   */
  async forward(batch: number[][], opts: ForwardOptions = {}): Promise<ForwardResult> {
    const { result } = await this.run(batch, opts, false);
    return result;
  }

  /**
   * A KV cache for `B` sequences of up to `maxLen` positions (see {@link forwardCached}); the caller
   * frees it with `cache.destroy()`.
   */
  createKvCache(B: number, maxLen: number): KvCache {
    if (this.spec.positions && maxLen > this.config.nPositions) {
      throw new InputError(
        `kv cache of ${maxLen} positions exceeds the model's context of ${this.config.nPositions}`,
        {
          field: "maxLen",
        },
      );
    }
    // Each layer's keys (and values) are bound whole by the cached attention kernel.
    const bytes = B * this.config.nKvHead * maxLen * this.config.headDim * 4;
    if (bytes > this.gpu.bindingLimit) {
      throw new InputError(
        `kv cache of ${B}×${maxLen} positions needs ${bytes} bytes per layer's keys, over the ` +
          `storage-binding limit of ${this.gpu.bindingLimit} bytes; use fewer positions or sequences`,
        { field: "maxLen" },
      );
    }
    return new KvCache(this.gpu, B, maxLen, this.qkvLayout, this.config.nLayer);
  }

  /**
   * Incremental forward: runs `batch` (B sequences of T new tokens) at positions `cache.length ..
   * cache.length + T - 1`, attending over the keys and values already in `cache` and appending the new
   * ones (cache.length grows by T). The prompt pass and each decoding step of {@link generate} are calls
   * of this; the result (log-probabilities after the last new token, captured sites of the new rows, all
   * logits of the new rows) is the same as a full {@link forward} of the whole sequence up to float32
   * rounding. Hooks see only the new rows; `attn_pattern` sites and backward are not available here.
   */
  async forwardCached(batch: number[][], cache: KvCache, opts: ForwardOptions = {}): Promise<ForwardResult> {
    if (batch.length !== cache.B) {
      throw new InputError(`kv cache holds ${cache.B} sequences, batch has ${batch.length}`, {
        field: "ids",
      });
    }
    if (cache.layout !== this.qkvLayout || cache.layers.length !== this.config.nLayer) {
      throw new InputError("kv cache was made by another model", { field: "kv_cache" });
    }
    const T = batch[0]?.length ?? 0;
    if (cache.length + T > cache.maxLen) {
      throw new InputError(`kv cache holds ${cache.maxLen} positions, ${cache.length} + ${T} requested`, {
        field: "ids",
      });
    }
    const { result } = await this.run(batch, opts, false, cache);
    cache.length += T;
    return result;
  }

  /**
   * Forward pass that keeps every layer's activations for {@link backward} (see ./backward.ts).
   * The caller owns `saved` and must call `saved.destroy()`.
   */
  async forwardForBackward(
    batch: number[][],
    opts: ForwardOptions = {},
  ): Promise<{ result: ForwardResult; saved: SavedForward }> {
    const { result, saved } = await this.run(batch, opts, true);
    return { result, saved: saved! };
  }

  /** Runs the blocks, the final norm and the head on `ids`; the shared core of forward and forwardForBackward. */
  private async run(
    batch: number[][],
    opts: ForwardOptions,
    save: boolean,
    kv?: KvCache,
  ): Promise<{ result: ForwardResult; saved?: SavedForward }> {
    const { B, T } = this.checkBatch(batch);
    // Positions of the new rows: after what a KV cache already holds.
    const start = kv?.length ?? 0;
    if (kv && this.spec.positions && start + T > this.config.nPositions) {
      throw new InputError(
        `position ${start + T - 1} is past the model's context of ${this.config.nPositions}`,
        {
          field: "ids",
        },
      );
    }
    const cfg = this.config;
    const { nEmbd: C, nLayer: L, vocabSize: V } = cfg;
    const R = B * T;
    const gpu = this.gpu;
    const hooks = opts.hooks ?? {};
    if (save && hooks.edit?.length) {
      throw new InputError("host-side edit hooks cannot be differentiated; use patch hooks", {
        field: "edit",
      });
    }
    const capture = new Set(hooks.capture ?? []);
    for (const s of capture) siteWidth(cfg, s);
    for (const s of opts.taps?.keys() ?? []) siteWidth(cfg, s);
    if (opts.noReadback && opts.allLogits) {
      throw new InputError("allLogits needs the readback that noReadback skips", { field: "allLogits" });
    }
    const startLayer = opts.resume?.layer ?? 0;
    const stop = opts.stopAfter;
    if (stop !== undefined) {
      if (!Number.isInteger(stop) || stop < startLayer || stop >= L || save || kv || opts.allLogits) {
        throw new InputError(
          `stopAfter ${stop} outside [${startLayer}, ${L}) (or with a backward, a KV cache or allLogits)`,
          { field: "stopAfter" },
        );
      }
      const above = (n: string) =>
        n === "ln_f" || (n !== "embed" && Number(n.slice(n.lastIndexOf(".") + 1)) > stop);
      const sites = [
        ...capture,
        ...(hooks.patch ?? []).map((p) => p.site),
        ...(hooks.edit ?? []).map((e) => e.site),
        ...(opts.taps?.keys() ?? []),
      ];
      const bad = sites.find(above);
      if (bad) throw new InputError(`hook site ${bad} is above stopAfter block ${stop}`, { field: bad });
    }
    const noReadback = opts.noReadback || stop !== undefined;
    if (opts.resume) {
      const { layer, x } = opts.resume;
      if (!Number.isInteger(layer) || layer < 0 || layer > L || kv) {
        throw new InputError(`resume layer ${layer} outside [0, ${L}] (or with a kv cache)`, {
          field: "resume",
        });
      }
      if (x.length !== R * C) {
        throw new ShapeError(`resume residual has ${x.length} values, expected ${R * C}`, {
          field: "resume",
        });
      }
    }
    if (kv && [...capture].some((n) => n.startsWith("attn_pattern."))) {
      throw new InputError("attn_pattern sites are not captured by a cached forward; use forward", {
        field: "capture",
      });
    }
    const patches = new Map<string, PatchSpec[]>();
    const patchedRows = new Map<string, Array<[number, number]>>();
    for (const p of hooks.patch ?? []) {
      const width = siteWidth(cfg, p.site, "patch");
      if (p.values.length !== p.rows.length * width) {
        throw new ShapeError(
          `patch of ${p.rows.length} rows needs ${p.rows.length * width} values, got ${p.values.length}`,
          { field: p.site },
        );
      }
      for (const [b, t] of p.rows) {
        if (!(b >= 0 && b < B && t >= 0 && t < T && Number.isInteger(b) && Number.isInteger(t))) {
          throw new InputError(`patch row [${b}, ${t}] outside batch [${B}, ${T}]`, { field: p.site });
        }
      }
      patches.set(p.site, [...(patches.get(p.site) ?? []), p]);
      patchedRows.set(p.site, [...(patchedRows.get(p.site) ?? []), ...p.rows]);
    }
    const edits = new Map<string, EditSpec[]>();
    for (const e of hooks.edit ?? []) {
      siteWidth(cfg, e.site, "edit");
      edits.set(e.site, [...(edits.get(e.site) ?? []), e]);
    }
    const captured = new Map<string, SiteTensor>();
    const pendingCaptures: Array<[string, GpuTensor]> = [];

    // Applies patches and edits to a site, then snapshots it if captured.
    const site = async (name: string, t: GpuTensor) => {
      const width = t.numel / R;
      for (const p of patches.get(name) ?? []) {
        const src = createTensor(gpu, [p.rows.length, width], { name: `patch:${name}`, data: p.values });
        p.rows.forEach(([b, tok], i) => copyTensor(src, t, width, i * width, (b * T + tok) * width));
        src.destroy();
      }
      for (const e of edits.get(name) ?? []) {
        const v = await readTensor(t);
        e.fn(v, B, T, width);
        writeTensor(t, v);
      }
      const tap = opts.taps?.get(name);
      if (tap) await tap(t);
      if (capture.has(name)) {
        const snap = createTensor(gpu, [t.numel], { name: `capture:${name}` });
        copyTensor(t, snap);
        pendingCaptures.push([name, snap]);
      }
    };

    const ids = new Uint32Array(R), pos = new Uint32Array(R);
    batch.forEach((seq, b) => seq.forEach((id, t) => ((ids[b * T + t] = id), (pos[b * T + t] = start + t))));
    // Attention probabilities are computed only when a backward or an attn_pattern capture needs them.
    const wantProbs = save || [...capture].some((n) => n.startsWith("attn_pattern."));
    let layers: LayerActivations[];
    let xFinal: GpuTensor, lnf: GpuTensor, lnfStats: GpuTensor;
    let idsT: GpuTensor, posT: GpuTensor;
    const owned: GpuTensor[] = [];
    // Before allocating the batch's buffers (a new workspace, or every layer's saved activations).
    checkFits(
      gpu,
      estimateMemory(cfg, {
        batch: B,
        seqLen: T,
        backward: save,
        untiedHead: this.w.has(this.spec.head),
        weightDtypes: this.storage,
        allLogits: opts.allLogits,
        capture: [...capture],
      }),
      `a forward pass of ${B}×${T} tokens`,
      { held: heldBytes(this.w, this.ropeCache, save ? undefined : this.ws, kv?.layers) },
    );
    if (save) {
      const mk = (shape: number[], name: string, dtype?: "u32") => {
        const t = createTensor(gpu, shape, { name, dtype });
        owned.push(t);
        return t;
      };
      idsT = mk([R], "ids", "u32");
      posT = mk([R], "positions", "u32");
      layers = Array.from({ length: L }, () => this.allocLayer(R, B, T, true, undefined));
      xFinal = mk([R, C], "resid_final");
      lnf = mk([R, C], "ln_f");
      lnfStats = mk([R, normStatsWidth(cfg.norm)], "ln_f.stats");
    } else {
      const ws = this.workspace(R, B, T, wantProbs);
      idsT = ws.ids;
      posT = ws.pos;
      layers = Array.from({ length: L }, () => ws.layer);
      xFinal = ws.x;
      lnf = ws.lnf;
      lnfStats = ws.lnfStats;
    }
    const freeSaved = () => {
      for (const a of layers) destroyLayer(a);
      for (const t of owned) t.destroy();
    };
    writeTensor(idsT, ids);
    writeTensor(posT, pos);
    const spec = this.spec;
    // With a cache the tables cover the cache (their rows do not depend on the length, except under
    // dynamic NTK scaling, whose frequencies follow the length so far, as Hugging Face's cache does).
    const dynamic = cfg.rope?.scaling?.type === "dynamic";
    const rope = this.ropeFor(kv ? (dynamic ? start + T : kv.maxLen) : T, posT);
    const core: AttentionCore = {
      B,
      T,
      layout: this.qkvLayout,
      rope,
      window: cfg.slidingWindow !== undefined && cfg.slidingWindow < T ? cfg.slidingWindow : undefined,
    };
    const cachedAttention = (l: number) =>
      kv
        ? async (qkv: GpuTensor, att: GpuTensor) => {
          const o = { B, T, start, maxLen: kv.maxLen, layout: this.qkvLayout, window: cfg.slidingWindow };
          await kvAppend(gpu, qkv, kv.layers[l], o);
          await attentionCached(gpu, qkv, kv.layers[l], att, o);
        }
        : undefined;
    // In save mode each stream tensor is distinct, so the residual is carried by copies.
    const x0 = save ? layers[0]?.xIn ?? xFinal : xFinal;
    if (opts.resume) {
      writeTensor(save ? layers[startLayer]?.xIn ?? xFinal : xFinal, opts.resume.x);
    } else {
      await embedding(
        gpu,
        idsT,
        this.w.get(spec.embed)!,
        spec.positions ? this.w.get(spec.positions) : undefined,
        x0,
        {
          T: R,
          C,
          positions: posT,
        },
      );
      await site("embed", x0);
    }
    for (let l = startLayer; l < (stop ?? L - 1) + 1; l++) {
      const g = this.layers[l];
      const a = layers[l];
      const out = save ? (l + 1 < L ? layers[l + 1].xIn : xFinal) : a.xIn;
      await site(`resid_pre.${l}`, a.xIn);
      // Attention branch.
      await normForward(gpu, g.ln1, a.xIn, a.ln1, a.ln1Stats, R, C);
      await linearForward(gpu, a.ln1, g.qkv, a.qkvRaw, R);
      await attentionCoreForward(
        gpu,
        { ...core, qkNorm: g.qkNorm, attend: cachedAttention(l) },
        a.qkvRaw,
        a.qkv,
        a.att,
        wantProbs ? a.probs : undefined,
        a.qkStats,
      );
      if (a.probs && capture.has(`attn_pattern.${l}`)) await site(`attn_pattern.${l}`, a.probs);
      await site(`head_out.${l}`, a.att);
      await linearForward(gpu, a.att, g.o, a.attnOut, R);
      await site(`attn_out.${l}`, a.attnOut);
      // MLP branch: after the attention add (sequential) or beside it (parallel).
      let mlpIn = a.ln1;
      if (cfg.parallelResidual === "none") {
        if (save) copyTensor(a.xIn, a.xMid);
        await residualAddInPlace(gpu, a.xMid, a.attnOut);
        await normForward(gpu, g.ln2!, a.xMid, a.ln2!, a.ln2Stats!, R, C);
        mlpIn = a.ln2!;
      } else if (cfg.parallelResidual === "two_norms") {
        await normForward(gpu, g.ln2!, a.xIn, a.ln2!, a.ln2Stats!, R, C);
        mlpIn = a.ln2!;
      }
      await linearForward(gpu, mlpIn, g.up, a.fc, R);
      if (g.gate) await linearForward(gpu, mlpIn, g.gate, a.gate!, R);
      await mlpActForward(gpu, cfg.activation, a.fc, a.gate, a.act);
      await site(`mlp_post.${l}`, a.act);
      await linearForward(gpu, a.act, g.down, a.mlpOut, R);
      await site(`mlp_out.${l}`, a.mlpOut);
      if (cfg.parallelResidual === "none") {
        if (save) copyTensor(a.xMid, out);
      } else {
        if (save) copyTensor(a.xIn, out);
        await residualAddInPlace(gpu, out, a.attnOut);
      }
      await residualAddInPlace(gpu, out, a.mlpOut);
      await site(`resid_post.${l}`, out);
    }
    if (stop === undefined) {
      const finalNorm = this.finalNorm();
      await normForward(gpu, finalNorm, xFinal, lnf, lnfStats, R, C);
      await site("ln_f", lnf);
    }
    const savedForward = (): SavedForward => ({
      B,
      T,
      ids,
      positions: pos,
      layers,
      xFinal,
      lnf,
      lnfStats,
      rope,
      patchedRows,
      startLayer,
      destroy: freeSaved,
    });
    if (noReadback) {
      // Only captured sites come back (one map when there are any).
      let snapData: Float32Array[] = [];
      try {
        if (pendingCaptures.length) snapData = await readTensors(pendingCaptures.map(([, t]) => t));
      } catch (e) {
        if (save) freeSaved();
        throw e;
      } finally {
        for (const [, t] of pendingCaptures) t.destroy();
      }
      pendingCaptures.forEach(([name], i) => {
        const shape = name.startsWith("attn_pattern.")
          ? [B, cfg.nHead, T, T]
          : [B, T, snapData[i].length / (B * T)];
        captured.set(name, { data: snapData[i], shape });
      });
      const result = { logprobs: [], captured };
      return save ? { result, saved: savedForward() } : { result };
    }

    const head = this.lmHead();
    const headBias = this.headBias();
    let logits: Float32Array | undefined;
    let badAll = -1;
    const tmp: GpuTensor[] = [];
    const mkTmp = (shape: number[], name: string) => {
      const t = createTensor(gpu, shape, { name });
      tmp.push(t);
      return t;
    };
    const last = mkTmp([B, C], "last_hidden");
    for (let b = 0; b < B; b++) copyTensor(lnf, last, C, (b * T + T - 1) * C, b * C);
    const lastLogits = mkTmp([B, V], "logits");
    await matmul(gpu, last, head, lastLogits, { M: B, N: V, K: C, transB: true, bias: headBias });
    const lp = mkTmp([B, V], "logprobs");
    await logSoftmax(gpu, lastLogits, lp, { rows: B, cols: V });
    if (opts.allLogits) {
      const all = mkTmp([R, V], "all_logits");
      await matmul(gpu, lnf, head, all, { M: R, N: V, K: C, transB: true, bias: headBias });
      // Every position's logits are checked too: a NaN at an earlier position never reaches the last one's.
      if (opts.allowNonFinite) logits = await readTensor(all);
      else {
        const r = await readWithNonFiniteCheck(gpu, all);
        logits = r.data;
        if (r.first >= 0) badAll = r.first;
      }
    }
    // One dispatch flags a NaN / Inf in the log-probabilities; its 4 bytes and every captured site come
    // back with them in one map (one completion wait per forward).
    const snaps = pendingCaptures.map(([, t]) => t);
    let flat: Float32Array, bad = -1, snapData: Float32Array[];
    if (opts.allowNonFinite) [flat, ...snapData] = await readTensors([lp, ...snaps]);
    else ({ data: flat, first: bad, extra: snapData } = await readWithNonFiniteCheck(gpu, lp, snaps));
    pendingCaptures.forEach(([name, t], i) => {
      const shape = name.startsWith("attn_pattern.")
        ? [B, cfg.nHead, T, T]
        : [B, T, snapData[i].length / (B * T)];
      captured.set(name, { data: snapData[i], shape });
      t.destroy();
    });
    for (const t of tmp) t.destroy();
    if (bad >= 0 || badAll >= 0) {
      if (save) freeSaved();
      // A cached step cannot be re-run alone (its keys are in the cache): the error names no site.
      if (kv) throw new NonFiniteError("a cached forward gave non-finite log-probabilities", "logits");
      if (bad >= 0) throw await this.nonFiniteError(batch, hooks, flat[bad], bad, V);
      throw await this.nonFiniteError(batch, hooks, logits![badAll], badAll, V, true);
    }
    const logprobs: Float32Array[] = [];
    for (let b = 0; b < B; b++) logprobs.push(flat.slice(b * V, (b + 1) * V));
    const result = { logprobs, captured, logits };
    if (!save) return { result };
    return { result, saved: savedForward() };
  }

  /**
   * The error of a forward whose log-probabilities hold a non-finite value (`v` at index `i`): runs the
   * batch again with every hook site captured and names the first non-finite one in execution order,
   * and the first non-finite weight. Only called on failure, so the check costs one dispatch otherwise.
   */
  private async nonFiniteError(
    batch: number[][],
    hooks: Hooks,
    v: number,
    i: number,
    V: number,
    allPositions = false,
  ): Promise<NonFiniteError> {
    const T = batch[0].length;
    const sites = hookSiteNames(this.config.nLayer);
    const { result } = await this.run(
      batch,
      { hooks: { ...hooks, capture: sites }, allowNonFinite: true },
      false,
    );
    // `i` indexes the last positions' log-probabilities [B, V], or with `allPositions` every logit [B·T, V].
    let site = "logits",
      where = allPositions
        ? describeNonFinite(v, i, V, T)
        : describeNonFinite(v, i, V, 1).replace(", position 0", ", last position");
    for (const name of sites) {
      const data = result.captured.get(name)!.data;
      const at = data.findIndex((x) => !Number.isFinite(x));
      if (at >= 0) {
        site = name;
        where = describeNonFinite(data[at], at, siteWidth(this.config, name), T);
        break;
      }
    }
    let weight: string | undefined;
    for (const [name, t] of this.w) {
      // A 16-bit weight's values are its host copy's (no f32 kernel may read it).
      const bad = isPacked16(t.dtype)
        ? this.hostData(name).some((v) => !Number.isFinite(v))
        : (await firstNonFinite(this.gpu, t)) >= 0;
      if (bad) {
        weight = name;
        break;
      }
    }
    const w = weight ? `; weight '${weight}' holds a non-finite value` : "";
    return new NonFiniteError(
      `the forward pass gave non-finite ${
        allPositions ? "logits" : "log-probabilities"
      }; first non-finite site '${site}' (${where})${w}`,
      site,
      weight,
    );
  }

  /** The output head [V, C]: the family's head tensor if present, else the tied token embedding. */
  lmHead(): GpuTensor {
    return this.w.get(this.headName())!;
  }

  /** Name of the head's weight: the family's head, or the embedding when tied. */
  headName(): string {
    return this.w.has(this.spec.head) ? this.spec.head : this.spec.embed;
  }

  /** The output head's bias [V] (GPT-J), if any. */
  headBias(): GpuTensor | undefined {
    return this.spec.headBias ? this.w.get(this.spec.headBias) : undefined;
  }

  /** The final norm on the GPU. */
  finalNorm(): GpuNorm {
    const n = this.spec.finalNorm;
    return {
      kind: this.config.norm,
      w: this.w.get(n.weight)!,
      b: n.bias ? this.w.get(n.bias) : undefined,
      eps: this.config.layerNormEpsilon,
      wName: n.weight,
      bName: n.bias,
    };
  }

  /** Names of all GPU tensors (fused q/k/v tensors under their fused names). */
  weightNames(): string[] {
    return [...this.w.keys()];
  }
}

/** GPU name of the tensor that stacks a layer's q, k and v projections (from q's name). */
function fusedName(qName: string): string {
  return qName.replace(/q_proj\.(weight|bias)$/, "qkv_proj.$1");
}

function destroyLayer(a: LayerActivations): void {
  const seen = new Set<GpuTensor>();
  const all = Object.values(a).flatMap((t) => (t && !(t instanceof GpuTensor) ? Object.values(t) : [t]));
  for (const t of all as Array<GpuTensor | undefined>) {
    if (t && !seen.has(t)) {
      seen.add(t);
      t.destroy();
    }
  }
}

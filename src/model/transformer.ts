/**
 * GPT-2 on WebGPU: weights uploaded once, a batched forward pass with named hook sites
 * (see ./hooks.ts), and log-probabilities of the next token.
 *
 * A batch is B sequences of equal length T (causal tracing runs many corrupted copies of one prompt);
 * all activations are [B * T, width] row-major with rows ordered b * T + t.
 */
import { InputError, ShapeError } from "../errors.ts";
import type { Gpu } from "../gpu/device.ts";
import { attention } from "../gpu/attention.ts";
import { embedding } from "../gpu/embedding.ts";
import { gelu } from "../gpu/gelu.ts";
import { layerNorm } from "../gpu/layernorm.ts";
import { matmul } from "../gpu/matmul.ts";
import { residualAddInPlace } from "../gpu/residual.ts";
import { logSoftmax } from "../gpu/softmax.ts";
import { copyTensor, createTensor, type GpuTensor, readTensor, writeTensor } from "../gpu/tensor.ts";
import { firstNonFinite, readWithNonFiniteCheck } from "../gpu/nonfinite.ts";
import { describeNonFinite, NonFiniteError } from "./nonfinite.ts";
import type { ModelConfig, WeightMap } from "./config.ts";
import { weightShapes } from "./families/mod.ts";
import { type EditSpec, type Hooks, hookSiteNames, type PatchSpec, siteWidth } from "./hooks.ts";

/** What {@link TransformerModel.forward} returns. */
export interface ForwardResult {
  /** Log-probabilities of the next token after each sequence's last position, [B][V]. */
  logprobs: Float32Array[];
  /** Captured hook sites, each [B * T * width]. */
  captured: Map<string, Float32Array>;
  /** Full logits [B * T * V] when `allLogits` was requested. */
  logits?: Float32Array;
}

/** Options of {@link TransformerModel.forward}. */
export interface ForwardOptions {
  hooks?: Hooks;
  /** Also return logits at every position (large: B * T * V floats). */
  allLogits?: boolean;
  /**
   * Return non-finite log-probabilities instead of throwing {@link NonFiniteError} (default false; used
   * by the re-run that locates the first non-finite site).
   */
  allowNonFinite?: boolean;
}

/** Activations of one block. In inference all layers share one set; for backward each layer keeps its own. */
export interface LayerActivations {
  /** Residual stream entering the block [R, C] (inference: the running residual itself). */
  xIn: GpuTensor;
  ln1: GpuTensor;
  ln1Stats: GpuTensor;
  qkv: GpuTensor;
  probs: GpuTensor | undefined;
  att: GpuTensor;
  /** Residual after the attention add [R, C]. */
  xMid: GpuTensor;
  ln2: GpuTensor;
  ln2Stats: GpuTensor;
  /** MLP pre-activation [R, inner]. */
  fc: GpuTensor;
  /** MLP post-GELU activation [R, inner]. */
  act: GpuTensor;
  proj: GpuTensor;
}

/** Everything a backward pass needs from the forward pass that preceded it. */
export interface SavedForward {
  B: number;
  T: number;
  ids: Uint32Array;
  positions: Uint32Array;
  layers: LayerActivations[];
  /** Residual entering the final layer norm [R, C]. */
  xFinal: GpuTensor;
  lnf: GpuTensor;
  lnfStats: GpuTensor;
  /** Rows of each site that a patch overwrote (their upstream gradient is cut). */
  patchedRows: Map<string, Array<[number, number]>>;
  /** Frees the saved activations. */
  destroy(): void;
}

interface Workspace {
  R: number;
  ids: GpuTensor;
  pos: GpuTensor;
  x: GpuTensor;
  lnf: GpuTensor;
  lnfStats: GpuTensor;
  layer: LayerActivations;
}

/** A GPT-2 model resident on the GPU. */
export class TransformerModel {
  private readonly w = new Map<string, GpuTensor>();
  private ws: Workspace | undefined;

  private constructor(
    readonly gpu: Gpu,
    readonly config: ModelConfig,
    /** Host copy of the weights (kept for edits and CPU-side helpers). */
    readonly weights: WeightMap,
  ) {}

  /** Uploads `weights` (canonical names, see config.ts) to the GPU. */
  static create(gpu: Gpu, config: ModelConfig, weights: WeightMap): TransformerModel {
    const m = new TransformerModel(gpu, config, weights);
    const shapes = weightShapes(config);
    if (weights.has("lm_head.weight")) shapes.set("lm_head.weight", [config.vocabSize, config.nEmbd]);
    for (const [name, shape] of shapes) {
      const t = weights.get(name);
      if (!t) throw new ShapeError(`missing weight`, { field: name });
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new ShapeError(`weight has shape [${t.shape}], expected [${shape}]`, { field: name });
      }
      m.w.set(name, createTensor(gpu, shape, { name, data: t.data }));
    }
    return m;
  }

  /** Re-uploads one weight from the host copy (after an edit of `weights`); see {@link setWeight}. */
  syncWeight(name: string): void {
    const t = this.weights.get(name);
    if (!t) throw new ShapeError(`no such weight`, { field: name });
    this.setWeight(name, t.data);
  }

  /**
   * Sets weight `name` to `data` on the host and uploads it to the GPU: the one way edits, restores and
   * reverts change a weight (src/edit/apply.ts), so the host and GPU copies never differ.
   */
  setWeight(name: string, data: Float32Array): void {
    const t = this.weights.get(name);
    const g = this.w.get(name);
    if (!t || !g) throw new ShapeError(`no such weight`, { field: name });
    if (data.length !== t.data.length) {
      throw new ShapeError(`weight has ${t.data.length} values, got ${data.length}`, { field: name });
    }
    if (data !== t.data) t.data.set(data);
    writeTensor(g, t.data);
  }

  /** GPU tensor of a weight (for kernels that operate on weights directly, e.g. rank-one edits). */
  weight(name: string): GpuTensor {
    const g = this.w.get(name);
    if (!g) throw new ShapeError(`no such weight`, { field: name });
    return g;
  }

  /** Frees GPU memory. */
  destroy(): void {
    for (const t of this.w.values()) t.destroy();
    this.freeWorkspace();
  }

  private freeWorkspace(): void {
    if (!this.ws) return;
    const w = this.ws;
    for (const t of [w.ids, w.pos, w.x, w.lnf, w.lnfStats]) t.destroy();
    destroyLayer(w.layer);
    this.ws = undefined;
  }

  private allocLayer(
    R: number,
    B: number,
    T: number,
    withProbs: boolean,
    xIn: GpuTensor | undefined,
  ): LayerActivations {
    const { nEmbd: C, nInner: I, nHead } = this.config;
    const mk = (name: string, w: number) => createTensor(this.gpu, [R, w], { name });
    return {
      xIn: xIn ?? mk("resid_pre", C),
      ln1: mk("ln_1", C),
      ln1Stats: mk("ln_1.stats", 2),
      qkv: mk("qkv", 3 * C),
      probs: withProbs ? createTensor(this.gpu, [B, nHead, T, T], { name: "attn_probs" }) : undefined,
      att: mk("attention", C),
      xMid: xIn ?? mk("resid_mid", C),
      ln2: mk("ln_2", C),
      ln2Stats: mk("ln_2.stats", 2),
      fc: mk("mlp_pre", I),
      act: mk("mlp_post", I),
      proj: mk("proj", C),
    };
  }

  private workspace(R: number): Workspace {
    if (this.ws && this.ws.R === R) return this.ws;
    this.freeWorkspace();
    const C = this.config.nEmbd;
    const x = createTensor(this.gpu, [R, C], { name: "residual" });
    this.ws = {
      R,
      ids: createTensor(this.gpu, [R], { name: "ids", dtype: "u32" }),
      pos: createTensor(this.gpu, [R], { name: "positions", dtype: "u32" }),
      x,
      lnf: createTensor(this.gpu, [R, C], { name: "ln_f" }),
      lnfStats: createTensor(this.gpu, [R, 2], { name: "ln_f.stats" }),
      layer: this.allocLayer(R, 1, 1, false, x),
    };
    return this.ws;
  }

  /** Checks a batch of token-id sequences: non-empty, equal lengths, within context and vocabulary. */
  checkBatch(batch: number[][]): { B: number; T: number } {
    const B = batch.length;
    if (B === 0) throw new InputError("empty batch", { field: "ids" });
    const T = batch[0].length;
    if (T === 0) throw new InputError("empty prompt: at least one token is needed", { field: "ids" });
    if (T > this.config.nPositions) {
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

  private async run(
    batch: number[][],
    opts: ForwardOptions,
    save: boolean,
  ): Promise<{ result: ForwardResult; saved?: SavedForward }> {
    const { B, T } = this.checkBatch(batch);
    const cfg = this.config;
    const { nEmbd: C, nInner: I, nLayer: L, nHead, vocabSize: V } = cfg;
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
    const patches = new Map<string, PatchSpec[]>();
    const patchedRows = new Map<string, Array<[number, number]>>();
    for (const p of hooks.patch ?? []) {
      const width = siteWidth(cfg, p.site);
      if (p.values.length !== p.rows.length * width) {
        throw new ShapeError(
          `patch of ${p.rows.length} rows needs ${p.rows.length * width} values, got ${p.values.length}`,
          {
            field: p.site,
          },
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
      siteWidth(cfg, e.site);
      edits.set(e.site, [...(edits.get(e.site) ?? []), e]);
    }
    const captured = new Map<string, Float32Array>();
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
      if (capture.has(name)) {
        const snap = createTensor(gpu, [R, width], { name: `capture:${name}` });
        copyTensor(t, snap);
        pendingCaptures.push([name, snap]);
      }
    };

    const ids = new Uint32Array(R), pos = new Uint32Array(R);
    batch.forEach((seq, b) => seq.forEach((id, t) => ((ids[b * T + t] = id), (pos[b * T + t] = t))));
    let ws: Workspace;
    let layers: LayerActivations[];
    let xFinal: GpuTensor, lnf: GpuTensor, lnfStats: GpuTensor;
    let idsT: GpuTensor, posT: GpuTensor;
    if (save) {
      idsT = createTensor(gpu, [R], { name: "ids", dtype: "u32" });
      posT = createTensor(gpu, [R], { name: "positions", dtype: "u32" });
      layers = Array.from({ length: L }, () => this.allocLayer(R, B, T, true, undefined));
      xFinal = createTensor(gpu, [R, C], { name: "resid_final" });
      lnf = createTensor(gpu, [R, C], { name: "ln_f" });
      lnfStats = createTensor(gpu, [R, 2], { name: "ln_f.stats" });
    } else {
      ws = this.workspace(R);
      idsT = ws.ids;
      posT = ws.pos;
      layers = Array.from({ length: L }, () => ws.layer);
      xFinal = ws.x;
      lnf = ws.lnf;
      lnfStats = ws.lnfStats;
    }
    writeTensor(idsT, ids);
    writeTensor(posT, pos);
    const W = (n: string) => this.w.get(n)!;
    const eps = cfg.layerNormEpsilon;
    // In save mode each stream tensor is distinct, so the residual is carried by copies.
    const x0 = save ? layers[0]?.xIn ?? xFinal : xFinal;
    await embedding(gpu, idsT, W("wte.weight"), W("wpe.weight"), x0, { T: R, C, positions: posT });
    await site("embed", x0);
    for (let l = 0; l < L; l++) {
      const p = `h.${l}.`;
      const a = layers[l];
      await site(`resid_pre.${l}`, a.xIn);
      await layerNorm(gpu, a.xIn, W(p + "ln_1.weight"), W(p + "ln_1.bias"), a.ln1, {
        rows: R,
        cols: C,
        eps,
        stats: a.ln1Stats,
      });
      await matmul(gpu, a.ln1, W(p + "attn.c_attn.weight"), a.qkv, {
        M: R,
        N: 3 * C,
        K: C,
        bias: W(p + "attn.c_attn.bias"),
      });
      await attention(gpu, a.qkv, a.att, { B, T, C, nHead, probs: a.probs });
      await matmul(gpu, a.att, W(p + "attn.c_proj.weight"), a.proj, {
        M: R,
        N: C,
        K: C,
        bias: W(p + "attn.c_proj.bias"),
      });
      await site(`attn_out.${l}`, a.proj);
      if (save) copyTensor(a.xIn, a.xMid);
      await residualAddInPlace(gpu, a.xMid, a.proj);
      await layerNorm(gpu, a.xMid, W(p + "ln_2.weight"), W(p + "ln_2.bias"), a.ln2, {
        rows: R,
        cols: C,
        eps,
        stats: a.ln2Stats,
      });
      await matmul(gpu, a.ln2, W(p + "mlp.c_fc.weight"), a.fc, {
        M: R,
        N: I,
        K: C,
        bias: W(p + "mlp.c_fc.bias"),
      });
      await gelu(gpu, a.fc, a.act);
      await site(`mlp_post.${l}`, a.act);
      await matmul(gpu, a.act, W(p + "mlp.c_proj.weight"), a.proj, {
        M: R,
        N: C,
        K: I,
        bias: W(p + "mlp.c_proj.bias"),
      });
      await site(`mlp_out.${l}`, a.proj);
      const out = save ? (l + 1 < L ? layers[l + 1].xIn : xFinal) : a.xMid;
      if (save) copyTensor(a.xMid, out);
      await residualAddInPlace(gpu, out, a.proj);
      await site(`resid_post.${l}`, out);
    }
    await layerNorm(gpu, xFinal, W("ln_f.weight"), W("ln_f.bias"), lnf, {
      rows: R,
      cols: C,
      eps,
      stats: lnfStats,
    });
    await site("ln_f", lnf);

    const head = this.lmHead();
    let logits: Float32Array | undefined;
    const last = createTensor(gpu, [B, C], { name: "last_hidden" });
    for (let b = 0; b < B; b++) copyTensor(lnf, last, C, (b * T + T - 1) * C, b * C);
    const lastLogits = createTensor(gpu, [B, V], { name: "logits" });
    await matmul(gpu, last, head, lastLogits, { M: B, N: V, K: C, transB: true });
    const lp = createTensor(gpu, [B, V], { name: "logprobs" });
    await logSoftmax(gpu, lastLogits, lp, { rows: B, cols: V });
    if (opts.allLogits) {
      const all = createTensor(gpu, [R, V], { name: "all_logits" });
      await matmul(gpu, lnf, head, all, { M: R, N: V, K: C, transB: true });
      logits = await readTensor(all);
      all.destroy();
    }
    // One dispatch flags a NaN / Inf in the log-probabilities; its 4 bytes come back with them.
    const { data: flat, first: bad } = opts.allowNonFinite
      ? { data: await readTensor(lp), first: -1 }
      : await readWithNonFiniteCheck(gpu, lp);
    for (const [name, t] of pendingCaptures) {
      captured.set(name, await readTensor(t));
      t.destroy();
    }
    last.destroy();
    lastLogits.destroy();
    lp.destroy();
    if (bad >= 0) {
      if (save) {
        for (const a of layers) destroyLayer(a);
        for (const t of [idsT, posT, xFinal, lnf, lnfStats]) t.destroy();
      }
      throw await this.nonFiniteError(batch, hooks, flat[bad], bad, V);
    }
    const logprobs: Float32Array[] = [];
    for (let b = 0; b < B; b++) logprobs.push(flat.slice(b * V, (b + 1) * V));
    const result = { logprobs, captured, logits };
    if (!save) return { result };
    const saved: SavedForward = {
      B,
      T,
      ids,
      positions: pos,
      layers,
      xFinal,
      lnf,
      lnfStats,
      patchedRows,
      destroy() {
        for (const a of layers) destroyLayer(a);
        for (const t of [idsT, posT, xFinal, lnf, lnfStats]) t.destroy();
      },
    };
    return { result, saved };
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
  ): Promise<NonFiniteError> {
    const T = batch[0].length;
    const sites = hookSiteNames(this.config.nLayer);
    const { result } = await this.run(
      batch,
      { hooks: { ...hooks, capture: sites }, allowNonFinite: true },
      false,
    );
    let site = "logits", where = describeNonFinite(v, i, V, 1).replace(", position 0", ", last position");
    for (const name of sites) {
      const data = result.captured.get(name)!;
      const at = data.findIndex((x) => !Number.isFinite(x));
      if (at >= 0) {
        site = name;
        where = describeNonFinite(data[at], at, siteWidth(this.config, name), T);
        break;
      }
    }
    let weight: string | undefined;
    for (const [name, t] of this.w) {
      if ((await firstNonFinite(this.gpu, t)) >= 0) {
        weight = name;
        break;
      }
    }
    const w = weight ? `; weight '${weight}' holds a non-finite value` : "";
    return new NonFiniteError(
      `the forward pass gave non-finite log-probabilities; first non-finite site '${site}' (${where})${w}`,
      site,
      weight,
    );
  }

  /** The output embedding [V, C]: a separate lm_head if present, else the tied wte. */
  lmHead(): GpuTensor {
    return this.w.get("lm_head.weight") ?? this.w.get("wte.weight")!;
  }

  /** Names of all weights on the GPU. */
  weightNames(): string[] {
    return [...this.w.keys()];
  }
}

function destroyLayer(a: LayerActivations): void {
  const seen = new Set<GpuTensor>();
  for (const t of Object.values(a)) {
    if (t && !seen.has(t)) {
      seen.add(t);
      (t as GpuTensor).destroy();
    }
  }
}

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
import type { GPT2Config, WeightMap } from "./config.ts";
import { gpt2WeightShapes } from "./config.ts";
import { type Hooks, siteWidth } from "./hooks.ts";

/** What {@link GPT2Model.forward} returns. */
export interface ForwardResult {
  /** Log-probabilities of the next token after each sequence's last position, [B][V]. */
  logprobs: Float32Array[];
  /** Captured hook sites, each [B * T * width]. */
  captured: Map<string, Float32Array>;
  /** Full logits [B * T * V] when `allLogits` was requested. */
  logits?: Float32Array;
}

/** Options of {@link GPT2Model.forward}. */
export interface ForwardOptions {
  hooks?: Hooks;
  /** Also return logits at every position (large: B * T * V floats). */
  allLogits?: boolean;
}

interface Workspace {
  R: number;
  ids: GpuTensor;
  pos: GpuTensor;
  x: GpuTensor;
  ln: GpuTensor;
  qkv: GpuTensor;
  att: GpuTensor;
  proj: GpuTensor;
  fc: GpuTensor;
  act: GpuTensor;
}

/** A GPT-2 model resident on the GPU. */
export class GPT2Model {
  private readonly w = new Map<string, GpuTensor>();
  private ws: Workspace | undefined;

  private constructor(
    readonly gpu: Gpu,
    readonly config: GPT2Config,
    /** Host copy of the weights (kept for edits and CPU-side helpers). */
    readonly weights: WeightMap,
  ) {}

  /** Uploads `weights` (canonical names, see config.ts) to the GPU. */
  static create(gpu: Gpu, config: GPT2Config, weights: WeightMap): GPT2Model {
    const m = new GPT2Model(gpu, config, weights);
    const shapes = gpt2WeightShapes(config);
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

  /** Re-uploads one weight from the host copy (after an edit of `weights`). */
  syncWeight(name: string): void {
    const t = this.weights.get(name);
    const g = this.w.get(name);
    if (!t || !g) throw new ShapeError(`no such weight`, { field: name });
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
    for (const [k, v] of Object.entries(this.ws)) if (k !== "R") (v as GpuTensor).destroy();
    this.ws = undefined;
  }

  private workspace(R: number): Workspace {
    if (this.ws && this.ws.R === R) return this.ws;
    this.freeWorkspace();
    const { nEmbd: C, nInner: I } = this.config;
    const mk = (name: string, w: number, dtype: "f32" | "u32" = "f32") =>
      createTensor(this.gpu, [R, w], { name, dtype });
    this.ws = {
      R,
      ids: mk("ids", 1, "u32"),
      pos: mk("positions", 1, "u32"),
      x: mk("residual", C),
      ln: mk("ln", C),
      qkv: mk("qkv", 3 * C),
      att: mk("attention", C),
      proj: mk("proj", C),
      fc: mk("mlp_pre", I),
      act: mk("mlp_post", I),
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
      throw new InputError(`prompt has ${T} tokens, longer than the model's context of ${this.config.nPositions}`, {
        field: "ids",
      });
    }
    for (const seq of batch) {
      if (seq.length !== T) throw new InputError(`batch sequences differ in length (${seq.length} vs ${T})`, { field: "ids" });
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
    const { B, T } = this.checkBatch(batch);
    const cfg = this.config;
    const { nEmbd: C, nInner: I, nLayer: L, nHead, vocabSize: V } = cfg;
    const R = B * T;
    const gpu = this.gpu;
    const ws = this.workspace(R);
    const hooks = opts.hooks ?? {};
    const capture = new Set(hooks.capture ?? []);
    for (const s of capture) siteWidth(cfg, s);
    const patches = new Map<string, typeof hooks.patch>();
    for (const p of hooks.patch ?? []) {
      const width = siteWidth(cfg, p.site);
      if (p.values.length !== p.rows.length * width) {
        throw new ShapeError(`patch of ${p.rows.length} rows needs ${p.rows.length * width} values, got ${p.values.length}`, {
          field: p.site,
        });
      }
      for (const [b, t] of p.rows) {
        if (!(b >= 0 && b < B && t >= 0 && t < T && Number.isInteger(b) && Number.isInteger(t))) {
          throw new InputError(`patch row [${b}, ${t}] outside batch [${B}, ${T}]`, { field: p.site });
        }
      }
      const list = patches.get(p.site) ?? [];
      list.push(p);
      patches.set(p.site, list);
    }
    const edits = new Map<string, NonNullable<Hooks["edit"]>>();
    for (const e of hooks.edit ?? []) {
      siteWidth(cfg, e.site);
      const list = edits.get(e.site) ?? [];
      list.push(e);
      edits.set(e.site, list);
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
    writeTensor(ws.ids, ids);
    writeTensor(ws.pos, pos);
    const W = (n: string) => this.w.get(n)!;
    await embedding(gpu, ws.ids, W("wte.weight"), W("wpe.weight"), ws.x, { T: R, C, positions: ws.pos });
    await site("embed", ws.x);
    const eps = cfg.layerNormEpsilon;
    for (let l = 0; l < L; l++) {
      const p = `h.${l}.`;
      await site(`resid_pre.${l}`, ws.x);
      await layerNorm(gpu, ws.x, W(p + "ln_1.weight"), W(p + "ln_1.bias"), ws.ln, { rows: R, cols: C, eps });
      await matmul(gpu, ws.ln, W(p + "attn.c_attn.weight"), ws.qkv, {
        M: R,
        N: 3 * C,
        K: C,
        bias: W(p + "attn.c_attn.bias"),
      });
      await attention(gpu, ws.qkv, ws.att, { B, T, C, nHead });
      await matmul(gpu, ws.att, W(p + "attn.c_proj.weight"), ws.proj, {
        M: R,
        N: C,
        K: C,
        bias: W(p + "attn.c_proj.bias"),
      });
      await site(`attn_out.${l}`, ws.proj);
      await residualAddInPlace(gpu, ws.x, ws.proj);
      await layerNorm(gpu, ws.x, W(p + "ln_2.weight"), W(p + "ln_2.bias"), ws.ln, { rows: R, cols: C, eps });
      await matmul(gpu, ws.ln, W(p + "mlp.c_fc.weight"), ws.fc, { M: R, N: I, K: C, bias: W(p + "mlp.c_fc.bias") });
      await gelu(gpu, ws.fc, ws.act);
      await site(`mlp_post.${l}`, ws.act);
      await matmul(gpu, ws.act, W(p + "mlp.c_proj.weight"), ws.proj, {
        M: R,
        N: C,
        K: I,
        bias: W(p + "mlp.c_proj.bias"),
      });
      await site(`mlp_out.${l}`, ws.proj);
      await residualAddInPlace(gpu, ws.x, ws.proj);
      await site(`resid_post.${l}`, ws.x);
    }
    await layerNorm(gpu, ws.x, W("ln_f.weight"), W("ln_f.bias"), ws.ln, { rows: R, cols: C, eps });
    await site("ln_f", ws.ln);

    const head = this.w.get("lm_head.weight") ?? W("wte.weight");
    let logits: Float32Array | undefined;
    const last = createTensor(gpu, [B, C], { name: "last_hidden" });
    for (let b = 0; b < B; b++) copyTensor(ws.ln, last, C, (b * T + T - 1) * C, b * C);
    const lastLogits = createTensor(gpu, [B, V], { name: "logits" });
    await matmul(gpu, last, head, lastLogits, { M: B, N: V, K: C, transB: true });
    const lp = createTensor(gpu, [B, V], { name: "logprobs" });
    await logSoftmax(gpu, lastLogits, lp, { rows: B, cols: V });
    if (opts.allLogits) {
      const all = createTensor(gpu, [R, V], { name: "all_logits" });
      await matmul(gpu, ws.ln, head, all, { M: R, N: V, K: C, transB: true });
      logits = await readTensor(all);
      all.destroy();
    }
    const flat = await readTensor(lp);
    for (const [name, t] of pendingCaptures) {
      captured.set(name, await readTensor(t));
      t.destroy();
    }
    last.destroy();
    lastLogits.destroy();
    lp.destroy();
    const logprobs: Float32Array[] = [];
    for (let b = 0; b < B; b++) logprobs.push(flat.slice(b * V, (b + 1) * V));
    return { logprobs, captured, logits };
  }
}

/**
 * Backward pass of any family's model (./transformer.ts) on WebGPU: the gradient of a next-token cross-entropy loss with respect to
 * every parameter and to any hook site.
 *
 * The loss is L = sum over counted rows r of scale * (-log p(target_r | row r)); rows whose target is
 * -1 are not counted. With reduction "mean" (default) scale = 1 / counted rows.
 * Patched rows of a site (see ./hooks.ts) are constants of the forward pass: the gradient stops there.
 */
import { InputError, ShapeError } from "../errors.ts";
import { biasGrad } from "../gpu/bias_grad.ts";
import { crossEntropy, IGNORE_TARGET } from "../gpu/cross_entropy.ts";
import { embeddingBackward } from "../gpu/embedding_backward.ts";
import { matmul } from "../gpu/matmul.ts";
import { fill } from "../gpu/reduce.ts";
import {
  copyTensor,
  createTensor,
  type GpuTensor,
  readRange,
  readTensor,
  readTensors,
  writeTensor,
} from "../gpu/tensor.ts";
import type { SavedForward, TransformerModel } from "./transformer.ts";
import type { Hooks } from "./hooks.ts";
import { siteWidth } from "./hooks.ts";
import {
  type AttentionCore,
  attentionCoreBackward,
  type GpuLinear,
  linearBackward,
  mlpActBackward,
  normBackward,
} from "./layers.ts";

/** Gradient buffers on the GPU, one per weight, same shapes as the weights. */
export class Gradients {
  /** Gradient buffers by GPU tensor name (a fused q/k/v tensor has one buffer for its parts). */
  readonly grads = new Map<string, GpuTensor>();
  /**
   * Buffers for the GPU tensors holding `names` (checkpoint or GPU names; default every GPU tensor).
   * Weights without a buffer get no gradient: the backward skips their products.
   */
  constructor(readonly model: TransformerModel, names: string[] = model.weightNames()) {
    for (const n of names) {
      const gpuName = model.weightNames().includes(n) ? n : model.weightRef(n).gpuName;
      if (this.grads.has(gpuName)) continue;
      // weightShape, not weight(): a 16-bit weight stays 16-bit until something updates it.
      this.grads.set(
        gpuName,
        createTensor(model.gpu, model.weightShape(gpuName), { name: `grad:${gpuName}` }),
      );
    }
  }
  /** Whether GPU tensor `name` has a gradient buffer. */
  has(name: string): boolean {
    return this.grads.has(name);
  }
  /** Gradient tensor of GPU tensor `name`. */
  get(name: string): GpuTensor {
    const g = this.grads.get(name);
    if (!g) throw new ShapeError("no gradient buffer for this weight", { field: name });
    return g;
  }
  /** Sets every gradient to zero. */
  async zero(): Promise<void> {
    for (const g of this.grads.values()) await fill(this.model.gpu, g, 0);
  }
  /** Reads the gradient of one weight back to the host (a checkpoint tensor of a fused one: its slice). */
  read(name: string): Promise<Float32Array> {
    if (this.grads.has(name)) return readTensor(this.grads.get(name)!);
    const r = this.model.weightRef(name);
    return readRange(this.get(r.gpuName), r.offset, r.numel);
  }
  /** {@link read} of several weights in one map (one completion wait), in the order of `names`. */
  readMany(names: readonly string[]): Promise<Float32Array[]> {
    return readTensors(names.map((name) => {
      if (this.grads.has(name)) return this.grads.get(name)!;
      const r = this.model.weightRef(name);
      return { tensor: this.get(r.gpuName), offset: r.offset, count: r.numel };
    }));
  }
  /** Frees the buffers. */
  destroy(): void {
    for (const g of this.grads.values()) g.destroy();
  }
}

/** Next-token targets and how row losses are combined. */
export interface LossSpec {
  /** targets[b][t] is the token that should follow position t of sequence b, or -1 to ignore it. */
  targets: number[][];
  /** "mean" (default) over counted rows, or "sum". */
  reduction?: "mean" | "sum";
}

/** Options of {@link lossAndGradients}. */
export interface BackwardOptions {
  hooks?: Hooks;
  /** Where parameter gradients go; omit to compute only site gradients (cheaper). */
  grads?: Gradients;
  /** Add into `grads` instead of overwriting (gradient accumulation). */
  accumulate?: boolean;
  /** Hook sites whose gradient dL/dsite [B * T * width] to return. */
  siteGrads?: Iterable<string>;
  /**
   * Let the forward finish on non-finite log-probabilities (default: a NonFiniteError). The trainer sets
   * it: it checks the loss itself and reports divergence with the last good checkpoint.
   */
  allowNonFinite?: boolean;
  /**
   * GPU work recorded once every gradient is (e.g. their squared norm), returning tensors to read: they come
   * back in the backward's one map, as {@link BackwardResult.after}, so a training step waits once. For
   * {@link lossAndGradients} and {@link backward} only (the logit-loss backwards refuse it).
   */
  afterGradients?: () => Promise<GpuTensor[]>;
}

/** Result of {@link lossAndGradients}. */
export interface BackwardResult {
  /** The reduced loss. */
  loss: number;
  /** -log p(target) per row [B * T] (0 for ignored rows). */
  rowLosses: Float32Array;
  /** Number of rows counted in the loss. */
  counted: number;
  siteGrads: Map<string, Float32Array>;
  /** The tensors {@link BackwardOptions.afterGradients} returned, read with the gradients (else empty). */
  after: Float32Array[];
}

/**
 * The forward of a loss-and-gradients call: only its saved activations are used, so with the non-finite
 * check off its own readback (the last positions' log-probabilities, a map of at least 10 ms on Deno) has
 * no reader and is skipped.
 */
async function forwardForLoss(
  model: TransformerModel,
  batch: number[][],
  opts: BackwardOptions,
): Promise<SavedForward> {
  const { saved } = await model.forwardForBackward(batch, {
    hooks: opts.hooks,
    allowNonFinite: opts.allowNonFinite,
    noReadback: opts.allowNonFinite === true,
  });
  return saved;
}

/** The logit-loss backwards read their own tensors: {@link BackwardOptions.afterGradients} is refused. */
function refuseAfterGradients(opts: BackwardOptions): void {
  if (opts.afterGradients) {
    throw new InputError("afterGradients is for lossAndGradients / backward", { field: "afterGradients" });
  }
}

/** Runs forward (saving activations) and backward; see the module comment for the loss. */
export async function lossAndGradients(
  model: TransformerModel,
  batch: number[][],
  loss: LossSpec,
  opts: BackwardOptions = {},
): Promise<BackwardResult> {
  const saved = await forwardForLoss(model, batch, opts);
  try {
    return await backward(model, saved, loss, opts);
  } finally {
    saved.destroy();
  }
}

/** Backward pass from saved activations. */
export async function backward(
  model: TransformerModel,
  saved: SavedForward,
  loss: LossSpec,
  opts: BackwardOptions = {},
): Promise<BackwardResult> {
  const gpu = model.gpu;
  const V = model.config.vocabSize;
  const { B, T } = saved;
  const R = B * T;
  if (loss.targets.length !== B || loss.targets.some((row) => row.length !== T)) {
    throw new InputError(`targets must be [${B}][${T}] like the batch`, { field: "targets" });
  }
  const targets = new Uint32Array(R);
  let counted = 0;
  loss.targets.forEach((row, b) =>
    row.forEach((id, t) => {
      if (id === -1) targets[b * T + t] = IGNORE_TARGET;
      else {
        if (!Number.isInteger(id) || id < 0 || id >= V) {
          throw new InputError(`target id ${id} out of range [0, ${V})`, { field: "targets" });
        }
        targets[b * T + t] = id;
        counted++;
      }
    })
  );
  if (counted === 0) throw new InputError("no counted target: every target is -1", { field: "targets" });
  const scale = (loss.reduction ?? "mean") === "mean" ? 1 / counted : 1;
  // Mostly ignored rows (one answer per prompt, as integrated gradients and instance attribution ask):
  // run the head on the counted rows only.
  const headRows = counted * 2 <= R
    ? [...targets.keys()].filter((r) => targets[r] !== IGNORE_TARGET)
    : undefined;
  const n = headRows ? headRows.length : R;
  let rowLossT: GpuTensor | undefined;
  let targetsT: GpuTensor | undefined;
  try {
    // The row losses come back in the same map as the site gradients (one completion wait).
    const reads: Float32Array[] = [];
    const siteGrads = await backwardCore(
      model,
      saved,
      opts,
      async (logits, dlogits) => {
        const tg = headRows ? Uint32Array.from(headRows, (r) => targets[r]) : targets;
        targetsT = createTensor(gpu, [n], { name: "targets", dtype: "u32", data: tg });
        rowLossT = createTensor(gpu, [n], { name: "row_losses" });
        await crossEntropy(gpu, logits, targetsT, rowLossT, dlogits, { rows: n, cols: V, scale });
        return [rowLossT];
      },
      headRows,
      reads,
    );
    let rowLosses = reads[0];
    if (headRows) {
      const full = new Float32Array(R);
      headRows.forEach((r, i) => (full[r] = rowLosses[i]));
      rowLosses = full;
    }
    let total = 0;
    for (let r = 0; r < R; r++) if (targets[r] !== IGNORE_TARGET) total += rowLosses[r];
    return { loss: total * scale, rowLosses, counted, siteGrads, after: reads.slice(1) };
  } finally {
    rowLossT?.destroy();
    targetsT?.destroy();
  }
}

/**
 * A loss defined on some rows of the logits, computed on the host: given the logits of the listed
 * rows ([rows.length * V], row-major, in the order of `rows`), returns the loss and its gradient with
 * respect to those logits (same layout). Rows not listed get zero gradient.
 */
export type LogitLossFn = (
  logits: Float32Array,
  rows: number[],
  V: number,
) => { loss: number; dlogits: Float32Array };

/** Result of {@link backwardFromLogitGrads}. */
export interface LogitBackwardResult {
  loss: number;
  siteGrads: Map<string, Float32Array>;
}

/**
 * Backward pass for an arbitrary loss of the logits (e.g. a KL divergence): the logits of `rows`
 * (flat indices b * T + t) are read back, `lossFn` gives dL/dlogits for them, and the gradient flows
 * through the model as in {@link backward} (same hooks, parameter and site gradients).
 */
export async function backwardFromLogitGrads(
  model: TransformerModel,
  saved: SavedForward,
  rows: number[],
  lossFn: LogitLossFn,
  opts: BackwardOptions = {},
): Promise<LogitBackwardResult> {
  refuseAfterGradients(opts);
  const gpu = model.gpu;
  const V = model.config.vocabSize;
  const R = saved.B * saved.T;
  if (rows.length === 0) throw new InputError("no logit rows for the loss", { field: "rows" });
  for (const r of rows) {
    if (!Number.isInteger(r) || r < 0 || r >= R) {
      throw new InputError(`logit row ${r} out of range [0, ${R})`, { field: "rows" });
    }
  }
  let loss = 0;
  const check = (res: { dlogits: Float32Array }) => {
    if (res.dlogits.length !== rows.length * V) {
      throw new ShapeError(`dlogits has ${res.dlogits.length} values, expected ${rows.length * V}`, {
        field: "dlogits",
      });
    }
  };
  if (new Set(rows).size === rows.length) {
    // Distinct rows: the head runs on those rows only, in the order given, so logits arrive as lossFn wants.
    const siteGrads = await backwardCore(model, saved, opts, async (logits, dlogits) => {
      const res = lossFn(await readTensor(logits), rows, V);
      check(res);
      loss = res.loss;
      writeTensor(dlogits, res.dlogits);
    }, rows);
    return { loss, siteGrads };
  }
  // A row listed twice: run the head densely and sum the repeated rows' gradients.
  const compact = createTensor(gpu, [rows.length, V], { name: "logit_rows" });
  try {
    const siteGrads = await backwardCore(model, saved, opts, async (logits, dlogits) => {
      rows.forEach((r, i) => copyTensor(logits, compact, V, r * V, i * V));
      const res = lossFn(await readTensor(compact), rows, V);
      check(res);
      loss = res.loss;
      const dense = new Float32Array(R * V);
      rows.forEach((r, i) => {
        for (let v = 0; v < V; v++) dense[r * V + v] += res.dlogits[i * V + v];
      });
      writeTensor(dlogits, dense);
    });
    return { loss, siteGrads };
  } finally {
    compact.destroy();
  }
}

/**
 * {@link backwardFromLogitGrads} with the loss on the GPU: `head` records the kernels that fill dL/dlogits
 * from the logits of `rows` (distinct flat indices b * T + t, in that order) and returns the tensors to
 * read back (its loss terms), which come back in the same map as the site gradients: one completion wait
 * for the whole backward. The logits never reach the host.
 */
export async function backwardFromGpuLogitGrads(
  model: TransformerModel,
  saved: SavedForward,
  rows: number[],
  head: (logits: GpuTensor, dlogits: GpuTensor) => Promise<GpuTensor[]>,
  opts: BackwardOptions = {},
): Promise<{ siteGrads: Map<string, Float32Array>; reads: Float32Array[] }> {
  refuseAfterGradients(opts);
  const R = saved.B * saved.T;
  if (rows.length === 0) throw new InputError("no logit rows for the loss", { field: "rows" });
  for (const r of rows) {
    if (!Number.isInteger(r) || r < 0 || r >= R) {
      throw new InputError(`logit row ${r} out of range [0, ${R})`, { field: "rows" });
    }
  }
  if (new Set(rows).size !== rows.length) {
    throw new InputError("GPU logit losses take distinct rows", { field: "rows" });
  }
  const reads: Float32Array[] = [];
  const siteGrads = await backwardCore(model, saved, opts, head, rows, reads);
  return { siteGrads, reads };
}

/** Runs forward (saving activations) and {@link backwardFromLogitGrads}. */
export async function logitLossAndGradients(
  model: TransformerModel,
  batch: number[][],
  rows: number[],
  lossFn: LogitLossFn,
  opts: BackwardOptions = {},
): Promise<LogitBackwardResult> {
  const saved = await forwardForLoss(model, batch, opts);
  try {
    return await backwardFromLogitGrads(model, saved, rows, lossFn, opts);
  } finally {
    saved.destroy();
  }
}

/** Shared backward: logits, `head` fills dL/dlogits, then gradients flow down to the embeddings. */
async function backwardCore(
  model: TransformerModel,
  saved: SavedForward,
  opts: BackwardOptions,
  head: (logits: GpuTensor, dlogits: GpuTensor) => Promise<void | GpuTensor[]>,
  headRows?: number[],
  extraOut?: Float32Array[],
): Promise<Map<string, Float32Array>> {
  const gpu = model.gpu;
  const cfg = model.config;
  const { nEmbd: C, nInner: I, nLayer: L, vocabSize: V, nHead, headDim: D } = cfg;
  const { B, T } = saved;
  const R = B * T;
  const wantSites = new Set(opts.siteGrads ?? []);
  for (const s of wantSites) siteWidth(cfg, s, "patch");
  const siteGrads = new Map<string, Float32Array>();
  const pending: Array<[string, GpuTensor]> = [];
  const grads = opts.grads;
  const acc = Boolean(opts.accumulate);
  const G = (n: string | undefined) => (grads && n && grads.has(n) ? grads.get(n) : undefined);
  // Without parameter gradients the pass stops once every wanted site's gradient is taken: the blocks
  // below it contribute nothing (ROME / MEMIT's δ loops skip every block under the edited one).
  const remaining = new Set(wantSites);
  const finished = () => !grads && remaining.size === 0;
  const startLayer = saved.startLayer ?? 0;
  const tmp: GpuTensor[] = [];
  const mk = (name: string, shape: number[]) => {
    const t = createTensor(gpu, shape, { name });
    tmp.push(t);
    return t;
  };
  const zeros = mk("zeros", [Math.max(C, I, nHead * D)]);
  await fill(gpu, zeros, 0);
  // Records the gradient of a site, then cuts rows a patch overwrote (they are constants).
  const site = (name: string, g: GpuTensor, width: number) => {
    if (wantSites.has(name)) {
      const snap = mk(`grad:${name}`, [R, width]);
      copyTensor(g, snap);
      pending.push([name, snap]);
      remaining.delete(name);
    }
    for (const [b, t] of saved.patchedRows.get(name) ?? []) {
      copyTensor(zeros, g, width, 0, (b * T + t) * width);
    }
  };
  // A branch output (attn_out / mlp_out) patched: the residual keeps its gradient, the branch does not.
  const branch = (name: string, dx: GpuTensor, scratch: GpuTensor, forceCopy = false) => {
    const rows = saved.patchedRows.get(name);
    if (wantSites.has(name)) {
      const snap = mk(`grad:${name}`, [R, C]);
      copyTensor(dx, snap);
      pending.push([name, snap]);
      remaining.delete(name);
    }
    if (!rows?.length && !forceCopy) return dx;
    copyTensor(dx, scratch);
    for (const [b, t] of rows ?? []) copyTensor(zeros, scratch, C, 0, (b * T + t) * C);
    return scratch;
  };

  // Head: logits = ln_f @ head^T (+ bias); the loss fills dlogits.
  const head_ = model.lmHead();
  const headName = model.headName();
  // With `headRows` (distinct rows) only those rows get logits: the head's two V-wide products are the
  // most expensive part of a small model's step, and a sparse loss has zero gradient everywhere else.
  const n = headRows ? headRows.length : R;
  let hin = saved.lnf;
  if (headRows) {
    hin = mk("head_in", [n, C]);
    headRows.forEach((r, i) => copyTensor(saved.lnf, hin, C, r * C, i * C));
  }
  const logits = mk("logits", [n, V]);
  await matmul(gpu, hin, head_, logits, { M: n, N: V, K: C, transB: true, bias: model.headBias() });
  const dlogits = mk("dlogits", [n, V]);
  // A GPU head may name tensors to read back with the site gradients (its loss: still one map).
  const extra = (await head(logits, dlogits)) ?? [];
  const dHead = G(headName);
  if (dHead) await matmul(gpu, dlogits, hin, dHead, { M: V, N: C, K: n, transA: true, accumulate: acc });
  const dHeadBias = G(model.spec.headBias);
  if (dHeadBias) await biasGrad(gpu, dlogits, dHeadBias, { rows: n, cols: V, accumulate: acc });
  const dln = mk("d_ln", [R, C]);
  if (headRows) {
    const dlnRows = mk("d_ln_rows", [n, C]);
    await matmul(gpu, dlogits, head_, dlnRows, { M: n, N: C, K: V });
    await fill(gpu, dln, 0);
    headRows.forEach((r, i) => copyTensor(dlnRows, dln, C, i * C, r * C));
  } else await matmul(gpu, dlogits, head_, dln, { M: R, N: C, K: V });
  site("ln_f", dln, C);
  const dx = mk("d_resid", [R, C]);
  const fn = model.finalNorm();
  await normBackward(
    gpu,
    fn,
    dln,
    saved.xFinal,
    saved.lnfStats,
    dx,
    { dw: G(fn.wName), db: G(fn.bName) },
    R,
    C,
    {
      accumulate: false,
      accumulateParams: acc,
    },
  );
  const dmlpScratch = mk("d_mlp_branch", [R, C]);
  const dattnScratch = mk("d_attn_branch", [R, C]);
  const dact = mk("d_act", [R, I]);
  const dfc = mk("d_fc", [R, I]);
  const dgate = cfg.activation === "silu" ? mk("d_gate", [R, I]) : undefined;
  const datt = mk("d_att", [R, nHead * D]);
  const W = model.qkvWidth;
  const dqkv = mk("d_qkv", [R, W]);
  const dqkvRaw = cfg.qkNorm ? mk("d_qkv_raw", [R, W]) : dqkv;
  const dln2 = cfg.parallelResidual === "two_norms" ? mk("d_ln_2", [R, C]) : dln;
  const lg = (p: GpuLinear) => ({ dw: G(p.wName), db: G(p.bName) });
  const parallel = cfg.parallelResidual !== "none";
  let stopped = finished();
  for (let l = L - 1; l >= 0 && !stopped; l--) {
    const g = model.layers[l];
    const a = saved.layers[l];
    site(`resid_post.${l}`, dx, C);
    if ((stopped = finished())) break;
    // Branch gradients are taken before dx changes (in parallel blocks both read d resid_post).
    const dmlp = branch(`mlp_out.${l}`, dx, dmlpScratch, parallel);
    const dattnParallel = parallel ? branch(`attn_out.${l}`, dx, dattnScratch, true) : undefined;
    if ((stopped = finished())) break;
    // A forward resumed at block S saved nothing below it: only block S-1's output (and its additive
    // branches, whose gradient is the output's) can be differentiated there.
    if (l < startLayer) {
      throw new InputError(
        `the forward resumed at block ${startLayer}: no gradients below it (parameters, or sites under block ${
          startLayer - 1
        }'s output)`,
        { field: "resume" },
      );
    }
    // MLP branch: down projection, activation, up (and gate) projections into the MLP input's gradient.
    await linearBackward(gpu, a.act, dmlp, g.down, dact, lg(g.down), R, { accumulateParams: acc });
    site(`mlp_post.${l}`, dact, I);
    if ((stopped = finished())) break;
    await mlpActBackward(gpu, cfg.activation, a.fc, a.gate, dact, dfc, dgate);
    const mlpIn = cfg.parallelResidual === "one_norm" ? a.ln1 : a.ln2!;
    const dMlpIn = cfg.parallelResidual === "two_norms" ? dln2 : dln;
    await linearBackward(gpu, mlpIn, dfc, g.up, dMlpIn, lg(g.up), R, { accumulateParams: acc });
    if (g.gate) {
      await linearBackward(gpu, mlpIn, dgate!, g.gate, dMlpIn, lg(g.gate), R, {
        accumulateDx: true,
        accumulateParams: acc,
      });
    }
    let dattn: GpuTensor;
    if (cfg.parallelResidual === "none") {
      // dx becomes the gradient of the residual after the attention add.
      await normBackward(
        gpu,
        g.ln2!,
        dln,
        a.xMid,
        a.ln2Stats!,
        dx,
        { dw: G(g.ln2!.wName), db: G(g.ln2!.bName) },
        R,
        C,
        {
          accumulate: true,
          accumulateParams: acc,
        },
      );
      dattn = branch(`attn_out.${l}`, dx, dattnScratch);
    } else dattn = dattnParallel!;
    // Attention branch: output projection, attention core, fused q/k/v projection.
    if ((stopped = finished())) break;
    await linearBackward(gpu, a.att, dattn, g.o, datt, lg(g.o), R, { accumulateParams: acc });
    site(`head_out.${l}`, datt, nHead * D);
    if ((stopped = finished())) break;
    const core: AttentionCore = {
      B,
      T,
      layout: model.qkvLayout,
      rope: saved.rope,
      qkNorm: g.qkNorm,
    };
    await attentionCoreBackward(
      gpu,
      core,
      a.qkvRaw,
      a.qkv,
      a.probs!,
      a.qkStats,
      datt,
      dqkv,
      dqkvRaw,
      { dq: G(g.qkNorm?.q.wName), dk: G(g.qkNorm?.k.wName) },
      acc,
    );
    // One norm feeding both branches (GPT-J): the q/k/v gradient adds to the MLP's.
    await linearBackward(gpu, a.ln1, dqkvRaw, g.qkv, dln, lg(g.qkv), R, {
      accumulateDx: cfg.parallelResidual === "one_norm",
      accumulateParams: acc,
    });
    if (cfg.parallelResidual === "two_norms") {
      await normBackward(
        gpu,
        g.ln2!,
        dln2,
        a.xIn,
        a.ln2Stats!,
        dx,
        { dw: G(g.ln2!.wName), db: G(g.ln2!.bName) },
        R,
        C,
        {
          accumulate: true,
          accumulateParams: acc,
        },
      );
    }
    await normBackward(
      gpu,
      g.ln1,
      dln,
      a.xIn,
      a.ln1Stats,
      dx,
      { dw: G(g.ln1.wName), db: G(g.ln1.bName) },
      R,
      C,
      {
        accumulate: true,
        accumulateParams: acc,
      },
    );
    site(`resid_pre.${l}`, dx, C);
    stopped = finished();
  }
  if (!stopped) site("embed", dx, C);
  const spec = model.spec;
  const dEmbed = G(spec.embed), dPos = G(spec.positions);
  if (!stopped && (dEmbed || dPos)) {
    // The tied head already wrote the embedding's gradient: the embedding's part is added to it.
    await embeddingBackward(gpu, dx, saved.ids, saved.positions, dEmbed, dPos, {
      T: R,
      C,
      accumulate: headName === spec.embed && dHead ? true : acc,
      accumulatePositions: acc,
    });
  }
  try {
    // Every site's gradient in one map (one completion wait).
    if (opts.afterGradients) extra.push(...await opts.afterGradients());
    const grads = await readTensors([...pending.map(([, t]) => t), ...extra]);
    pending.forEach(([name], i) => siteGrads.set(name, grads[i]));
    extraOut?.push(...grads.slice(pending.length));
  } finally {
    for (const t of tmp) t.destroy();
  }
  return siteGrads;
}

/**
 * Backward pass of GPT-2 on WebGPU: the gradient of a next-token cross-entropy loss with respect to
 * every parameter and to any hook site.
 *
 * The loss is L = sum over counted rows r of scale * (-log p(target_r | row r)); rows whose target is
 * -1 are not counted. With reduction "mean" (default) scale = 1 / counted rows.
 * Patched rows of a site (see ./hooks.ts) are constants of the forward pass: the gradient stops there.
 */
import { InputError, ShapeError } from "../errors.ts";
import { attentionBackward } from "../gpu/attention_backward.ts";
import { biasGrad } from "../gpu/bias_grad.ts";
import { crossEntropy, IGNORE_TARGET } from "../gpu/cross_entropy.ts";
import { embeddingBackward } from "../gpu/embedding_backward.ts";
import { geluBackward } from "../gpu/gelu_backward.ts";
import { layerNormBackward } from "../gpu/layernorm_backward.ts";
import { matmul } from "../gpu/matmul.ts";
import { fill } from "../gpu/reduce.ts";
import { copyTensor, createTensor, type GpuTensor, readTensor, writeTensor } from "../gpu/tensor.ts";
import type { SavedForward, TransformerModel } from "./transformer.ts";
import type { Hooks } from "./hooks.ts";
import { siteWidth } from "./hooks.ts";

/** Gradient buffers on the GPU, one per weight, same shapes as the weights. */
export class Gradients {
  readonly grads = new Map<string, GpuTensor>();
  constructor(readonly model: TransformerModel, names: string[] = model.weightNames()) {
    for (const n of names) {
      const w = model.weight(n);
      this.grads.set(n, createTensor(model.gpu, w.shape, { name: `grad:${n}` }));
    }
  }
  /** Gradient tensor of weight `name`. */
  get(name: string): GpuTensor {
    const g = this.grads.get(name);
    if (!g) throw new ShapeError("no gradient buffer for this weight", { field: name });
    return g;
  }
  /** Sets every gradient to zero. */
  async zero(): Promise<void> {
    for (const g of this.grads.values()) await fill(this.model.gpu, g, 0);
  }
  /** Reads one gradient back to the host. */
  read(name: string): Promise<Float32Array> {
    return readTensor(this.get(name));
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
}

/** Runs forward (saving activations) and backward; see the module comment for the loss. */
export async function lossAndGradients(
  model: TransformerModel,
  batch: number[][],
  loss: LossSpec,
  opts: BackwardOptions = {},
): Promise<BackwardResult> {
  const { saved } = await model.forwardForBackward(batch, {
    hooks: opts.hooks,
    allowNonFinite: opts.allowNonFinite,
  });
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
    const siteGrads = await backwardCore(model, saved, opts, async (logits, dlogits) => {
      const tg = headRows ? Uint32Array.from(headRows, (r) => targets[r]) : targets;
      targetsT = createTensor(gpu, [n], { name: "targets", dtype: "u32", data: tg });
      rowLossT = createTensor(gpu, [n], { name: "row_losses" });
      await crossEntropy(gpu, logits, targetsT, rowLossT, dlogits, { rows: n, cols: V, scale });
    }, headRows);
    let rowLosses = await readTensor(rowLossT!);
    if (headRows) {
      const full = new Float32Array(R);
      headRows.forEach((r, i) => (full[r] = rowLosses[i]));
      rowLosses = full;
    }
    let total = 0;
    for (let r = 0; r < R; r++) if (targets[r] !== IGNORE_TARGET) total += rowLosses[r];
    return { loss: total * scale, rowLosses, counted, siteGrads };
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

/** Runs forward (saving activations) and {@link backwardFromLogitGrads}. */
export async function logitLossAndGradients(
  model: TransformerModel,
  batch: number[][],
  rows: number[],
  lossFn: LogitLossFn,
  opts: BackwardOptions = {},
): Promise<LogitBackwardResult> {
  const { saved } = await model.forwardForBackward(batch, {
    hooks: opts.hooks,
    allowNonFinite: opts.allowNonFinite,
  });
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
  head: (logits: GpuTensor, dlogits: GpuTensor) => Promise<void>,
  headRows?: number[],
): Promise<Map<string, Float32Array>> {
  const gpu = model.gpu;
  const cfg = model.config;
  const { nEmbd: C, nInner: I, nLayer: L, nHead, vocabSize: V } = cfg;
  const { B, T } = saved;
  const R = B * T;
  const wantSites = new Set(opts.siteGrads ?? []);
  for (const s of wantSites) siteWidth(cfg, s);
  const siteGrads = new Map<string, Float32Array>();
  const pending: Array<[string, GpuTensor]> = [];
  const grads = opts.grads;
  const acc = Boolean(opts.accumulate);
  const W = (n: string) => model.weight(n);
  const G = (n: string) => grads!.get(n);
  const tmp: GpuTensor[] = [];
  const mk = (name: string, shape: number[]) => {
    const t = createTensor(gpu, shape, { name });
    tmp.push(t);
    return t;
  };
  const zeros = mk("zeros", [Math.max(C, I)]);
  await fill(gpu, zeros, 0);
  // Records the gradient of a site, then cuts rows a patch overwrote (they are constants).
  const site = (name: string, g: GpuTensor, width: number) => {
    if (wantSites.has(name)) {
      const snap = mk(`grad:${name}`, [R, width]);
      copyTensor(g, snap);
      pending.push([name, snap]);
    }
    for (const [b, t] of saved.patchedRows.get(name) ?? []) {
      copyTensor(zeros, g, width, 0, (b * T + t) * width);
    }
  };
  // A branch output (attn_out / mlp_out) patched: the residual keeps its gradient, the branch does not.
  const branch = (name: string, dx: GpuTensor, scratch: GpuTensor) => {
    const rows = saved.patchedRows.get(name);
    if (wantSites.has(name)) {
      const snap = mk(`grad:${name}`, [R, C]);
      copyTensor(dx, snap);
      pending.push([name, snap]);
    }
    if (!rows?.length) return dx;
    copyTensor(dx, scratch);
    for (const [b, t] of rows) copyTensor(zeros, scratch, C, 0, (b * T + t) * C);
    return scratch;
  };

  // Head: logits = ln_f @ head^T; the loss fills dlogits.
  const head_ = model.lmHead();
  const headName = model.weightNames().includes("lm_head.weight") ? "lm_head.weight" : "wte.weight";
  // With `headRows` (distinct rows) only those rows get logits: the head's two V-wide products are the
  // most expensive part of a small model's step, and a sparse loss has zero gradient everywhere else.
  const n = headRows ? headRows.length : R;
  let hin = saved.lnf;
  if (headRows) {
    hin = mk("head_in", [n, C]);
    headRows.forEach((r, i) => copyTensor(saved.lnf, hin, C, r * C, i * C));
  }
  const logits = mk("logits", [n, V]);
  await matmul(gpu, hin, head_, logits, { M: n, N: V, K: C, transB: true });
  const dlogits = mk("dlogits", [n, V]);
  await head(logits, dlogits);
  if (grads) {
    await matmul(gpu, dlogits, hin, G(headName), { M: V, N: C, K: n, transA: true, accumulate: acc });
  }
  const dln = mk("d_ln", [R, C]);
  if (headRows) {
    const dlnRows = mk("d_ln_rows", [n, C]);
    await matmul(gpu, dlogits, head_, dlnRows, { M: n, N: C, K: V });
    await fill(gpu, dln, 0);
    headRows.forEach((r, i) => copyTensor(dlnRows, dln, C, i * C, r * C));
  } else await matmul(gpu, dlogits, head_, dln, { M: R, N: C, K: V });
  site("ln_f", dln, C);
  const dx = mk("d_resid", [R, C]);
  await layerNormBackward(
    gpu,
    dln,
    saved.xFinal,
    W("ln_f.weight"),
    saved.lnfStats,
    dx,
    grads ? G("ln_f.weight") : undefined,
    grads ? G("ln_f.bias") : undefined,
    { rows: R, cols: C, accumulate: false, accumulateParams: acc },
  );
  const dbranch = mk("d_branch", [R, C]);
  const dact = mk("d_act", [R, I]);
  const dfc = mk("d_fc", [R, I]);
  const datt = mk("d_att", [R, C]);
  const dqkv = mk("d_qkv", [R, 3 * C]);
  for (let l = L - 1; l >= 0; l--) {
    const p = `h.${l}.`;
    const a = saved.layers[l];
    site(`resid_post.${l}`, dx, C);
    // MLP branch.
    const dmlp = branch(`mlp_out.${l}`, dx, dbranch);
    if (grads) {
      await matmul(gpu, a.act, dmlp, G(p + "mlp.c_proj.weight"), {
        M: I,
        N: C,
        K: R,
        transA: true,
        accumulate: acc,
      });
      await biasGrad(gpu, dmlp, G(p + "mlp.c_proj.bias"), { rows: R, cols: C, accumulate: acc });
    }
    await matmul(gpu, dmlp, W(p + "mlp.c_proj.weight"), dact, { M: R, N: I, K: C, transB: true });
    site(`mlp_post.${l}`, dact, I);
    await geluBackward(gpu, a.fc, dact, dfc);
    if (grads) {
      await matmul(gpu, a.ln2, dfc, G(p + "mlp.c_fc.weight"), {
        M: C,
        N: I,
        K: R,
        transA: true,
        accumulate: acc,
      });
      await biasGrad(gpu, dfc, G(p + "mlp.c_fc.bias"), { rows: R, cols: I, accumulate: acc });
    }
    await matmul(gpu, dfc, W(p + "mlp.c_fc.weight"), dln, { M: R, N: C, K: I, transB: true });
    await layerNormBackward(
      gpu,
      dln,
      a.xMid,
      W(p + "ln_2.weight"),
      a.ln2Stats,
      dx,
      grads ? G(p + "ln_2.weight") : undefined,
      grads ? G(p + "ln_2.bias") : undefined,
      { rows: R, cols: C, accumulate: true, accumulateParams: acc },
    );
    // Attention branch.
    const dattn = branch(`attn_out.${l}`, dx, dbranch);
    if (grads) {
      await matmul(gpu, a.att, dattn, G(p + "attn.c_proj.weight"), {
        M: C,
        N: C,
        K: R,
        transA: true,
        accumulate: acc,
      });
      await biasGrad(gpu, dattn, G(p + "attn.c_proj.bias"), { rows: R, cols: C, accumulate: acc });
    }
    await matmul(gpu, dattn, W(p + "attn.c_proj.weight"), datt, { M: R, N: C, K: C, transB: true });
    await attentionBackward(gpu, a.qkv, a.probs!, datt, dqkv, { B, T, C, nHead });
    if (grads) {
      await matmul(gpu, a.ln1, dqkv, G(p + "attn.c_attn.weight"), {
        M: C,
        N: 3 * C,
        K: R,
        transA: true,
        accumulate: acc,
      });
      await biasGrad(gpu, dqkv, G(p + "attn.c_attn.bias"), { rows: R, cols: 3 * C, accumulate: acc });
    }
    await matmul(gpu, dqkv, W(p + "attn.c_attn.weight"), dln, { M: R, N: C, K: 3 * C, transB: true });
    await layerNormBackward(
      gpu,
      dln,
      a.xIn,
      W(p + "ln_1.weight"),
      a.ln1Stats,
      dx,
      grads ? G(p + "ln_1.weight") : undefined,
      grads ? G(p + "ln_1.bias") : undefined,
      { rows: R, cols: C, accumulate: true, accumulateParams: acc },
    );
    site(`resid_pre.${l}`, dx, C);
  }
  site("embed", dx, C);
  if (grads) {
    // The tied head already wrote wte's gradient: the embedding's part is added to it.
    await embeddingBackward(gpu, dx, saved.ids, saved.positions, G("wte.weight"), G("wpe.weight"), {
      T: R,
      C,
      accumulate: headName === "wte.weight" ? true : acc,
      accumulatePositions: acc,
    });
  }
  try {
    for (const [name, t] of pending) siteGrads.set(name, await readTensor(t));
  } finally {
    for (const t of tmp) t.destroy();
  }
  return siteGrads;
}

/**
 * The layer functions every model family is built from, each a forward / backward pair on the GPU
 * with its shapes in a comment (as llm.c's layernorm_forward / layernorm_backward). R = B * T rows.
 *
 * The block of ./transformer.ts and ./backward.ts composes these: norm, linear, the attention core
 * (optional per-head q/k norms, rotary, causal attention), the MLP activation, and residual adds.
 */
import { attention, type QkvLayout } from "../gpu/attention.ts";
import { attentionBackward } from "../gpu/attention_backward.ts";
import { biasGrad } from "../gpu/bias_grad.ts";
import type { Gpu } from "../gpu/device.ts";
import { gelu } from "../gpu/gelu.ts";
import { geluBackward } from "../gpu/gelu_backward.ts";
import { layerNorm } from "../gpu/layernorm.ts";
import { layerNormBackward } from "../gpu/layernorm_backward.ts";
import { matmul } from "../gpu/matmul.ts";
import { rmsNorm } from "../gpu/rmsnorm.ts";
import { rmsNormBackward } from "../gpu/rmsnorm_backward.ts";
import { rotary } from "../gpu/rotary.ts";
import { swiglu, swigluBackward } from "../gpu/swiglu.ts";
import { copyTensor, type GpuTensor } from "../gpu/tensor.ts";
import type { Activation } from "./config.ts";
import type { LinearLayout } from "./families/spec.ts";

/** A projection on the GPU: weight (in its checkpoint layout), optional bias, sizes. */
export interface GpuLinear {
  /** The weight, in its checkpoint layout. */
  w: GpuTensor;
  /** The bias, when the projection has one. */
  b?: GpuTensor;
  /** Conv1D [in, out] (GPT-2) or nn.Linear [out, in]. */
  layout: LinearLayout;
  /** Input width. */
  in: number;
  /** Output width. */
  out: number;
  /** GPU weight names, for gradients. */
  wName: string;
  /** GPU bias name, for gradients. */
  bName?: string;
}

/** A norm on the GPU: layer norm (weight and bias) or RMS norm (weight only). */
export interface GpuNorm {
  /** Layer norm (mean and variance) or RMS norm (root mean square only). */
  kind: "layernorm" | "rmsnorm";
  /** The scale weight. */
  w: GpuTensor;
  /** The shift (layer norm only). */
  b?: GpuTensor;
  /** Epsilon added to the variance. */
  eps: number;
  /** GPU weight name, for gradients. */
  wName: string;
  /** GPU bias name, for gradients. */
  bName?: string;
}

/** Values of the saved per-row statistics of a norm: (mean, rstd) for layer norm, rstd for RMS norm. */
export function normStatsWidth(kind: GpuNorm["kind"]): number {
  return kind === "layernorm" ? 2 : 1;
}

/** y [R, out] = x [R, in] · W (+ b); W is [in, out] ("conv1d") or [out, in] ("linear", used transposed). */
export async function linearForward(
  gpu: Gpu,
  x: GpuTensor,
  p: GpuLinear,
  y: GpuTensor,
  R: number,
): Promise<void> {
  await matmul(gpu, x, p.w, y, { M: R, N: p.out, K: p.in, transB: p.layout === "linear", bias: p.b });
}

/** Parameter gradients of a projection (either may be absent: not computed). */
export interface LinearGrads {
  dw?: GpuTensor;
  db?: GpuTensor;
}

/**
 * Backward of {@link linearForward}: dx [R, in] (+)= dy [R, out] · Wᵀ, dW (+)= xᵀ dy in W's layout,
 * db (+)= Σ_rows dy. `accumulateDx` / `accumulateParams` choose += over =.
 */
export async function linearBackward(
  gpu: Gpu,
  x: GpuTensor,
  dy: GpuTensor,
  p: GpuLinear,
  dx: GpuTensor | undefined,
  g: LinearGrads,
  R: number,
  opts: { accumulateDx?: boolean; accumulateParams?: boolean } = {},
): Promise<void> {
  const acc = Boolean(opts.accumulateParams);
  if (g.dw) {
    if (p.layout === "conv1d") {
      await matmul(gpu, x, dy, g.dw, { M: p.in, N: p.out, K: R, transA: true, accumulate: acc });
    } else await matmul(gpu, dy, x, g.dw, { M: p.out, N: p.in, K: R, transA: true, accumulate: acc });
  }
  if (g.db) await biasGrad(gpu, dy, g.db, { rows: R, cols: p.out, accumulate: acc });
  if (dx) {
    await matmul(gpu, dy, p.w, dx, {
      M: R,
      N: p.in,
      K: p.out,
      transB: p.layout === "conv1d",
      accumulate: Boolean(opts.accumulateDx),
    });
  }
}

/** out [R, C] = norm(x [R, C]); `stats` [R, {@link normStatsWidth}] keeps what the backward needs. */
export async function normForward(
  gpu: Gpu,
  n: GpuNorm,
  x: GpuTensor,
  out: GpuTensor,
  stats: GpuTensor,
  R: number,
  C: number,
): Promise<void> {
  if (n.kind === "layernorm") {
    await layerNorm(gpu, x, n.w, n.b!, out, { rows: R, cols: C, eps: n.eps, stats });
  } else await rmsNorm(gpu, x, n.w, out, { rows: R, cols: C, eps: n.eps, stats });
}

/** Parameter gradients of a norm. */
export interface NormGrads {
  dw?: GpuTensor;
  db?: GpuTensor;
}

/** Backward of {@link normForward}: dx [R, C] (+)= ∂/∂x, dw / db (+)= parameter gradients. */
export async function normBackward(
  gpu: Gpu,
  n: GpuNorm,
  dout: GpuTensor,
  x: GpuTensor,
  stats: GpuTensor,
  dx: GpuTensor,
  g: NormGrads,
  R: number,
  C: number,
  opts: { accumulate?: boolean; accumulateParams?: boolean },
): Promise<void> {
  const o = { rows: R, cols: C, accumulate: opts.accumulate, accumulateParams: opts.accumulateParams };
  if (n.kind === "layernorm") {
    await layerNormBackward(gpu, dout, x, n.w, stats, dx, g.dw, g.db, o);
  } else await rmsNormBackward(gpu, dout, x, n.w, stats, dx, g.dw, o);
}

/**
 * The MLP non-linearity, [R, I] elementwise: act = gelu(fc) (tanh or erf form), or for a gated MLP
 * act = silu(gate) · fc where fc is up_proj's output.
 */
export async function mlpActForward(
  gpu: Gpu,
  kind: Activation,
  fc: GpuTensor,
  gate: GpuTensor | undefined,
  act: GpuTensor,
): Promise<void> {
  if (kind === "silu") await swiglu(gpu, gate!, fc, act);
  else await gelu(gpu, fc, act, { approximate: kind === "gelu_tanh" ? "tanh" : "none" });
}

/** Backward of {@link mlpActForward}: dfc (and dgate) [R, I] from dact. */
export async function mlpActBackward(
  gpu: Gpu,
  kind: Activation,
  fc: GpuTensor,
  gate: GpuTensor | undefined,
  dact: GpuTensor,
  dfc: GpuTensor,
  dgate: GpuTensor | undefined,
): Promise<void> {
  if (kind === "silu") await swigluBackward(gpu, gate!, fc, dact, dgate!, dfc);
  else await geluBackward(gpu, fc, dact, dfc, { approximate: kind === "gelu_tanh" ? "tanh" : "none" });
}

/** Rotary tables and positions on the GPU for one sequence length. */
export interface GpuRope {
  /** cos of each position and frequency [T, dim/2]. */
  cos: GpuTensor;
  /** sin of each position and frequency [T, dim/2]. */
  sin: GpuTensor;
  /** Position of each row [R] (u32). */
  positions: GpuTensor;
  /** Rotated dimensions per head (partial rotary: fewer than the head size). */
  dim: number;
  /** Rotate halves (Llama, NeoX) or adjacent pairs (GPT-J). */
  style: "half" | "interleaved";
}

/** Per-head q/k RMS norms (Qwen3) on the GPU. */
export interface GpuQkNorm {
  q: GpuNorm;
  k: GpuNorm;
}

/** Saved statistics of the per-head q and k norms: q [R·H], k [R·KV]. */
export interface QkStats {
  /** The per-head q norm. */
  q: GpuTensor;
  /** The per-head k norm. */
  k: GpuTensor;
}

/** The sizes and options of one attention core call. */
export interface AttentionCore {
  B: number;
  T: number;
  layout: QkvLayout;
  rope?: GpuRope;
  qkNorm?: GpuQkNorm;
  window?: number;
  /**
   * Replaces the causal attention over this call's own rows (the KV-cache path, src/gpu/kv_cache.ts):
   * receives the prepared qkv (after q/k norms and rotary) and writes att.
   */
  attend?: (qkv: GpuTensor, att: GpuTensor) => Promise<void>;
}

/** Addressing of the q heads (or k heads) of a fused qkv buffer as rows of headDim, for the per-head norms. */
function headRows(layout: QkvLayout, R: number, part: "q" | "k") {
  const heads = part === "q" ? layout.nHead : layout.nKvHead;
  return {
    rows: R * heads,
    addressing: {
      offset: part === "q" ? layout.qOffset : layout.kOffset,
      rowsPerGroup: heads,
      groupStride: layout.rowStride,
      rowStride: part === "q" ? layout.qHeadStride : layout.kvHeadStride,
    },
  };
}

/**
 * Attention core: qkv [R, rowStride] (the fused projection output, "raw") → per-head q/k norms
 * (into `qkv`, raw kept for the backward) → rotary on q and k (in place) → causal attention into
 * att [R, H·D]; probs [B, H, T, T] when given. `qkv` may be `raw` itself when there are no q/k norms.
 * `qkStats` receives the norms' statistics (q: [R·H], k: [R·KV]).
 */
export async function attentionCoreForward(
  gpu: Gpu,
  core: AttentionCore,
  raw: GpuTensor,
  qkv: GpuTensor,
  att: GpuTensor,
  probs: GpuTensor | undefined,
  qkStats: QkStats | undefined,
): Promise<void> {
  const { B, T, layout } = core;
  const R = B * T, D = layout.headDim;
  if (core.qkNorm) {
    copyTensor(raw, qkv);
    for (const part of ["q", "k"] as const) {
      const h = headRows(layout, R, part);
      const n = core.qkNorm[part];
      const stats = qkStats![part];
      await rmsNorm(gpu, raw, n.w, qkv, {
        rows: h.rows,
        cols: D,
        eps: n.eps,
        stats,
        addressing: h.addressing,
      });
    }
  } else if (raw !== qkv) copyTensor(raw, qkv);
  if (core.rope) {
    const r = core.rope;
    await rotary(gpu, qkv, r.cos, r.sin, r.positions, { rows: R, layout, dim: r.dim, style: r.style });
  }
  if (core.attend) await core.attend(qkv, att);
  else await attention(gpu, qkv, att, { B, T, layout, probs, window: core.window });
}

/**
 * Backward of {@link attentionCoreForward}: from datt [R, H·D] to draw [R, rowStride] (the gradient of
 * the fused projection's output). `dqkv` is scratch of raw's size; `qkv`, `probs`, `raw`, `qkStats` as
 * saved by the forward. Gradients of the q/k norm weights go to `g`.
 */
export async function attentionCoreBackward(
  gpu: Gpu,
  core: AttentionCore,
  raw: GpuTensor,
  qkv: GpuTensor,
  probs: GpuTensor,
  qkStats: QkStats | undefined,
  datt: GpuTensor,
  dqkv: GpuTensor,
  draw: GpuTensor,
  g: { dq?: GpuTensor; dk?: GpuTensor },
  accumulateParams: boolean,
): Promise<void> {
  const { B, T, layout } = core;
  const R = B * T, D = layout.headDim;
  const target = core.qkNorm ? dqkv : draw;
  await attentionBackward(gpu, qkv, probs, datt, target, { B, T, layout });
  if (core.rope) {
    const r = core.rope;
    await rotary(gpu, target, r.cos, r.sin, r.positions, {
      rows: R,
      layout,
      dim: r.dim,
      style: r.style,
      inverse: true,
    });
  }
  if (core.qkNorm) {
    copyTensor(dqkv, draw);
    for (const part of ["q", "k"] as const) {
      const h = headRows(layout, R, part);
      const n = core.qkNorm[part];
      const stats = qkStats![part];
      await rmsNormBackward(gpu, dqkv, raw, n.w, stats, draw, part === "q" ? g.dq : g.dk, {
        rows: h.rows,
        cols: D,
        accumulate: false,
        accumulateParams,
        addressing: h.addressing,
      });
    }
  }
}

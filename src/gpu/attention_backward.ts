/**
 * Launcher for causal multi-head self-attention backward (`kernels/attention_backward.wgsl`), the
 * gradient of {@link attention}, plus a throughput measurement for `deno bench`.
 */
import { ShapeError } from "../errors.ts";
import { ATTENTION_MAX_HEAD_SIZE, type AttentionShape } from "./attention.ts";
import type { Gpu } from "./device.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import { createTensor, type GpuTensor } from "./tensor.ts";

/** Invocations per workgroup (one per query row, then one per key row). */
const WG = 64;

/** Options of {@link attentionBackward}. */
export interface AttentionBackwardOptions extends AttentionShape {
  /** When true, the gradients are added to `dqkv` (`+=`); when false (default) they overwrite it (`=`). */
  accumulate?: boolean;
  /**
   * Optional f32 scratch of at least B*nHead*T*T elements (contents ignored, overwritten) for the
   * intermediate dS. When omitted, a scratch buffer cached per device is used (grown as needed, never
   * shrunk); it is shared by all calls, which is safe as long as calls are recorded one after another
   * (each awaited), as every engram launcher is used.
   */
  scratch?: GpuTensor;
}

function checkSize(t: GpuTensor, want: number, what: string, dims: string, atLeast = false): void {
  if (t.dtype !== "f32") throw new ShapeError(`${what} must be f32, got ${t.dtype}`, { field: t.name });
  if (atLeast ? t.numel < want : t.numel !== want) {
    throw new ShapeError(
      `${what} has shape [${t.shape}] (${t.numel} elements), expected ${
        atLeast ? "at least " : ""
      }${dims} = ${want}`,
      { field: t.name },
    );
  }
}

const scratchCache = new WeakMap<Gpu, GpuTensor>();

function cachedScratch(gpu: Gpu, n: number): GpuTensor {
  const have = scratchCache.get(gpu);
  if (have && have.numel >= n) return have;
  have?.destroy();
  const t = createTensor(gpu, [n], { name: "attentionBackward.scratch" });
  scratchCache.set(gpu, t);
  return t;
}

/**
 * Causal multi-head self-attention backward (GPT-2). Per sequence b and head h, with P the forward's
 * probabilities, dO the gradient of the output and scale = 1 / sqrt(D):
 *
 * - `dV = P^T dO`, `dP = dO V^T`, `dS = P ⊙ (dP - rowsum(dP ⊙ P))` (only j ≤ i),
 * - `dQ = scale · dS K`, `dK = scale · dS^T Q`,
 *
 * written into `dqkv` in the qkv layout (q | k | v per row, head h in columns h*D..), `+=` with
 * `opts.accumulate`, else `=`. Tensors (any shapes with these element counts): `qkv` [B*T, 3C] (the
 * forward's input), `probs` [B, nHead, T, T] as written by the forward's `probs` option, `dout`
 * [B*T, C], `dqkv` [B*T, 3C]; `dqkv` must not alias an input. D = C / nHead ≤ {@link ATTENTION_MAX_HEAD_SIZE}.
 *
 * Records two dispatches (dQ per query row, which also writes dS into the scratch; then dK, dV per key
 * row), no atomics, deterministic; nothing runs until the next {@link Gpu.flush} (or a read). Throws
 * {@link ShapeError} naming the offending tensor on any size, dtype or aliasing mismatch.
 */
export async function attentionBackward(
  gpu: Gpu,
  qkv: GpuTensor,
  probs: GpuTensor,
  dout: GpuTensor,
  dqkv: GpuTensor,
  opts: AttentionBackwardOptions,
): Promise<void> {
  const { B, T, C, nHead } = opts;
  for (const [k, v] of Object.entries({ B, T, C, nHead })) {
    if (!Number.isInteger(v) || v < 1) {
      throw new ShapeError(`attentionBackward: ${k} = ${v} must be a positive integer`, { field: k });
    }
  }
  if (C % nHead !== 0) {
    throw new ShapeError(`attentionBackward: C = ${C} is not divisible by nHead = ${nHead}`, {
      field: "nHead",
    });
  }
  const D = C / nHead;
  if (D > ATTENTION_MAX_HEAD_SIZE) {
    throw new ShapeError(
      `attentionBackward: head size C / nHead = ${D} exceeds the supported ${ATTENTION_MAX_HEAD_SIZE}`,
      { field: "nHead" },
    );
  }
  const nP = B * nHead * T * T;
  checkSize(qkv, B * T * 3 * C, "attentionBackward input qkv", "B*T*3C");
  checkSize(probs, nP, "attentionBackward probs", "B*nHead*T*T");
  checkSize(dout, B * T * C, "attentionBackward dout", "B*T*C");
  checkSize(dqkv, B * T * 3 * C, "attentionBackward dqkv", "B*T*3C");
  for (const t of [qkv, probs, dout]) {
    if (dqkv.buffer === t.buffer) {
      throw new ShapeError(`attentionBackward dqkv must not alias '${t.name}'`, { field: dqkv.name });
    }
  }
  let scratch = opts.scratch;
  if (scratch) {
    checkSize(scratch, nP, "attentionBackward scratch", "B*nHead*T*T", true);
    for (const t of [qkv, probs, dout, dqkv]) {
      if (scratch.buffer === t.buffer) {
        throw new ShapeError(`attentionBackward scratch must not alias '${t.name}'`, { field: scratch.name });
      }
    }
  } else {
    scratch = cachedScratch(gpu, nP);
  }
  const params = { uniform: uniforms(B, T, C, nHead, { f: 1 / Math.sqrt(D) }, opts.accumulate ? 1 : 0) };
  const wg = grid(gpu, Math.ceil((B * nHead * T) / WG));
  const bindings = [params, qkv, probs, dout, dqkv, scratch];
  await launch(gpu, "attention_backward", "attention_bwd_dq", bindings, wg, { D, WG });
  await launch(gpu, "attention_backward", "attention_bwd_dkv", bindings, wg, { D, WG });
}

/**
 * Floating-point operations of one backward call: 2·D per (query, key) pair for each of dP, dQ, dK
 * and dV (twice {@link attentionFlops} of the forward).
 */
export function attentionBackwardFlops(s: AttentionShape): number {
  const D = s.C / s.nHead;
  return 8 * s.B * s.nHead * D * (s.T * (s.T + 1)) / 2;
}

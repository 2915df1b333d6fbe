/**
 * Launcher for causal multi-head self-attention (`kernels/attention.wgsl`), GPT-2 style, plus a
 * throughput measurement shared by `deno bench` and `engram bench`.
 */
import { ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import { createTensor, type GpuTensor } from "./tensor.ts";

/** Largest head size D = C / nHead the kernel supports (its private arrays are this long). */
export const ATTENTION_MAX_HEAD_SIZE = 128;

/** Invocations per workgroup (one per query row). */
const WG = 64;

/** Sizes of one attention call: B sequences of T tokens, model width C split into nHead heads. */
export interface AttentionShape {
  /** Batch size (sequences). */
  B: number;
  /** Sequence length (tokens per sequence). */
  T: number;
  /** Model width; the head size is D = C / nHead. */
  C: number;
  /** Number of heads; must divide C. */
  nHead: number;
}

/** Options of {@link attention}: the sizes, and optionally where to write the probabilities. */
export interface AttentionOptions extends AttentionShape {
  /**
   * Optional output [B, nHead, T, T] (any shape with that many elements): the softmax probabilities,
   * row (b, h, t) over keys s; entries above the diagonal (s > t) are written as 0.
   */
  probs?: GpuTensor;
}

function checkSize(t: GpuTensor, want: number, what: string, dims: string): void {
  if (t.dtype !== "f32") throw new ShapeError(`${what} must be f32, got ${t.dtype}`, { field: t.name });
  if (t.numel !== want) {
    throw new ShapeError(`${what} has shape [${t.shape}] (${t.numel} elements), expected ${dims} = ${want}`, {
      field: t.name,
    });
  }
}

/**
 * Causal multi-head self-attention forward: for each sequence b, head h and query position t,
 * `out[b, t, h*D + d] = sum_{s <= t} softmax_s(q_t . k_s / sqrt(D)) * v_s[d]`, softmax in f32 with max
 * subtraction.
 *
 * - `qkv` [B, T, 3C] (or [B*T, 3C]): GPT-2's c_attn output, per row q (C), k (C), v (C); head h uses
 *   columns h*D .. h*D+D-1 of each part, D = C / nHead ≤ {@link ATTENTION_MAX_HEAD_SIZE}.
 * - `out` [B, T, C] (or [B*T, C]): heads concatenated, head h in columns h*D.. (c_proj's input).
 * - `opts.probs` [B, nHead, T, T], optional: the attention probabilities (0 above the diagonal).
 *
 * Records the dispatch; nothing runs until the next {@link Gpu.flush} (or a read). Throws
 * {@link ShapeError} naming the offending tensor on any size mismatch.
 */
export async function attention(
  gpu: Gpu,
  qkv: GpuTensor,
  out: GpuTensor,
  opts: AttentionOptions,
): Promise<void> {
  const { B, T, C, nHead, probs } = opts;
  for (const [k, v] of Object.entries({ B, T, C, nHead })) {
    if (!Number.isInteger(v) || v < 1) {
      throw new ShapeError(`attention: ${k} = ${v} must be a positive integer`, { field: k });
    }
  }
  if (C % nHead !== 0) {
    throw new ShapeError(`attention: C = ${C} is not divisible by nHead = ${nHead}`, { field: "nHead" });
  }
  const D = C / nHead;
  if (D > ATTENTION_MAX_HEAD_SIZE) {
    throw new ShapeError(
      `attention: head size C / nHead = ${D} exceeds the supported ${ATTENTION_MAX_HEAD_SIZE}`,
      {
        field: "nHead",
      },
    );
  }
  checkSize(qkv, B * T * 3 * C, "attention input qkv", `B*T*3C`);
  checkSize(out, B * T * C, "attention output", `B*T*C`);
  if (out === qkv || out.buffer === qkv.buffer) {
    throw new ShapeError("attention output must not alias its qkv input", { field: out.name });
  }
  if (probs) {
    checkSize(probs, B * nHead * T * T, "attention probs", `B*nHead*T*T`);
    if (probs.buffer === qkv.buffer || probs.buffer === out.buffer) {
      throw new ShapeError("attention probs must not alias qkv or out", { field: probs.name });
    }
  }
  const rows = B * nHead * T;
  const params = { uniform: uniforms(B, T, C, nHead, { f: 1 / Math.sqrt(D) }) };
  const wg = grid(gpu, Math.ceil(rows / WG));
  if (probs) {
    await launch(gpu, "attention", "attention_probs", [params, qkv, out, probs], wg, { D, WG });
  } else {
    await launch(gpu, "attention", "attention_fwd", [params, qkv, out], wg, { D, WG });
  }
}

/** Floating-point operations of one causal attention call: 2·D per (query, key) pair for q·k and as many for p·v. */
export function attentionFlops(s: AttentionShape): number {
  const D = s.C / s.nHead;
  return 4 * s.B * s.nHead * D * (s.T * (s.T + 1)) / 2;
}

/** One {@link measureAttention} result: milliseconds per call and the implied GFLOP/s. */
export interface AttentionMeasurement {
  config: AttentionShape & { probs: boolean };
  /** Mean wall time per call, ms: `callsPerFlush` calls recorded, then one awaited `gpu.flush()`. */
  ms: number;
  /** {@link attentionFlops} / time, 1e9 FLOP/s. */
  gflops: number;
  /** Calls recorded per flush (amortises submit/wait latency, ~12 ms per flush on llvmpipe). */
  callsPerFlush: number;
}

/**
 * Times {@link attention} on deterministic pseudo-random inputs for each config: one warm-up flush,
 * then `iters` rounds of `callsPerFlush` calls each followed by an awaited `gpu.flush()`. Set
 * `probs: true` in a config to time the probabilities variant.
 */
export async function measureAttention(
  gpu: Gpu,
  configs: Array<AttentionShape & { probs?: boolean }>,
  iters = 3,
  callsPerFlush = 4,
): Promise<AttentionMeasurement[]> {
  const results: AttentionMeasurement[] = [];
  for (const cfg of configs) {
    const { B, T, C, nHead } = cfg;
    const data = new Float32Array(B * T * 3 * C);
    for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.7368) * 1.3;
    const qkv = createTensor(gpu, [B, T, 3 * C], { name: "bench.qkv", data });
    const out = createTensor(gpu, [B, T, C], { name: "bench.att" });
    const probs = cfg.probs ? createTensor(gpu, [B, nHead, T, T], { name: "bench.probs" }) : undefined;
    const opts = { B, T, C, nHead, probs };
    await attention(gpu, qkv, out, opts);
    await gpu.flush();
    const t0 = performance.now();
    for (let i = 0; i < iters; i++) {
      for (let j = 0; j < callsPerFlush; j++) await attention(gpu, qkv, out, opts);
      await gpu.flush();
    }
    const ms = (performance.now() - t0) / (iters * callsPerFlush);
    qkv.destroy();
    out.destroy();
    probs?.destroy();
    results.push({
      config: { B, T, C, nHead, probs: Boolean(cfg.probs) },
      ms,
      gflops: attentionFlops(cfg) / (ms * 1e6),
      callsPerFlush,
    });
  }
  await gpu.flush();
  return results;
}

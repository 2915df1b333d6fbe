/**
 * Rotary position embeddings (RoPE): inverse frequencies and cos/sin tables, computed on the host the way
 * Hugging Face transformers computes them (`modeling_rope_utils`, `LlamaRotaryEmbedding`, GPT-NeoX's
 * rotary embedding, GPT-J's `create_sinusoidal_positions`), including HF's float32 arithmetic: every
 * tensor operation HF does in float32 is rounded to float32 here in the same order.
 *
 * The GPU applies the tables with `src/gpu/rotary.ts`; the tables are [positions, dim/2], one column
 * per rotated pair.
 */
import { ConfigError } from "../errors.ts";

/**
 * RoPE scaling (HF `rope_scaling`), by `type` (HF `rope_type`, formerly `type`):
 * - `linear`: inverse frequencies divided by `factor` (position interpolation).
 * - `dynamic`: dynamic NTK: for a sequence longer than `originalMaxPositionEmbeddings` the base grows
 *   to `theta * (factor * seqLen / orig - (factor - 1)) ** (dim / (dim - 2))`. HF takes `orig` from the
 *   config's `max_position_embeddings` (it ignores `rope_scaling.original_max_position_embeddings` for
 *   this type); pass that value here.
 * - `llama3`: Llama 3.1's band-wise scaling: wavelengths above `originalMaxPositionEmbeddings /
 *   lowFreqFactor` are divided by `factor`, below `originalMaxPositionEmbeddings / highFreqFactor` kept,
 *   and interpolated smoothly in between.
 */
export type RopeScaling =
  | { type: "linear"; factor: number }
  | { type: "dynamic"; factor: number; originalMaxPositionEmbeddings: number }
  | {
    type: "llama3";
    factor: number;
    lowFreqFactor: number;
    highFreqFactor: number;
    originalMaxPositionEmbeddings: number;
  };

/** Rotary settings of one model. */
export interface RopeConfig {
  /** Rotated dims per head (even): head_dim (Llama), rotary_pct * head_dim (NeoX), rotary_dim (GPT-J). */
  dim: number;
  /** `half`: pairs (x[i], x[i + dim/2]) (HF rotate_half); `interleaved`: (x[2i], x[2i+1]) (GPT-J). */
  style: "half" | "interleaved";
  /** Base of the frequencies (HF `rope_theta` / NeoX `rotary_emb_base`; GPT-J is fixed at 10000). */
  theta: number;
  /** Frequency scaling; absent = HF's "default" rope type. */
  scaling?: RopeScaling;
  /** The model's `max_position_embeddings` (tables longer than this are allowed; dynamic NTK reacts). */
  maxPositionEmbeddings: number;
}

/** Options of {@link ropeInvFreq} that pick between HF versions. */
export interface RopeInvFreqOptions {
  /**
   * Precision of dynamic NTK's new base. `f32` (default): HF >= 4.45, whose `dynamic_rope_update`
   * passes `seq_len = max(position_ids) + 1` as an int64 tensor, so the base is computed in float32
   * tensor arithmetic. `f64`: older HF (`LlamaDynamicNTKScalingRotaryEmbedding`, a Python int
   * `seq_len`), base in Python float64, rounded to float32 only for the power.
   */
  dynamicBase?: "f32" | "f64";
}

const f = Math.fround;

function positiveFinite(v: number, field: string): void {
  if (!(Number.isFinite(v) && v > 0)) {
    throw new ConfigError(`must be a positive finite number, got ${v}`, { field });
  }
}

/** Throws {@link ConfigError} naming the field when a rope config cannot be used. */
export function checkRopeConfig(rope: RopeConfig): void {
  if (!Number.isInteger(rope.dim) || rope.dim < 2 || rope.dim % 2 !== 0) {
    throw new ConfigError(`rotary dim must be an even integer >= 2, got ${rope.dim}`, { field: "rope.dim" });
  }
  if (rope.style !== "half" && rope.style !== "interleaved") {
    throw new ConfigError(`rotary style must be "half" or "interleaved", got ${rope.style}`, {
      field: "rope.style",
    });
  }
  positiveFinite(rope.theta, "rope.theta");
  if (!Number.isInteger(rope.maxPositionEmbeddings) || rope.maxPositionEmbeddings < 1) {
    throw new ConfigError(`must be a positive integer, got ${rope.maxPositionEmbeddings}`, {
      field: "rope.maxPositionEmbeddings",
    });
  }
  const s = rope.scaling;
  if (s === undefined) return;
  positiveFinite(s.factor, "rope.scaling.factor");
  if (s.type === "linear") return;
  if (s.type === "dynamic" || s.type === "llama3") {
    if (!Number.isInteger(s.originalMaxPositionEmbeddings) || s.originalMaxPositionEmbeddings < 1) {
      throw new ConfigError(`must be a positive integer, got ${s.originalMaxPositionEmbeddings}`, {
        field: "rope.scaling.originalMaxPositionEmbeddings",
      });
    }
    if (s.type === "dynamic" && rope.dim < 4) {
      // dim / (dim - 2) is infinite for dim = 2.
      throw new ConfigError(`dynamic NTK needs rotary dim >= 4, got ${rope.dim}`, { field: "rope.dim" });
    }
    if (s.type === "llama3") {
      positiveFinite(s.lowFreqFactor, "rope.scaling.lowFreqFactor");
      positiveFinite(s.highFreqFactor, "rope.scaling.highFreqFactor");
      if (!(s.highFreqFactor > s.lowFreqFactor)) {
        throw new ConfigError(
          `highFreqFactor (${s.highFreqFactor}) must exceed lowFreqFactor (${s.lowFreqFactor})`,
          { field: "rope.scaling.highFreqFactor" },
        );
      }
    }
    return;
  }
  throw new ConfigError(`unknown rope scaling type ${(s as { type: unknown }).type}`, {
    field: "rope.scaling.type",
  });
}

/**
 * HF's default inverse frequencies `1 / base ** (arange(0, dim, 2).float() / dim)` in float32: the
 * exponent 2i/dim rounded to f32, the power taken with the base rounded to f32, and `1.0 / t` done as
 * PyTorch's `__rtruediv__` does it, `reciprocal(t) * 1.0`.
 */
function defaultInvFreq(base: number, dim: number): Float32Array {
  const half = dim / 2;
  const out = new Float32Array(half);
  const b = f(base);
  for (let i = 0; i < half; i++) out[i] = f(1 / f(Math.pow(b, f((2 * i) / dim))));
  return out;
}

/** Dynamic NTK's new base for a sequence of `seqLen` positions (HF `_compute_dynamic_ntk_parameters`). */
function dynamicBase(
  theta: number,
  dim: number,
  factor: number,
  orig: number,
  seqLen: number,
  p: "f32" | "f64",
) {
  const s = Math.max(seqLen, orig);
  if (p === "f64") return theta * ((factor * s / orig) - (factor - 1)) ** (dim / (dim - 2));
  // int64 tensor seq_len: factor * seq_len, / orig, - (factor - 1), ** (dim / (dim - 2)), base * ...
  // each a float32 tensor op with its Python-float operand rounded to float32.
  const ratio = f(f(f(f(factor) * f(s)) / f(orig)) - f(factor - 1));
  return f(f(theta) * f(Math.pow(ratio, f(dim / (dim - 2)))));
}

/**
 * Inverse frequencies [dim/2] (f32) for a table of `seqLen` positions, as HF computes `inv_freq` for
 * the config's rope type. `seqLen` matters only for `dynamic` scaling (HF's `max(position_ids) + 1`):
 * up to `originalMaxPositionEmbeddings` the default frequencies, beyond it a larger base.
 *
 * Throws {@link ConfigError} for an unusable config, {@link RangeError} for a bad `seqLen`.
 */
export function ropeInvFreq(rope: RopeConfig, seqLen: number, opts: RopeInvFreqOptions = {}): Float32Array {
  checkRopeConfig(rope);
  if (!Number.isInteger(seqLen) || seqLen < 0) {
    throw new RangeError(`seqLen ${seqLen} is not an integer >= 0`);
  }
  const { dim, theta, scaling } = rope;
  if (scaling === undefined) return defaultInvFreq(theta, dim);
  if (scaling.type === "linear") {
    // inv_freq /= factor: float32 division by the factor rounded to float32.
    const inv = defaultInvFreq(theta, dim);
    const fac = f(scaling.factor);
    for (let i = 0; i < inv.length; i++) inv[i] = f(inv[i] / fac);
    return inv;
  }
  if (scaling.type === "dynamic") {
    const base = dynamicBase(
      theta,
      dim,
      scaling.factor,
      scaling.originalMaxPositionEmbeddings,
      seqLen,
      opts.dynamicBase ?? "f32",
    );
    return defaultInvFreq(base, dim);
  }
  return llama3InvFreq(defaultInvFreq(theta, dim), scaling);
}

/**
 * HF `_compute_llama3_parameters` in float32, op by op. Python scalars meet float32 tensors, so each is
 * rounded to f32; `scalar / tensor` is PyTorch's `reciprocal(tensor) * scalar`.
 */
function llama3InvFreq(inv: Float32Array, s: Extract<RopeScaling, { type: "llama3" }>): Float32Array {
  const old = s.originalMaxPositionEmbeddings;
  const lowWavelen = f(old / s.lowFreqFactor);
  const highWavelen = f(old / s.highFreqFactor);
  const twoPi = f(2 * Math.PI);
  const fac = f(s.factor), low = f(s.lowFreqFactor), span = f(s.highFreqFactor - s.lowFreqFactor);
  const out = new Float32Array(inv.length);
  for (let i = 0; i < inv.length; i++) {
    const wavelen = f(f(1 / inv[i]) * twoPi);
    const scaled = wavelen > lowWavelen ? f(inv[i] / fac) : inv[i];
    const medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
    if (!medium) {
      out[i] = scaled;
      continue;
    }
    const smooth = f(f(f(f(1 / wavelen) * f(old)) - low) / span);
    out[i] = f(f(f(f(1 - smooth) * scaled) / fac) + f(smooth * scaled));
  }
  return out;
}

/** cos and sin tables of {@link ropeTables}: each [seqLen, dim/2] row-major, row p = position p. */
export interface RopeTables {
  cos: Float32Array;
  sin: Float32Array;
}

/**
 * cos/sin tables for positions 0..seqLen-1: angle = fround(p * invFreq[i]) (HF's float32 product of
 * positions and inv_freq: one term, so exactly one rounding), cos/sin of that angle rounded to f32.
 * HF's attention_scaling is 1 for the rope types supported here.
 */
export function ropeTables(rope: RopeConfig, seqLen: number, opts: RopeInvFreqOptions = {}): RopeTables {
  const inv = ropeInvFreq(rope, seqLen, opts);
  if (seqLen > 2 ** 24) {
    // Positions are float32 in HF: beyond 2^24 they are no longer exact integers.
    throw new RangeError(`seqLen ${seqLen} exceeds 2^24, where float32 positions lose integers`);
  }
  const half = inv.length;
  const cos = new Float32Array(seqLen * half);
  const sin = new Float32Array(seqLen * half);
  for (let p = 0; p < seqLen; p++) {
    for (let i = 0; i < half; i++) {
      const a = f(p * inv[i]);
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  }
  return { cos, sin };
}

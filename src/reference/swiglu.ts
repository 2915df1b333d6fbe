/** Float64 CPU twin of `kernels/swiglu.wgsl` (forward and backward). */

/** sigmoid(g) in float64, without overflow for large |g|. */
function sigmoid(g: number): number {
  return g >= 0 ? 1 / (1 + Math.exp(-g)) : Math.exp(g) / (1 + Math.exp(g));
}

/** silu(g) = g * sigmoid(g), in float64. */
export function siluScalarRef(g: number): number {
  return g * sigmoid(g);
}

/** silu'(g) = sigmoid(g) + g sigmoid(g) (1 - sigmoid(g)), in float64 (1 - s computed without cancellation). */
export function siluGradScalarRef(g: number): number {
  const s = sigmoid(g);
  return s + g * s * sigmoid(-g);
}

/** `out[i] = silu(gate[i]) * up[i]` in float64. */
export function swigluRef(gate: ArrayLike<number>, up: ArrayLike<number>): Float64Array {
  return Float64Array.from({ length: gate.length }, (_, i) => siluScalarRef(gate[i]) * up[i]);
}

/** What {@link swigluBackwardRef} returns. */
export interface SwigluBackwardRefResult {
  dgate: Float64Array;
  dup: Float64Array;
}

/** Gradients of {@link swigluRef} in float64: `dgate = dout * up * silu'(gate)`, `dup = dout * silu(gate)`. */
export function swigluBackwardRef(
  gate: ArrayLike<number>,
  up: ArrayLike<number>,
  dout: ArrayLike<number>,
): SwigluBackwardRefResult {
  const n = gate.length;
  return {
    dgate: Float64Array.from({ length: n }, (_, i) => dout[i] * up[i] * siluGradScalarRef(gate[i])),
    dup: Float64Array.from({ length: n }, (_, i) => dout[i] * siluScalarRef(gate[i])),
  };
}

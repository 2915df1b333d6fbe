/** Float64 CPU twin of `kernels/gelu.wgsl` (both GELU forms) and a float64 error function. */

/** The GELU form, as in the GPU launcher: `"tanh"` (GPT-2's gelu_new) or `"none"` (exact erf form). */
export type GeluRefApproximate = "tanh" | "none";

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

/**
 * erfc(x) for x >= 2 by the continued fraction erfc(x) = exp(-x^2) / sqrt(pi) / (x + (1/2) / (x + 1 /
 * (x + (3/2) / (x + 2 / (x + ...))))), evaluated bottom-up from 200 levels (converged to float64 for
 * x >= 2; 2000 levels give the same digits).
 */
function erfcCf(x: number): number {
  let f = x;
  for (let k = 200; k >= 1; k--) f = x + k / 2 / f;
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
}

/**
 * erf(x) for 0 <= x < 2 by the series erf(x) = 2/sqrt(pi) exp(-x^2) sum_n 2^n x^(2n+1) / (1*3*...*(2n+1)),
 * whose terms are all positive (no cancellation), summed until they stop mattering in float64.
 */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x, sum = x;
  for (let n = 0; n < 200 && term > 1e-17 * sum; n++) {
    term *= (2 * x2) / (2 * n + 3);
    sum += term;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
}

/** The error function in float64 (relative error ~1e-16 near 0, ~1e-15 elsewhere); odd, erf(±inf) = ±1. */
export function erfRef(x: number): number {
  const a = Math.abs(x);
  if (a === 0) return x; // keeps the sign of -0
  const v = a < 2 ? erfSeries(a) : 1 - erfcCf(a);
  return x < 0 ? -v : v;
}

/** The complementary error function 1 - erf(x) in float64, relative accuracy kept in the right tail. */
export function erfcRef(x: number): number {
  if (x >= 2) return erfcCf(x);
  if (x <= -2) return 2 - erfcCf(-x);
  return 1 - erfRef(x);
}

/** GPT-2's gelu_new of one value: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in float64. */
export function geluScalarRef(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

/** Exact GELU of one value: 0.5 x (1 + erf(x / sqrt 2)) = 0.5 x erfc(-x / sqrt 2), in float64. */
export function geluExactScalarRef(x: number): number {
  return 0.5 * x * erfcRef(-x / Math.SQRT2);
}

/** Elementwise GELU of `x` in float64: {@link geluScalarRef} (default) or {@link geluExactScalarRef}. */
export function geluRef(x: ArrayLike<number>, approximate: GeluRefApproximate = "tanh"): Float64Array {
  const f = approximate === "none" ? geluExactScalarRef : geluScalarRef;
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = f(x[i]);
  return out;
}

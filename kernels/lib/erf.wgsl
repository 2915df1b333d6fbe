// Shared fragment (not a kernel): the error function in f32. Pulled in with
//   //#include "lib/erf.wgsl"
// by gelu.wgsl and gelu_backward.wgsl (exact GELU); the kernel loader (src/gpu/pipeline.ts) pastes it once.
//
// Declares: fn erfSmall(x: f32) -> f32           erf(x) for |x| < 1 (relative accuracy)
//           fn erfcPos(z: f32, zz: f32) -> f32   erfc(z) for z >= 1, given zz = z * z
//           fn erfF32(x: f32) -> f32
//           fn erfcF32(x: f32) -> f32
//           fn normCdf2(v: f32) -> f32            2 Phi(v) = 1 + erf(v / sqrt 2)
// Needs from the including kernel: nothing.
//
// Accuracy (measured against a float64 erf in tests/gelu_test.ts): about 1e-7 absolute everywhere,
// relative ~1e-7 for |x| < 1 (so erf(1e-30) = 1.128e-30, no cancellation near 0), and erfc fractional
// error ~1e-7 for z >= 1 (the exponent's own f32 rounding aside).
//
// |x| < 1: the Maclaurin series erf(x) = 2/sqrt(pi) sum_n (-1)^n x^(2n+1) / (n! (2n+1)) to n = 10
// (truncation < 2e-9 at |x| = 1), Horner in x^2. |x| >= 1: erfc from the Chebyshev-fitted form of
// Numerical Recipes (erfcc, fractional error < 1.2e-7 for all z >= 0):
//   erfc(z) = t exp(-z^2 - 1.26551223 + t (1.00002368 + t (0.37409196 + ...))),  t = 1 / (1 + z / 2),
// and erf = 1 - erfc (erfc <= 0.16 there, so the subtraction loses nothing). z is capped at 30, where
// exp(-900) is exactly 0 in f32: erfc of any larger z is 0, never NaN (z * z would overflow to inf).

fn erfSmall(x: f32) -> f32 {
  let x2 = x * x;
  var s = 1.480719282e-8;
  s = s * x2 - 1.636584469e-7;
  s = s * x2 + 0.000001646211437;
  s = s * x2 - 0.00001492565036;
  s = s * x2 + 0.0001205533298;
  s = s * x2 - 0.0008548327023;
  s = s * x2 + 0.005223977625;
  s = s * x2 - 0.02686617065;
  s = s * x2 + 0.1128379167;
  s = s * x2 - 0.3761263890;
  s = s * x2 + 1.128379167;
  return x * s;
}

// erfc(z) for z >= 1; `zz` = z * z, passed in so a caller that knows z^2 more exactly than the square
// of a rounded z (GELU: x^2 / 2 from x itself, not (x / sqrt 2)^2) can use it.
fn erfcPos(z: f32, zz: f32) -> f32 {
  let a = min(z, 30.0);
  let t = 1.0 / (1.0 + 0.5 * a);
  var q = 0.17087277;
  q = q * t - 0.82215223;
  q = q * t + 1.48851587;
  q = q * t - 1.13520398;
  q = q * t + 0.27886807;
  q = q * t - 0.18628806;
  q = q * t + 0.09678418;
  q = q * t + 0.37409196;
  q = q * t + 1.00002368;
  q = q * t - 1.26551223;
  return t * exp(q - min(zz, 900.0));
}

fn erfF32(x: f32) -> f32 {
  let a = abs(x);
  if (a < 1.0) { return erfSmall(x); }
  return sign(x) * (1.0 - erfcPos(a, a * a));
}

fn erfcF32(x: f32) -> f32 {
  let a = abs(x);
  if (a < 1.0) { return 1.0 - erfSmall(x); }
  let c = erfcPos(a, a * a);
  return select(2.0 - c, c, x > 0.0);
}

// 2 Phi(v) = 1 + erf(v / sqrt 2) = erfc(-v / sqrt 2), Phi the standard normal CDF, with no cancellation
// for negative v (where it is erfc of a positive argument) and z^2 taken as v * v / 2 from v itself.
fn normCdf2(v: f32) -> f32 {
  let z = v * 0.7071067811865476;
  if (abs(z) < 1.0) { return 1.0 + erfSmall(z); }
  let c = erfcPos(abs(z), 0.5 * v * v);
  return select(c, 2.0 - c, v > 0.0);
}

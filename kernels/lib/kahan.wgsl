// Shared fragment (not a kernel): Kahan-compensated summation. Pulled in with
//   //#include "lib/kahan.wgsl"
// by reduce.wgsl and lib/online_softmax.wgsl; the kernel loader (src/gpu/pipeline.ts) pastes it once.
//
// Declares: fn kahanAdd(s: vec2<f32>, v: f32, one: f32) -> vec2<f32>
// Needs from the including kernel: nothing.

// Kahan-compensated running sum: s.x = sum, s.y = lost low-order part (true sum ~ s.x - s.y).
// Scaling both parts by the same factor keeps the pair consistent (online softmax relies on this).
//
// `one` must be exactly 1.0 and must come from outside the shader (a uniform field the launcher sets):
// the product hides `(t - s.x) - y` from the driver's algebraic simplifier. Mesa/NIR otherwise rewrites
// it to 0 (SPIR-V float ops are not "exact" unless decorated), silently turning this into a naive sum.
// A literal 1.0 does not help: the simplifier folds it first. Measured on llvmpipe with a literal or no
// product: 7e-5 instead of 5e-8 relative error in the softmax denominator of a row that loses digits in
// f32 (the lossy-row tests in tests/softmax_test.ts and tests/cross_entropy_test.ts fail), and 5.7e-7
// instead of 2e-8 relative error for 4096 squares (reduce.wgsl).
fn kahanAdd(s: vec2<f32>, v: f32, one: f32) -> vec2<f32> {
  let y = v - s.y;
  let t = (s.x + y) * one;
  return vec2<f32>(t, (t - s.x) - y);
}

// Shared fragment (not a kernel): a quiet NaN made at run time, for outputs that must say "undefined"
// (an out-of-range target or position). Pulled in with
//   //#include "lib/nan.wgsl"
// WGSL rejects a const-expression whose value is NaN (Chromium's Tint: "value nan cannot be represented
// as 'f32'" for `bitcast<f32>(0x7fc00000u)`), while a value loaded from a variable is not a
// const-expression, so the bits go through a function-scope `var`.

fn quietNan() -> f32 {
  var bits = 0x7fc00000u;
  return bitcast<f32>(bits);
}

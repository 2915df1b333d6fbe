// Product through uniform windows (see lib/matmul_ubo_core.wgsl), storing whole vec4s: out's row length
// and every batch base are multiples of 4 (the launcher checks; else matmul_ubo_scalar.wgsl).
//
// Bindings (group 0): A0..A2, B0..B2, t (lib/matmul_ubo_core.wgsl), bias (array<f32>), out (array<vec4<f32>>).

//#include "lib/matmul_ubo_core.wgsl"

@group(0) @binding(8) var<storage, read_write> out: array<vec4<f32>>;

// Row r, columns n..n+15 of the block: alpha * c (+ bias on the first K group; + out unless it is the
// first K group of a product that overwrites).
fn store_row(c: mat4x4<f32>, r: u32, n: u32) {
  let row = t.m0 + r;
  if (row >= t.M) { return; }
  for (var j = 0u; j < 4u; j++) {
    let col = t.n0 + n + 4u * j;
    if (col >= t.N) { return; }
    let bv = vec4<f32>(bias_at(col), bias_at(col + 1u), bias_at(col + 2u), bias_at(col + 3u));
    let v = t.alpha * c[j] + bv;
    let q = (t.base_o + row * t.ldo + col) >> 2u;
    if (t.first == 1u && !ACCUMULATE) { out[q] = v; } else { out[q] = v + out[q]; }
  }
}

// Product through uniform windows (see lib/matmul_ubo_core.wgsl), storing scalars: any row length.
//
// Bindings (group 0): A0..A2, B0..B2, t (lib/matmul_ubo_core.wgsl), bias (array<f32>), out (array<f32>).

//#include "lib/matmul_ubo_core.wgsl"

@group(0) @binding(8) var<storage, read_write> out: array<f32>;

// Row r, columns n..n+15 of the block, as kernels/matmul_ubo.wgsl stores them, one element at a time.
fn store_row(c: mat4x4<f32>, r: u32, n: u32) {
  let row = t.m0 + r;
  if (row >= t.M) { return; }
  for (var j = 0u; j < 4u; j++) {
    for (var e = 0u; e < 4u; e++) {
      let col = t.n0 + n + 4u * j + e;
      if (col >= t.N) { return; }
      let v = t.alpha * c[j][e] + bias_at(col);
      let o = t.base_o + row * t.ldo + col;
      if (t.first == 1u && !ACCUMULATE) { out[o] = v; } else { out[o] = v + out[o]; }
    }
  }
}

// Shared fragment (not a kernel): the product of kernels/matmul_ubo.wgsl and matmul_ubo_scalar.wgsl,
// which differ only in how they store (`out` as vec4 rows or as scalars). Pulled in with
//   //#include "lib/matmul_ubo_core.wgsl"
// One dispatch multiplies one A tile [MC, KC] by one B tile [KC, NC] (both packed by
// kernels/matmul_pack.wgsl, bound as 64 KiB uniform windows at dynamic offsets) and stores or adds the
// [MC, NC] block at (t.m0, t.n0) of out. Each invocation owns 8 rows x 16 columns: eight mat4x4
// accumulators (column j = output columns 4j..4j+3 of one row), written out so that every accumulator is a
// plain value (no function-scope array, which would live in memory).
// The including kernel declares `out` and defines store_row(c, r, n) (r, n: tile-local row and column).
// Overrides: MC (rows, a multiple of 8), NC (columns, a multiple of 16), KC (a multiple of 4), with
// MC*KC and KC*NC at most 16384; HAS_BIAS, ACCUMULATE; WG (invocations per workgroup).
// Dispatch: [ceil((MC/8)*(NC/16) / WG), 1, 1] per tile triple.

override MC: u32 = 128u;
override NC: u32 = 128u;
override KC: u32 = 128u;
override WG: u32 = 32u;
override HAS_BIAS: bool = false;
override ACCUMULATE: bool = false;

// Per dispatch (a 256-byte record of one buffer, bound at a dynamic offset).
struct UboTile {
  m0: u32, // first output row of the block
  n0: u32, // first output column of the block
  first: u32, // 1 on the block's first K tile: store (plus bias, plus out when ACCUMULATE), else add
  M: u32,
  N: u32,
  ldo: u32, // out's row length
  base_o: u32, // out's first element of this batch
  alpha: f32,
}

@group(0) @binding(0) var<uniform> A: array<vec4<f32>, 4096>;
@group(0) @binding(1) var<uniform> B: array<vec4<f32>, 4096>;
@group(0) @binding(2) var<uniform> t: UboTile;
@group(0) @binding(3) var<storage, read> bias: array<f32>;

// B row k, columns 4*nq .. 4*nq + 15, as the four columns of a mat4x4.
fn brow(k: u32, nq: u32) -> mat4x4<f32> {
  let q = k * (NC / 4u) + nq;
  return mat4x4<f32>(B[q], B[q + 1u], B[q + 2u], B[q + 3u]);
}

// c + a * b, column by column as fused multiply-adds.
fn fma4(c: mat4x4<f32>, a: f32, b: mat4x4<f32>) -> mat4x4<f32> {
  let s = vec4<f32>(a);
  return mat4x4<f32>(fma(s, b[0], c[0]), fma(s, b[1], c[1]), fma(s, b[2], c[2]), fma(s, b[3], c[3]));
}

// The value to store for output column n (global) of a row: alpha * c (+ the bias on the first K tile).
fn bias_at(n: u32) -> f32 {
  if (HAS_BIAS && t.first == 1u && n < t.N) { return bias[n]; }
  return 0.0;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let lanes_x = NC / 16u;
  let lane = gid.x;
  if (lane >= lanes_x * (MC / 8u)) { return; }
  let m0 = (lane / lanes_x) * 8u;
  let nq = (lane % lanes_x) * 4u;
  // Blocks wholly past the edge of out do nothing (zero-padded tiles).
  if (t.m0 + m0 >= t.M || t.n0 + 4u * nq >= t.N) { return; }
  var c0 = mat4x4<f32>();
  var c1 = mat4x4<f32>();
  var c2 = mat4x4<f32>();
  var c3 = mat4x4<f32>();
  var c4 = mat4x4<f32>();
  var c5 = mat4x4<f32>();
  var c6 = mat4x4<f32>();
  var c7 = mat4x4<f32>();
  let ka = KC / 4u;
  for (var k4 = 0u; k4 < ka; k4++) {
    let a0 = A[m0 * ka + k4];
    let a1 = A[(m0 + 1u) * ka + k4];
    let a2 = A[(m0 + 2u) * ka + k4];
    let a3 = A[(m0 + 3u) * ka + k4];
    let a4 = A[(m0 + 4u) * ka + k4];
    let a5 = A[(m0 + 5u) * ka + k4];
    let a6 = A[(m0 + 6u) * ka + k4];
    let a7 = A[(m0 + 7u) * ka + k4];
    // The four k of the vec4s, written out: a[kk] with a loop index would be a dynamic extract.
    var b = brow(4u * k4, nq);
    c0 = fma4(c0, a0.x, b);
    c1 = fma4(c1, a1.x, b);
    c2 = fma4(c2, a2.x, b);
    c3 = fma4(c3, a3.x, b);
    c4 = fma4(c4, a4.x, b);
    c5 = fma4(c5, a5.x, b);
    c6 = fma4(c6, a6.x, b);
    c7 = fma4(c7, a7.x, b);
    b = brow(4u * k4 + 1u, nq);
    c0 = fma4(c0, a0.y, b);
    c1 = fma4(c1, a1.y, b);
    c2 = fma4(c2, a2.y, b);
    c3 = fma4(c3, a3.y, b);
    c4 = fma4(c4, a4.y, b);
    c5 = fma4(c5, a5.y, b);
    c6 = fma4(c6, a6.y, b);
    c7 = fma4(c7, a7.y, b);
    b = brow(4u * k4 + 2u, nq);
    c0 = fma4(c0, a0.z, b);
    c1 = fma4(c1, a1.z, b);
    c2 = fma4(c2, a2.z, b);
    c3 = fma4(c3, a3.z, b);
    c4 = fma4(c4, a4.z, b);
    c5 = fma4(c5, a5.z, b);
    c6 = fma4(c6, a6.z, b);
    c7 = fma4(c7, a7.z, b);
    b = brow(4u * k4 + 3u, nq);
    c0 = fma4(c0, a0.w, b);
    c1 = fma4(c1, a1.w, b);
    c2 = fma4(c2, a2.w, b);
    c3 = fma4(c3, a3.w, b);
    c4 = fma4(c4, a4.w, b);
    c5 = fma4(c5, a5.w, b);
    c6 = fma4(c6, a6.w, b);
    c7 = fma4(c7, a7.w, b);
  }
  let n = 4u * nq;
  store_row(c0, m0, n);
  store_row(c1, m0 + 1u, n);
  store_row(c2, m0 + 2u, n);
  store_row(c3, m0 + 3u, n);
  store_row(c4, m0 + 4u, n);
  store_row(c5, m0 + 5u, n);
  store_row(c6, m0 + 6u, n);
  store_row(c7, m0 + 7u, n);
}

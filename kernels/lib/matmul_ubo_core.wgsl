// Shared fragment (not a kernel): the product of kernels/matmul_ubo.wgsl and matmul_ubo_scalar.wgsl,
// which differ only in how they store (`out` as vec4 rows or as scalars). Pulled in with
//   //#include "lib/matmul_ubo_core.wgsl"
// One dispatch multiplies one row tile of A by one column tile of B over NW consecutive K tiles: window w
// binds A's [MC, KC] tile and B's [KC, NC] tile of K tile w (both packed by kernels/matmul_pack.wgsl, bound
// as 64 KiB uniform windows at dynamic offsets), and the sum over all NW·KC of k is stored or added once
// into the [MC, NC] block at (t.m0, t.n0) of out: llvmpipe pays a lane-by-lane loop for every storage load
// and store, so adding each K tile into out separately cost ~30% at K = 384. Three windows each, seven
// dynamic uniform buffers with the record, fit WebGPU's guaranteed 8; a dispatch using fewer (NW < 3) binds
// its first window again in the unused bindings, whose loops are compiled out.
// Each invocation owns 8 rows x 16 columns: eight mat4x4 accumulators (column j = output columns
// 4j..4j+3 of one row), plain values (no function-scope array, which would live in memory).
// The including kernel declares `out` at binding 8 and defines store_row(c, r, n) (r, n: tile-local row
// and column).
// Overrides: MC (rows, a multiple of 8), NC (columns, a multiple of 16), KC (a multiple of 4), with
// MC*KC and KC*NC at most 16384; NW (K windows used, 1..3); HAS_BIAS, ACCUMULATE; WG (invocations per
// workgroup).
// Dispatch: [ceil((MC/8)*(NC/16) / WG), 1, 1] per (row tile, column tile, group of NW K tiles).

override MC: u32 = 128u;
override NC: u32 = 128u;
override KC: u32 = 128u;
override NW: u32 = 1u;
override WG: u32 = 32u;
override HAS_BIAS: bool = false;
override ACCUMULATE: bool = false;

// Per dispatch (a 256-byte record of one buffer, bound at a dynamic offset).
struct UboTile {
  m0: u32, // first output row of the block
  n0: u32, // first output column of the block
  first: u32, // 1 on the block's first group of K tiles: store (plus bias, plus out when ACCUMULATE), else add
  M: u32,
  N: u32,
  ldo: u32, // out's row length
  base_o: u32, // out's first element of this batch
  alpha: f32,
}

@group(0) @binding(0) var<uniform> A0: array<vec4<f32>, 4096>;
@group(0) @binding(1) var<uniform> A1: array<vec4<f32>, 4096>;
@group(0) @binding(2) var<uniform> A2: array<vec4<f32>, 4096>;
@group(0) @binding(3) var<uniform> B0: array<vec4<f32>, 4096>;
@group(0) @binding(4) var<uniform> B1: array<vec4<f32>, 4096>;
@group(0) @binding(5) var<uniform> B2: array<vec4<f32>, 4096>;
@group(0) @binding(6) var<uniform> t: UboTile;
@group(0) @binding(7) var<storage, read> bias: array<f32>;

// c + a * b, column by column as fused multiply-adds.
fn fma4(c: mat4x4<f32>, a: f32, b: mat4x4<f32>) -> mat4x4<f32> {
  let s = vec4<f32>(a);
  return mat4x4<f32>(fma(s, b[0], c[0]), fma(s, b[1], c[1]), fma(s, b[2], c[2]), fma(s, b[3], c[3]));
}

// Four k on the eight accumulators of rows m0..m0+7: a[i] holds row i's A at those k (a vec4), b[kk] B's
// row k + kk (16 columns). Written out: a[i][kk] with a loop index would be a dynamic extract.
fn mac4(
  c0: ptr<function, mat4x4<f32>>,
  c1: ptr<function, mat4x4<f32>>,
  c2: ptr<function, mat4x4<f32>>,
  c3: ptr<function, mat4x4<f32>>,
  c4: ptr<function, mat4x4<f32>>,
  c5: ptr<function, mat4x4<f32>>,
  c6: ptr<function, mat4x4<f32>>,
  c7: ptr<function, mat4x4<f32>>,
  a: array<vec4<f32>, 8>,
  b: array<mat4x4<f32>, 4>,
) {
  *c0 = fma4(fma4(fma4(fma4(*c0, a[0].x, b[0]), a[0].y, b[1]), a[0].z, b[2]), a[0].w, b[3]);
  *c1 = fma4(fma4(fma4(fma4(*c1, a[1].x, b[0]), a[1].y, b[1]), a[1].z, b[2]), a[1].w, b[3]);
  *c2 = fma4(fma4(fma4(fma4(*c2, a[2].x, b[0]), a[2].y, b[1]), a[2].z, b[2]), a[2].w, b[3]);
  *c3 = fma4(fma4(fma4(fma4(*c3, a[3].x, b[0]), a[3].y, b[1]), a[3].z, b[2]), a[3].w, b[3]);
  *c4 = fma4(fma4(fma4(fma4(*c4, a[4].x, b[0]), a[4].y, b[1]), a[4].z, b[2]), a[4].w, b[3]);
  *c5 = fma4(fma4(fma4(fma4(*c5, a[5].x, b[0]), a[5].y, b[1]), a[5].z, b[2]), a[5].w, b[3]);
  *c6 = fma4(fma4(fma4(fma4(*c6, a[6].x, b[0]), a[6].y, b[1]), a[6].z, b[2]), a[6].w, b[3]);
  *c7 = fma4(fma4(fma4(fma4(*c7, a[7].x, b[0]), a[7].y, b[1]), a[7].z, b[2]), a[7].w, b[3]);
}

// The value to store for output column n (global) of a row: alpha * c (+ the bias on the first K group).
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
  let ka = KC / 4u;
  let ia = m0 * ka; // A's vec4 of row m0, k 0; row i is ka further per row
  let nb = NC / 4u; // vec4s per B row
  var c0 = mat4x4<f32>();
  var c1 = mat4x4<f32>();
  var c2 = mat4x4<f32>();
  var c3 = mat4x4<f32>();
  var c4 = mat4x4<f32>();
  var c5 = mat4x4<f32>();
  var c6 = mat4x4<f32>();
  var c7 = mat4x4<f32>();
  // The same loop per window: a window is a binding, and WGSL cannot pass a uniform array to a function.
  for (var k4 = 0u; k4 < ka; k4++) {
    let q = 4u * k4 * nb + nq;
    mac4(&c0, &c1, &c2, &c3, &c4, &c5, &c6, &c7, array(A0[ia + k4], A0[ia + ka + k4], A0[ia + 2u * ka + k4], A0[ia + 3u * ka + k4],
      A0[ia + 4u * ka + k4], A0[ia + 5u * ka + k4], A0[ia + 6u * ka + k4], A0[ia + 7u * ka + k4]),
      array(mat4x4<f32>(B0[q], B0[q + 1u], B0[q + 2u], B0[q + 3u]),
        mat4x4<f32>(B0[q + nb], B0[q + nb + 1u], B0[q + nb + 2u], B0[q + nb + 3u]),
        mat4x4<f32>(B0[q + 2u * nb], B0[q + 2u * nb + 1u], B0[q + 2u * nb + 2u], B0[q + 2u * nb + 3u]),
        mat4x4<f32>(B0[q + 3u * nb], B0[q + 3u * nb + 1u], B0[q + 3u * nb + 2u], B0[q + 3u * nb + 3u])));
  }
  if (NW > 1u) {
    for (var k4 = 0u; k4 < ka; k4++) {
      let q = 4u * k4 * nb + nq;
      mac4(&c0, &c1, &c2, &c3, &c4, &c5, &c6, &c7, array(A1[ia + k4], A1[ia + ka + k4], A1[ia + 2u * ka + k4], A1[ia + 3u * ka + k4],
        A1[ia + 4u * ka + k4], A1[ia + 5u * ka + k4], A1[ia + 6u * ka + k4], A1[ia + 7u * ka + k4]),
        array(mat4x4<f32>(B1[q], B1[q + 1u], B1[q + 2u], B1[q + 3u]),
          mat4x4<f32>(B1[q + nb], B1[q + nb + 1u], B1[q + nb + 2u], B1[q + nb + 3u]),
          mat4x4<f32>(B1[q + 2u * nb], B1[q + 2u * nb + 1u], B1[q + 2u * nb + 2u], B1[q + 2u * nb + 3u]),
          mat4x4<f32>(B1[q + 3u * nb], B1[q + 3u * nb + 1u], B1[q + 3u * nb + 2u], B1[q + 3u * nb + 3u])));
    }
  }
  if (NW > 2u) {
    for (var k4 = 0u; k4 < ka; k4++) {
      let q = 4u * k4 * nb + nq;
      mac4(&c0, &c1, &c2, &c3, &c4, &c5, &c6, &c7, array(A2[ia + k4], A2[ia + ka + k4], A2[ia + 2u * ka + k4], A2[ia + 3u * ka + k4],
        A2[ia + 4u * ka + k4], A2[ia + 5u * ka + k4], A2[ia + 6u * ka + k4], A2[ia + 7u * ka + k4]),
        array(mat4x4<f32>(B2[q], B2[q + 1u], B2[q + 2u], B2[q + 3u]),
          mat4x4<f32>(B2[q + nb], B2[q + nb + 1u], B2[q + nb + 2u], B2[q + nb + 3u]),
          mat4x4<f32>(B2[q + 2u * nb], B2[q + 2u * nb + 1u], B2[q + 2u * nb + 2u], B2[q + 2u * nb + 3u]),
          mat4x4<f32>(B2[q + 3u * nb], B2[q + 3u * nb + 1u], B2[q + 3u * nb + 2u], B2[q + 3u * nb + 3u])));
    }
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

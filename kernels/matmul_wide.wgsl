// Wide register-blocked batched matmul: the contract of kernels/matmul.wgsl (same bindings, Params and
// STRIDED mode) with a (4*RM) x (4*RN) output tile per invocation, for aligned operands only.
//
// Why: on llvmpipe (Mesa 22) every storage load whose index is not a compile-time constant is executed
// lane by lane and component by component (a loop with a bounds check per scalar), so the cost of a
// product is the number of scalars each lane loads. Per four k steps an invocation loads 16*(RM + RN)
// scalars for 64*RM*RN multiply-adds: RM = RN = 2 halves the loads per flop of the 4x4 kernel, 4 x 4
// quarters them. The extra accumulators spill on AVX2, but spills are plain aligned vector moves, far
// cheaper than the per-lane loads they save.
//
// Bindings (group 0): as kernels/matmul.wgsl (a, bias as array<vec4<f32>>; b array<vec4<u32>>, f32 bits or
//   packed bf16/f16 pairs by W16; out array<f32>).
// Preconditions (the launcher checks them, else it uses matmul.wgsl): K % 4 == 0; the contiguous
//   dimension of A (K, or M when TRANS_A) and of B (N, or K when TRANS_B) % 4 == 0; every batch or window
//   base % 4 == 0; M >= 4 when TRANS_A, N >= 4 unless TRANS_B. Rows / columns past the edge are clamped
//   for loading (a 4-group clamps to the last whole group, so its vec4 loads stay in range) and never
//   stored.
// Overrides: TRANS_A, TRANS_B, HAS_BIAS, ACCUMULATE, STRIDED; RM, RN in 1..4; WG_X, WG_Y.
// Dispatch: [ceil(N/(4*RN*WG_X)), ceil(M/(4*RM*WG_Y)), batches], workgroup offsets in tile_x0/y0, z0.

//#include "lib/matmul_layout.wgsl"
//#include "lib/unpack16.wgsl"

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
override ACCUMULATE: bool = false;
override STRIDED: bool = false;
override RM: u32 = 2u;
override RN: u32 = 2u;
override WG_X: u32 = 16u;
override WG_Y: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<W16Vec>;
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

var<private> lda: u32;
var<private> ldb: u32;
var<private> base_a: u32;
var<private> base_b: u32;

// Elements 4q..4q+3 of B.
fn bq(q: u32) -> vec4<f32> { return w16Vec4(b[w16Quad(q)], q); }

// Columns of the result: A rows m..m+3 over k..k+3 (column i = row m+i).
fn load_a(m: u32, k: u32) -> mat4x4<f32> {
  if (TRANS_A) {
    // Stored [K,M]: 4 consecutive m at fixed k are one vec4 (m is a clamped whole group).
    let q = (base_a + k * lda + m) >> 2u;
    let s = lda >> 2u;
    return transpose(mat4x4<f32>(a[q], a[q + s], a[q + 2u * s], a[q + 3u * s]));
  }
  let last = p.M - 1u;
  return mat4x4<f32>(
    a[(base_a + m * lda + k) >> 2u],
    a[(base_a + min(m + 1u, last) * lda + k) >> 2u],
    a[(base_a + min(m + 2u, last) * lda + k) >> 2u],
    a[(base_a + min(m + 3u, last) * lda + k) >> 2u],
  );
}

// Columns of the result: B rows k..k+3 over columns n..n+3.
fn load_b(n: u32, k: u32) -> mat4x4<f32> {
  if (TRANS_B) {
    // Stored [N,K]: 4 consecutive k of one column are one vec4.
    let last = p.N - 1u;
    return transpose(mat4x4<f32>(
      bq((base_b + n * ldb + k) >> 2u),
      bq((base_b + min(n + 1u, last) * ldb + k) >> 2u),
      bq((base_b + min(n + 2u, last) * ldb + k) >> 2u),
      bq((base_b + min(n + 3u, last) * ldb + k) >> 2u),
    ));
  }
  let q = (base_b + k * ldb + n) >> 2u;
  let s = ldb >> 2u;
  return mat4x4<f32>(bq(q), bq(q + s), bq(q + 2u * s), bq(q + 3u * s));
}

// Stores the 4x4 block c (column i = output row m+i over columns n..n+3), skipping the edge.
fn store(c: mat4x4<f32>, m: u32, n: u32, base_o: u32, ldo: u32, off_bias: u32) {
  if (m >= p.M || n >= p.N) { return; }
  var bv = vec4<f32>(0.0);
  if (HAS_BIAS) {
    let last = p.N - 1u + off_bias;
    let nb = vec4<u32>(n, n + 1u, n + 2u, n + 3u) + off_bias;
    let cl = min(nb, vec4<u32>(last));
    bv = vec4<f32>(bias[cl.x >> 2u][cl.x & 3u], bias[cl.y >> 2u][cl.y & 3u],
                   bias[cl.z >> 2u][cl.z & 3u], bias[cl.w >> 2u][cl.w & 3u]);
  }
  for (var i = 0u; i < 4u; i++) {
    if (m + i >= p.M) { break; }
    let v = p.alpha * c[i] + bv;
    let o = base_o + (m + i) * ldo;
    for (var j = 0u; j < 4u; j++) {
      if (n + j >= p.N) { break; }
      if (ACCUMULATE) { out[o + n + j] = v[j] + out[o + n + j]; } else { out[o + n + j] = v[j]; }
    }
  }
}

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let M = p.M;
  let N = p.N;
  let K = p.K;
  let m0 = (gid.y + p.tile_y0 * WG_Y) * (4u * RM);
  let n0 = (gid.x + p.tile_x0 * WG_X) * (4u * RN);
  if (m0 >= M || n0 >= N) { return; }
  let z = gid.z + p.z0;
  let l = matmulLayout(z);
  lda = l.lda;
  ldb = l.ldb;
  base_a = l.base_a;
  base_b = l.base_b;
  let ldo = l.ldo;
  let base_o = l.base_o;
  let off_bias = l.off_bias;
  // Groups past the edge load the last whole group (vec4 layouts) or clamped rows; they are never stored.
  // Written out per group (not as arrays in loops) so every accumulator is a plain value after constant
  // folding: a function-scope array indexed in a loop would live in memory.
  var lastm = M - 1u;
  if (TRANS_A) { lastm = M - 4u; }
  var lastn = N - 4u;
  if (TRANS_B) { lastn = N - 1u; }
  let mg0 = min(m0 + 0u, lastm);
  let mg1 = min(m0 + 4u, lastm);
  let mg2 = min(m0 + 8u, lastm);
  let mg3 = min(m0 + 12u, lastm);
  let ng0 = min(n0 + 0u, lastn);
  let ng1 = min(n0 + 4u, lastn);
  let ng2 = min(n0 + 8u, lastn);
  let ng3 = min(n0 + 12u, lastn);
  var c00 = mat4x4<f32>();
  var c01 = mat4x4<f32>();
  var c02 = mat4x4<f32>();
  var c03 = mat4x4<f32>();
  var c10 = mat4x4<f32>();
  var c11 = mat4x4<f32>();
  var c12 = mat4x4<f32>();
  var c13 = mat4x4<f32>();
  var c20 = mat4x4<f32>();
  var c21 = mat4x4<f32>();
  var c22 = mat4x4<f32>();
  var c23 = mat4x4<f32>();
  var c30 = mat4x4<f32>();
  var c31 = mat4x4<f32>();
  var c32 = mat4x4<f32>();
  var c33 = mat4x4<f32>();
  for (var k = 0u; k < K; k += 4u) {
    let a0 = load_a(mg0, k);
    let b0 = load_b(ng0, k);
    var a1 = mat4x4<f32>();
    if (RM > 1u) { a1 = load_a(mg1, k); }
    var b1 = mat4x4<f32>();
    if (RN > 1u) { b1 = load_b(ng1, k); }
    var a2 = mat4x4<f32>();
    if (RM > 2u) { a2 = load_a(mg2, k); }
    var b2 = mat4x4<f32>();
    if (RN > 2u) { b2 = load_b(ng2, k); }
    var a3 = mat4x4<f32>();
    if (RM > 3u) { a3 = load_a(mg3, k); }
    var b3 = mat4x4<f32>();
    if (RN > 3u) { b3 = load_b(ng3, k); }
    c00 += b0 * a0;
    if (RN > 1u) { c01 += b1 * a0; }
    if (RN > 2u) { c02 += b2 * a0; }
    if (RN > 3u) { c03 += b3 * a0; }
    if (RM > 1u) { c10 += b0 * a1; }
    if (RM > 1u && RN > 1u) { c11 += b1 * a1; }
    if (RM > 1u && RN > 2u) { c12 += b2 * a1; }
    if (RM > 1u && RN > 3u) { c13 += b3 * a1; }
    if (RM > 2u) { c20 += b0 * a2; }
    if (RM > 2u && RN > 1u) { c21 += b1 * a2; }
    if (RM > 2u && RN > 2u) { c22 += b2 * a2; }
    if (RM > 2u && RN > 3u) { c23 += b3 * a2; }
    if (RM > 3u) { c30 += b0 * a3; }
    if (RM > 3u && RN > 1u) { c31 += b1 * a3; }
    if (RM > 3u && RN > 2u) { c32 += b2 * a3; }
    if (RM > 3u && RN > 3u) { c33 += b3 * a3; }
  }
  store(c00, m0 + 0u, n0 + 0u, base_o, ldo, off_bias);
  if (RN > 1u) { store(c01, m0 + 0u, n0 + 4u, base_o, ldo, off_bias); }
  if (RN > 2u) { store(c02, m0 + 0u, n0 + 8u, base_o, ldo, off_bias); }
  if (RN > 3u) { store(c03, m0 + 0u, n0 + 12u, base_o, ldo, off_bias); }
  if (RM > 1u) { store(c10, m0 + 4u, n0 + 0u, base_o, ldo, off_bias); }
  if (RM > 1u && RN > 1u) { store(c11, m0 + 4u, n0 + 4u, base_o, ldo, off_bias); }
  if (RM > 1u && RN > 2u) { store(c12, m0 + 4u, n0 + 8u, base_o, ldo, off_bias); }
  if (RM > 1u && RN > 3u) { store(c13, m0 + 4u, n0 + 12u, base_o, ldo, off_bias); }
  if (RM > 2u) { store(c20, m0 + 8u, n0 + 0u, base_o, ldo, off_bias); }
  if (RM > 2u && RN > 1u) { store(c21, m0 + 8u, n0 + 4u, base_o, ldo, off_bias); }
  if (RM > 2u && RN > 2u) { store(c22, m0 + 8u, n0 + 8u, base_o, ldo, off_bias); }
  if (RM > 2u && RN > 3u) { store(c23, m0 + 8u, n0 + 12u, base_o, ldo, off_bias); }
  if (RM > 3u) { store(c30, m0 + 12u, n0 + 0u, base_o, ldo, off_bias); }
  if (RM > 3u && RN > 1u) { store(c31, m0 + 12u, n0 + 4u, base_o, ldo, off_bias); }
  if (RM > 3u && RN > 2u) { store(c32, m0 + 12u, n0 + 8u, base_o, ldo, off_bias); }
  if (RM > 3u && RN > 3u) { store(c33, m0 + 12u, n0 + 12u, base_o, ldo, off_bias); }
}

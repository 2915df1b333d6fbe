// Lane-uniform batched matmul for SIMD-over-lanes drivers (llvmpipe / lavapipe): the same contract as
// kernels/matmul.wgsl, out[z] = alpha * op(A[z]) @ op(B[z]) + bias (+ out[z] if ACCUMULATE).
//
// llvmpipe compiles a workgroup into loops over 8-lane (AVX2) vectors and keeps every scalar of an
// invocation in its own vector register, so one invocation's register tile costs one ymm register per
// element: the 4x4 tile of matmul.wgsl (16 accumulators) already spills. A storage load whose index
// varies per lane becomes a gather; one whose index is the same for every lane of the workgroup (built
// from workgroup_id and uniforms only) becomes one scalar load and a broadcast. So here a workgroup is
// one row of WG lanes that share their output rows: lane l owns columns n = n0 + l (+ WG when CN = 2),
// every lane owns the same 4*RV rows. Per k, the A elements of those rows are uniform loads; the B
// elements are one gather per column, contiguous across lanes (one cache line per 8 lanes when B is
// [K,N]). Accumulators: 4*RV*CN per lane (RV rows of vec4 = 4 consecutive rows, CN columns).
//
// Bindings (group 0), all row-major f32, batch z at z*stride_* elements:
//   0 uniform Params (the same struct as matmul.wgsl)
//   1 storage read   a:    array<f32>  op(A) is [M,K]: A stored [M,K], or [K,M] when TRANS_A
//   2 storage read   b:    array<u32>  op(B) is [K,N]: B stored [K,N], or [N,K] when TRANS_B; f32 bits
//                                      or packed bf16/f16 pairs (W16, lib/unpack16.wgsl)
//   3 storage read   bias: array<f32>  [N], read only when HAS_BIAS (else any read-only buffer)
//   4 storage rw     out:  array<f32>  [M,N] per batch
// Overrides: TRANS_A, TRANS_B, HAS_BIAS, ACCUMULATE, STRIDED (as matmul.wgsl: leading dimensions and
//   window offsets from Params), WG lanes per workgroup, RV in 1..3 (rows per workgroup = 4*RV), CN in
//   1..2 (columns per lane). All compile-time; the unused accumulators fold away.
// Dispatch: [ceil(N/(WG*CN)), ceil(M/(4*RV)), batches] workgroups of [WG,1,1], possibly split into
//   several dispatches whose workgroup offsets arrive in tile_x0, tile_y0, z0.

//#include "lib/matmul_layout.wgsl"
//#include "lib/unpack16.wgsl"

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
override ACCUMULATE: bool = false;
override STRIDED: bool = false;
override WG: u32 = 64u;
override RV: u32 = 2u;
override CN: u32 = 1u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<W16Scalar>;

fn b1(i: u32) -> f32 { return w16Elem(b[w16Word(i)], i); }
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

// Stores one lane's column n of 4 rows from m: rows past M are skipped (their loads were clamped).
fn store4(m: u32, n: u32, v: vec4<f32>, base_o: u32, ldo: u32, bv: f32) {
  for (var i = 0u; i < 4u; i++) {
    if (m + i >= p.M) { return; }
    let o = base_o + (m + i) * ldo + n;
    var r = p.alpha * v[i] + bv;
    if (ACCUMULATE) { r += out[o]; }
    out[o] = r;
  }
}

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let M = p.M;
  let N = p.N;
  let K = p.K;
  // m0 and z depend on the workgroup only: every A index below is uniform across the lanes.
  let m0 = (wg.y + p.tile_y0) * (4u * RV);
  let nb = (wg.x + p.tile_x0) * (WG * CN) + lid.x;
  let z = wg.z + p.z0;
  let l = matmulLayout(z);
  let lda = l.lda;
  let ldb = l.ldb;
  let ldo = l.ldo;
  let base_a = l.base_a;
  let base_b = l.base_b;
  let base_o = l.base_o;
  let off_bias = l.off_bias;
  // Columns and rows past the edge are clamped for loading; their results are not stored.
  let n_0 = min(nb, N - 1u);
  let n_1 = min(nb + WG, N - 1u);
  var mr: array<u32, 12>;
  for (var i = 0u; i < 4u * RV; i++) { mr[i] = min(m0 + i, M - 1u); }

  // A(m, k) = a[ia(m) + k * sa]; B(k, n) = b[ib(n) + k * sb].
  var sa = 1u;
  var sb = ldb;
  if (TRANS_A) { sa = lda; }
  if (TRANS_B) { sb = 1u; }
  var ra: array<u32, 12>;
  for (var i = 0u; i < 4u * RV; i++) {
    if (TRANS_A) { ra[i] = base_a + mr[i]; } else { ra[i] = base_a + mr[i] * lda; }
  }
  var rb0 = base_b + n_0;
  var rb1 = base_b + n_1;
  if (TRANS_B) {
    rb0 = base_b + n_0 * ldb;
    rb1 = base_b + n_1 * ldb;
  }

  var c00 = vec4<f32>(0.0);
  var c10 = vec4<f32>(0.0);
  var c20 = vec4<f32>(0.0);
  var c01 = vec4<f32>(0.0);
  var c11 = vec4<f32>(0.0);
  var c21 = vec4<f32>(0.0);
  for (var k = 0u; k < K; k++) {
    let oa = k * sa;
    let ob = k * sb;
    let b0 = b1(rb0 + ob);
    let a0 = vec4<f32>(a[ra[0] + oa], a[ra[1] + oa], a[ra[2] + oa], a[ra[3] + oa]);
    c00 += a0 * b0;
    if (CN > 1u) {
      c01 += a0 * b1(rb1 + ob);
    }
    if (RV > 1u) {
      let a1 = vec4<f32>(a[ra[4] + oa], a[ra[5] + oa], a[ra[6] + oa], a[ra[7] + oa]);
      c10 += a1 * b0;
      if (CN > 1u) { c11 += a1 * b1(rb1 + ob); }
    }
    if (RV > 2u) {
      let a2 = vec4<f32>(a[ra[8] + oa], a[ra[9] + oa], a[ra[10] + oa], a[ra[11] + oa]);
      c20 += a2 * b0;
      if (CN > 1u) { c21 += a2 * b1(rb1 + ob); }
    }
  }

  if (nb < N) {
    var bv = 0.0;
    if (HAS_BIAS) { bv = bias[nb + off_bias]; }
    store4(m0, nb, c00, base_o, ldo, bv);
    if (RV > 1u) { store4(m0 + 4u, nb, c10, base_o, ldo, bv); }
    if (RV > 2u) { store4(m0 + 8u, nb, c20, base_o, ldo, bv); }
  }
  if (CN > 1u && nb + WG < N) {
    let n = nb + WG;
    var bv = 0.0;
    if (HAS_BIAS) { bv = bias[n + off_bias]; }
    store4(m0, n, c01, base_o, ldo, bv);
    if (RV > 1u) { store4(m0 + 4u, n, c11, base_o, ldo, bv); }
    if (RV > 2u) { store4(m0 + 8u, n, c21, base_o, ldo, bv); }
  }
}

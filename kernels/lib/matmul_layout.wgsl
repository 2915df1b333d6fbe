// Shared fragment (not a kernel): the Params and operand layout of every matmul variant
// (matmul.wgsl, matmul_wide.wgsl, matmul_lanes.wgsl). Pulled in with
//   //#include "lib/matmul_layout.wgsl"
// Declares: struct Params, struct MatmulLayout, fn matmulLayout(z: u32) -> MatmulLayout
// Needs from the including kernel: `var<uniform> p: Params`; overrides TRANS_A, TRANS_B, STRIDED.

struct Params {
  M: u32,
  N: u32,
  K: u32,
  stride_a: u32,
  stride_b: u32,
  stride_out: u32,
  tile_x0: u32,
  tile_y0: u32,
  z0: u32,
  alpha: f32,
  lda: u32,
  ldb: u32,
  ldo: u32,
  off_a: u32,
  off_b: u32,
  off_o: u32,
  off_bias: u32,
}

// Leading dimensions (elements between stored rows) and element bases of batch z's operands.
struct MatmulLayout {
  lda: u32,
  ldb: u32,
  ldo: u32,
  base_a: u32,
  base_b: u32,
  base_o: u32,
  off_bias: u32,
}

// Dense: A [M,K] (or [K,M] when TRANS_A), B [K,N] (or [N,K] when TRANS_B), out [M,N], batch z at
// z·stride. STRIDED: sub-matrices of larger operands bound through windows, with the leading dimensions
// and offsets of Params; without it constant folding leaves the dense layout.
fn matmulLayout(z: u32) -> MatmulLayout {
  var l = MatmulLayout(p.K, p.N, p.N, z * p.stride_a, z * p.stride_b, z * p.stride_out, 0u);
  if (TRANS_A) { l.lda = p.M; }
  if (TRANS_B) { l.ldb = p.K; }
  if (STRIDED) {
    l.lda = p.lda;
    l.ldb = p.ldb;
    l.ldo = p.ldo;
    l.base_a += p.off_a;
    l.base_b += p.off_b;
    l.base_o += p.off_o;
    l.off_bias = p.off_bias;
  }
  return l;
}

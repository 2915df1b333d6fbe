// Register-blocked batched matmul: out[z] = alpha * op(A[z]) @ op(B[z]) + bias (+ out[z] if ACCUMULATE).
//
// Each invocation owns a 4x4 output tile kept in four vec4 registers and walks K four at a time; there
// is no shared memory and no barrier. On llvmpipe (which runs invocations as SIMD lanes) barriers split
// the shader into resumable fragments and cost far more than the extra global loads they save, and on
// discrete GPUs the 16 accumulators per invocation still give 4x operand reuse from the cache.
//
// Bindings (group 0):
//   0 uniform Params (below)
//   1 storage read   a:    array<vec4<f32>>  op(A) is [M,K]: A stored [M,K], or [K,M] when TRANS_A
//   2 storage read   b:    array<vec4<u32>>  op(B) is [K,N]: B stored [K,N], or [N,K] when TRANS_B;
//                                            f32 bits, or packed bf16/f16 pairs (W16, lib/unpack16.wgsl)
//   3 storage read   bias: array<vec4<f32>>  [N], read only when HAS_BIAS (else any read-only buffer)
//   4 storage rw     out:  array<f32>        [M,N] per batch, row-major
//   All are row-major f32 (B possibly 16-bit, decoded to f32); batch z starts at z*stride_* elements. A and B are declared as vec4 arrays
//   (createTensor pads every buffer to 16 bytes) so one declaration serves both the vec4 fast path and
//   scalar loads (`a[i >> 2][i & 3]`), and no load ever reaches past the tensor's padded size.
// Overrides: TRANS_A, TRANS_B pick the layout; VEC_A / VEC_B allow vec4 loads along the contiguous
//   dimension (the launcher sets them only when that dimension and the batch stride are multiples of 4);
//   HAS_BIAS, ACCUMULATE; WG_X, WG_Y workgroup shape. All are compile-time, so the inner loop is
//   branch-free after constant folding.
// Dispatch: [ceil(ceil(N/4)/WG_X), ceil(ceil(M/4)/WG_Y), batches], possibly split into several
//   dispatches whose tile/batch offsets arrive in tile_x0, tile_y0, z0 (65535-workgroup limit).
// STRIDED (for operands larger than one storage binding, which the launcher multiplies block by block
//   through binding windows): the operands are sub-matrices of larger ones, with leading dimensions
//   lda / ldb / ldo (elements between rows of A, B, out as stored) and element offsets off_a / off_b /
//   off_o / off_bias inside their windows. Without it the leading dimensions are the dense ones (A: K,
//   or M when TRANS_A; B: N, or K when TRANS_B; out: N), the offsets 0, and constant folding leaves
//   exactly the dense kernel.

//#include "lib/matmul_layout.wgsl"
//#include "lib/unpack16.wgsl"

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override VEC_A: bool = false;
override VEC_B: bool = false;
override HAS_BIAS: bool = false;
override ACCUMULATE: bool = false;
override STRIDED: bool = false;
override WG_X: u32 = 16u;
override WG_Y: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<W16Vec>;
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

fn a1(i: u32) -> f32 { return a[i >> 2u][i & 3u]; }
fn b1(i: u32) -> f32 { return w16ElemG(b[w16Group(i)], i); }
// Elements 4q..4q+3 of B (VEC_B paths).
fn bq(q: u32) -> vec4<f32> { return w16Vec4(b[w16Quad(q)], q); }
fn a4(i: u32) -> vec4<f32> { return vec4<f32>(a1(i), a1(i + 1u), a1(i + 2u), a1(i + 3u)); }
fn b4(i: u32) -> vec4<f32> { return vec4<f32>(b1(i), b1(i + 1u), b1(i + 2u), b1(i + 3u)); }

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let M = p.M;
  let N = p.N;
  let K = p.K;
  let m0 = (gid.y + p.tile_y0 * WG_Y) * 4u;
  let n0 = (gid.x + p.tile_x0 * WG_X) * 4u;
  if (m0 >= M || n0 >= N) { return; }
  let z = gid.z + p.z0;
  let l = matmulLayout(z);
  let lda = l.lda;
  let ldb = l.ldb;
  let ldo = l.ldo;
  let base_a = l.base_a;
  let base_b = l.base_b;
  let base_o = l.base_o;
  let off_bias = l.off_bias;

  // Rows/columns past the edge are clamped to the last valid one: the loads stay in bounds and
  // branch-free, and the duplicate results are simply not stored.
  let mi = vec4<u32>(m0, min(m0 + 1u, M - 1u), min(m0 + 2u, M - 1u), min(m0 + 3u, M - 1u));
  let nj = vec4<u32>(n0, min(n0 + 1u, N - 1u), min(n0 + 2u, N - 1u), min(n0 + 3u, N - 1u));

  // Per-row (A) and per-column (B) start offsets, so the loop only adds k (or k*M, k*N).
  var ra: vec4<u32>;
  var rb: vec4<u32>;
  if (TRANS_A) { ra = base_a + mi; } else { ra = base_a + mi * lda; }
  if (TRANS_B) { rb = base_b + nj * ldb; } else { rb = base_b + nj; }

  var c0 = vec4<f32>(0.0);
  var c1 = vec4<f32>(0.0);
  var c2 = vec4<f32>(0.0);
  var c3 = vec4<f32>(0.0);

  let k4 = K & ~3u;
  for (var k = 0u; k < k4; k += 4u) {
    // ar: column i = A row m_i over k..k+3. bm: column kk = B row k+kk over n_0..n_3.
    var ar: mat4x4<f32>;
    if (TRANS_A) {
      // A stored [K,M]: a row of storage is 4 consecutive m at fixed k (vec4 when M % 4 == 0,
      // in which case the whole tile is in range and mi is m0..m0+3).
      var at: mat4x4<f32>;
      if (VEC_A) {
        let q = (base_a + k * lda + m0) >> 2u;
        let s = lda >> 2u;
        at = mat4x4<f32>(a[q], a[q + s], a[q + 2u * s], a[q + 3u * s]);
      } else {
        let o = k * lda;
        at = mat4x4<f32>(
          vec4<f32>(a1(ra.x + o), a1(ra.y + o), a1(ra.z + o), a1(ra.w + o)),
          vec4<f32>(a1(ra.x + o + lda), a1(ra.y + o + lda), a1(ra.z + o + lda), a1(ra.w + o + lda)),
          vec4<f32>(a1(ra.x + o + 2u * lda), a1(ra.y + o + 2u * lda), a1(ra.z + o + 2u * lda), a1(ra.w + o + 2u * lda)),
          vec4<f32>(a1(ra.x + o + 3u * lda), a1(ra.y + o + 3u * lda), a1(ra.z + o + 3u * lda), a1(ra.w + o + 3u * lda)),
        );
      }
      ar = transpose(at);
    } else {
      if (VEC_A) {
        ar = mat4x4<f32>(a[(ra.x + k) >> 2u], a[(ra.y + k) >> 2u], a[(ra.z + k) >> 2u], a[(ra.w + k) >> 2u]);
      } else {
        ar = mat4x4<f32>(a4(ra.x + k), a4(ra.y + k), a4(ra.z + k), a4(ra.w + k));
      }
    }
    var bm: mat4x4<f32>;
    if (TRANS_B) {
      // B stored [N,K]: 4 consecutive k of one column n_j are contiguous.
      var bt: mat4x4<f32>;
      if (VEC_B) {
        bt = mat4x4<f32>(bq((rb.x + k) >> 2u), bq((rb.y + k) >> 2u), bq((rb.z + k) >> 2u), bq((rb.w + k) >> 2u));
      } else {
        bt = mat4x4<f32>(b4(rb.x + k), b4(rb.y + k), b4(rb.z + k), b4(rb.w + k));
      }
      bm = transpose(bt);
    } else {
      if (VEC_B) {
        let q = (base_b + k * ldb + n0) >> 2u;
        let s = ldb >> 2u;
        bm = mat4x4<f32>(bq(q), bq(q + s), bq(q + 2u * s), bq(q + 3u * s));
      } else {
        let o = k * ldb;
        bm = mat4x4<f32>(
          vec4<f32>(b1(rb.x + o), b1(rb.y + o), b1(rb.z + o), b1(rb.w + o)),
          vec4<f32>(b1(rb.x + o + ldb), b1(rb.y + o + ldb), b1(rb.z + o + ldb), b1(rb.w + o + ldb)),
          vec4<f32>(b1(rb.x + o + 2u * ldb), b1(rb.y + o + 2u * ldb), b1(rb.z + o + 2u * ldb), b1(rb.w + o + 2u * ldb)),
          vec4<f32>(b1(rb.x + o + 3u * ldb), b1(rb.y + o + 3u * ldb), b1(rb.z + o + 3u * ldb), b1(rb.w + o + 3u * ldb)),
        );
      }
    }
    c0 += bm * ar[0];
    c1 += bm * ar[1];
    c2 += bm * ar[2];
    c3 += bm * ar[3];
  }

  // K % 4 leftover steps, scalar loads.
  for (var k = k4; k < K; k++) {
    var ac: vec4<f32>;
    var br: vec4<f32>;
    if (TRANS_A) {
      let o = k * lda;
      ac = vec4<f32>(a1(ra.x + o), a1(ra.y + o), a1(ra.z + o), a1(ra.w + o));
    } else {
      ac = vec4<f32>(a1(ra.x + k), a1(ra.y + k), a1(ra.z + k), a1(ra.w + k));
    }
    if (TRANS_B) {
      br = vec4<f32>(b1(rb.x + k), b1(rb.y + k), b1(rb.z + k), b1(rb.w + k));
    } else {
      let o = k * ldb;
      br = vec4<f32>(b1(rb.x + o), b1(rb.y + o), b1(rb.z + o), b1(rb.w + o));
    }
    c0 += ac.x * br;
    c1 += ac.y * br;
    c2 += ac.z * br;
    c3 += ac.w * br;
  }

  var bv = vec4<f32>(0.0);
  if (HAS_BIAS) {
    let nb = nj + off_bias;
    bv = vec4<f32>(bias[nb.x >> 2u][nb.x & 3u], bias[nb.y >> 2u][nb.y & 3u],
                   bias[nb.z >> 2u][nb.z & 3u], bias[nb.w >> 2u][nb.w & 3u]);
  }
  let alpha = p.alpha;
  let rows = mat4x4<f32>(c0, c1, c2, c3);
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + i;
    if (m >= M) { break; }
    let v = alpha * rows[i] + bv;
    let o = base_o + m * ldo;
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + j;
      if (n >= N) { break; }
      if (ACCUMULATE) {
        out[o + n] = v[j] + out[o + n];
      } else {
        out[o + n] = v[j];
      }
    }
  }
}

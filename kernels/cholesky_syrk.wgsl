// Trailing update of the blocked Cholesky (src/gpu/cholesky.ts; kernels/cholesky.wgsl has the rest, the
// float64 twin is src/reference/cholesky.ts): A_ij -= Σ_t pan[i, t] pan[j, t] for k + NB ≤ j ≤ i, over
// the rows [max(r0, k + NB), r1) of one row block of A. Only full panels have a trailing matrix, so the
// sum always runs over the NB = 32 panel columns (a constant: the loop unrolls).
//
// Why no workgroup memory: on llvmpipe a load whose index is not a compile-time constant runs lane by
// lane (kernels/matmul_wide.wgsl), so what counts is the scalars loaded per multiply-add. Each
// invocation owns an 8 x 8 block and loads its 8 + 8 panel rows straight from storage as vec4 along t:
// 64 scalars per 256 multiply-adds; blocks wholly above the diagonal return at once.
//
// Bindings (group 0), the same Params as kernels/cholesky.wgsl:
//   0 uniform Params
//   1 storage rw   ab:  array<f32>         rows [r0, r1) of A, row length n
//   2 storage read pan: array<vec4<f32>>   the panel [n, NB] (NB / 4 vec4 per row)
// Dispatch: [ceil((n - k - NB) / 64), ceil(rows / 64)], workgroup 8 x 8.

struct Params { n: u32, k: u32, nb: u32, r0: u32, r1: u32, m: u32, tiny: f32, pad: u32 }

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read_write> ab: array<f32>;
@group(0) @binding(2) var<storage, read> pan: array<vec4<f32>>;

// The 4 x 4 product block of panel rows ri..ri+3 with rows rj..rj+3 over t = 4 q .. 4 q + 3
// (column c = rj + c; component r = ri + r).
fn block(a: mat4x4<f32>, b: mat4x4<f32>) -> mat4x4<f32> {
  return transpose(a) * b;
}

fn rows4(r: u32, q: u32, last: u32) -> mat4x4<f32> {
  return mat4x4<f32>(
    pan[min(r, last) * 8u + q],
    pan[min(r + 1u, last) * 8u + q],
    pan[min(r + 2u, last) * 8u + q],
    pan[min(r + 3u, last) * 8u + q],
  );
}

fn store(c: mat4x4<f32>, i0: u32, j0: u32) {
  for (var r = 0u; r < 4u; r++) {
    let i = i0 + r;
    if (i >= prm.r1) {
      return;
    }
    let o = (i - prm.r0) * prm.n;
    for (var q = 0u; q < 4u; q++) {
      let j = j0 + q;
      if (j <= i && j < prm.n) {
        ab[o + j] = ab[o + j] - c[q][r];
      }
    }
  }
}

@compute @workgroup_size(8, 8)
fn syrk(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c0 = prm.k + prm.nb;
  let i0 = max(prm.r0, c0) + gid.y * 8u;
  let j0 = c0 + gid.x * 8u;
  if (i0 >= prm.r1 || j0 >= prm.n || j0 > i0 + 7u) {
    return;
  }
  let lasti = prm.r1 - 1u;
  let lastj = prm.n - 1u;
  var c00 = mat4x4<f32>();
  var c01 = mat4x4<f32>();
  var c10 = mat4x4<f32>();
  var c11 = mat4x4<f32>();
  for (var q = 0u; q < 8u; q++) {
    let a0 = rows4(i0, q, lasti);
    let a1 = rows4(i0 + 4u, q, lasti);
    let b0 = rows4(j0, q, lastj);
    let b1 = rows4(j0 + 4u, q, lastj);
    c00 += block(a0, b0);
    c01 += block(a0, b1);
    c10 += block(a1, b0);
    c11 += block(a1, b1);
  }
  store(c00, i0, j0);
  store(c01, i0, j0 + 4u);
  store(c10, i0 + 4u, j0);
  store(c11, i0 + 4u, j0 + 4u);
}

// Blocked right-looking Cholesky A = L Lᵀ and the two triangular solves L Y = B, Lᵀ X = Y, in float32
// (src/gpu/cholesky.ts; float64 twin src/reference/cholesky.ts). A [n, n] is stored as row blocks, one
// storage buffer each (rows [r0, r1) of the full row-major matrix, so a matrix past one binding spans
// several); block boundaries are multiples of NB, so the NB rows of a panel always lie in one block.
// Only the lower triangle is read; L overwrites it in place.
//
// Per panel k (columns [k, k + nb), nb = min(NB, n - k)), one dispatch each, in order:
//   factor_diag  [1]                         the block holding rows k..: A_kk = L_kk L_kkᵀ in workgroup
//                                            memory; L_kk to A and to pan rows k.. (zeros above and
//                                            right of it); the first pivot ≤ tiny (or NaN) to status
//   trsm         per block, rows ≥ k + nb    L_ik = A_ik L_kk⁻ᵀ (row-wise forward substitution), to A
//                                            and to pan rows i
//   syrk         per block, rows ≥ k + nb    A_ij -= Σ_t pan[i, t] pan[j, t] for k + nb ≤ j ≤ i
//                                            (kernels/cholesky_syrk.wgsl)
// Solves (pan is then Y [n, m], m right-hand sides, row-major), panel by panel:
//   fwd_diag    [ceil(m / 64)]               Y_k = L_kk⁻¹ Y_k (a thread per column)
//   fwd_update  per block, rows ≥ k + nb     Y_i -= L_ik Y_k
// then from the last panel back:
//   bwd_diag    [ceil(m / 64)]               Y_k = L_kk⁻ᵀ Y_k
//   bwd_update  the block of rows k.., i < k Y_i -= L_kiᵀ Y_k
//
// Bindings (group 0); every entry point uses a prefix of them (layout "auto"):
//   0 uniform Params
//   1 storage rw   ab:     array<f32>   rows [r0, r1) of A / L, row length n
//   2 storage rw   pan:    array<f32>   the panel [n, NB] (factorisation) or Y [n, m] (solves)
//   3 storage rw   status: array<u32>   [1]: 0, or 1 + the first failing pivot (factor_diag only)

const NB: u32 = 32u;

struct Params { n: u32, k: u32, nb: u32, r0: u32, r1: u32, m: u32, tiny: f32, pad: u32 }

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read_write> ab: array<f32>;
@group(0) @binding(2) var<storage, read_write> pan: array<f32>;
@group(0) @binding(3) var<storage, read_write> status: array<u32>;

// L_kk (factor_diag, trsm, fwd_diag, bwd_diag), row-major [NB, NB].
var<workgroup> sl: array<f32, 1024>;

// Index in ab of A(i, j), i a global row inside [r0, r1).
fn aidx(i: u32, j: u32) -> u32 {
  return (i - prm.r0) * prm.n + j;
}

// Linear invocation index of a 1-D launch spread over a 2-D grid (src/gpu/pipeline.ts `grid`).
fn linear(wg: vec3<u32>, nw: vec3<u32>, lid: u32, size: u32) -> u32 {
  return (wg.x + wg.y * nw.x) * size + lid;
}

@compute @workgroup_size(256)
fn factor_diag(@builtin(local_invocation_index) lid: u32) {
  let k = prm.k;
  let nb = prm.nb;
  for (var e = lid; e < NB * NB; e += 256u) {
    let i = e / NB;
    let j = e % NB;
    var v = 0.0;
    if (i < nb && j <= i) {
      v = ab[aidx(k + i, k + j)];
    }
    sl[e] = v;
  }
  workgroupBarrier();
  var failed = 0u;
  for (var j = 0u; j < nb; j++) {
    let d = sl[j * NB + j];
    // A pivot that is not above tiny (or NaN) is recorded; the factorisation goes on (NaN spreads), and
    // the host reads the status once at the end.
    if (failed == 0u && !(d > prm.tiny)) {
      failed = k + j + 1u;
    }
    let ljj = sqrt(d);
    workgroupBarrier();
    if (lid > j && lid < nb) {
      sl[lid * NB + j] = sl[lid * NB + j] / ljj;
    }
    if (lid == 0u) {
      sl[j * NB + j] = ljj;
    }
    workgroupBarrier();
    for (var e = lid; e < NB * NB; e += 256u) {
      let i = e / NB;
      let c = e % NB;
      if (i < nb && c > j && c <= i) {
        sl[e] = sl[e] - sl[i * NB + j] * sl[c * NB + j];
      }
    }
    workgroupBarrier();
  }
  if (lid == 0u && failed != 0u && status[0] == 0u) {
    status[0] = failed;
  }
  for (var e = lid; e < NB * NB; e += 256u) {
    let i = e / NB;
    let j = e % NB;
    if (i < nb) {
      pan[(k + i) * NB + j] = sl[e];
      if (j <= i) {
        ab[aidx(k + i, k + j)] = sl[e];
      }
    }
  }
}

@compute @workgroup_size(64)
fn trsm(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nw: vec3<u32>,
) {
  let k = prm.k;
  let nb = prm.nb;
  for (var e = lid; e < NB * NB; e += 64u) {
    var v = 0.0;
    if (e / NB < nb) {
      v = pan[(k + e / NB) * NB + e % NB];
    }
    sl[e] = v;
  }
  workgroupBarrier();
  let i = max(prm.r0, k + nb) + linear(wg, nw, lid, 64u);
  if (i >= prm.r1) {
    return;
  }
  var row: array<f32, NB>;
  for (var t = 0u; t < nb; t++) {
    var s = ab[aidx(i, k + t)];
    for (var q = 0u; q < t; q++) {
      s -= row[q] * sl[t * NB + q];
    }
    row[t] = s / sl[t * NB + t];
  }
  for (var t = 0u; t < nb; t++) {
    ab[aidx(i, k + t)] = row[t];
    pan[i * NB + t] = row[t];
  }
}

// Loads L_kk (lower triangle, zeros elsewhere) from the block holding rows k..k+nb.
fn load_diag(lid: u32) {
  for (var e = lid; e < NB * NB; e += 64u) {
    let i = e / NB;
    let j = e % NB;
    var v = 0.0;
    if (i < prm.nb && j <= i) {
      v = ab[aidx(prm.k + i, prm.k + j)];
    }
    sl[e] = v;
  }
}

@compute @workgroup_size(64)
fn fwd_diag(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nw: vec3<u32>,
) {
  load_diag(lid);
  workgroupBarrier();
  let c = linear(wg, nw, lid, 64u);
  if (c >= prm.m) {
    return;
  }
  let k = prm.k;
  let m = prm.m;
  var y: array<f32, NB>;
  for (var t = 0u; t < prm.nb; t++) {
    var s = pan[(k + t) * m + c];
    for (var q = 0u; q < t; q++) {
      s -= sl[t * NB + q] * y[q];
    }
    y[t] = s / sl[t * NB + t];
  }
  for (var t = 0u; t < prm.nb; t++) {
    pan[(k + t) * m + c] = y[t];
  }
}

@compute @workgroup_size(64)
fn bwd_diag(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nw: vec3<u32>,
) {
  load_diag(lid);
  workgroupBarrier();
  let c = linear(wg, nw, lid, 64u);
  if (c >= prm.m) {
    return;
  }
  let k = prm.k;
  let m = prm.m;
  let nb = prm.nb;
  var x: array<f32, NB>;
  for (var u = 0u; u < nb; u++) {
    let t = nb - 1u - u;
    var s = pan[(k + t) * m + c];
    for (var q = t + 1u; q < nb; q++) {
      s -= sl[q * NB + t] * x[q];
    }
    x[t] = s / sl[t * NB + t];
  }
  for (var t = 0u; t < nb; t++) {
    pan[(k + t) * m + c] = x[t];
  }
}

@compute @workgroup_size(64)
fn fwd_update(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nw: vec3<u32>,
) {
  let m = prm.m;
  let start = max(prm.r0, prm.k + prm.nb);
  let idx = linear(wg, nw, lid, 64u);
  if (idx >= (prm.r1 - start) * m) {
    return;
  }
  let i = start + idx / m;
  let c = idx % m;
  var s = 0.0;
  for (var t = 0u; t < prm.nb; t++) {
    s += ab[aidx(i, prm.k + t)] * pan[(prm.k + t) * m + c];
  }
  pan[i * m + c] -= s;
}

@compute @workgroup_size(64)
fn bwd_update(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nw: vec3<u32>,
) {
  let m = prm.m;
  let idx = linear(wg, nw, lid, 64u);
  if (idx >= prm.k * m) {
    return;
  }
  let i = idx / m;
  let c = idx % m;
  var s = 0.0;
  for (var t = 0u; t < prm.nb; t++) {
    s += ab[aidx(prm.k + t, i)] * pan[(prm.k + t) * m + c];
  }
  pan[i * m + c] -= s;
}

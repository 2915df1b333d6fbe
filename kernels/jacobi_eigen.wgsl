// Parallel cyclic Jacobi eigendecomposition of a symmetric matrix (src/gpu/jacobi_eigen.ts; float64
// twin src/reference/jacobi_eigen.ts). A is [m, m] row-major with m even (an odd n is padded with one
// zero row and column, which every rotation leaves exactly alone). One sweep is m - 1 rounds; a round
// pairs all m indices by the circle method (index m - 1 fixed, the others turning), so its m / 2
// rotations touch disjoint rows and columns and are applied together: A <- Jᵀ A J, W <- Jᵀ W, with W's
// rows the eigenvectors (W = Gᵀ, A_final = Gᵀ A_0 G).
//
// Entry points, each one dispatch per round (dispatch boundaries order the storage writes):
//   rotations  [ceil(m/2 / 64)]                    rot[i] = (c, s, t, a_pq) of pair i from the current A
//   rotate     [ceil(m/2 / 16), ceil(m/2 / 16)]    thread (i, j): the 2x2 block of A (rows of pair i,
//                                                  columns of pair j) when i <= j, and always W's block
//   off_norm   [1]                                 rot[0].xy = (Σ_{a≠b} A_ab², Σ_a A_aa²), Kahan-summed
//
// Bindings (group 0), ordered so that every entry point uses a prefix of them (layout "auto"):
//   0 uniform Params { m: u32, round: u32, one: f32 }   (`one` is exactly 1: see lib/kahan.wgsl)
//   1 storage rw   a:   array<f32>        [m * m]
//   2 storage rw   rot: array<vec4<f32>>  [m / 2]    (off_norm writes its result to rot[0])
//   3 storage rw   w:   array<f32>        [m * m]    (rotate only)

//#include "lib/kahan.wgsl"

struct Params { m: u32, round: u32, one: f32 }

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> rot: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> w: array<f32>;

// The pair (p, q), p < q, of slot i in round r: (r, m-1) for i = 0, else ((r+i) mod k, (r-i) mod k),
// k = m - 1. Over the m - 1 rounds every unordered pair occurs exactly once (k is odd).
fn pair(i: u32, r: u32, m: u32) -> vec2<u32> {
  let k = m - 1u;
  if (i == 0u) { return vec2<u32>(r, k); }
  let x = (r + i) % k;
  let y = (r + k - i) % k;
  return vec2<u32>(min(x, y), max(x, y));
}

// Rotation of pair i (Rutishauser's form): θ = (a_qq − a_pp) / (2 a_pq), t = sign(θ) / (|θ| + √(θ²+1)),
// c = 1/√(t²+1), s = t c; a_pq = 0 gives the identity. rot[i].w keeps a_pq for the diagonal update.
@compute @workgroup_size(64)
fn rotations(@builtin(global_invocation_id) gid: vec3<u32>) {
  let m = prm.m;
  let i = gid.x;
  if (i >= m / 2u) { return; }
  let pq = pair(i, prm.round, m);
  let p = pq.x;
  let q = pq.y;
  let apq = a[p * m + q];
  if (apq == 0.0) {
    rot[i] = vec4<f32>(1.0, 0.0, 0.0, 0.0);
    return;
  }
  let theta = (a[q * m + q] - a[p * m + p]) / (2.0 * apq);
  var t: f32;
  if (abs(theta) > 1e18) {
    t = 0.5 / theta; // θ² would overflow; t ≈ 1/(2θ)
  } else {
    let sg = select(-1.0, 1.0, theta >= 0.0);
    t = sg / (abs(theta) + sqrt(theta * theta + 1.0));
  }
  let c = 1.0 / sqrt(t * t + 1.0);
  rot[i] = vec4<f32>(c, t * c, t, apq);
}

// Block (i, j): W's rows p_i, q_i at columns p_j, q_j (every thread); and for i <= j A's block with
// rows (p_i, q_i), columns (p_j, q_j): B' = J_iᵀ B J_j, written to block (i, j)
// and, transposed, to block (j, i), so A stays exactly symmetric. The diagonal block (i = j) takes the
// closed form a_pp − t a_pq, a_qq + t a_pq, 0.
@compute @workgroup_size(16, 16)
fn rotate(@builtin(global_invocation_id) gid: vec3<u32>) {
  let m = prm.m;
  let h = m / 2u;
  let j = gid.x;
  let i = gid.y;
  if (i >= h || j >= h) { return; }
  let ri = rot[i];
  let pi = pair(i, prm.round, m);
  let pj = pair(j, prm.round, m);
  // W <- J_iᵀ W: rows p_i, q_i at the columns p_j, q_j.
  let w0 = w[pi.x * m + pj.x];
  let w1 = w[pi.y * m + pj.x];
  w[pi.x * m + pj.x] = ri.x * w0 - ri.y * w1;
  w[pi.y * m + pj.x] = ri.y * w0 + ri.x * w1;
  let w2 = w[pi.x * m + pj.y];
  let w3 = w[pi.y * m + pj.y];
  w[pi.x * m + pj.y] = ri.x * w2 - ri.y * w3;
  w[pi.y * m + pj.y] = ri.y * w2 + ri.x * w3;
  if (i > j) { return; }
  if (i == j) {
    let p = pi.x;
    let q = pi.y;
    let tapq = ri.z * ri.w;
    a[p * m + p] = a[p * m + p] - tapq;
    a[q * m + q] = a[q * m + q] + tapq;
    a[p * m + q] = 0.0;
    a[q * m + p] = 0.0;
    return;
  }
  let rj = rot[j];
  let b00 = a[pi.x * m + pj.x];
  let b01 = a[pi.x * m + pj.y];
  let b10 = a[pi.y * m + pj.x];
  let b11 = a[pi.y * m + pj.y];
  // Columns: X[:, p] = c B[:, p] − s B[:, q], X[:, q] = s B[:, p] + c B[:, q].
  let x00 = rj.x * b00 - rj.y * b01;
  let x01 = rj.y * b00 + rj.x * b01;
  let x10 = rj.x * b10 - rj.y * b11;
  let x11 = rj.y * b10 + rj.x * b11;
  // Rows: Y[p, :] = c X[p, :] − s X[q, :], Y[q, :] = s X[p, :] + c X[q, :].
  let y00 = ri.x * x00 - ri.y * x10;
  let y01 = ri.x * x01 - ri.y * x11;
  let y10 = ri.y * x00 + ri.x * x10;
  let y11 = ri.y * x01 + ri.x * x11;
  a[pi.x * m + pj.x] = y00;
  a[pi.x * m + pj.y] = y01;
  a[pi.y * m + pj.x] = y10;
  a[pi.y * m + pj.y] = y11;
  a[pj.x * m + pi.x] = y00;
  a[pj.y * m + pi.x] = y01;
  a[pj.x * m + pi.y] = y10;
  a[pj.y * m + pi.y] = y11;
}

var<workgroup> part: array<vec4<f32>, 256>;

// rot[0] = (Σ_{a≠b} A_ab², Σ_a A_aa², 0, 0): Kahan sums per invocation, then a tree of the parts.
@compute @workgroup_size(256)
fn off_norm(@builtin(local_invocation_index) lid: u32) {
  let m = prm.m;
  let one = prm.one;
  var off = vec2<f32>(0.0, 0.0);
  var dia = vec2<f32>(0.0, 0.0);
  for (var idx = lid; idx < m * m; idx = idx + 256u) {
    let v = a[idx];
    if (idx / m == idx % m) {
      dia = kahanAdd(dia, v * v, one);
    } else {
      off = kahanAdd(off, v * v, one);
    }
  }
  part[lid] = vec4<f32>(off.x - off.y, dia.x - dia.y, 0.0, 0.0);
  workgroupBarrier();
  for (var s = 128u; s > 0u; s = s / 2u) {
    if (lid < s) { part[lid] = part[lid] + part[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) {
    rot[0] = vec4<f32>(part[0].x, part[0].y, 0.0, 0.0);
  }
}

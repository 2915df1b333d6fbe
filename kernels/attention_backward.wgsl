// Causal multi-head self-attention backward (GPT-2), matching kernels/attention.wgsl. Per (b, h), with
// P = softmax(S), S = q k^T * scale (scale = 1 / sqrt(D), causal), O = P v and dO the output gradient:
//   dP_ij = dO_i . v_j                     dV_j = sum_{i >= j} P_ij dO_i
//   dS_ij = P_ij (dP_ij - D_i),  D_i = sum_{j <= i} P_ij dP_ij          (only j <= i)
//   dQ_i  = scale * sum_{j <= i} dS_ij k_j   dK_j = scale * sum_{i >= j} dS_ij q_i
// "(+)=": dqkv is added to when Params.accumulate != 0 (its old values are read), overwritten otherwise
// (old values never read, so they may be NaN).
//
// Layouts (row-major, f32):
//   qkv   [B, T, 3C]           per row: q (C values), k (C), v (C); head h uses columns h*D .. h*D+D-1
//                               of each part, D = C / nHead (the forward's input)
//   probs [B, nHead, T, T]     the forward's probabilities, row (b, h, i) over keys j (only j <= i read)
//   dout  [B, T, C]            gradient of the attention output, heads concatenated (head h in h*D..)
//   dqkv  [B, T, 3C]           gradient of qkv, same layout as qkv
//   ds    [>= B*nHead*T*T]     scratch: row (b, h, i) holds dP_ij after pass 1 of `attention_bwd_dq`,
//                               dS_ij after pass 2 (only j <= i written; the rest is never read)
//
// Bindings (group 0):
//   0 uniform Params { B, T, C, nHead: u32, scale: f32, accumulate: u32 }
//   1 storage read   qkv: array<vec4<f32>>   [B*T*3C floats; buffers are padded to 16 bytes]
//   2 storage read   probs: array<f32>       [B*nHead*T*T]
//   3 storage read   dout: array<vec4<f32>>  [B*T*C floats, padded]
//   4 storage rw     dqkv: array<f32>        [B*T*3C]
//   5 storage rw     ds: array<f32>          scratch, see above
// Overrides: D (head size, 1..DMAX = 128), WG (workgroup size). D % 4 == 0 (GPT-2: D = 64) takes the
//   vec4 path (q/k/v/dO slices are 16-byte aligned); other D read scalars out of the vec4 arrays.
// Dispatch (both entries, in this order, same bindings): ceil(B*nHead*T / WG) workgroups of WG, split
//   over x/y by `grid()`; row index n = gid.x + gid.y * nwg.x * WG; t = n % T, h = (n / T) % nHead,
//   b = n / (T * nHead). Neighbouring invocations share (b, h) and read the same rows (cache hits).
//
// `attention_bwd_dq`: invocation (b, h, i), the query row. Keeps dO_i in registers; pass 1 streams keys
//   j = 0..i in chunks of 4, dP_ij = dO_i . v_j, stores dP into ds and sums D_i; pass 2 reads dP back,
//   forms dS_ij, stores it into ds and accumulates dQ_i = scale * sum_j dS_ij k_j. Writes q's columns.
// `attention_bwd_dkv`: invocation (b, h, j), the key row. Streams queries i = j..T-1 in chunks of 4,
//   reading dS_ij (written by the previous dispatch) and P_ij, and accumulates dK_j and dV_j in
//   registers. Writes k's and v's columns. Each output element has exactly one writer: no atomics, and
//   the summation order is fixed, so results are bit-reproducible.

struct Params {
  B: u32,
  T: u32,
  C: u32,
  nHead: u32,
  scale: f32,
  accumulate: u32,
}

const DMAX: u32 = 128u;
const DMAX4: u32 = 32u;

override D: u32 = 64u;
override WG: u32 = 64u;
override D4: u32 = D / 4u;
override VEC4: bool = D % 4u == 0u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> probs: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> dqkv: array<f32>;
@group(0) @binding(5) var<storage, read_write> ds: array<f32>;

// Scalar element i of qkv / dout (the odd-D path).
fn ldq(i: u32) -> f32 {
  return qkv[i >> 2u][i & 3u];
}
fn ldo(i: u32) -> f32 {
  return dout[i >> 2u][i & 3u];
}

// dqkv[i] (+)= v.
fn put(i: u32, v: f32) {
  if (p.accumulate != 0u) {
    dqkv[i] = dqkv[i] + v;
  } else {
    dqkv[i] = v;
  }
}

fn put4(i: u32, v: vec4<f32>) {
  put(i, v.x);
  put(i + 1u, v.y);
  put(i + 2u, v.z);
  put(i + 3u, v.w);
}

// Row n = (b, h, t): x = t, y = offset (floats) of q[b, 0, h, 0] in qkv, z = offset (floats) of
// dout[b, 0, h*D], w = offset of probs/ds row (b, h, 0, 0).
fn rowIndex(n: u32) -> vec4<u32> {
  let t = n % p.T;
  let bh = n / p.T;
  let h = bh % p.nHead;
  let b = bh / p.nHead;
  return vec4<u32>(t, b * p.T * 3u * p.C + h * D, b * p.T * p.C + h * D, bh * p.T * p.T);
}

// ---------------------------------------------------------------------------------------------- dQ

fn dq4(n: u32) {
  let r = rowIndex(n);
  let t = r.x;
  let C3 = 3u * p.C / 4u;   // qkv row stride in vec4s
  let Cv = p.C / 4u;
  let seq = r.y / 4u;
  let oo = r.z / 4u + t * Cv;
  let po = r.w + t * p.T;   // probs / ds row (b, h, t)
  var go: array<vec4<f32>, DMAX4>;
  var acc: array<vec4<f32>, DMAX4>;
  for (var d = 0u; d < D4; d++) {
    go[d] = dout[oo + d];
    acc[d] = vec4<f32>(0.0);
  }
  let ts = vec4<u32>(t);
  // Pass 1: dP_tj = dO_t . v_j into ds, Di = sum_j P_tj dP_tj.
  var Di = 0.0;
  for (var s0 = 0u; s0 <= t; s0 += 4u) {
    let s = vec4<u32>(s0, s0 + 1u, s0 + 2u, s0 + 3u);
    let valid = s <= ts;
    let sc = min(s, ts);   // clamp the tail to a real key; masked below
    let v0 = seq + sc.x * C3 + 2u * Cv;
    let v1 = seq + sc.y * C3 + 2u * Cv;
    let v2 = seq + sc.z * C3 + 2u * Cv;
    let v3 = seq + sc.w * C3 + 2u * Cv;
    var z = vec4<f32>(0.0);
    for (var d = 0u; d < D4; d++) {
      let g = go[d];
      z += vec4<f32>(dot(g, qkv[v0 + d]), dot(g, qkv[v1 + d]), dot(g, qkv[v2 + d]), dot(g, qkv[v3 + d]));
    }
    let pr = vec4<f32>(probs[po + sc.x], probs[po + sc.y], probs[po + sc.z], probs[po + sc.w]);
    Di += dot(select(vec4<f32>(0.0), pr * z, valid), vec4<f32>(1.0));
    ds[po + s0] = z.x;
    if (valid.y) { ds[po + s0 + 1u] = z.y; }
    if (valid.z) { ds[po + s0 + 2u] = z.z; }
    if (valid.w) { ds[po + s0 + 3u] = z.w; }
  }
  // Pass 2: dS_tj = P_tj (dP_tj - Di) into ds, dQ_t += dS_tj k_j.
  for (var s0 = 0u; s0 <= t; s0 += 4u) {
    let s = vec4<u32>(s0, s0 + 1u, s0 + 2u, s0 + 3u);
    let valid = s <= ts;
    let sc = min(s, ts);
    let dp = vec4<f32>(ds[po + sc.x], ds[po + sc.y], ds[po + sc.z], ds[po + sc.w]);
    let pr = vec4<f32>(probs[po + sc.x], probs[po + sc.y], probs[po + sc.z], probs[po + sc.w]);
    let g = select(vec4<f32>(0.0), pr * (dp - Di), valid);
    ds[po + s0] = g.x;
    if (valid.y) { ds[po + s0 + 1u] = g.y; }
    if (valid.z) { ds[po + s0 + 2u] = g.z; }
    if (valid.w) { ds[po + s0 + 3u] = g.w; }
    let k0 = seq + sc.x * C3 + Cv;
    let k1 = seq + sc.y * C3 + Cv;
    let k2 = seq + sc.z * C3 + Cv;
    let k3 = seq + sc.w * C3 + Cv;
    for (var d = 0u; d < D4; d++) {
      acc[d] += g.x * qkv[k0 + d] + g.y * qkv[k1 + d] + g.z * qkv[k2 + d] + g.w * qkv[k3 + d];
    }
  }
  let qo = r.y + t * 3u * p.C;
  for (var d = 0u; d < D4; d++) {
    put4(qo + 4u * d, acc[d] * p.scale);
  }
}

fn dq1(n: u32) {
  let r = rowIndex(n);
  let t = r.x;
  let C = p.C;
  let C3 = 3u * C;
  let seq = r.y;
  let oo = r.z + t * C;
  let po = r.w + t * p.T;
  var go: array<f32, DMAX>;
  var acc: array<f32, DMAX>;
  for (var d = 0u; d < D; d++) {
    go[d] = ldo(oo + d);
    acc[d] = 0.0;
  }
  let ts = vec4<u32>(t);
  var Di = 0.0;
  for (var s0 = 0u; s0 <= t; s0 += 4u) {
    let s = vec4<u32>(s0, s0 + 1u, s0 + 2u, s0 + 3u);
    let valid = s <= ts;
    let sc = min(s, ts);
    let v0 = seq + sc.x * C3 + 2u * C;
    let v1 = seq + sc.y * C3 + 2u * C;
    let v2 = seq + sc.z * C3 + 2u * C;
    let v3 = seq + sc.w * C3 + 2u * C;
    var z = vec4<f32>(0.0);
    for (var d = 0u; d < D; d++) {
      z += go[d] * vec4<f32>(ldq(v0 + d), ldq(v1 + d), ldq(v2 + d), ldq(v3 + d));
    }
    let pr = vec4<f32>(probs[po + sc.x], probs[po + sc.y], probs[po + sc.z], probs[po + sc.w]);
    Di += dot(select(vec4<f32>(0.0), pr * z, valid), vec4<f32>(1.0));
    ds[po + s0] = z.x;
    if (valid.y) { ds[po + s0 + 1u] = z.y; }
    if (valid.z) { ds[po + s0 + 2u] = z.z; }
    if (valid.w) { ds[po + s0 + 3u] = z.w; }
  }
  for (var s0 = 0u; s0 <= t; s0 += 4u) {
    let s = vec4<u32>(s0, s0 + 1u, s0 + 2u, s0 + 3u);
    let valid = s <= ts;
    let sc = min(s, ts);
    let dp = vec4<f32>(ds[po + sc.x], ds[po + sc.y], ds[po + sc.z], ds[po + sc.w]);
    let pr = vec4<f32>(probs[po + sc.x], probs[po + sc.y], probs[po + sc.z], probs[po + sc.w]);
    let g = select(vec4<f32>(0.0), pr * (dp - Di), valid);
    ds[po + s0] = g.x;
    if (valid.y) { ds[po + s0 + 1u] = g.y; }
    if (valid.z) { ds[po + s0 + 2u] = g.z; }
    if (valid.w) { ds[po + s0 + 3u] = g.w; }
    let k0 = seq + sc.x * C3 + C;
    let k1 = seq + sc.y * C3 + C;
    let k2 = seq + sc.z * C3 + C;
    let k3 = seq + sc.w * C3 + C;
    for (var d = 0u; d < D; d++) {
      acc[d] += dot(g, vec4<f32>(ldq(k0 + d), ldq(k1 + d), ldq(k2 + d), ldq(k3 + d)));
    }
  }
  let qo = seq + t * C3;
  for (var d = 0u; d < D; d++) {
    put(qo + d, acc[d] * p.scale);
  }
}

// --------------------------------------------------------------------------------------------- dK dV

fn dkv4(n: u32) {
  let r = rowIndex(n);
  let t = r.x;   // key row j
  let T = p.T;
  let C3 = 3u * p.C / 4u;
  let Cv = p.C / 4u;
  let seq = r.y / 4u;
  let oseq = r.z / 4u;
  let pc = r.w + t;   // probs / ds column j of (b, h): element (i, j) at pc + i * T
  var dk: array<vec4<f32>, DMAX4>;
  var dv: array<vec4<f32>, DMAX4>;
  for (var d = 0u; d < D4; d++) {
    dk[d] = vec4<f32>(0.0);
    dv[d] = vec4<f32>(0.0);
  }
  let last = vec4<u32>(T - 1u);
  for (var s0 = t; s0 < T; s0 += 4u) {
    let s = vec4<u32>(s0, s0 + 1u, s0 + 2u, s0 + 3u);
    let valid = s <= last;
    let sc = min(s, last);   // clamp the tail to a real query; weights masked to 0
    let g = select(vec4<f32>(0.0),
      vec4<f32>(ds[pc + sc.x * T], ds[pc + sc.y * T], ds[pc + sc.z * T], ds[pc + sc.w * T]), valid);
    let pr = select(vec4<f32>(0.0),
      vec4<f32>(probs[pc + sc.x * T], probs[pc + sc.y * T], probs[pc + sc.z * T], probs[pc + sc.w * T]), valid);
    let q0 = seq + sc.x * C3;
    let q1 = seq + sc.y * C3;
    let q2 = seq + sc.z * C3;
    let q3 = seq + sc.w * C3;
    let o0 = oseq + sc.x * Cv;
    let o1 = oseq + sc.y * Cv;
    let o2 = oseq + sc.z * Cv;
    let o3 = oseq + sc.w * Cv;
    for (var d = 0u; d < D4; d++) {
      dk[d] += g.x * qkv[q0 + d] + g.y * qkv[q1 + d] + g.z * qkv[q2 + d] + g.w * qkv[q3 + d];
      dv[d] += pr.x * dout[o0 + d] + pr.y * dout[o1 + d] + pr.z * dout[o2 + d] + pr.w * dout[o3 + d];
    }
  }
  let ko = r.y + t * 3u * p.C + p.C;
  for (var d = 0u; d < D4; d++) {
    put4(ko + 4u * d, dk[d] * p.scale);
    put4(ko + p.C + 4u * d, dv[d]);
  }
}

fn dkv1(n: u32) {
  let r = rowIndex(n);
  let t = r.x;
  let T = p.T;
  let C = p.C;
  let C3 = 3u * C;
  let seq = r.y;
  let oseq = r.z;
  let pc = r.w + t;
  var dk: array<f32, DMAX>;
  var dv: array<f32, DMAX>;
  for (var d = 0u; d < D; d++) {
    dk[d] = 0.0;
    dv[d] = 0.0;
  }
  let last = vec4<u32>(T - 1u);
  for (var s0 = t; s0 < T; s0 += 4u) {
    let s = vec4<u32>(s0, s0 + 1u, s0 + 2u, s0 + 3u);
    let valid = s <= last;
    let sc = min(s, last);
    let g = select(vec4<f32>(0.0),
      vec4<f32>(ds[pc + sc.x * T], ds[pc + sc.y * T], ds[pc + sc.z * T], ds[pc + sc.w * T]), valid);
    let pr = select(vec4<f32>(0.0),
      vec4<f32>(probs[pc + sc.x * T], probs[pc + sc.y * T], probs[pc + sc.z * T], probs[pc + sc.w * T]), valid);
    let q0 = seq + sc.x * C3;
    let q1 = seq + sc.y * C3;
    let q2 = seq + sc.z * C3;
    let q3 = seq + sc.w * C3;
    let o0 = oseq + sc.x * C;
    let o1 = oseq + sc.y * C;
    let o2 = oseq + sc.z * C;
    let o3 = oseq + sc.w * C;
    for (var d = 0u; d < D; d++) {
      dk[d] += dot(g, vec4<f32>(ldq(q0 + d), ldq(q1 + d), ldq(q2 + d), ldq(q3 + d)));
      dv[d] += dot(pr, vec4<f32>(ldo(o0 + d), ldo(o1 + d), ldo(o2 + d), ldo(o3 + d)));
    }
  }
  let ko = seq + t * C3 + C;
  for (var d = 0u; d < D; d++) {
    put(ko + d, dk[d] * p.scale);
    put(ko + C + d, dv[d]);
  }
}

@compute @workgroup_size(WG)
fn attention_bwd_dq(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let n = gid.x + gid.y * nwg.x * WG;
  if (n >= p.B * p.nHead * p.T) { return; }
  if (VEC4) {
    dq4(n);
  } else {
    dq1(n);
  }
}

@compute @workgroup_size(WG)
fn attention_bwd_dkv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let n = gid.x + gid.y * nwg.x * WG;
  if (n >= p.B * p.nHead * p.T) { return; }
  if (VEC4) {
    dkv4(n);
  } else {
    dkv1(n);
  }
}

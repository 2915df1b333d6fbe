// Shared fragment (not a kernel): causal self-attention backward, matching lib/attention_fwd.wgsl.
// Pulled in with
//   //#include "lib/attention_bwd.wgsl"
// by attention_backward.wgsl (head size up to 128) and attention_backward_wide.wgsl (up to 256).
//
// Declares: struct Params, the bindings, entries `attention_bwd_dq` and `attention_bwd_dkv`.
// Needs from the including kernel: const DMAX: u32 (largest head size), const DMAX4: u32 = DMAX / 4.
//
// Per (b, query head h) reading kv head g = h / group, with P = softmax(S), S = q k^T * scale over the
// visible keys, O = P v and dO the output gradient:
//   dP_ij = dO_i . v_j                     dV_j = sum_h sum_i P_ij dO_i
//   dS_ij = P_ij (dP_ij - D_i),  D_i = sum_j P_ij dP_ij
//   dQ_i  = scale * sum_j dS_ij k_j        dK_j = scale * sum_h sum_i dS_ij q_i
// over the visible pairs (j <= i, i - j < window); dK and dV of a kv head sum over the `group` query
// heads sharing it. "(+)=": dqkv is added to when Params.accumulate != 0 (its old values are read),
// overwritten otherwise (old values never read, so they may be NaN). Every q, k and v element of dqkv
// is written; columns of a row that belong to no head are left alone.
//
// Layouts (row-major, f32; the QkvLayout of src/gpu/attention.ts, see lib/attention_fwd.wgsl):
//   qkv   [B*T rows of rowStride]  the forward's input
//   probs [B, nHead, T, T]         the forward's probabilities (only visible entries are read)
//   dout  [B*T rows of oStride]    gradient of the attention output, heads concatenated: head h of
//                                  row r at oBase + r*oStride + h*D (as the forward's out)
//   dqkv  [B*T rows of rowStride]  gradient of qkv, same layout as qkv
//   ds    [>= B*nHead*T*T]         scratch: row (b, h, i) holds dP_ij after pass 1 of `attention_bwd_dq`,
//                                  dS_ij after pass 2 (only visible j written; the rest is never read)
//
// Bindings (group 0):
//   0 uniform Params (below)
//   1 storage read   qkv: array<vec4<f32>>   [B*T*rowStride floats; buffers are padded to 16 bytes]
//   2 storage read   probs: array<f32>       [B*nHead*T*T]
//   3 storage read   dout: array<vec4<f32>>  [B*T*nHead*D floats, padded]
//   4 storage rw     dqkv: array<f32>        [B*T*rowStride]
//   5 storage rw     ds: array<f32>          scratch, see above
// Overrides: D (head size, 1..DMAX), WG (workgroup size), VEC4 (set by the launcher when D and every
//   layout offset and stride are multiples of 4: q/k/v/dO slices are 16-byte aligned).
// Dispatch (both entries, in this order, same bindings; grid split over x/y by `grid()`):
//   `attention_bwd_dq`  ceil(B*nHead*T / WG) workgroups; row n: t = n % T, h = (n / T) % nHead, b.
//   `attention_bwd_dkv` ceil(B*nKvHead*T / WG) workgroups; row n: j = n % T, g = (n / T) % nKvHead, b.
//   Neighbouring invocations share (b, head) and read the same rows (cache hits).
//
// `attention_bwd_dq`: invocation (b, h, i), the query row. Keeps dO_i in registers; pass 1 streams the
//   visible keys in chunks of 4, dP_ij = dO_i . v_j, stores dP into ds and sums D_i; pass 2 reads dP
//   back, forms dS_ij, stores it into ds and accumulates dQ_i. Writes q's columns of head h.
// `attention_bwd_dkv`: invocation (b, g, j), the key row of kv head g. For each query head h of the
//   group, streams the queries i = j..min(T-1, j+window-1) in chunks of 4, reading dS_ij (written by
//   the previous dispatch) and P_ij, and accumulates dK_j and dV_j in registers. Writes k's and v's
//   columns of kv head g. Each output element has exactly one writer: no atomics, and the summation
//   order is fixed, so results are bit-reproducible.

struct Params {
  B: u32,
  T: u32,
  nHead: u32,
  group: u32,
  rowStride: u32,
  qOffset: u32,
  kOffset: u32,
  vOffset: u32,
  qHeadStride: u32,
  kvHeadStride: u32,
  window: u32,
  scale: f32,
  oStride: u32,
  oBase: u32,
  accumulate: u32,
}

override D: u32 = 64u;
override WG: u32 = 64u;
override D4: u32 = D / 4u;
override VEC4: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> probs: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> dqkv: array<f32>;
@group(0) @binding(5) var<storage, read_write> ds: array<f32>;

// Scalar element i of qkv / dout (the unaligned path).
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

// Query row n = (b, h, t), in floats: q of row t, k and v of kv head g at position 0 of sequence b
// (position s adds s * rowStride), dO of row t, the probs / ds row; and the first visible key.
struct QRow {
  t: u32,
  lo: u32,
  q: u32,
  k: u32,
  v: u32,
  o: u32,
  pr: u32,
}

fn qrow(n: u32) -> QRow {
  let t = n % p.T;
  let bh = n / p.T;
  let h = bh % p.nHead;
  let b = bh / p.nHead;
  let g = h / p.group;
  let seq = b * p.T * p.rowStride;
  var r: QRow;
  r.t = t;
  r.lo = select(0u, t + 1u - p.window, t + 1u > p.window);
  r.q = seq + t * p.rowStride + p.qOffset + h * p.qHeadStride;
  r.k = seq + p.kOffset + g * p.kvHeadStride;
  r.v = seq + p.vOffset + g * p.kvHeadStride;
  r.o = p.oBase + (b * p.T + t) * p.oStride + h * D;
  r.pr = n * p.T;
  return r;
}

// ---------------------------------------------------------------------------------------------- dQ

fn dq4(n: u32) {
  let r = qrow(n);
  let t = r.t;
  let RS = p.rowStride / 4u;   // qkv row stride in vec4s
  let kb = r.k / 4u;
  let vb = r.v / 4u;
  let oo = r.o / 4u;
  let po = r.pr;
  var go: array<vec4<f32>, DMAX4>;
  var acc: array<vec4<f32>, DMAX4>;
  for (var d = 0u; d < D4; d++) {
    go[d] = dout[oo + d];
    acc[d] = vec4<f32>(0.0);
  }
  let ts = vec4<u32>(t);
  // Pass 1: dP_tj = dO_t . v_j into ds, Di = sum_j P_tj dP_tj.
  var Di = 0.0;
  for (var s0 = r.lo; s0 <= t; s0 += 4u) {
    let s = vec4<u32>(s0, s0 + 1u, s0 + 2u, s0 + 3u);
    let valid = s <= ts;
    let sc = min(s, ts);   // clamp the tail to a real key; masked below
    let v0 = vb + sc.x * RS;
    let v1 = vb + sc.y * RS;
    let v2 = vb + sc.z * RS;
    let v3 = vb + sc.w * RS;
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
  for (var s0 = r.lo; s0 <= t; s0 += 4u) {
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
    let k0 = kb + sc.x * RS;
    let k1 = kb + sc.y * RS;
    let k2 = kb + sc.z * RS;
    let k3 = kb + sc.w * RS;
    for (var d = 0u; d < D4; d++) {
      acc[d] += g.x * qkv[k0 + d] + g.y * qkv[k1 + d] + g.z * qkv[k2 + d] + g.w * qkv[k3 + d];
    }
  }
  for (var d = 0u; d < D4; d++) {
    put4(r.q + 4u * d, acc[d] * p.scale);
  }
}

fn dq1(n: u32) {
  let r = qrow(n);
  let t = r.t;
  let RS = p.rowStride;
  let po = r.pr;
  var go: array<f32, DMAX>;
  var acc: array<f32, DMAX>;
  for (var d = 0u; d < D; d++) {
    go[d] = ldo(r.o + d);
    acc[d] = 0.0;
  }
  let ts = vec4<u32>(t);
  var Di = 0.0;
  for (var s0 = r.lo; s0 <= t; s0 += 4u) {
    let s = vec4<u32>(s0, s0 + 1u, s0 + 2u, s0 + 3u);
    let valid = s <= ts;
    let sc = min(s, ts);
    let v0 = r.v + sc.x * RS;
    let v1 = r.v + sc.y * RS;
    let v2 = r.v + sc.z * RS;
    let v3 = r.v + sc.w * RS;
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
  for (var s0 = r.lo; s0 <= t; s0 += 4u) {
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
    let k0 = r.k + sc.x * RS;
    let k1 = r.k + sc.y * RS;
    let k2 = r.k + sc.z * RS;
    let k3 = r.k + sc.w * RS;
    for (var d = 0u; d < D; d++) {
      acc[d] += dot(g, vec4<f32>(ldq(k0 + d), ldq(k1 + d), ldq(k2 + d), ldq(k3 + d)));
    }
  }
  for (var d = 0u; d < D; d++) {
    put(r.q + d, acc[d] * p.scale);
  }
}

// --------------------------------------------------------------------------------------------- dK dV

// Key row n = (b, g, j), in floats: k and v of row j, q of head 0 at position 0 of sequence b
// (head h adds h * qHeadStride, position i adds i * rowStride), dO of row 0 of sequence b, the probs /
// ds column j of (b, head 0); the last query that sees key j; the first query head of the group.
struct KRow {
  j: u32,
  hi: u32,
  h0: u32,
  k: u32,
  v: u32,
  q: u32,
  o: u32,
  pc: u32,
}

fn krow(n: u32) -> KRow {
  let j = n % p.T;
  let bg = n / p.T;
  let nKv = p.nHead / p.group;
  let g = bg % nKv;
  let b = bg / nKv;
  let seq = b * p.T * p.rowStride;
  var r: KRow;
  r.j = j;
  r.hi = min(p.T - 1u, j + p.window - 1u);
  r.h0 = g * p.group;
  r.k = seq + j * p.rowStride + p.kOffset + g * p.kvHeadStride;
  r.v = seq + j * p.rowStride + p.vOffset + g * p.kvHeadStride;
  r.q = seq + p.qOffset;
  r.o = p.oBase + b * p.T * p.oStride;
  r.pc = b * p.nHead * p.T * p.T + j;
  return r;
}

fn dkv4(n: u32) {
  let r = krow(n);
  let T = p.T;
  let RS = p.rowStride / 4u;
  let OS = p.oStride / 4u;   // dout row stride in vec4s
  var dk: array<vec4<f32>, DMAX4>;
  var dv: array<vec4<f32>, DMAX4>;
  for (var d = 0u; d < D4; d++) {
    dk[d] = vec4<f32>(0.0);
    dv[d] = vec4<f32>(0.0);
  }
  let last = vec4<u32>(r.hi);
  for (var h = r.h0; h < r.h0 + p.group; h++) {
    let qb = (r.q + h * p.qHeadStride) / 4u;
    let ob = r.o / 4u + h * D4;
    let pc = r.pc + h * T * T;   // element (i, j) of (b, h) at pc + i * T
    for (var s0 = r.j; s0 <= r.hi; s0 += 4u) {
      let s = vec4<u32>(s0, s0 + 1u, s0 + 2u, s0 + 3u);
      let valid = s <= last;
      let sc = min(s, last);   // clamp the tail to a real query; weights masked to 0
      let g = select(vec4<f32>(0.0),
        vec4<f32>(ds[pc + sc.x * T], ds[pc + sc.y * T], ds[pc + sc.z * T], ds[pc + sc.w * T]), valid);
      let pr = select(vec4<f32>(0.0),
        vec4<f32>(probs[pc + sc.x * T], probs[pc + sc.y * T], probs[pc + sc.z * T], probs[pc + sc.w * T]), valid);
      let q0 = qb + sc.x * RS;
      let q1 = qb + sc.y * RS;
      let q2 = qb + sc.z * RS;
      let q3 = qb + sc.w * RS;
      let o0 = ob + sc.x * OS;
      let o1 = ob + sc.y * OS;
      let o2 = ob + sc.z * OS;
      let o3 = ob + sc.w * OS;
      for (var d = 0u; d < D4; d++) {
        dk[d] += g.x * qkv[q0 + d] + g.y * qkv[q1 + d] + g.z * qkv[q2 + d] + g.w * qkv[q3 + d];
        dv[d] += pr.x * dout[o0 + d] + pr.y * dout[o1 + d] + pr.z * dout[o2 + d] + pr.w * dout[o3 + d];
      }
    }
  }
  for (var d = 0u; d < D4; d++) {
    put4(r.k + 4u * d, dk[d] * p.scale);
    put4(r.v + 4u * d, dv[d]);
  }
}

fn dkv1(n: u32) {
  let r = krow(n);
  let T = p.T;
  let RS = p.rowStride;
  let OS = p.oStride;
  var dk: array<f32, DMAX>;
  var dv: array<f32, DMAX>;
  for (var d = 0u; d < D; d++) {
    dk[d] = 0.0;
    dv[d] = 0.0;
  }
  let last = vec4<u32>(r.hi);
  for (var h = r.h0; h < r.h0 + p.group; h++) {
    let qb = r.q + h * p.qHeadStride;
    let ob = r.o + h * D;
    let pc = r.pc + h * T * T;
    for (var s0 = r.j; s0 <= r.hi; s0 += 4u) {
      let s = vec4<u32>(s0, s0 + 1u, s0 + 2u, s0 + 3u);
      let valid = s <= last;
      let sc = min(s, last);
      let g = select(vec4<f32>(0.0),
        vec4<f32>(ds[pc + sc.x * T], ds[pc + sc.y * T], ds[pc + sc.z * T], ds[pc + sc.w * T]), valid);
      let pr = select(vec4<f32>(0.0),
        vec4<f32>(probs[pc + sc.x * T], probs[pc + sc.y * T], probs[pc + sc.z * T], probs[pc + sc.w * T]), valid);
      let q0 = qb + sc.x * RS;
      let q1 = qb + sc.y * RS;
      let q2 = qb + sc.z * RS;
      let q3 = qb + sc.w * RS;
      let o0 = ob + sc.x * OS;
      let o1 = ob + sc.y * OS;
      let o2 = ob + sc.z * OS;
      let o3 = ob + sc.w * OS;
      for (var d = 0u; d < D; d++) {
        dk[d] += dot(g, vec4<f32>(ldq(q0 + d), ldq(q1 + d), ldq(q2 + d), ldq(q3 + d)));
        dv[d] += dot(pr, vec4<f32>(ldo(o0 + d), ldo(o1 + d), ldo(o2 + d), ldo(o3 + d)));
      }
    }
  }
  for (var d = 0u; d < D; d++) {
    put(r.k + d, dk[d] * p.scale);
    put(r.v + d, dv[d]);
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
  if (n >= p.B * (p.nHead / p.group) * p.T) { return; }
  if (VEC4) {
    dkv4(n);
  } else {
    dkv1(n);
  }
}

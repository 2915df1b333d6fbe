// Shared fragment (not a kernel): causal self-attention forward, one invocation per query row, online
// softmax. Pulled in with
//   //#include "lib/attention_fwd.wgsl"
// by attention.wgsl (head size up to 128) and attention_wide.wgsl (up to 256); the kernel loader
// (src/gpu/pipeline.ts) pastes it once. The two kernels differ only in the length of the private
// arrays: private memory is reserved for the declared length, so the common head sizes (GPT-2's 64,
// Llama's 128) keep half the per-invocation footprint of the 256 case.
//
// Declares: struct Params, the bindings, entries `attention_fwd` and `attention_probs`.
// Needs from the including kernel: const DMAX: u32 (largest head size), const DMAX4: u32 = DMAX / 4.
//
// Layouts (row-major, f32), described by a QkvLayout (src/gpu/attention.ts), all in elements:
//   qkv   [B*T rows of rowStride]  element d of query head h in row r at
//                                  r*rowStride + qOffset + h*qHeadStride + d; of kv head g at
//                                  r*rowStride + kOffset + g*kvHeadStride + d (v: vOffset)
//   out   [B*T rows of oStride]    heads concatenated: head h of row r in floats
//                                  oBase + r*oStride + h*D .. +D-1 (oStride = nHead*D, oBase = 0 but
//                                  for a block of heads of a wider output: see the launcher)
//   probs [B, nHead, T, T]         softmax(q k^T * scale) over the visible keys; others written as 0
// Query head h reads kv head g = h / group (group = nHead / nKvHead: grouped-query attention).
// Key s is visible to query t iff s <= t and t - s < window (the launcher passes window = T when there
// is none, and window <= T always).
//
// Bindings (group 0):
//   0 uniform Params (below)
//   1 storage read   qkv: array<vec4<f32>>  [B*T*rowStride floats; buffers are padded to 16 bytes]
//   2 storage rw     out: array<f32>    [B*T*nHead*D]
//   3 storage rw     probs: array<f32>  [B*nHead*T*T]   (entry `attention_probs` only)
// Overrides: D (head size, 1..DMAX), WG (workgroup size), VEC4 (the launcher sets it when D, rowStride,
//   the offsets and the head strides are all multiples of 4, so every q/k/v slice is 16-byte aligned:
//   whole-vec4 loads and math; otherwise scalars are read out of the vec4s).
// Dispatch: ceil(B*nHead*T / WG) workgroups of WG, split over x/y by `grid()`;
//   row index i = gid.x + gid.y * nwg.x * WG; t = i % T, h = (i / T) % nHead, b = i / (T * nHead).
//
// `attention_fwd`: for row (b, h, t) streams the visible keys s = lo..t in chunks of 4 with a running
// max m and running sum l (online softmax, rescaling the accumulator once per chunk), so no T-sized
// array and no barrier is needed; writes out = acc / l.
// `attention_probs`: does the same and then writes the probability row, recomputing each score
// q.k_s and normalising with the final (m, l). Neighbouring invocations share (b, h), so they read the
// same key/value rows (broadcast on GPUs, cache hits on CPUs).

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
}

// Below any real score; exp(NEG - finite) underflows to 0 without producing inf or NaN.
const NEG: f32 = -3.0e38;

override D: u32 = 64u;
override WG: u32 = 64u;
override D4: u32 = D / 4u;
override VEC4: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> probs: array<f32>;

// Scalar element i of qkv (the unaligned path).
fn ld(i: u32) -> f32 {
  return qkv[i >> 2u][i & 3u];
}

// Where query row i = (b, h, t) reads and writes, in floats: q of row t, k and v of the kv head at
// position s = 0 of sequence b (position s adds s * rowStride), the output row; and the first visible key.
struct Row {
  t: u32,
  lo: u32,
  q: u32,
  k: u32,
  v: u32,
  o: u32,
}

fn rowOf(i: u32) -> Row {
  let t = i % p.T;
  let bh = i / p.T;
  let h = bh % p.nHead;
  let b = bh / p.nHead;
  let g = h / p.group;
  let seq = b * p.T * p.rowStride;
  var r: Row;
  r.t = t;
  r.lo = select(0u, t + 1u - p.window, t + 1u > p.window);
  r.q = seq + t * p.rowStride + p.qOffset + h * p.qHeadStride;
  r.k = seq + p.kOffset + g * p.kvHeadStride;
  r.v = seq + p.vOffset + g * p.kvHeadStride;
  r.o = p.oBase + (b * p.T + t) * p.oStride + h * D;
  return r;
}

// Online-softmax attention for row i, vec4 path; writes out and returns (m, l).
fn attend4(i: u32) -> vec2<f32> {
  let r = rowOf(i);
  let t = r.t;
  let RS = p.rowStride / 4u;   // row stride in vec4s
  let qo = r.q / 4u;
  let kb = r.k / 4u;
  let vb = r.v / 4u;
  var q: array<vec4<f32>, DMAX4>;
  var acc: array<vec4<f32>, DMAX4>;
  for (var d = 0u; d < D4; d++) {
    q[d] = qkv[qo + d] * p.scale;
    acc[d] = vec4<f32>(0.0);
  }
  var m = NEG;
  var l = 0.0;
  let ts = vec4<u32>(t);
  for (var s0 = r.lo; s0 <= t; s0 += 4u) {
    let s = vec4<u32>(s0, s0 + 1u, s0 + 2u, s0 + 3u);
    let valid = s <= ts;
    let sc = min(s, ts) * RS;   // clamp the tail to a real key; its score is masked below
    let k0 = kb + sc.x;
    let k1 = kb + sc.y;
    let k2 = kb + sc.z;
    let k3 = kb + sc.w;
    var z = vec4<f32>(0.0);
    for (var d = 0u; d < D4; d++) {
      let qd = q[d];
      z += vec4<f32>(dot(qd, qkv[k0 + d]), dot(qd, qkv[k1 + d]), dot(qd, qkv[k2 + d]), dot(qd, qkv[k3 + d]));
    }
    z = select(vec4<f32>(NEG), z, valid);
    let mn = max(m, max(max(z.x, z.y), max(z.z, z.w)));
    let corr = exp(m - mn);
    let e = select(vec4<f32>(0.0), exp(z - mn), valid);
    l = l * corr + (e.x + e.y + e.z + e.w);
    m = mn;
    let v0 = vb + sc.x;
    let v1 = vb + sc.y;
    let v2 = vb + sc.z;
    let v3 = vb + sc.w;
    for (var d = 0u; d < D4; d++) {
      acc[d] = acc[d] * corr + e.x * qkv[v0 + d] + e.y * qkv[v1 + d] + e.z * qkv[v2 + d] + e.w * qkv[v3 + d];
    }
  }
  let inv = 1.0 / l;
  let oo = r.o;
  for (var d = 0u; d < D4; d++) {
    let a = acc[d] * inv;
    out[oo + 4u * d] = a.x;
    out[oo + 4u * d + 1u] = a.y;
    out[oo + 4u * d + 2u] = a.z;
    out[oo + 4u * d + 3u] = a.w;
  }
  return vec2<f32>(m, l);
}

// Online-softmax attention for row i, scalar path (any D, any layout); writes out and returns (m, l).
fn attend1(i: u32) -> vec2<f32> {
  let r = rowOf(i);
  let t = r.t;
  let RS = p.rowStride;
  var q: array<f32, DMAX>;
  var acc: array<f32, DMAX>;
  for (var d = 0u; d < D; d++) {
    q[d] = ld(r.q + d) * p.scale;
    acc[d] = 0.0;
  }
  var m = NEG;
  var l = 0.0;
  let ts = vec4<u32>(t);
  for (var s0 = r.lo; s0 <= t; s0 += 4u) {
    let s = vec4<u32>(s0, s0 + 1u, s0 + 2u, s0 + 3u);
    let valid = s <= ts;
    let sc = min(s, ts) * RS;
    let k0 = r.k + sc.x;
    let k1 = r.k + sc.y;
    let k2 = r.k + sc.z;
    let k3 = r.k + sc.w;
    var z = vec4<f32>(0.0);
    for (var d = 0u; d < D; d++) {
      z += q[d] * vec4<f32>(ld(k0 + d), ld(k1 + d), ld(k2 + d), ld(k3 + d));
    }
    z = select(vec4<f32>(NEG), z, valid);
    let mn = max(m, max(max(z.x, z.y), max(z.z, z.w)));
    let corr = exp(m - mn);
    let e = select(vec4<f32>(0.0), exp(z - mn), valid);
    l = l * corr + (e.x + e.y + e.z + e.w);
    m = mn;
    let v0 = r.v + sc.x;
    let v1 = r.v + sc.y;
    let v2 = r.v + sc.z;
    let v3 = r.v + sc.w;
    for (var d = 0u; d < D; d++) {
      let vv = vec4<f32>(ld(v0 + d), ld(v1 + d), ld(v2 + d), ld(v3 + d));
      acc[d] = acc[d] * corr + dot(e, vv);
    }
  }
  let inv = 1.0 / l;
  for (var d = 0u; d < D; d++) {
    out[r.o + d] = acc[d] * inv;
  }
  return vec2<f32>(m, l);
}

fn attend(i: u32) -> vec2<f32> {
  if (VEC4) {
    return attend4(i);
  }
  return attend1(i);
}

@compute @workgroup_size(WG)
fn attention_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.B * p.nHead * p.T) { return; }
  _ = attend(i);
}

@compute @workgroup_size(WG)
fn attention_probs(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.B * p.nHead * p.T) { return; }
  let ml = attend(i);
  let r = rowOf(i);
  let t = r.t;
  let T = p.T;
  let inv = 1.0 / ml.y;
  let po = i * T;   // probs row (b, h, t)
  for (var s = 0u; s < r.lo; s++) {
    probs[po + s] = 0.0;
  }
  if (VEC4) {
    let RS = p.rowStride / 4u;
    let qo = r.q / 4u;
    let kb = r.k / 4u;
    var q: array<vec4<f32>, DMAX4>;
    for (var d = 0u; d < D4; d++) {
      q[d] = qkv[qo + d] * p.scale;
    }
    for (var s = r.lo; s <= t; s++) {
      let ko = kb + s * RS;
      var z = 0.0;
      for (var d = 0u; d < D4; d++) {
        z += dot(q[d], qkv[ko + d]);
      }
      probs[po + s] = exp(z - ml.x) * inv;
    }
  } else {
    var q: array<f32, DMAX>;
    for (var d = 0u; d < D; d++) {
      q[d] = ld(r.q + d) * p.scale;
    }
    for (var s = r.lo; s <= t; s++) {
      let ko = r.k + s * p.rowStride;
      var z = 0.0;
      for (var d = 0u; d < D; d++) {
        z += q[d] * ld(ko + d);
      }
      probs[po + s] = exp(z - ml.x) * inv;
    }
  }
  for (var s = t + 1u; s < T; s++) {
    probs[po + s] = 0.0;
  }
}

// Causal multi-head self-attention forward (GPT-2), one invocation per query row, online softmax.
//
// Layouts (row-major, f32):
//   qkv   [B, T, 3C]           per row: q (C values), k (C), v (C); head h uses columns h*D .. h*D+D-1
//                               of each part, D = C / nHead (exactly GPT-2's c_attn output)
//   out   [B, T, C]            heads concatenated: head h in columns h*D .. h*D+D-1 (c_proj's input)
//   probs [B, nHead, T, T]     softmax(q k^T * scale) with the causal mask; entries s > t written as 0
//
// Bindings (group 0):
//   0 uniform Params { B, T, C, nHead: u32, scale: f32 }   scale = 1 / sqrt(D)
//   1 storage read   qkv: array<vec4<f32>>  [B*T*3C floats; buffers are padded to 16 bytes]
//   2 storage rw     out: array<f32>    [B*T*C]
//   3 storage rw     probs: array<f32>  [B*nHead*T*T]   (entry `attention_probs` only)
// Overrides: D (head size, 1..DMAX = 128), WG (workgroup size). D % 4 == 0 (GPT-2: D = 64) takes the
//   vec4 path (whole-vec4 loads, q/k/v slices are 16-byte aligned); other D read scalars out of vec4s.
// Dispatch: ceil(B*nHead*T / WG) workgroups of WG, split over x/y by `grid()`;
//   row index i = gid.x + gid.y * nwg.x * WG; t = i % T, h = (i / T) % nHead, b = i / (T * nHead).
//
// `attention_fwd`: for row (b, h, t) streams keys s = 0..t in chunks of 4 with a running max m and
// running sum l (online softmax, rescaling the accumulator once per chunk), so no T-sized array and no
// barrier is needed; writes out = acc / l.
// `attention_probs`: does the same and then writes the probability row, recomputing each score
// q.k_s and normalising with the final (m, l). Neighbouring invocations share (b, h), so they read the
// same key/value rows (broadcast on GPUs, cache hits on CPUs).

struct Params {
  B: u32,
  T: u32,
  C: u32,
  nHead: u32,
  scale: f32,
}

const DMAX: u32 = 128u;
const DMAX4: u32 = 32u;
// Below any real score; exp(NEG - finite) underflows to 0 without producing inf or NaN.
const NEG: f32 = -3.0e38;

override D: u32 = 64u;
override WG: u32 = 64u;
// When D % 4 == 0 every q/k/v slice starts on a 16-byte boundary: use whole-vec4 loads and math.
override D4: u32 = D / 4u;
override VEC4: bool = D % 4u == 0u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> probs: array<f32>;

// Scalar element i of qkv (the odd-D path).
fn ld(i: u32) -> f32 {
  return qkv[i >> 2u][i & 3u];
}

// Indices of query row i = (b, h, t): x = t, y = offset of q[b, 0, h, 0] in qkv (floats), z = b, w = h.
fn rowIndex(i: u32) -> vec4<u32> {
  let t = i % p.T;
  let bh = i / p.T;
  let h = bh % p.nHead;
  let b = bh / p.nHead;
  return vec4<u32>(t, b * p.T * 3u * p.C + h * D, b, h);
}

// Online-softmax attention for row i, vec4 path (D % 4 == 0); writes out and returns (m, l).
fn attend4(i: u32) -> vec2<f32> {
  let r = rowIndex(i);
  let t = r.x;
  let C3 = 3u * p.C / 4u;   // row stride in vec4s
  let seq = r.y / 4u;
  let Cv = p.C / 4u;
  let qo = seq + t * C3;
  var q: array<vec4<f32>, DMAX4>;
  var acc: array<vec4<f32>, DMAX4>;
  for (var d = 0u; d < D4; d++) {
    q[d] = qkv[qo + d] * p.scale;
    acc[d] = vec4<f32>(0.0);
  }
  var m = NEG;
  var l = 0.0;
  let ts = vec4<u32>(t);
  for (var s0 = 0u; s0 <= t; s0 += 4u) {
    let s = vec4<u32>(s0, s0 + 1u, s0 + 2u, s0 + 3u);
    let valid = s <= ts;
    let sc = min(s, ts);   // clamp the tail to a real key; its score is masked below
    let k0 = seq + sc.x * C3 + Cv;
    let k1 = seq + sc.y * C3 + Cv;
    let k2 = seq + sc.z * C3 + Cv;
    let k3 = seq + sc.w * C3 + Cv;
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
    for (var d = 0u; d < D4; d++) {
      acc[d] = acc[d] * corr + e.x * qkv[k0 + Cv + d] + e.y * qkv[k1 + Cv + d] + e.z * qkv[k2 + Cv + d] +
        e.w * qkv[k3 + Cv + d];
    }
  }
  let inv = 1.0 / l;
  let oo = (r.z * p.T + t) * p.C + r.w * D;
  for (var d = 0u; d < D4; d++) {
    let a = acc[d] * inv;
    out[oo + 4u * d] = a.x;
    out[oo + 4u * d + 1u] = a.y;
    out[oo + 4u * d + 2u] = a.z;
    out[oo + 4u * d + 3u] = a.w;
  }
  return vec2<f32>(m, l);
}

// Online-softmax attention for row i, scalar path (any D); writes out and returns (m, l).
fn attend1(i: u32) -> vec2<f32> {
  let r = rowIndex(i);
  let t = r.x;
  let C = p.C;
  let C3 = 3u * C;
  let seq = r.y;
  let qo = seq + t * C3;
  var q: array<f32, DMAX>;
  var acc: array<f32, DMAX>;
  for (var d = 0u; d < D; d++) {
    q[d] = ld(qo + d) * p.scale;
    acc[d] = 0.0;
  }
  var m = NEG;
  var l = 0.0;
  let ts = vec4<u32>(t);
  for (var s0 = 0u; s0 <= t; s0 += 4u) {
    let s = vec4<u32>(s0, s0 + 1u, s0 + 2u, s0 + 3u);
    let valid = s <= ts;
    let sc = min(s, ts);
    let k0 = seq + sc.x * C3 + C;
    let k1 = seq + sc.y * C3 + C;
    let k2 = seq + sc.z * C3 + C;
    let k3 = seq + sc.w * C3 + C;
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
    for (var d = 0u; d < D; d++) {
      let vv = vec4<f32>(ld(k0 + C + d), ld(k1 + C + d), ld(k2 + C + d), ld(k3 + C + d));
      acc[d] = acc[d] * corr + dot(e, vv);
    }
  }
  let inv = 1.0 / l;
  let oo = (r.z * p.T + t) * C + r.w * D;
  for (var d = 0u; d < D; d++) {
    out[oo + d] = acc[d] * inv;
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
  let r = rowIndex(i);
  let t = r.x;
  let T = p.T;
  let inv = 1.0 / ml.y;
  let po = i * T;   // probs row (b, h, t)
  if (VEC4) {
    let C3 = 3u * p.C / 4u;
    let seq = r.y / 4u;
    let qo = seq + t * C3;
    var q: array<vec4<f32>, DMAX4>;
    for (var d = 0u; d < D4; d++) {
      q[d] = qkv[qo + d] * p.scale;
    }
    for (var s = 0u; s <= t; s++) {
      let ko = seq + s * C3 + p.C / 4u;
      var z = 0.0;
      for (var d = 0u; d < D4; d++) {
        z += dot(q[d], qkv[ko + d]);
      }
      probs[po + s] = exp(z - ml.x) * inv;
    }
  } else {
    let C3 = 3u * p.C;
    let qo = r.y + t * C3;
    var q: array<f32, DMAX>;
    for (var d = 0u; d < D; d++) {
      q[d] = ld(qo + d) * p.scale;
    }
    for (var s = 0u; s <= t; s++) {
      let ko = r.y + s * C3 + p.C;
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

// Causal attention of T new query rows over a KV cache (src/gpu/kv_cache.ts): the decoding step of
// generation (T = 1) and the prompt pass that fills the cache. New row t of sequence b sits at absolute
// position P = start + t and sees the cached keys s with s <= P and P - s < window (window = Tmax + T
// when there is none). Query head h reads kv head g = h / group. Scores q.k * scale, softmax in f32
// with a running max (online softmax, as lib/attention_fwd.wgsl), out = sum_s p_s v_s.
//
// Layouts (row-major f32): qkv [B*T rows of rowStride], query head h of row r at
//   r*rowStride + qOffset + h*qHeadStride; kc, vc [B, KV, Tmax, D] (kv_append.wgsl wrote rows up to
//   start + T - 1); out [B*T, nHead*D], head h in columns h*D.. .
// Bindings (group 0): 0 uniform Params; 1 storage read qkv; 2 storage read kc; 3 storage read vc;
//   4 storage rw out.
// Overrides: D (head size, 1..256). Dispatch: ceil(B*nHead*T / 64) workgroups of 64 (x/y by `grid()`);
//   row i = (b*nHead + h)*T + t.

struct Params {
  B: u32,
  T: u32,
  nHead: u32,
  group: u32,
  Tmax: u32,
  start: u32,
  rowStride: u32,
  qOffset: u32,
  qHeadStride: u32,
  window: u32,
  scale: f32,
}

const DMAX: u32 = 256u;
// Below any real score; exp(NEG - finite) underflows to 0 without inf or NaN.
const NEG: f32 = -3.0e38;

override D: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> kc: array<f32>;
@group(0) @binding(3) var<storage, read> vc: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn attention_cached(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.B * p.nHead * p.T) { return; }
  let t = i % p.T;
  let h = (i / p.T) % p.nHead;
  let b = i / (p.T * p.nHead);
  let g = h / p.group;
  let KV = p.nHead / p.group;
  let P = p.start + t;
  let lo = select(0u, P + 1u - p.window, P + 1u > p.window);
  let qo = (b * p.T + t) * p.rowStride + p.qOffset + h * p.qHeadStride;
  let base = (b * KV + g) * p.Tmax * D;
  var q: array<f32, DMAX>;
  var acc: array<f32, DMAX>;
  for (var d = 0u; d < D; d++) {
    q[d] = qkv[qo + d] * p.scale;
    acc[d] = 0.0;
  }
  var m = NEG;
  var l = 0.0;
  for (var s = lo; s <= P; s++) {
    let ko = base + s * D;
    var z = 0.0;
    for (var d = 0u; d < D; d++) {
      z += q[d] * kc[ko + d];
    }
    let mn = max(m, z);
    let corr = exp(m - mn);
    let e = exp(z - mn);
    l = l * corr + e;
    m = mn;
    for (var d = 0u; d < D; d++) {
      acc[d] = acc[d] * corr + e * vc[ko + d];
    }
  }
  let inv = 1.0 / l;
  let oo = (b * p.T + t) * p.nHead * D + h * D;
  for (var d = 0u; d < D; d++) {
    out[oo + d] = acc[d] * inv;
  }
}

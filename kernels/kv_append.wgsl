// Appends the keys and values of T new rows to a KV cache (src/gpu/kv_cache.ts): for sequence b, new
// row t, kv head g and element d,
//   kc[((b*KV + g)*Tmax + start + t)*D + d] = qkv[(b*T + t)*rowStride + kOffset + g*kvHeadStride + d]
// and vc likewise from vOffset. The cache keeps K and V per kv head ([B, KV, Tmax, D] each), after q/k
// norms and rotary, so a decoding step reads each head's keys as one contiguous block.
//
// Bindings (group 0): 0 uniform Params; 1 storage read qkv: array<f32> [B*T*rowStride];
//   2 storage rw kc: array<f32> [B*KV*Tmax*D]; 3 storage rw vc: array<f32> [B*KV*Tmax*D].
// Dispatch: ceil(B*T*KV*D / 64) workgroups of 64, split over x/y by `grid()`.

struct Params {
  B: u32,
  T: u32,
  KV: u32,
  D: u32,
  Tmax: u32,
  start: u32,
  rowStride: u32,
  kOffset: u32,
  vOffset: u32,
  kvHeadStride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> kc: array<f32>;
@group(0) @binding(3) var<storage, read_write> vc: array<f32>;

@compute @workgroup_size(64)
fn kv_append(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.B * p.T * p.KV * p.D) { return; }
  let d = i % p.D;
  let g = (i / p.D) % p.KV;
  let t = (i / (p.D * p.KV)) % p.T;
  let b = i / (p.D * p.KV * p.T);
  let src = (b * p.T + t) * p.rowStride + g * p.kvHeadStride + d;
  let dst = ((b * p.KV + g) * p.Tmax + p.start + t) * p.D + d;
  kc[dst] = qkv[src + p.kOffset];
  vc[dst] = qkv[src + p.vOffset];
}

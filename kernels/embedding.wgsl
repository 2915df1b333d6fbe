// Token + position embedding gather (GPT-2's first layer):
//   out[t, c] = wte[ids[t], c] + wpe[pos(t), c]
// with pos(t) = positionOffset + t (entry `embedding`) or positions[t] (entry `embedding_pos`), and
// the token gather alone (entry `embedding_tokens`, for models without learned positions: Llama,
// GPT-NeoX, GPT-J, whose positions enter through rotary embeddings):
//   out[t, c] = wte[ids[t], c]
//
// Layouts (row-major):
//   ids       [T]      u32 token ids, validated on the host; clamped here to V - 1 so a bad id can
//                      never read out of bounds (it yields the last row instead)
//   positions [T]      u32 positions (entry `embedding_pos` only), clamped to P - 1 likewise
//   wte       [V, C]   token embeddings, f32 or packed bf16/f16 (W16, lib/unpack16.wgsl); bound as rows v0..v1-1 only (a window of a table larger
//                      than one storage binding): row v0 starts at element wteBase of the binding, and
//                      a dispatch writes only the tokens whose id falls in [v0, v1). The launcher
//                      covers 0..V-1 with consecutive chunks, so every output element is written once.
//   wpe       [P, C]   f32 position embeddings
//   out       [T, C]   f32
//
// Bindings (group 0):
//   0 uniform Params { T, C, V, P, positionOffset, v0, v1, wteBase: u32 }
//   1 storage read   ids: array<u32>
//   2 storage read   wte: array<u32>   (f32 bits or packed 16-bit pairs)
//   3 storage read   wpe: array<f32>
//   4 storage rw     out: array<f32>
//   5 storage read   positions: array<u32>   (entry `embedding_pos` only)
//   entry `embedding_tokens` binds only 0-2 and gives 3 another meaning (WGSL forbids binding aliases
//   only within one entry point's interface): 3 storage rw outTokens: array<f32>; P and positionOffset
//   are unused there.
// Dispatch: ceil(T*C / 256) workgroups of 256 (one invocation per output element), split over x/y
//   by `grid()`; i = gid.x + gid.y * nwg.x * 256, t = i / C, c = i % C.

struct Params {
  T: u32,
  C: u32,
  V: u32,
  P: u32,
  positionOffset: u32,
  v0: u32,
  v1: u32,
  wteBase: u32,
}

//#include "lib/unpack16.wgsl"

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> wte: array<W16Scalar>;
@group(0) @binding(3) var<storage, read> wpe: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read> positions: array<u32>;
@group(0) @binding(3) var<storage, read_write> outTokens: array<f32>;

fn wteAt(i: u32) -> f32 { return w16Elem(wte[w16Word(i)], i); }

@compute @workgroup_size(256)
fn embedding(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.T * p.C) { return; }
  let t = i / p.C;
  let c = i % p.C;
  let id = min(ids[t], p.V - 1u);
  if (id < p.v0 || id >= p.v1) { return; }
  let pos = min(p.positionOffset + t, p.P - 1u);
  out[i] = wteAt((id - p.v0) * p.C + p.wteBase + c) + wpe[pos * p.C + c];
}

@compute @workgroup_size(256)
fn embedding_pos(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.T * p.C) { return; }
  let t = i / p.C;
  let c = i % p.C;
  let id = min(ids[t], p.V - 1u);
  if (id < p.v0 || id >= p.v1) { return; }
  let pos = min(positions[t], p.P - 1u);
  out[i] = wteAt((id - p.v0) * p.C + p.wteBase + c) + wpe[pos * p.C + c];
}

@compute @workgroup_size(256)
fn embedding_tokens(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.T * p.C) { return; }
  let t = i / p.C;
  let c = i % p.C;
  let id = min(ids[t], p.V - 1u);
  if (id < p.v0 || id >= p.v1) { return; }
  outTokens[i] = wteAt((id - p.v0) * p.C + p.wteBase + c);
}

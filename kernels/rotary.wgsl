// Rotary position embedding, in place on the q and k slots of a fused qkv buffer (see src/gpu/rotary.ts).
// For row r, q head h < nHead or k head g < nKvHead, and pair i < half (= rotary dim / 2):
//   "half" style:        (a, b) = (x[i], x[i + half])     (HF rotate_half: Llama, NeoX)
//   "interleaved" style: (a, b) = (x[2i], x[2i + 1])      (GPT-J rotate_every_two)
//   (a, b) <- (a c - b s, b c + a s),  c = cos[pos, i], s = sin[pos, i] (s negated when inverse = 1),
// pos = positions[r]. One thread per pair: the two elements it reads are the two it writes, so the
// in-place update has no races. Dims >= 2 * half and the v slots are never touched.
// A position outside the table (pos >= nPos) writes NaN into its pairs so the fault cannot pass silently.
//
// Bindings (group 0):
//   0 uniform Params                       see struct
//   1 storage rw     x: array<f32>         qkv buffer, element (r, slot, d) at r*rowStride + slot base + d
//   2 storage read   cosT: array<f32>      [nPos, half]
//   3 storage read   sinT: array<f32>      [nPos, half]
//   4 storage read   positions: array<u32> [rows]
// Dispatch: ceil(rows * (nHead + nKvHead) * half / 256) workgroups of 256, split over x/y by `grid()`.

struct Params {
  rows: u32,
  nHead: u32,
  nKvHead: u32,
  half: u32,
  rowStride: u32,
  qOffset: u32,
  kOffset: u32,
  qHeadStride: u32,
  kvHeadStride: u32,
  interleaved: u32,
  inverse: u32,
  nPos: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> cosT: array<f32>;
@group(0) @binding(3) var<storage, read> sinT: array<f32>;
@group(0) @binding(4) var<storage, read> positions: array<u32>;

//#include "lib/nan.wgsl"

@compute @workgroup_size(256)
fn rotary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 256u;
  let slots = p.nHead + p.nKvHead;
  if (idx >= p.rows * slots * p.half) {
    return;
  }
  let i = idx % p.half;
  let rest = idx / p.half;
  let slot = rest % slots;
  let r = rest / slots;
  var base = r * p.rowStride;
  if (slot < p.nHead) {
    base += p.qOffset + slot * p.qHeadStride;
  } else {
    base += p.kOffset + (slot - p.nHead) * p.kvHeadStride;
  }
  var ia = base + i;
  var ib = base + i + p.half;
  if (p.interleaved != 0u) {
    ia = base + 2u * i;
    ib = ia + 1u;
  }
  let pos = positions[r];
  if (pos >= p.nPos) {
    let nan = quietNan();
    x[ia] = nan;
    x[ib] = nan;
    return;
  }
  let c = cosT[pos * p.half + i];
  var s = sinT[pos * p.half + i];
  if (p.inverse != 0u) {
    s = -s;
  }
  let a = x[ia];
  let b = x[ib];
  x[ia] = a * c - b * s;
  x[ib] = b * c + a * s;
}

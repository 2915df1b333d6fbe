// Shared fragment (not a kernel): reading a weight stored as f32 or as packed 16-bit floats, computing in
// f32. Pulled in with
//   //#include "lib/unpack16.wgsl"
// Declares: override W16 (0: f32, 1: bf16, 2: f16; the launcher sets it from the tensor's dtype) and the
//   index / decode functions below. The weight binding is declared by the including kernel as
//   array<W16Scalar> (scalar reads: w16Word + w16Elem) or array<W16Vec> (w16Group + w16ElemG, and vec4
//   reads of 4 aligned elements: w16Quad + w16Vec4); here W16Scalar is u32 and W16Vec vec4<u32>. An f32 weight is the same bits read through bitcast, so the
//   f32 path loads exactly what an array<f32> declaration would.
// Packing (src/gpu/tensor.ts DType): the whole tensor flat, element 2j in the low half of word j, 2j+1 in
//   the high half, the last word of an odd-length tensor padded. BF16 is the upper 16 bits of an f32
//   (decoded exactly by a shift); F16 goes through unpack2x16float (core WGSL: no shader-f16 needed).
// Twin: lib/unpack16_f16.wgsl has the same functions for F16 weights bound as array<f16> / array<vec4<f16>>
//   (W16 = 3, on devices with shader-f16); src/gpu/pipeline.ts swaps it in for this file. Keep the two
//   interfaces equal.

alias W16Scalar = u32;
alias W16Vec = vec4<u32>;

override W16: u32 = 0u;

// Both elements of a packed word, low half first.
fn unpack16(w: u32) -> vec2<f32> {
  if (W16 == 2u) { return unpack2x16float(w); }
  return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u));
}

// array<u32> layout: the word holding element i, and element i from that word.
fn w16Word(i: u32) -> u32 {
  if (W16 == 0u) { return i; }
  return i >> 1u;
}
fn w16Elem(w: W16Scalar, i: u32) -> f32 {
  if (W16 == 0u) { return bitcast<f32>(w); }
  return unpack16(w)[i & 1u];
}

// array<vec4<u32>> layout: the group (16 bytes) holding element i, and element i from that group.
fn w16Group(i: u32) -> u32 {
  if (W16 == 0u) { return i >> 2u; }
  return i >> 3u;
}
fn w16ElemG(g: W16Vec, i: u32) -> f32 {
  if (W16 == 0u) { return bitcast<f32>(g[i & 3u]); }
  return unpack16(g[(i >> 1u) & 3u])[i & 1u];
}

// Elements 4q..4q+3 (q = element index / 4): their group, and the four values from it.
fn w16Quad(q: u32) -> u32 {
  if (W16 == 0u) { return q; }
  return q >> 1u;
}
fn w16Vec4(g: W16Vec, q: u32) -> vec4<f32> {
  if (W16 == 0u) { return bitcast<vec4<f32>>(g); }
  if ((q & 1u) == 0u) { return vec4<f32>(unpack16(g.x), unpack16(g.y)); }
  return vec4<f32>(unpack16(g.z), unpack16(g.w));
}

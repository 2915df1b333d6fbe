// Shared fragment (not a kernel): the shader-f16 twin of lib/unpack16.wgsl, for F16 weights only.
// src/gpu/pipeline.ts pastes it in place of lib/unpack16.wgsl and puts `enable f16;` first when a
// launcher passes W16 = 3 (F16 weight, device created with the shader-f16 feature): the weight binding
// is then array<f16> (W16Scalar) or array<vec4<f16>> (W16Vec), the same bytes as the packed layout
// (element i at byte 2i), and each value is converted to f32 as it is loaded: the arithmetic stays f32,
// so results equal the packed path's (f16 -> f32 is exact).
// Same interface as lib/unpack16.wgsl (keep them equal); a W16Vec group here holds 4 elements, not 8.

override W16: u32 = 3u;

alias W16Scalar = f16;
alias W16Vec = vec4<f16>;

// array<f16> layout: element i is entry i.
fn w16Word(i: u32) -> u32 {
  return i;
}
fn w16Elem(w: W16Scalar, i: u32) -> f32 {
  return f32(w);
}

// array<vec4<f16>> layout: the group (8 bytes) holding element i, and element i from that group.
fn w16Group(i: u32) -> u32 {
  return i >> 2u;
}
fn w16ElemG(g: W16Vec, i: u32) -> f32 {
  return f32(g[i & 3u]);
}

// Elements 4q..4q+3 (q = element index / 4): their group, and the four values from it.
fn w16Quad(q: u32) -> u32 {
  return q;
}
fn w16Vec4(g: W16Vec, q: u32) -> vec4<f32> {
  return vec4<f32>(g);
}

// The aligned cases of kernels/matmul_pack.wgsl (same tiles, same PackParams), reading op(X) four
// elements at a time: on llvmpipe every storage load runs lane by lane, so one vec4 load in place of four
// scalar ones is most of a pack's cost (the pack was the largest single kernel of a training step).
// - `rows` (X not transposed): each invocation packs 4 consecutive columns of one tile row with one vec4
//   load. Needs base, ld and cols multiples of 4.
// - `cols` (X transposed, stored [cols, rows]): each invocation packs a 4x4 block, reading four vec4 down
//   X's rows (4 columns of op(X)) and storing them as 4 rows. Needs base, ld and rows multiples of 4.
// 16-bit operands decode through lib/unpack16.wgsl's vec4 reads (w16Quad, w16Vec4).
//
// Bindings (group 0): p (uniform PackParams), x (array<W16Vec>), packed (out: array<vec4<f32>>).
// Dispatch: [ceil(tiles * tr * tc / 4 / 64), 1, 1] for rows, [ceil(tiles * tr * tc / 16 / 64), 1, 1] for
// cols (over 65535 the launcher splits the tiles).

//#include "lib/unpack16.wgsl"

//#include "lib/matmul_pack_params.wgsl"

@group(0) @binding(0) var<uniform> p: PackParams;
@group(0) @binding(1) var<storage, read> x: array<W16Vec>;
@group(0) @binding(2) var<storage, read_write> packed: array<vec4<f32>>;

// op(X) elements 4q..4q+3 of X's storage (q an element index / 4).
fn quad(q: u32) -> vec4<f32> {
  return w16Vec4(x[w16Quad(q)], q);
}

// Tile t's (row tile, column tile).
fn tile_of(t: u32) -> vec2<u32> {
  if (p.col_order == 1u) { return vec2<u32>(t % p.major, t / p.major); }
  return vec2<u32>(t / p.major, t % p.major);
}

@compute @workgroup_size(64)
fn rows(@builtin(global_invocation_id) gid: vec3<u32>) {
  let qs = p.tc / 4u; // vec4s per tile row
  let per = p.tr * qs;
  let i = gid.x;
  if (i >= p.tiles * per) { return; }
  let t = p.t0 + i / per;
  let w = i % per;
  let r = w / qs;
  let q = w % qs;
  let tt = tile_of(t);
  let row = tt.x * p.tr + r;
  let col0 = tt.y * p.tc + 4u * q;
  var v = vec4<f32>(0.0);
  // cols is a multiple of 4: the four columns are all inside or all past the edge.
  if (row < p.rows && col0 < p.cols) { v = quad((p.base + row * p.ld + col0) / 4u); }
  packed[(t - p.t0) * 4096u + r * qs + q] = v;
}

@compute @workgroup_size(64)
fn cols(@builtin(global_invocation_id) gid: vec3<u32>) {
  let qs = p.tc / 4u;
  let per = (p.tr / 4u) * qs; // 4x4 blocks per tile
  let i = gid.x;
  if (i >= p.tiles * per) { return; }
  let t = p.t0 + i / per;
  let w = i % per;
  let r4 = w / qs;
  let q = w % qs;
  let tt = tile_of(t);
  let row0 = tt.x * p.tr + 4u * r4;
  let col0 = tt.y * p.tc + 4u * q;
  // g_e: op(X) rows row0..row0+3 of column col0 + e (rows is a multiple of 4: all inside or all past).
  var g0 = vec4<f32>(0.0);
  var g1 = vec4<f32>(0.0);
  var g2 = vec4<f32>(0.0);
  var g3 = vec4<f32>(0.0);
  if (row0 < p.rows) {
    let at = p.base + col0 * p.ld + row0;
    if (col0 < p.cols) { g0 = quad(at / 4u); }
    if (col0 + 1u < p.cols) { g1 = quad((at + p.ld) / 4u); }
    if (col0 + 2u < p.cols) { g2 = quad((at + 2u * p.ld) / 4u); }
    if (col0 + 3u < p.cols) { g3 = quad((at + 3u * p.ld) / 4u); }
  }
  let o = (t - p.t0) * 4096u + 4u * r4 * qs + q;
  packed[o] = vec4<f32>(g0.x, g1.x, g2.x, g3.x);
  packed[o + qs] = vec4<f32>(g0.y, g1.y, g2.y, g3.y);
  packed[o + 2u * qs] = vec4<f32>(g0.z, g1.z, g2.z, g3.z);
  packed[o + 3u * qs] = vec4<f32>(g0.w, g1.w, g2.w, g3.w);
}

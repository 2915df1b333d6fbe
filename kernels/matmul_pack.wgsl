// Packs op(X), one operand of a product, into 64 KiB tiles for kernels/matmul_ubo.wgsl: tile t holds
// rows [tr*i, +tr) and columns [tc*j, +tc) of op(X), row-major, zero past the edges, at vec4
// 4096*(t - t0) of `packed` (tiles t0 .. t0 + tiles - 1 in this dispatch), where (i, j) =
// (t / major, t % major), or (t % major, t / major) with col_order (B: the K tiles of one column tile
// consecutive, so that a run of column tiles is one contiguous chunk).
//
// Why: on llvmpipe a storage load whose index is not a compile-time constant runs lane by lane with a
// bounds check per scalar, while a uniform-buffer load is one vector gather (about 13x cheaper per vec4
// measured). The product kernel binds one A tile and one B tile as 64 KiB uniform windows; this kernel
// reads each operand element once to lay them out (transposes and 16-bit decoding happen here).
//
// Bindings (group 0): p (uniform PackParams), x (the operand: f32 bits or packed 16-bit by W16), packed
//   (out: array<vec4<f32>>). Dispatch: [ceil(tiles * tr * tc / 4 / 64), 1, 1] (x only; over 65535 the
//   launcher splits the tiles).

//#include "lib/unpack16.wgsl"

//#include "lib/matmul_pack_params.wgsl"

@group(0) @binding(0) var<uniform> p: PackParams;
@group(0) @binding(1) var<storage, read> x: array<W16Scalar>;
@group(0) @binding(2) var<storage, read_write> packed: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let qs = p.tc / 4u; // vec4s per tile row
  let per = p.tr * qs;
  let i = gid.x;
  if (i >= p.tiles * per) { return; }
  let t = p.t0 + i / per;
  let w = i % per;
  let r = w / qs;
  let q = w % qs;
  var ti = t / p.major;
  var tj = t % p.major;
  if (p.col_order == 1u) {
    ti = t % p.major;
    tj = t / p.major;
  }
  let row = ti * p.tr + r;
  let col0 = tj * p.tc + 4u * q;
  var v = vec4<f32>(0.0);
  if (row < p.rows) {
    for (var e = 0u; e < 4u; e++) {
      let col = col0 + e;
      if (col < p.cols) {
        var at = p.base + row * p.ld + col;
        if (p.trans == 1u) { at = p.base + col * p.ld + row; }
        v[e] = w16Elem(x[w16Word(at)], at);
      }
    }
  }
  packed[(t - p.t0) * 4096u + r * qs + q] = v;
}

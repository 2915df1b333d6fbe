// Finds the first non-finite element (NaN, +Inf or -Inf) of an f32 tensor: one dispatch, one u32 out.
//
// Entry and bindings (group 0; binding 0 is the uniform Params):
//   first_nonfinite  1 storage read  x: array<u32> [n] (the f32 tensor's bits)
//                    2 storage rw    out: array<atomic<u32>> [1], set to 0xFFFFFFFF by the host first
//                    out[0] = min(out[0], smallest i with x[i] not finite); stays 0xFFFFFFFF if all are.
//                    Dispatch: ceil(n / (WG * PER)) workgroups of WG over x/y (`grid()`),
//                    each invocation scans PER consecutive elements of its block.
//
// The test is on the bits (exponent all ones), not `x != x` or comparisons with infinity: WGSL lets an
// implementation assume floats are finite and fold such comparisons away.

struct Params {
  n: u32,
}

const WG: u32 = 256u;
// Elements per invocation: a [B, V] log-prob tensor of GPT-2 (V = 50257) needs 13 workgroups per row.
const PER: u32 = 16u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<atomic<u32>>;

@compute @workgroup_size(256)
fn first_nonfinite(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  let w = wg.x + wg.y * nwg.x;
  // Block w covers [w * WG * PER, (w + 1) * WG * PER); invocation lid scans a strided slice of it so
  // that neighbouring invocations read neighbouring words.
  let base = w * WG * PER + lid.x;
  for (var k = 0u; k < PER; k++) {
    let i = base + k * WG;
    if (i >= p.n) {
      break;
    }
    if ((x[i] & 0x7f800000u) == 0x7f800000u) {
      atomicMin(&out[0], i);
      break;
    }
  }
}

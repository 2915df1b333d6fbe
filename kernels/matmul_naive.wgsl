// Baseline matmul: the textbook 16x16 shared-memory tiled kernel, out = A @ B with A [M,K], B [K,N],
// out [M,N], all row-major f32, no transposes, bias or batch. It exists only as the reference point
// for the benchmark ratio of the register-blocked kernel (`kernels/matmul.wgsl`); engram never uses
// it for model work.
//
// Bindings (group 0):
//   0 uniform Params { M, N, K: u32 }
//   1 storage read   a:   array<f32>  [M,K]
//   2 storage read   b:   array<f32>  [K,N]
//   3 storage rw     out: array<f32>  [M,N]
// Dispatch: [ceil(N/16), ceil(M/16), 1] workgroups of 16x16; one output element per invocation.

struct Params { M: u32, N: u32, K: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> ta: array<array<f32, 16>, 16>;
var<workgroup> tb: array<array<f32, 16>, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = gid.y;
  let col = gid.x;
  var acc = 0.0;
  let tiles = (p.K + 15u) / 16u;
  for (var t = 0u; t < tiles; t++) {
    // Out-of-range invocations still load (zeros) and hit every barrier: barriers must stay uniform.
    let ka = t * 16u + lid.x;
    let kb = t * 16u + lid.y;
    var va = 0.0;
    var vb = 0.0;
    if (row < p.M && ka < p.K) { va = a[row * p.K + ka]; }
    if (col < p.N && kb < p.K) { vb = b[kb * p.N + col]; }
    ta[lid.y][lid.x] = va;
    tb[lid.y][lid.x] = vb;
    workgroupBarrier();
    for (var k = 0u; k < 16u; k++) { acc += ta[lid.y][k] * tb[k][lid.x]; }
    workgroupBarrier();
  }
  if (row < p.M && col < p.N) { out[row * p.N + col] = acc; }
}

// Shared fragment (not a kernel): the record of kernels/matmul_pack.wgsl and matmul_pack4.wgsl (one layout,
// filled by src/gpu/matmul_ubo.ts packTiles for either). Pulled in with
//   //#include "lib/matmul_pack_params.wgsl"

struct PackParams {
  rows: u32, // rows of op(X)
  cols: u32, // columns of op(X)
  ld: u32, // stored row length of X
  base: u32, // element of X where this batch starts
  tr: u32, // tile rows
  tc: u32, // tile columns (a multiple of 4)
  major: u32, // tiles along the minor tile axis (columns, or rows with col_order)
  t0: u32, // first tile of this dispatch
  tiles: u32, // tiles in this dispatch
  trans: u32, // 1: X is stored [cols, rows] (matmul_pack4.wgsl: its entry point says so instead)
  col_order: u32, // 1: tiles are numbered down the columns
}

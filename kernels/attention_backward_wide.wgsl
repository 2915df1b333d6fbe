// Causal self-attention backward for head sizes 129..256 (GPT-J-6B: D = 256). Same code as
// attention_backward.wgsl (see lib/attention_bwd.wgsl) with 256-long private arrays.

const DMAX: u32 = 256u;
const DMAX4: u32 = 64u;

//#include "lib/attention_bwd.wgsl"

// Causal self-attention forward for head sizes 129..256 (GPT-J-6B: D = 256). Same code as
// attention.wgsl (see lib/attention_fwd.wgsl) with 256-long private arrays.

const DMAX: u32 = 256u;
const DMAX4: u32 = 64u;

//#include "lib/attention_fwd.wgsl"

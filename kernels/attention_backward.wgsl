// Causal self-attention backward for head sizes up to 128, matching attention.wgsl: any QkvLayout,
// grouped-query attention, sliding windows (through the probabilities). The code, its formulas,
// layouts, bindings and dispatch are documented in lib/attention_bwd.wgsl; attention_backward_wide.wgsl
// is the same code with 256-long private arrays (GPT-J's D = 256), kept separate so that the common
// head sizes do not reserve twice the private memory per invocation.

const DMAX: u32 = 128u;
const DMAX4: u32 = 32u;

//#include "lib/attention_bwd.wgsl"

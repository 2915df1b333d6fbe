// Causal self-attention forward for head sizes up to 128 (GPT-2, Llama, Pythia, Mistral, Qwen2): any
// QkvLayout, grouped-query attention, optional sliding window. The code, its layouts, bindings and
// dispatch are documented in lib/attention_fwd.wgsl; attention_wide.wgsl is the same code with
// 256-long private arrays (GPT-J's D = 256), kept separate so that the common head sizes do not reserve
// twice the private memory per invocation (on llvmpipe the GPT-2 timing is the same within noise).

const DMAX: u32 = 128u;
const DMAX4: u32 = 32u;

//#include "lib/attention_fwd.wgsl"

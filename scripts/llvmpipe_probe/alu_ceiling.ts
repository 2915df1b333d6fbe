// Scratch probe (issue 15 notes, docs/notes/issue-15-kwindows.md): the FMA throughput llvmpipe reaches with
// R independent accumulators per invocation, as a loop (LOOP=1) or written out (straight-line).
// `R=12 LOOP=1 DENO_WEBGPU_BACKEND=gl deno run -A scripts/llvmpipe_probe/alu_ceiling.ts`
const R = Number(Deno.env.get("R") ?? 12), STEPS = Number(Deno.env.get("STEPS") ?? 512), NC = 4096, DISP = 50;
const adapter = await navigator.gpu.requestAdapter();
const device = await adapter!.requestDevice();
let s = `@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let x = f32(gid.x) * 1e-6 + 0.999; let y = f32(gid.x) * 1e-7;\n`;
for (let r = 0; r < R; r++) s += `  var c${r} = f32(${r}) * y;\n`;
if (Deno.env.get("LOOP")) {
  s += `  for (var k = 0u; k < ${STEPS}u; k++) {\n`;
  for (let r = 0; r < R; r++) s += `  c${r} = fma(c${r}, x, y);\n`;
  s += "  }\n";
} else for (let k = 0; k < STEPS; k++) for (let r = 0; r < R; r++) s += `  c${r} = fma(c${r}, x, y);\n`;
s += `  out[gid.x] = ${Array.from({ length: R }, (_, r) => `c${r}`).join(" + ")};\n}`;
const module = device.createShaderModule({ code: s });
const pipeline = device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" } });
const o = device.createBuffer({ size: NC * 4, usage: GPUBufferUsage.STORAGE });
const bg = device.createBindGroup({
  layout: pipeline.getBindGroupLayout(0),
  entries: [{ binding: 0, resource: { buffer: o } }],
});
async function run(n: number) {
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bg);
  for (let i = 0; i < n; i++) pass.dispatchWorkgroups(NC / 64);
  pass.end();
  device.queue.submit([enc.finish()]);
  await device.queue.onSubmittedWorkDone();
}
await run(2);
let best = 1e9;
for (let i = 0; i < 3; i++) {
  const t = performance.now();
  await run(DISP);
  best = Math.min(best, performance.now() - t);
}
console.log(JSON.stringify({ R, STEPS, gflops: +(2 * R * STEPS * NC * DISP / best / 1e6).toFixed(2) }));

// Scratch probe (issue 15 notes, docs/notes/issue-15-kwindows.md). Loop kernel: lane tile R rows x C cols (C multiple of 4), A [MC][KC] vec4 over k, B [KC][NC] vec4 over n.
// `R=8 C=16 W=3 ACC=1 WG=32 DENO_WEBGPU_BACKEND=gl deno run -A scripts/llvmpipe_probe/lane_tile.ts` (W: K windows per
// dispatch, ACC: add into out as the K tiles after the first do).
const R = Number(Deno.env.get("R") ?? 4), C = Number(Deno.env.get("C") ?? 8);
const MC = Number(Deno.env.get("MC") ?? 128),
  NC = Number(Deno.env.get("NC") ?? 128),
  KC = Number(Deno.env.get("KC") ?? 128);
const WG = Number(Deno.env.get("WG") ?? 64), DISP = Number(Deno.env.get("DISP") ?? 300);
const W = Number(Deno.env.get("W") ?? 1);
const ACC = Deno.env.get("ACC") === "1";
const adapter = await navigator.gpu.requestAdapter();
const device = await adapter!.requestDevice({ requiredLimits: { maxUniformBufferBindingSize: 65536 } });
const cq = C / 4, lanesX = NC / C, lanes = lanesX * (MC / R);
let s = "";
for (let w = 0; w < W; w++) {
  s += `@group(0) @binding(${2 * w}) var<uniform> A${w}: array<vec4<f32>, 4096>;\n@group(0) @binding(${
    2 * w + 1
  }) var<uniform> B${w}: array<vec4<f32>, 4096>;\n`;
}
s += `@group(0) @binding(${2 * W}) var<storage, read_write> out: array<vec4<f32>>;
@compute @workgroup_size(${WG}) fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let lane = gid.x; if (lane >= ${lanes}u) { return; }
  let m0 = (lane / ${lanesX}u) * ${R}u; let nq = (lane % ${lanesX}u) * ${cq}u;
`;
for (let r = 0; r < R; r++) for (let j = 0; j < cq; j++) s += `  var c${r}_${j} = vec4<f32>();\n`;
for (let w = 0; w < W; w++) {
  s += `  for (var k4 = 0u; k4 < ${KC / 4}u; k4++) {\n`;
  for (let r = 0; r < R; r++) s += `    let a${r} = A${w}[(m0 + ${r}u) * ${KC / 4}u + k4];\n`;
  for (const comp of ["x", "y", "z", "w"]) {
    const kk = "xyzw".indexOf(comp);
    for (let j = 0; j < cq; j++) {
      s += `    let b${comp}${j} = B${w}[(4u * k4 + ${kk}u) * ${NC / 4}u + nq + ${j}u];\n`;
    }
    for (let r = 0; r < R; r++) {
      for (let j = 0; j < cq; j++) {
        s += `    c${r}_${j} = fma(vec4<f32>(a${r}.${comp}), b${comp}${j}, c${r}_${j});\n`;
      }
    }
  }
  s += `  }\n`;
}
for (let r = 0; r < R; r++) {
  for (let j = 0; j < cq; j++) {
    s += `  out[(m0 + ${r}u) * ${NC / 4}u + nq + ${j}u] = c${r}_${j}${
      ACC ? ` + out[(m0 + ${r}u) * ${NC / 4}u + nq + ${j}u]` : ""
    };\n`;
  }
}
s += "}\n";
const module = device.createShaderModule({ code: s });
const pipeline = device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" } });
const mk = (size: number, usage: number) => device.createBuffer({ size, usage });
const a = mk(65536, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST),
  b = mk(65536, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
const o = mk(MC * NC * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
const av = new Float32Array(16384).map(() => Math.random() - 0.5),
  bv = new Float32Array(16384).map(() => Math.random() - 0.5);
device.queue.writeBuffer(a, 0, av);
device.queue.writeBuffer(b, 0, bv);
const ents: GPUBindGroupEntry[] = [];
for (let w = 0; w < W; w++) {
  ents.push({ binding: 2 * w, resource: { buffer: a } }, { binding: 2 * w + 1, resource: { buffer: b } });
}
ents.push({ binding: 2 * W, resource: { buffer: o } });
const bg = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: ents });
async function run(n: number) {
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bg);
  for (let i = 0; i < n; i++) pass.dispatchWorkgroups(Math.ceil(lanes / WG));
  pass.end();
  device.queue.submit([enc.finish()]);
  await device.queue.onSubmittedWorkDone();
}
await run(2);
{
  const st = device.createBuffer({ size: o.size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(o, 0, st, 0, o.size);
  device.queue.submit([enc.finish()]);
  await st.mapAsync(GPUMapMode.READ);
  const got = new Float32Array(st.getMappedRange());
  let maxe = 0;
  for (let m = 0; m < MC; m += 7) {
    for (let n = 0; n < NC; n++) {
      let t = 0;
      for (let k = 0; k < KC; k++) t += av[m * KC + k] * bv[k * NC + n];
      maxe = Math.max(maxe, Math.abs(t - got[m * NC + n]));
    }
  }
  if (maxe > 1e-4 && W === 1 && !ACC) console.log("BAD", maxe);
}
let best = 1e9;
for (let i = 0; i < 3; i++) {
  const t = performance.now();
  await run(DISP);
  best = Math.min(best, performance.now() - t);
}
console.log(
  JSON.stringify({
    R,
    C,
    W,
    ACC,
    MC,
    NC,
    KC,
    WG,
    us_per_disp: +(best / DISP * 1000).toFixed(1),
    gflops: +(2 * MC * NC * KC * W * DISP / best / 1e6).toFixed(2),
  }),
);

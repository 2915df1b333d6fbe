/**
 * Speed of the matmul with an F16 weight read three ways on the current device: as f32 (the decoded
 * values), as packed pairs (`unpack2x16float`, lib/unpack16.wgsl) and, where the device has shader-f16,
 * as `array<f16>` (lib/unpack16_f16.wgsl). Llama-like products of a 512-wide model (M = 32 rows).
 *
 *   DENO_WEBGPU_BACKEND=vulkan deno run -A scripts/measure_f16native.ts   # lavapipe: has shader-f16
 *
 * Prints one JSON object; the three results of each product are also compared (they must be equal).
 */
import { getGpu } from "../src/gpu/device.ts";
import { matmul } from "../src/gpu/matmul.ts";
import { createTensor, type GpuTensor, readTensor } from "../src/gpu/tensor.ts";
import { encodeFloats, roundToDtype } from "../src/io/safetensors.ts";

const gpu = await getGpu();
const native = gpu.device.features.has("shader-f16");
let seed = 12345;
const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
const C = 512, I = 1408, V = 8000, M = 32;
const rows: Record<string, unknown>[] = [];
for (const [N, K, transB] of [[I, C, true], [C, I, true], [C, I, false], [V, C, true]] as const) {
  const x = createTensor(gpu, [M, K], { data: Float32Array.from({ length: M * K }, () => rnd() - 0.5) });
  const wf = Float32Array.from({ length: N * K }, () => (rnd() - 0.5) * 0.04);
  const b32 = createTensor(gpu, [N * K], { data: roundToDtype(wf, "F16") });
  const b16 = createTensor(gpu, [N * K], {
    dtype: "f16",
    data: new Uint16Array(encodeFloats(wf, "F16").buffer),
  });
  const o = createTensor(gpu, [M, N]);
  const time = async (b: GpuTensor, f16: boolean) => {
    gpu.setShaderF16(f16 ? true : false);
    try {
      await matmul(gpu, x, b, o, { M, N, K, transB });
      await gpu.flush();
      const t = performance.now();
      for (let i = 0; i < 8; i++) await matmul(gpu, x, b, o, { M, N, K, transB });
      await gpu.flush();
      const ms = (performance.now() - t) / 8;
      return { ms, out: await readTensor(o) };
    } finally {
      gpu.setShaderF16(undefined);
    }
  };
  const kinds: Array<[string, GpuTensor, boolean]> = [["f32", b32, false], ["packed", b16, false]];
  if (native) kinds.push(["array_f16", b16, true]);
  const best: Record<string, number> = {};
  let ref: Float32Array | undefined, equal = true;
  for (let round = 0; round < 2; round++) {
    for (const [k, b, f16] of kinds) {
      const r = await time(b, f16);
      best[k] = Math.min(best[k] ?? Infinity, r.ms);
      if (!ref) ref = r.out;
      else equal &&= r.out.every((v, i) => v === ref![i]);
    }
  }
  rows.push({
    shape: `${M}x${N}x${K}${transB ? " transB" : ""}`,
    ...Object.fromEntries(Object.entries(best).map(([k, v]) => [`${k}_ms`, +v.toFixed(2)])),
    results_equal: equal,
  });
  for (const t of [x, b32, b16, o]) t.destroy();
  console.error(JSON.stringify(rows.at(-1)));
}
console.log(
  JSON.stringify({ adapter: gpu.describe().description, shader_f16: native, products: rows }, null, 2),
);

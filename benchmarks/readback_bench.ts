/**
 * The per-await floor: an empty flush, the old flush-then-map readback, readTensor (one wait) and eight
 * reads against one readTensors, measured interleaved in one run (src/gpu/readback_measure.ts).
 */
import { getGpu } from "../src/gpu/device.ts";
import { measureReadback } from "../src/gpu/readback_measure.ts";
import { createTensor, readTensor, readTensors } from "../src/gpu/tensor.ts";

const gpu = await getGpu();
const ts = Array.from(
  { length: 8 },
  (_, i) => createTensor(gpu, [256], { data: new Float32Array(256).fill(i) }),
);
Deno.bench("8 x readTensor", { group: "readback", baseline: true, n: 10 }, async () => {
  for (const t of ts) await readTensor(t);
});
Deno.bench("readTensors of 8", { group: "readback", n: 10 }, async () => {
  await readTensors(ts);
});
const r = await measureReadback(gpu);
console.log(
  `readback floor (load ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}): ${JSON.stringify(r)}`,
);

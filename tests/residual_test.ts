import { getGpu } from "../src/gpu/device.ts";
import { residualAdd, residualAddInPlace } from "../src/gpu/residual.ts";
import { createTensor, poison, readTensor } from "../src/gpu/tensor.ts";
import { residualAddRef } from "../src/reference/residual.ts";
import { assertClose, freshSeed, randn, rng } from "./_util.ts";

Deno.test("residual add matches float64 twin on odd sizes", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  for (const n of [1, 7, 255, 257, 1000, 4099]) {
    const a = randn(r, n), b = randn(r, n);
    const ta = createTensor(gpu, [n], { data: a }), tb = createTensor(gpu, [n], { data: b });
    const out = createTensor(gpu, [n]);
    poison(out);
    await residualAdd(gpu, ta, tb, out);
    assertClose(await readTensor(out), residualAddRef(a, b), 1e-6, `add n=${n}`, seed);
    await residualAddInPlace(gpu, ta, tb);
    assertClose(await readTensor(ta), residualAddRef(a, b), 1e-6, `add_inplace n=${n}`, seed);
  }
});

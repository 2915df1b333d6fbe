/**
 * kernels/delta_loss.wgsl against its float64 twin (src/reference/delta_loss.ts): NLL rows with their
 * own weights, KL-init rows writing p0, then KL rows against that p0, at an odd small vocabulary and the
 * world model's 1284, logits of a spread of scales; outputs poisoned with NaN before each run.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { createTensor, readTensors, writeTensor } from "../src/gpu/tensor.ts";
import { DELTA_LOSS_KL, DELTA_LOSS_KL_INIT, DELTA_LOSS_NLL, deltaLoss } from "../src/gpu/delta_loss.ts";
import { deltaLossRef, type DeltaLossRow } from "../src/reference/delta_loss.ts";
import { freshSeed, maxAbsErr, randn, rng } from "./_util.ts";

for (const cols of [37, 1284]) {
  Deno.test(`delta loss kernel equals the float64 twin (NLL, KL init, KL; ${cols} columns)`, async () => {
    const gpu = await getGpu();
    const seed = freshSeed();
    const r = rng(seed);
    const K = 3, rows = 9;
    const kinds: Array<0 | 1> = [0, 0, 1, 0, 1, 0, 0, 1, 0];
    let kl = 0;
    const rowsOf = (init: boolean): DeltaLossRow[] =>
      kinds.map((kind) =>
        kind === 0
          ? { kind: DELTA_LOSS_NLL, index: Math.floor(r() * cols), weight: 0.05 + r() }
          : { kind: init ? DELTA_LOSS_KL_INIT : DELTA_LOSS_KL, index: kl++ % K, weight: 0.1 + r() }
      ) as DeltaLossRow[];
    const pack = (info: DeltaLossRow[]) => {
      const u = new Uint32Array(rows * 4), f = new Float32Array(u.buffer);
      info.forEach((x, i) => ((u[i * 4] = x.kind), (u[i * 4 + 1] = x.index), (f[i * 4 + 2] = x.weight)));
      return u;
    };
    const logitsOf = () => Float32Array.from(randn(r, rows * cols, 1), (x, i) => x * (1 + (i % 4)));
    const tl = createTensor(gpu, [rows, cols], { name: "logits" });
    const ti = createTensor(gpu, [rows * 4], { name: "info", dtype: "u32" });
    const tp = createTensor(gpu, [K, cols], { name: "p0", data: new Float32Array(K * cols).fill(NaN) });
    const tls = createTensor(gpu, [rows], { name: "losses" });
    const td = createTensor(gpu, [rows, cols], { name: "dlogits" });
    try {
      const p0 = new Float64Array(K * cols).fill(NaN);
      let worst = 0;
      for (const init of [true, false]) {
        const info = rowsOf(init);
        const logits = logitsOf();
        writeTensor(tl, logits);
        writeTensor(ti, pack(info));
        writeTensor(tls, new Float32Array(rows).fill(NaN));
        writeTensor(td, new Float32Array(rows * cols).fill(NaN));
        await deltaLoss(gpu, tl, ti, tp, tls, td, rows, cols);
        const [losses, dl, gp0] = await readTensors([tls, td, tp]);
        const ref = deltaLossRef(logits, info, cols, p0);
        const el = maxAbsErr(losses, ref.losses), ed = maxAbsErr(dl, ref.dlogits), ep = maxAbsErr(gp0, p0);
        worst = Math.max(worst, el, ed, ep);
        assert.ok(el < 2e-5, `losses: ${el} (init ${init}, seed ${seed})`);
        assert.ok(ed < 1.5e-5, `dlogits: ${ed} (init ${init}, seed ${seed})`);
        assert.ok(ep < 1e-5, `p0: ${ep} (seed ${seed})`);
        // The KL step is checked against the p0 the kernel wrote (its float32 log-probabilities), so that
        // only this step's arithmetic is compared: lp − p0 cancels, an ulp of lse (|logits| up to ~15).
        p0.set(gp0);
        if (!init) assert.ok(Math.min(...ref.losses.filter((_, i) => kinds[i] === 1)) > 0, "KL rows count");
      }
      console.log(`delta loss ${cols} cols: worst abs err ${worst.toExponential(2)} (seed ${seed})`);
    } finally {
      for (const t of [tl, ti, tp, tls, td]) t.destroy();
    }
  });
}

/**
 * kernels/delta_loss.wgsl against its float64 twin (src/reference/delta_loss.ts): NLL rows with their
 * own weights, KL-init rows writing P0, then KL rows against that P0 after a small change of the logits
 * (a KL of ~1e-4, held to 1e-4 relative), at an odd small vocabulary and the world model's 1284, logits of
 * a spread of scales; outputs poisoned with NaN before each run.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { createTensor, readTensors, writeTensor } from "../src/gpu/tensor.ts";
import { DELTA_LOSS_KL, DELTA_LOSS_KL_INIT, DELTA_LOSS_NLL, deltaLoss } from "../src/gpu/delta_loss.ts";
import { deltaLossRef, type DeltaLossRow } from "../src/reference/delta_loss.ts";
import { softmaxRef } from "../src/reference/softmax.ts";
import { setRowWorkgroup } from "../src/gpu/row_workgroup.ts";
import { freshSeed, maxAbsErr, randn, rng } from "./_util.ts";

// The adapter's own workgroup size, the GPU default (128) and a single lane (src/gpu/row_workgroup.ts).
for (const [cols, wg] of [[37, undefined], [1284, undefined], [1284, 128], [37, 1]] as const) {
  const sized = wg === undefined ? "" : `, workgroup ${wg}`;
  Deno.test(`delta loss kernel equals the float64 twin (NLL, KL init, KL; ${cols} columns${sized})`, async () => {
    const gpu = await getGpu();
    setRowWorkgroup(gpu, wg);
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
    // A row's softmax in float64 (the test conditions its KL rows on it).
    const softmax = (row: ArrayLike<number>) => softmaxRef(row, 1, row.length);
    // Logits of a spread of scales; a KL row is redrawn while it is peaked (1 - Σp² < 0.3), where no small
    // step gives a KL worth measuring.
    const logitsOf = (info: DeltaLossRow[]) => {
      const out = new Float32Array(rows * cols);
      for (let i = 0; i < rows; i++) {
        for (let tries = 0;; tries++) {
          const row = Float32Array.from(randn(r, cols, 1), (x, j) => x * (1 + ((i * cols + j) % 4)));
          const p = softmax(row);
          if (info[i].kind !== DELTA_LOSS_KL_INIT || 1 - p.reduce((a, x) => a + x * x, 0) >= 0.3) {
            out.set(row, i * cols);
            break;
          }
          if (tries > 1000) throw new Error(`no spread KL row in 1000 draws (seed ${seed})`);
        }
      }
      return out;
    };
    // The KL step δ (σ 0.02) of each KL row is scaled towards a KL of 1e-4 (KL ≈ ½ Var_p(δ)), at most 2.5×:
    // larger steps would make the kernel's float32 cancellation, not the KL, the thing measured.
    const klStep = (base: Float32Array, info: DeltaLossRow[]) => {
      const out = Float32Array.from(base);
      for (let i = 0; i < rows; i++) {
        const row = base.subarray(i * cols, (i + 1) * cols);
        const d = randn(r, cols, 0.02);
        let scale = 1;
        if (info[i].kind === DELTA_LOSS_KL) {
          const p = softmax(row);
          const mean = p.reduce((a, x, j) => a + x * d[j], 0);
          const v = p.reduce((a, x, j) => a + x * (d[j] - mean) ** 2, 0);
          scale = Math.min(Math.sqrt(2e-4 / v), 2.5);
        }
        for (let j = 0; j < cols; j++) out[i * cols + j] = row[j] + scale * d[j];
      }
      return out;
    };
    const tl = createTensor(gpu, [rows, cols], { name: "logits" });
    const ti = createTensor(gpu, [rows * 4], { name: "info", dtype: "u32" });
    const tp = createTensor(gpu, [K, cols + 2], {
      name: "p0",
      data: new Float32Array(K * (cols + 2)).fill(NaN),
    });
    const tls = createTensor(gpu, [rows], { name: "losses" });
    const td = createTensor(gpu, [rows, cols], { name: "dlogits" });
    try {
      const p0 = new Float64Array(K * (cols + 2)).fill(NaN);
      let worst = 0, worstKl = 0;
      let prev: Float32Array | undefined;
      for (const init of [true, false]) {
        const info = rowsOf(init);
        // The KL step moves the logits a little: KL is then second order, where float32 loses it most.
        const logits = prev ? klStep(prev, info) : logitsOf(info);
        prev = logits;
        writeTensor(tl, logits);
        writeTensor(ti, pack(info));
        writeTensor(tls, new Float32Array(rows).fill(NaN));
        writeTensor(td, new Float32Array(rows * cols).fill(NaN));
        await deltaLoss(gpu, tl, ti, tp, tls, td, rows, cols);
        const [losses, dl, gp0] = await readTensors([tls, td, tp]);
        // The twin keeps its own float64 P0 (the same logits, the exact sum): the comparison includes the
        // kernel's rounding of P0.
        const ref = deltaLossRef(logits, info, cols, p0);
        const ed = maxAbsErr(dl, ref.dlogits);
        worst = Math.max(worst, ed);
        assert.ok(ed < 1.5e-5, `dlogits: ${ed} (init ${init}, seed ${seed})`);
        info.forEach((x, i) => {
          const e = Math.abs(losses[i] - ref.losses[i]);
          if (x.kind === DELTA_LOSS_KL) {
            worstKl = Math.max(worstKl, e / ref.losses[i]);
            assert.ok(
              e <= 1e-4 * ref.losses[i] + 1e-10,
              `KL row ${i}: ${losses[i]} vs ${ref.losses[i]} (seed ${seed})`,
            );
          } else {assert.ok(
              e < 2e-5,
              `row ${i} (kind ${x.kind}): ${losses[i]} vs ${ref.losses[i]} (seed ${seed})`,
            );}
        });
        const kls = ref.losses.filter((_, i) => info[i].kind === DELTA_LOSS_KL);
        if (!init) assert.ok(Math.max(...kls) > 1e-5, `a KL row counts: ${kls} (seed ${seed})`);
        if (init) {
          for (let k = 0; k < K; k++) {
            const o = k * (cols + 2);
            assert.deepEqual(
              gp0.slice(o, o + cols + 1),
              Float32Array.from(p0.slice(o, o + cols + 1)),
              "P0 logits, max",
            );
            const l = p0[o + cols + 1];
            assert.ok(Math.abs(gp0[o + cols + 1] - l) < 1e-6 * l, `P0 sum ${gp0[o + cols + 1]} vs ${l}`);
          }
        }
      }
      console.log(
        `delta loss ${cols} cols: dlogits abs err ${worst.toExponential(2)}, KL rel err ${
          worstKl.toExponential(2)
        } (seed ${seed})`,
      );
    } finally {
      setRowWorkgroup(gpu, undefined);
      for (const t of [tl, ti, tp, tls, td]) t.destroy();
    }
  });
}

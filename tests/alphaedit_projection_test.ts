/**
 * AlphaEdit's null-space projection through the editor: the GPU Jacobi backend against the float64 host
 * backend (ranks, ‖P_gpu − P_host‖, ΔW); the projection cache beside the statistics (a second run reads
 * it: no decomposition, the same deltas bit for bit; a changed τ or a tampered file recomputes); the
 * GPU's non-convergence under a sweep limit (a warning naming the layer and residual, host fall-back);
 * and the edit state: resumed by a sequential edit, fresh after a restore, on another model, after the
 * weights changed by other means, and after resetAlphaEditState (EasyEdit#613 leaked it).
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { applyComputed } from "../src/edit/apply.ts";
import { alphaEditCompute, alphaEditEditor, resetAlphaEditState } from "../src/edit/alphaedit.ts";
import { eigenCounts, symmetricEigen } from "../src/edit/eigen.ts";
import { layerStats } from "../src/edit/stats.ts";
import { randomWeights } from "../src/model/random.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { freshSeed } from "./_util.ts";
import { NO_PREFIX, REF_EDIT_CONFIG, refRequests, refWordTokenizer, writeCorpus } from "./_edit_ref_util.ts";

const CFG = { ...REF_EDIT_CONFIG, family: "gpt2" as const };
const LAYERS = [1, 2];

/** P = UᵀU from a basis [rank, n]. */
function projector(basis: Float64Array, rank: number, n: number): Float64Array {
  const P = new Float64Array(n * n);
  for (let j = 0; j < rank; j++) {
    for (let a = 0; a < n; a++) {
      for (let b = 0; b < n; b++) P[a * n + b] += basis[j * n + a] * basis[j * n + b];
    }
  }
  return P;
}

function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0, s = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i] - b[i]) ** 2;
    s += b[i] ** 2;
  }
  return Math.sqrt(d / s);
}

type Upd = { null_space: Record<string, unknown>; null_space_rank: number };

Deno.test("AlphaEdit projection: GPU vs host backend, cache beside the statistics, sweep-limit fall-back, state", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const tok = refWordTokenizer(CFG.vocabSize);
  const weights = randomWeights(CFG, seed, { untiedHead: true });
  const model = TransformerModel.create(gpu, CFG, weights);
  const tmp = await Deno.makeTempDir({ prefix: "engram_alphaproj_" });
  const I = CFG.nInner;
  try {
    const { file } = await writeCorpus(tmp, seed + 1, 90, tok, { nPositions: CFG.nPositions });
    const stats = await layerStats(model, tok, LAYERS, { corpus: file, cacheDir: tmp, maxSamples: 1000 });
    // τ in the widest gap of the pooled log-spectrum's middle half (as tests/alphaedit_test.ts).
    const all = LAYERS.flatMap((l) => [...symmetricEigen(stats.get(l)!.mom2, I).values].map(Math.abs))
      .sort((a, b) => a - b);
    let best = 0, tau = 0;
    for (let i = Math.floor(all.length / 4); i < Math.floor((3 * all.length) / 4); i++) {
      const g = Math.log(all[i + 1] / all[i]);
      if (g > best) [best, tau] = [g, Math.sqrt(all[i] * all[i + 1])];
    }
    const reqs = refRequests(seed + 2, 4, CFG.vocabSize);
    const hp = (over: Record<string, unknown>) => ({
      layers: LAYERS,
      statsCorpus: file,
      statsDir: tmp,
      hparams: {
        ...NO_PREFIX,
        v_num_grad_steps: 3,
        v_lr: 0.2,
        nullspace_threshold: tau,
        L2: 0.05,
        mom2_n_samples: 1000,
        context_template_length_params: [[3, 5]] as [number, number][],
        ...over,
      },
    });
    const warnings: string[] = [];
    const run = async (over: Record<string, unknown>, requests = reqs.slice(0, 2)) => {
      const before = { ...eigenCounts };
      const r = await alphaEditCompute(model, tok, requests, {
        ...hp(over),
        onWarning: (m) => warnings.push(m),
      });
      return {
        ...r,
        gpuRuns: eigenCounts["gpu-jacobi-f32"] - before["gpu-jacobi-f32"],
        hostRuns: eigenCounts["host-f64"] - before["host-f64"],
        upd: r.computed.info.layer_updates as Upd[],
      };
    };

    // 1. GPU backend vs host backend.
    const g1 = await run({ eigen_backend: "gpu" });
    const h1 = await run({ eigen_backend: "host" });
    assert.equal(g1.gpuRuns, LAYERS.length);
    assert.equal(h1.hostRuns, LAYERS.length);
    const lines: string[] = [];
    const tolByLayer = new Map<number, number>();
    for (const L of LAYERS) {
      const gs = g1.state.perLayer.get(L)!, hs = h1.state.perLayer.get(L)!;
      assert.equal(gs.rank, hs.rank, `layer ${L}: ranks`);
      assert.ok(gs.rank > 0 && gs.rank < I);
      let dP = 0;
      const Pg = projector(gs.basis, gs.rank, I), Ph = projector(hs.basis, hs.rank, I);
      for (let i = 0; i < I * I; i++) dP += (Pg[i] - Ph[i]) ** 2;
      let dl = 0;
      for (let j = 0; j < I; j++) dl = Math.max(dl, Math.abs(gs.eigenvalues[j] - hs.eigenvalues[j]));
      lines.push(
        `layer ${L}: rank ${gs.rank}/${I}, max|Δλ|/λmax ${
          (dl / hs.eigenvalues[I - 1]).toExponential(2)
        }, ‖P_gpu − P_host‖_F ${Math.sqrt(dP).toExponential(2)}`,
      );
      // Davis–Kahan: a float32 eigensolver moves the kept subspace by about ε·λmax / gap, the gap between
      // the eigenvalues on either side of τ (seed 234832311: λmax / gap 1.2e4, ‖ΔP‖ 4.7e-3); a wrong basis
      // moves it by O(1).
      const ev = [...hs.eigenvalues].map(Math.abs).sort((a, b) => a - b);
      const gap = Math.min(...ev.filter((v) => v >= tau)) - Math.max(...ev.filter((v) => v < tau));
      const tolP = Math.max(1e-3, (3e-6 * ev[ev.length - 1]) / gap);
      tolByLayer.set(L, tolP);
      assert.ok(Math.sqrt(dP) < tolP, `layer ${L}: ‖ΔP‖ ${Math.sqrt(dP)} > ${tolP} (seed ${seed})`);
      assert.equal(g1.upd[LAYERS.indexOf(L)].null_space.method, "gpu-jacobi-f32");
      assert.equal(h1.upd[LAYERS.indexOf(L)].null_space.method, "host-f64");
    }
    for (const [name, d] of g1.computed.deltas) {
      const e = relDiff(d.data, h1.computed.deltas.get(name)!.data);
      lines.push(`${name} ΔW gpu vs host ${e.toExponential(2)}`);
      // The update is projected by P: it moves as much as P does.
      const tolW = tolByLayer.get(Number(/\d+/.exec(name)![0]))!;
      assert.ok(e < tolW, `${name}: ΔW gpu vs host ${e} > ${tolW} (seed ${seed})`);
    }
    console.log(`AlphaEdit projection (seed ${seed}, τ ${tau.toExponential(3)}): ${lines.join("; ")}`);

    // 2. The cache: a second run decomposes nothing and gives the same deltas bit for bit.
    const g2 = await run({ eigen_backend: "gpu" });
    assert.equal(g2.gpuRuns + g2.hostRuns, 0, "second run read the projection cache");
    assert.ok(g2.upd.every((u) => u.null_space.cached === true));
    assert.ok(g1.upd.every((u) => u.null_space.cached === false));
    for (const [name, d] of g1.computed.deltas) {
      assert.ok(
        d.data.every((x, i) => Object.is(x, g2.computed.deltas.get(name)!.data[i])),
        `${name} differs`,
      );
    }
    // A changed τ recomputes (another key), as does a tampered file under the same name.
    const g3 = await run({ eigen_backend: "gpu", nullspace_threshold: tau * 1.0001 });
    assert.equal(g3.gpuRuns, LAYERS.length, "changed τ recomputes");
    const cached = g2.upd[0].null_space.file as string;
    const other = g3.upd[0].null_space.file as string;
    assert.notEqual(cached, other);
    await Deno.copyFile(other, cached); // another τ's projection under this key's name
    const g4 = await run({ eigen_backend: "gpu" });
    assert.equal(g4.gpuRuns, 1, "a file whose key disagrees is recomputed");
    assert.equal(g4.upd[0].null_space.cached, false);
    assert.equal(g4.upd[1].null_space.cached, true);

    // 3. Sweep limit: a warning naming the layer and the residual, then the host decomposition.
    warnings.length = 0;
    const f = await run({ eigen_backend: "gpu", eigen_max_sweeps: 1 });
    assert.equal(f.gpuRuns, LAYERS.length);
    assert.equal(f.hostRuns, LAYERS.length);
    for (const L of LAYERS) {
      const w = warnings.find((m) =>
        m.startsWith(`layer ${L}:`) && m.includes("did not converge in 1 sweeps")
      );
      assert.ok(w && /residual \d\.\d+e-\d+/.test(w), `no fall-back warning for layer ${L}: ${warnings}`);
    }
    assert.ok(f.upd.every((u) => u.null_space.method === "host-f64"));
    assert.ok(f.computed.warnings.some((m) => m.includes("did not converge")));
    for (const [name, d] of f.computed.deltas) {
      assert.ok(d.data.every((x, i) => Object.is(x, h1.computed.deltas.get(name)!.data[i])), `${name}: host`);
    }

    // 4. State: resumed by a sequential edit, fresh otherwise.
    const opts = hp({ eigen_backend: "host" });
    const e1 = await alphaEditEditor(model, tok, reqs.slice(0, 2), opts);
    assert.equal(e1.info.prior_edits, 0);
    const a1 = applyComputed(model, e1);
    const e2 = await alphaEditEditor(model, tok, reqs.slice(2), opts);
    assert.equal(e2.info.prior_edits, 2, "sequential edit resumes K_pK_pᵀ");
    assert.ok((e2.info.layer_updates as Upd[]).every((u) => u.null_space.reused === true), "P reused");
    // Restored: an independent edit starts fresh.
    a1.restore();
    const e3 = await alphaEditEditor(model, tok, reqs.slice(2), opts);
    assert.equal(e3.info.prior_edits, 0, "fresh after restore");
    // Applied, then the weights changed by other means: fresh.
    const a3 = applyComputed(model, e3);
    const w = model.weights.get([...e3.deltas.keys()][0])!;
    const saved = w.data[0];
    w.data[0] += 1;
    const e4 = await alphaEditEditor(model, tok, reqs.slice(0, 1), opts);
    assert.equal(e4.info.prior_edits, 0, "fresh after the weights changed");
    w.data[0] = saved;
    a3.restore();
    // Applied, then reset explicitly: fresh; and another model with the same weights never sees it.
    const e5 = await alphaEditEditor(model, tok, reqs.slice(0, 2), opts);
    const a5 = applyComputed(model, e5);
    const twin = TransformerModel.create(
      gpu,
      CFG,
      new Map([...model.weights].map(([k, v]) => [k, { ...v, data: Float32Array.from(v.data) }])),
    );
    try {
      const e6 = await alphaEditEditor(twin, tok, reqs.slice(2), opts);
      assert.equal(e6.info.prior_edits, 0, "another model starts fresh");
    } finally {
      twin.destroy();
    }
    resetAlphaEditState(model);
    const e7 = await alphaEditEditor(model, tok, reqs.slice(2), opts);
    assert.equal(e7.info.prior_edits, 0, "fresh after resetAlphaEditState");
    a5.restore();
  } finally {
    model.destroy();
    await Deno.remove(tmp, { recursive: true });
  }
});

/**
 * The edit solves' backend choice (src/edit/solve_backend.ts): "host" is the float64 Cholesky bit for bit;
 * "gpu" agrees with the float64 host to the refinement's accuracy, splits many right-hand sides and a
 * matrix past one binding, and falls back to the host (warning, host result bit for bit) on a matrix that
 * is not positive definite or too ill-conditioned for the float32 factor; "auto" stays on the host on CPU
 * adapters. ROME and MEMIT on the world model with `solve_backend: "gpu"` give the host path's deltas.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { getGpu, type Gpu } from "../src/gpu/device.ts";
import { choleskyRegularized, choleskySolve } from "../src/edit/linalg.ts";
import { factorSpd, resolveSolveBackend } from "../src/edit/solve_backend.ts";
import { isCpuAdapter } from "../src/model/memory.ts";
import { symmetricEigen } from "../src/numeric/eigen.ts";
import { solveRef } from "../src/reference/solve.ts";
import { mergeHparams, readHparamsFile, romeDefaults } from "../src/edit/hparams.ts";
import { declaredStatsCorpus } from "../src/edit/stats.ts";
import { readRequests } from "../src/edit/requests.ts";
import { romeEditor } from "../src/edit/rome.ts";
import { memitEditor } from "../src/edit/memit.ts";
import { emmetEditor } from "../src/edit/emmet.ts";
import { alphaEditAdjoint } from "../src/edit/alphaedit.ts";
import { loadModel } from "../src/model/load.ts";
import { freshSeed, relErr, rng } from "./_util.ts";

function spd(n: number, cond: number, r: () => number): Float64Array {
  const S = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) S[i * n + j] = S[j * n + i] = r() - 0.5;
  const Q = symmetricEigen(S, n).vectors;
  const C = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += Q[k * n + i] * cond ** (-k / (n - 1)) * Q[k * n + j];
      C[i * n + j] = C[j * n + i] = s;
    }
  }
  return C;
}

const hostSolve = (a: Float64Array, n: number, b: Float64Array, m: number) => {
  const ch = choleskyRegularized(a, n);
  return { x: choleskySolve(ch, b, m), lambda: ch.lambda };
};

Deno.test("solve backend: auto stays on the host on CPU adapters and without a GPU; host path is the float64 Cholesky", async () => {
  const gpu = await getGpu();
  assert.equal(resolveSolveBackend("auto", 100000, undefined), "host");
  assert.equal(resolveSolveBackend("gpu", 10, undefined), "host");
  assert.equal(resolveSolveBackend("gpu", 10, gpu), "gpu");
  assert.equal(resolveSolveBackend("host", 100000, gpu), "host");
  assert.equal(resolveSolveBackend("auto", 100000, gpu), isCpuAdapter(gpu) ? "host" : "gpu");
  assert.equal(resolveSolveBackend("auto", 1023, gpu), "host");
  // A hardware adapter as isCpuAdapter sees one: the GPU from 1024 rows, unless over n / 32 columns.
  const hw = {
    describe: () => ({ isFallbackAdapter: false, description: "Some GPU", device: "" }),
  } as unknown as Gpu;
  assert.equal(resolveSolveBackend("auto", 4096, hw), "gpu");
  assert.equal(resolveSolveBackend("auto", 1023, hw), "host");
  assert.equal(resolveSolveBackend("auto", 4096, hw, 1024, 128), "gpu");
  assert.equal(resolveSolveBackend("auto", 4096, hw, 1024, 129), "host");
  assert.equal(resolveSolveBackend("gpu", 4096, hw, 1024, 5000), "gpu");
  const r = rng(freshSeed());
  const n = 41, m = 3, A = spd(n, 1e3, r), B = Float64Array.from({ length: n * m }, () => r() - 0.5);
  const f = await factorSpd(A, n, { backend: "host", gpu });
  assert.deepEqual(await f.solve(B, m), hostSolve(A, n, B, m).x);
  assert.deepEqual(f.info(), {});
});

Deno.test("solve backend gpu: float64 accuracy, column groups and row blocks past a lowered binding limit", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  for (const [n, m, limit] of [[129, 5, undefined], [129, 60, 20480], [300, 1, 40960]] as const) {
    const A = spd(n, 1e4, r), B = Float64Array.from({ length: n * m }, () => r() - 0.5);
    const ref = solveRef(A, B, n, m);
    const warnings: string[] = [];
    gpu.setBindingLimit(limit);
    try {
      const f = await factorSpd(A, n, { backend: "gpu", gpu, warn: (w) => warnings.push(w) });
      try {
        const x = await f.solve(B, m);
        const e = relErr(x, ref);
        // Measured 1e-13 … 3e-13 at κ 1e4 (tests/cholesky_test.ts); a float32 solve alone is ~5e-5.
        assert.ok(e < 1e-11, `n ${n} m ${m} limit ${limit}: ${e} (seed ${seed})`);
        const info = f.info().solve as Record<string, unknown>;
        assert.equal(info.method, "gpu-cholesky-f32-refined");
        assert.ok((info.refinement_steps as number) >= 2);
        assert.deepEqual(warnings, []);
      } finally {
        f.destroy();
      }
    } finally {
      gpu.setBindingLimit(undefined);
    }
  }
});

Deno.test("solve backend gpu: falls back to the host (warning, identical result) on an indefinite or ill-conditioned matrix", async () => {
  const gpu = await getGpu();
  const r = rng(freshSeed());
  const n = 67, m = 2;
  const B = Float64Array.from({ length: n * m }, () => r() - 0.5);
  // Indefinite: the host regularises it (λ > 0); the GPU's pivot fails.
  const bad = spd(n, 1e2, r);
  bad[40 * n + 40] = -3;
  // SPD but κ = 1e12: beyond what a float32 factor can refine (or its float32 pivots fail).
  const ill = spd(n, 1e12, r);
  for (const [name, A, why] of [["indefinite", bad, /GPU Cholesky failed/], ["κ 1e12", ill, /./]] as const) {
    const warnings: string[] = [];
    const f = await factorSpd(A, n, {
      backend: "gpu",
      gpu,
      label: "test matrix",
      warn: (w) => warnings.push(w),
      regularized: (l) => `ridge ${l}`,
    });
    const x = await f.solve(B, m);
    const host = hostSolve(A, n, B, m);
    assert.deepEqual(x, host.x, name);
    assert.equal(f.lambda, host.lambda, name);
    assert.ok(warnings.length >= 1 && warnings[0].startsWith("test matrix: "), `${name}: ${warnings}`);
    assert.match(warnings[0], why);
    assert.match(warnings[0], /solving on the host \(float64\)/);
    if (host.lambda > 0) assert.ok(warnings.includes(`ridge ${host.lambda}`), `${name}: ${warnings}`);
    const info = f.info().solve as Record<string, unknown>;
    assert.equal(info.method, "host-f64", name);
    assert.equal(typeof info.fallback, "string", name);
    f.destroy();
  }
});

const ROOT = new URL("../", import.meta.url).pathname;
const MODEL = ROOT + "fixtures/world/model";

Deno.test({
  name: "ROME, MEMIT and EMMET on the world model: solve_backend gpu gives the host path's deltas",
  ignore: !existsSync(MODEL + "/model.safetensors"),
  fn: async () => {
    const lm = await loadModel(MODEL);
    const tok = lm.tokenizer!;
    const statsDir = await Deno.makeTempDir({ prefix: "engram_solve_backend_" });
    try {
      const statsCorpus = await declaredStatsCorpus(MODEL);
      const reqs = (await readRequests(ROOT + "fixtures/world/counterfact.json")).slice(0, 3);
      for (
        const [method, editor, n] of [["rome", romeEditor, 1], ["memit", memitEditor, 3], [
          "emmet",
          emmetEditor,
          3,
        ]] as const
      ) {
        // EMMET at MEMIT's site (the world model ships no EMMET file).
        const file = (await readHparamsFile(
          `${MODEL}/hparams/${method === "emmet" ? "memit" : method}.json`,
        )) as Record<string, unknown>;
        const run = (backend: string) =>
          editor(lm.model, tok, reqs.slice(0, n), {
            statsDir,
            statsCorpus,
            // A reduced sample (the statistics are computed once and cached for all four runs) and
            // few optimisation steps keep the test short; C [384, 384] stays positive definite.
            hparams: { ...file, mom2_n_samples: 400, v_num_grad_steps: 4, solve_backend: backend },
          });
        const host = await run("host"), gpuRun = await run("gpu");
        const w = "h.0.mlp.c_proj.weight";
        const dh = host.deltas.get(w)!.data, dg = gpuRun.deltas.get(w)!.data;
        const e = relErr(dg, dh);
        const solveInfo = JSON.stringify(gpuRun.info).match(/"solve":\{[^}]*\}/)?.[0];
        console.log(`${method}: ΔW gpu vs host solve, max rel ${e.toExponential(2)}; ${solveInfo}`);
        // The refined solve agrees with float64 to ~1e-12; ΔW is float32, so a few ulps at most.
        assert.ok(e < 1e-6, `${method}: ΔW relative difference ${e}`);
        const info = JSON.stringify(gpuRun.info);
        assert.match(info, /"method":"gpu-cholesky-f32-refined"/, method);
        assert.doesNotMatch(JSON.stringify(host.info), /refinement_steps/, method);
      }
    } finally {
      lm.model.destroy();
      await Deno.remove(statsDir, { recursive: true });
    }
  },
});

Deno.test("AlphaEdit's null-space solve with solve_backend gpu agrees with the host's", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const I = 96, rank = 70, n = 4;
  // An orthonormal basis of a random 70-dimensional subspace (rows of an eigenvector matrix).
  const S = new Float64Array(I * I);
  for (let i = 0; i < I; i++) for (let j = 0; j <= i; j++) S[i * I + j] = S[j * I + i] = r() - 0.5;
  const basis = symmetricEigen(S, I).vectors.slice(0, rank * I);
  const kpkp = new Float64Array(I * I);
  const keys = Array.from({ length: 12 }, () => Float64Array.from({ length: I }, () => r() - 0.5));
  for (const k of keys) {
    for (let a = 0; a < I; a++) for (let b = 0; b < I; b++) kpkp[a * I + b] += k[a] * k[b];
  }
  const K = Array.from({ length: n }, () => Float64Array.from({ length: I }, () => r() - 0.5));
  const st = { basis, rank, kpkp };
  const host = await alphaEditAdjoint(K, st, I, 10, true);
  const onGpu = await alphaEditAdjoint(K, st, I, 10, true, { backend: "gpu", gpu });
  const e = relErr(onGpu.X, host.X);
  assert.ok(e < 1e-12, `X gpu vs host ${e} (seed ${seed})`);
  assert.deepEqual(host.solveInfo, {});
  assert.equal((onGpu.solveInfo.solve as Record<string, unknown>).method, "gpu-cholesky-f32-refined");
});

Deno.test("solve_backend hparam: accepted values stored, others refused naming the key", () => {
  const cfg = {
    nLayer: 2,
    nHead: 4,
    nEmbd: 96,
    vocabSize: 50,
    nPositions: 24,
    nInner: 384,
    layerNormEpsilon: 1e-5,
  };
  const base = romeDefaults(cfg);
  assert.equal(base.solve_backend, undefined);
  for (const v of ["auto", "gpu", "host"] as const) {
    assert.equal(mergeHparams(base, { solve_backend: v }, cfg).solve_backend, v);
  }
  assert.throws(
    () => mergeHparams(base, { solve_backend: "cuda" }, cfg, "h.json"),
    /hparam 'solve_backend' must be/,
  );
});

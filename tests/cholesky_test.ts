/**
 * GPU blocked Cholesky (kernels/cholesky.wgsl, src/gpu/cholesky.ts): the float32 factor and solve against
 * their float64 twin (src/reference/cholesky.ts), the refined solve against the independent float64
 * Gaussian elimination (src/reference/solve.ts) on fresh SPD matrices of odd sizes whose spectra decay
 * log-uniformly over condition numbers 1e2 … 1e6 (as key second moments do), the multi-buffer path
 * (binding limit lowered so A spans several row blocks) bit for bit against the single-buffer one, and a
 * non-positive pivot reported with its index.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { CholeskyPivotError, GpuCholesky, solveSpdRefined } from "../src/gpu/cholesky.ts";
import { symmetricEigen } from "../src/numeric/eigen.ts";
import { blockedCholeskyRef, choleskySolveRef } from "../src/reference/cholesky.ts";
import { solveRef } from "../src/reference/solve.ts";
import { freshSeed, relErr, rng } from "./_util.ts";

/** Q diag(λ) Qᵀ with λ_k = cond^(−k/(n−1)) (largest 1) and Q the eigenvectors of a random symmetric matrix. */
export function spdWithCondition(n: number, cond: number, r: () => number): Float64Array {
  const S = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) S[i * n + j] = S[j * n + i] = r() - 0.5;
  const Q = symmetricEigen(S, n).vectors;
  const lam = Array.from({ length: n }, (_, k) => cond ** (-k / Math.max(1, n - 1)));
  const C = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += Q[k * n + i] * lam[k] * Q[k * n + j];
      C[i * n + j] = C[j * n + i] = s;
    }
  }
  return C;
}

function randomRhs(n: number, m: number, r: () => number): Float64Array {
  return Float64Array.from({ length: n * m }, () => r() - 0.5);
}

Deno.test("cholesky kernel: factor and float32 solve equal the float64 blocked twin (n 37, 129, 300)", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  for (const [n, m] of [[37, 1], [129, 7], [300, 7]]) {
    const A = spdWithCondition(n, 1e2, r);
    const B = randomRhs(n, m, r);
    const f = await GpuCholesky.factor(gpu, A, n);
    try {
      const L = await f.readFactor();
      // The twin runs on the float32 rounding the GPU sees.
      const Lt = blockedCholeskyRef(Float32Array.from(A), n);
      const eL = relErr(L, Lt);
      const x = await f.solve(B, m);
      const eX = relErr(x, choleskySolveRef(Lt, Float32Array.from(B), n, m));
      // Measured 1.6e-7 … 2.2e-7 (L) and 7.7e-7 … 1.0e-6 (X) at condition 1e2; an index or sign error is O(1).
      assert.ok(eL < 2e-6, `n ${n}: L vs twin ${eL} (seed ${seed})`);
      assert.ok(eX < 2e-5, `n ${n}: X vs twin ${eX} (seed ${seed})`);
    } finally {
      f.destroy();
    }
  }
});

Deno.test("cholesky refined solve: matches float64 Gaussian elimination to ~κ·1e-17 (condition 1e2 … 1e6)", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  for (const [n, m] of [[37, 7], [129, 1], [300, 7]]) {
    for (const cond of [1e2, 1e4, 1e6]) {
      const A = spdWithCondition(n, cond, r);
      const B = randomRhs(n, m, r);
      const ref = solveRef(A, B, n, m);
      const f = await GpuCholesky.factor(gpu, A, n);
      try {
        const plain = relErr(await f.solve(B, m), ref);
        const s = await solveSpdRefined(f, A, B, m);
        const e = relErr(s.x, ref);
        // Measured: float32 alone 1e-6 (κ 1e2), 5e-5 (1e4), 5e-3 (1e6); refined 2e-15, 3e-13, 2e-11 in
        // 3, 5, 6-7 steps. The bound allows 100× the measured error at each κ.
        assert.ok(s.converged, `n ${n} κ ${cond}: not converged (${s.correction}, seed ${seed})`);
        assert.ok(e < Math.max(1e-13, cond * 2e-15), `n ${n} κ ${cond}: refined error ${e} (seed ${seed})`);
        assert.ok(plain > e, `n ${n} κ ${cond}: refinement did not improve ${plain} (seed ${seed})`);
      } finally {
        f.destroy();
      }
    }
  }
});

Deno.test("cholesky multi-buffer: A in several row blocks gives the single-buffer factor and solve bit for bit", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  for (const [n, m, limit] of [[129, 7, 20480], [300, 1, 40960], [97, 3, 13312]]) {
    const A = spdWithCondition(n, 1e3, r);
    const B = randomRhs(n, m, r);
    const one = await GpuCholesky.factor(gpu, A, n);
    let many: GpuCholesky | undefined;
    try {
      assert.equal(one.blockCount, 1);
      const L1 = await one.readFactor(), x1 = await one.solve(B, m);
      gpu.setBindingLimit(limit);
      try {
        many = await GpuCholesky.factor(gpu, A, n);
        assert.ok(many.blockCount >= 3, `n ${n}: ${many.blockCount} blocks at ${limit} bytes`);
        assert.deepEqual(await many.readFactor(), L1, `n ${n}: factor`);
        assert.deepEqual(await many.solve(B, m), x1, `n ${n}: solve`);
        const s = await solveSpdRefined(many, A, B, m);
        assert.ok(relErr(s.x, solveRef(A, B, n, m)) < 1e-11, `n ${n}: refined (seed ${seed})`);
      } finally {
        gpu.setBindingLimit(undefined);
      }
    } finally {
      one.destroy();
      many?.destroy();
    }
  }
});

Deno.test("cholesky: a non-positive pivot is reported with its index; non-finite input is refused", async () => {
  const gpu = await getGpu();
  for (const [n, bad] of [[70, 45], [33, 0], [65, 64]]) {
    const A = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      A[i * n + i] = 2;
      if (i > 0) A[i * n + i - 1] = A[(i - 1) * n + i] = -0.5;
    }
    A[bad * n + bad] = -1;
    await assert.rejects(
      () => GpuCholesky.factor(gpu, A, n),
      (e: unknown) => e instanceof CholeskyPivotError && e.pivot === bad,
      `n ${n}: pivot ${bad}`,
    );
  }
  const A = new Float64Array(9).fill(1);
  A[3] = NaN;
  await assert.rejects(() => GpuCholesky.factor(gpu, A, 3), /non-finite value at \(1, 0\)/);
});

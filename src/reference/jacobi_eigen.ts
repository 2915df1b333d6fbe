/**
 * Float64 CPU twin of `kernels/jacobi_eigen.wgsl`: the same parallel cyclic Jacobi (circle-method
 * rounds of m / 2 disjoint rotations, all computed from the matrix at the round's start, then applied
 * together), in float64. Written from the kernel's definition, not shared with it, so a test can compare
 * the GPU state after a given number of sweeps with this one operation for operation.
 */

/** The pair (p, q), p < q, of slot `i` in round `r` for an even size `m` (as the kernel's `pair`). */
export function jacobiPairRef(i: number, r: number, m: number): [number, number] {
  const k = m - 1;
  if (i === 0) return [r, k];
  const x = (r + i) % k, y = (r + k - i) % k;
  return [Math.min(x, y), Math.max(x, y)];
}

/** Σ_{a≠b} A_ab² and Σ_a A_aa² of a row-major [m, m] matrix. */
export function offNormRef(A: ArrayLike<number>, m: number): { off: number; diag: number } {
  let off = 0, diag = 0;
  for (let a = 0; a < m; a++) {
    for (let b = 0; b < m; b++) {
      const v = A[a * m + b] ** 2;
      if (a === b) diag += v;
      else off += v;
    }
  }
  return { off, diag };
}

/**
 * Runs `sweeps` full sweeps of the parallel Jacobi on the symmetric `a` [n, n] (padded to even m with a
 * zero row and column when n is odd), then the first `rounds` rounds of one more. Returns the padded A
 * and W (rows of W: eigenvector estimates) as [m, m], and m.
 */
export function parallelJacobiRef(
  a: ArrayLike<number>,
  n: number,
  sweeps: number,
  rounds = 0,
): { A: Float64Array; W: Float64Array; m: number } {
  const m = n + (n % 2);
  const A = new Float64Array(m * m), W = new Float64Array(m * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) A[i * m + j] = a[i * n + j];
  for (let i = 0; i < m; i++) W[i * m + i] = 1;
  const h = m / 2;
  const c = new Float64Array(h), s = new Float64Array(h), t = new Float64Array(h), apq = new Float64Array(h);
  for (let sweep = 0; sweep <= sweeps; sweep++) {
    for (let r = 0; r < (sweep < sweeps ? m - 1 : rounds); r++) {
      const pairs = Array.from({ length: h }, (_, i) => jacobiPairRef(i, r, m));
      pairs.forEach(([p, q], i) => {
        const x = A[p * m + q];
        apq[i] = x;
        if (x === 0) {
          [c[i], s[i], t[i]] = [1, 0, 0];
          return;
        }
        const theta = (A[q * m + q] - A[p * m + p]) / (2 * x);
        const ti = Math.abs(theta) > 1e18
          ? 0.5 / theta
          : (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        c[i] = 1 / Math.sqrt(ti * ti + 1);
        s[i] = ti * c[i];
        t[i] = ti;
      });
      // W <- Jᵀ W: rows p, q of every pair.
      pairs.forEach(([p, q], i) => {
        for (let k = 0; k < m; k++) {
          const wp = W[p * m + k], wq = W[q * m + k];
          W[p * m + k] = c[i] * wp - s[i] * wq;
          W[q * m + k] = s[i] * wp + c[i] * wq;
        }
      });
      // A <- Jᵀ A J: columns, then rows; each pair's own 2x2 block takes the closed form (a_pp − t a_pq,
      // a_qq + t a_pq, 0) of the round-start values, as the kernel writes it.
      const diag = pairs.map(([p, q], i) => [A[p * m + p] - t[i] * apq[i], A[q * m + q] + t[i] * apq[i]]);
      pairs.forEach(([p, q], i) => {
        for (let k = 0; k < m; k++) {
          const x = A[k * m + p], y = A[k * m + q];
          A[k * m + p] = c[i] * x - s[i] * y;
          A[k * m + q] = s[i] * x + c[i] * y;
        }
      });
      pairs.forEach(([p, q], i) => {
        for (let k = 0; k < m; k++) {
          const x = A[p * m + k], y = A[q * m + k];
          A[p * m + k] = c[i] * x - s[i] * y;
          A[q * m + k] = s[i] * x + c[i] * y;
        }
      });
      pairs.forEach(([p, q], i) => {
        A[p * m + p] = diag[i][0];
        A[q * m + q] = diag[i][1];
        A[p * m + q] = 0;
        A[q * m + p] = 0;
      });
    }
  }
  return { A, W, m };
}

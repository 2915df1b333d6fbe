/**
 * Float64 CPU twin of `kernels/cholesky.wgsl`: the same blocked right-looking Cholesky (panels of `nb`
 * columns: diagonal block, row-wise substitution below it, rank-nb update of the trailing lower triangle)
 * and the same panel-by-panel triangular solves, in float64. Written from the kernel's definition, so a
 * test can compare the GPU factor and solve with it step for step; the independent float64 references
 * are src/edit/linalg.ts (unblocked Cholesky) and src/reference/solve.ts (Gaussian elimination).
 */

/** Lower-triangular L (row-major [n, n], zeros above) with L Lᵀ = a, blocked by `nb`; NaN past a non-positive pivot. */
export function blockedCholeskyRef(a: ArrayLike<number>, n: number, nb = 32): Float64Array {
  const L = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) L[i * n + j] = a[i * n + j];
  for (let k = 0; k < n; k += nb) {
    const w = Math.min(nb, n - k);
    // Diagonal block, unblocked right-looking.
    for (let j = k; j < k + w; j++) {
      const ljj = Math.sqrt(L[j * n + j]);
      L[j * n + j] = ljj;
      for (let i = j + 1; i < k + w; i++) L[i * n + j] /= ljj;
      for (let i = j + 1; i < k + w; i++) {
        for (let c = j + 1; c <= i; c++) L[i * n + c] -= L[i * n + j] * L[c * n + j];
      }
    }
    // Rows below: L_ik = A_ik L_kk⁻ᵀ.
    for (let i = k + w; i < n; i++) {
      for (let t = k; t < k + w; t++) {
        let s = L[i * n + t];
        for (let q = k; q < t; q++) s -= L[i * n + q] * L[t * n + q];
        L[i * n + t] = s / L[t * n + t];
      }
    }
    // Trailing update of the lower triangle.
    for (let i = k + w; i < n; i++) {
      for (let j = k + w; j <= i; j++) {
        let s = 0;
        for (let t = k; t < k + w; t++) s += L[i * n + t] * L[j * n + t];
        L[i * n + j] -= s;
      }
    }
  }
  return L;
}

/** X = (L Lᵀ)⁻¹ B for the factor of {@link blockedCholeskyRef}, B row-major [n, m]. */
export function choleskySolveRef(
  L: ArrayLike<number>,
  b: ArrayLike<number>,
  n: number,
  m: number,
): Float64Array {
  const y = Float64Array.from(b);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < m; c++) {
      let s = y[i * m + c];
      for (let q = 0; q < i; q++) s -= L[i * n + q] * y[q * m + c];
      y[i * m + c] = s / L[i * n + i];
    }
  }
  for (let i = n - 1; i >= 0; i--) {
    for (let c = 0; c < m; c++) {
      let s = y[i * m + c];
      for (let q = i + 1; q < n; q++) s -= L[q * n + i] * y[q * m + c];
      y[i * m + c] = s / L[i * n + i];
    }
  }
  return y;
}

/** Small dense float64 linear algebra for the edit updates (symmetric positive-definite solves). */

/** Result of {@link choleskyRegularized}: the factor and the ridge λ that had to be added (0 if none). */
export interface Cholesky {
  n: number;
  /** Lower-triangular factor, row-major [n, n]. */
  L: Float64Array;
  /** λ added to the diagonal to make the matrix positive definite (0 when it already was). */
  lambda: number;
}

function tryCholesky(a: Float64Array, n: number, lambda: number): Float64Array | undefined {
  const L = new Float64Array(n * n);
  let maxDiag = 0;
  for (let i = 0; i < n; i++) maxDiag = Math.max(maxDiag, Math.abs(a[i * n + i]));
  const tiny = 1e-12 * (maxDiag + lambda);
  for (let j = 0; j < n; j++) {
    let d = a[j * n + j] + lambda;
    for (let k = 0; k < j; k++) d -= L[j * n + k] * L[j * n + k];
    if (!(d > tiny)) return undefined;
    const ljj = Math.sqrt(d);
    L[j * n + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      let s = a[i * n + j];
      for (let k = 0; k < j; k++) s -= L[i * n + k] * L[j * n + k];
      L[i * n + j] = s / ljj;
    }
  }
  return L;
}

/**
 * Cholesky factor of the symmetric matrix `a` [n, n]. When `a` is singular or not positive definite,
 * λ·I is added with λ = 1e-6 · mean diagonal, growing ×10 until the factorisation succeeds; the λ used
 * is returned so the caller can report it.
 */
export function choleskyRegularized(a: Float64Array, n: number): Cholesky {
  const L0 = tryCholesky(a, n, 0);
  if (L0) return { n, L: L0, lambda: 0 };
  let tr = 0;
  for (let i = 0; i < n; i++) tr += Math.abs(a[i * n + i]);
  let lambda = Math.max(1e-6 * (tr / n), 1e-12);
  for (let iter = 0; iter < 40; iter++, lambda *= 10) {
    const L = tryCholesky(a, n, lambda);
    if (L) return { n, L, lambda };
  }
  throw new Error("matrix could not be regularised to positive definite (non-finite values?)");
}

/** Solves (L Lᵀ) X = B for X; B is row-major [n, m] (m right-hand sides as columns). Returns X [n, m]. */
export function choleskySolve(ch: Cholesky, b: Float64Array, m: number): Float64Array {
  const { n, L } = ch;
  const x = Float64Array.from(b);
  for (let c = 0; c < m; c++) {
    for (let i = 0; i < n; i++) {
      let s = x[i * m + c];
      for (let k = 0; k < i; k++) s -= L[i * n + k] * x[k * m + c];
      x[i * m + c] = s / L[i * n + i];
    }
    for (let i = n - 1; i >= 0; i--) {
      let s = x[i * m + c];
      for (let k = i + 1; k < n; k++) s -= L[k * n + i] * x[k * m + c];
      x[i * m + c] = s / L[i * n + i];
    }
  }
  return x;
}

/** Euclidean norm. */
export function norm(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return Math.sqrt(s);
}

/** Dot product. */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/**
 * Symmetric eigendecomposition in float64 on the host: Householder reduction to tridiagonal form, then the
 * implicit QL iteration with Wilkinson-type shifts (the EISPACK tred2 / tql2 pair), O(n³), about 9n³ flops
 * with vectors, for dense [n, n] matrices of a few thousand rows. AlphaEdit's null-space projection
 * (src/edit/eigen.ts) and the fitted Gaussian of ROME's `m` / `t` noise (src/locate/corruption.ts) use it.
 *
 * @module
 */
import { EngramError } from "../errors.ts";

/** Eigenvalues (ascending) and orthonormal eigenvectors of a symmetric matrix. */
export interface SymmetricEigen {
  /** Order of the matrix (it was [n, n]). */
  n: number;
  /** Eigenvalues, ascending. */
  values: Float64Array;
  /** Eigenvectors as rows, row-major [n, n]: row j is the unit eigenvector of `values[j]`. */
  vectors: Float64Array;
}

/** The QL iteration did not converge (non-finite input, or a pathological matrix). */
export class EigenError extends EngramError {
  constructor(message: string, opts: { field?: string } = {}) {
    super("eigen", message, opts);
  }
}

/**
 * Eigendecomposition of the symmetric matrix `a` (row-major [n, n]; only symmetry of the values is
 * assumed, the lower triangle is what tred2 reads). Throws {@link EigenError} on non-finite input or when
 * an eigenvalue needs more than `maxIter` QL sweeps (default 60).
 */
export function symmetricEigen(a: ArrayLike<number>, n: number, maxIter = 60): SymmetricEigen {
  if (a.length !== n * n) throw new RangeError(`symmetricEigen: ${a.length} values for a ${n}×${n} matrix`);
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) throw new EigenError(`matrix has a non-finite value at ${i}`);
  }
  const V = Float64Array.from(a); // row-major; tred2 leaves the orthogonal transform here
  const d = new Float64Array(n), e = new Float64Array(n);
  if (n === 0) return { n, values: d, vectors: V };
  tred2(V, d, e, n);
  // tql2 rotates pairs of columns: work on the transpose so each rotation runs along two contiguous rows.
  const Vt = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) Vt[j * n + i] = V[i * n + j];
  tql2(Vt, d, e, n, maxIter);
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => d[x] - d[y]);
  const values = new Float64Array(n), vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    values[dst] = d[src];
    vectors.set(Vt.subarray(src * n, src * n + n), dst * n);
  });
  return { n, values, vectors };
}

/** Householder tridiagonalisation: on exit `d` is the diagonal, `e[1..]` the sub-diagonal, V the transform. */
function tred2(V: Float64Array, d: Float64Array, e: Float64Array, n: number): void {
  for (let j = 0; j < n; j++) d[j] = V[(n - 1) * n + j];
  for (let i = n - 1; i > 0; i--) {
    let scale = 0, h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]);
    if (scale === 0) {
      e[i] = d[i - 1];
      for (let j = 0; j < i; j++) {
        d[j] = V[(i - 1) * n + j];
        V[i * n + j] = 0;
        V[j * n + i] = 0;
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k] /= scale;
        h += d[k] * d[k];
      }
      let f = d[i - 1];
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      for (let j = 0; j < i; j++) {
        f = d[j];
        V[j * n + i] = f;
        g = e[j] + V[j * n + j] * f;
        for (let k = j + 1; k <= i - 1; k++) {
          g += V[k * n + j] * d[k];
          e[k] += V[k * n + j] * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j] /= h;
        f += e[j] * d[j];
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j] -= hh * d[j];
      for (let j = 0; j < i; j++) {
        f = d[j];
        g = e[j];
        for (let k = j; k <= i - 1; k++) V[k * n + j] -= f * e[k] + g * d[k];
        d[j] = V[(i - 1) * n + j];
        V[i * n + j] = 0;
      }
    }
    d[i] = h;
  }
  // Accumulate the transformations.
  for (let i = 0; i < n - 1; i++) {
    V[(n - 1) * n + i] = V[i * n + i];
    V[i * n + i] = 1;
    const h = d[i + 1];
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = V[k * n + i + 1] / h;
      for (let j = 0; j <= i; j++) {
        let g = 0;
        for (let k = 0; k <= i; k++) g += V[k * n + i + 1] * V[k * n + j];
        for (let k = 0; k <= i; k++) V[k * n + j] -= g * d[k];
      }
    }
    for (let k = 0; k <= i; k++) V[k * n + i + 1] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = V[(n - 1) * n + j];
    V[(n - 1) * n + j] = 0;
  }
  V[(n - 1) * n + n - 1] = 1;
  e[0] = 0;
}

/** Implicit QL on the tridiagonal (d, e); rotations applied to the rows of `Vt` (the eigenvectors). */
function tql2(Vt: Float64Array, d: Float64Array, e: Float64Array, n: number, maxIter: number): void {
  for (let i = 1; i < n; i++) e[i - 1] = e[i];
  e[n - 1] = 0;
  let f = 0, tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]) + Math.abs(e[l]));
    let m = l;
    while (m < n - 1 && Math.abs(e[m]) > eps * tst1) m++;
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > maxIter) {
          throw new EigenError(`QL iteration did not converge for eigenvalue ${l} in ${maxIter} sweeps`);
        }
        let g = d[l];
        let p = (d[l + 1] - g) / (2 * e[l]);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const dl1 = d[l + 1];
        let h = g - d[l];
        for (let i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        p = d[m];
        let c = 1, c2 = 1, c3 = 1, s = 0, s2 = 0;
        const el1 = e[l + 1];
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = Math.hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          const a0 = i * n, a1 = (i + 1) * n;
          for (let k = 0; k < n; k++) {
            const x1 = Vt[a1 + k], x0 = Vt[a0 + k];
            Vt[a1 + k] = s * x0 + c * x1;
            Vt[a0 + k] = c * x0 - s * x1;
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]) > eps * tst1);
    }
    d[l] += f;
    e[l] = 0;
  }
}

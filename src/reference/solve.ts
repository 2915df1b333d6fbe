/** Float64 dense linear solve for the edit references (what `torch.linalg.solve` / `torch.inverse` give). */

/**
 * X = A⁻¹ B by Gaussian elimination with partial pivoting. A is row-major [n, n], B row-major [n, m]
 * (m right-hand sides as columns); returns X [n, m]. Throws when A is singular to working precision.
 */
export function solveRef(A: ArrayLike<number>, B: ArrayLike<number>, n: number, m: number): Float64Array {
  const a = Float64Array.from(A);
  const x = Float64Array.from(B);
  for (let col = 0; col < n; col++) {
    let piv = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(a[r * n + col]) > Math.abs(a[piv * n + col])) piv = r;
    if (!(Math.abs(a[piv * n + col]) > 0)) throw new RangeError(`solveRef: singular matrix (column ${col})`);
    if (piv !== col) {
      for (let c = 0; c < n; c++) [a[col * n + c], a[piv * n + c]] = [a[piv * n + c], a[col * n + c]];
      for (let c = 0; c < m; c++) [x[col * m + c], x[piv * m + c]] = [x[piv * m + c], x[col * m + c]];
    }
    const d = a[col * n + col];
    for (let r = col + 1; r < n; r++) {
      const f = a[r * n + col] / d;
      if (f === 0) continue;
      for (let c = col; c < n; c++) a[r * n + c] -= f * a[col * n + c];
      for (let c = 0; c < m; c++) x[r * m + c] -= f * x[col * m + c];
    }
  }
  for (let r = n - 1; r >= 0; r--) {
    for (let c = 0; c < m; c++) {
      let s = x[r * m + c];
      for (let k = r + 1; k < n; k++) s -= a[r * n + k] * x[k * m + c];
      x[r * m + c] = s / a[r * n + r];
    }
  }
  return x;
}

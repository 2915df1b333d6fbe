/** Float64 CPU twin of `kernels/residual.wgsl`: out = a + b. */
export function residualAddRef(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
  return out;
}

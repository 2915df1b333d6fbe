/** Float64 CPU twin of `kernels/rank_one.wgsl`: returns w + alpha * u vᵀ (w row-major [M, N]). */
export function rankOneRef(
  w: ArrayLike<number>,
  u: ArrayLike<number>,
  v: ArrayLike<number>,
  alpha = 1,
): Float64Array {
  const M = u.length, N = v.length;
  const out = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) out[i * N + j] = w[i * N + j] + alpha * u[i] * v[j];
  }
  return out;
}

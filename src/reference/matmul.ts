/** Float64 CPU twin of `kernels/matmul.wgsl` (and of the naive kernel, which is its plain case). */

/** Options of {@link matmulRef}; the same meaning as the GPU `MatmulOptions`, with host arrays. */
export interface MatmulRefOptions {
  /** Rows of op(A) and of out. */
  M: number;
  /** Columns of op(B) and of out. */
  N: number;
  /** Inner dimension. */
  K: number;
  /** Number of products (default 1). */
  batch?: number;
  /** A stored [K,M] (default [M,K]). */
  transA?: boolean;
  /** B stored [N,K] (default [K,N]). */
  transB?: boolean;
  /** Length-N row bias, not scaled by alpha. */
  bias?: ArrayLike<number>;
  /** Scale of the product (default 1). */
  alpha?: number;
  /** Add to `out`'s contents (required then) instead of starting from zero. */
  accumulate?: boolean;
  /** Initial output (read when `accumulate`); its length sets the result's length when given. */
  out?: ArrayLike<number>;
  /** Element strides between batches; defaults dense, strideB = 0 broadcasts B. */
  strideA?: number;
  strideB?: number;
  strideOut?: number;
}

/**
 * out[z] = alpha * op(A[z]) @ op(B[z]) + bias (+ out[z] when `accumulate`) in float64, row-major.
 * Returns a new array of length max(out.length, (batch-1)*strideOut + M*N); elements outside the
 * written blocks are copied from `out` (or zero), as the GPU kernel leaves them untouched.
 */
export function matmulRef(a: ArrayLike<number>, b: ArrayLike<number>, opts: MatmulRefOptions): Float64Array {
  const { M, N, K } = opts;
  const batch = opts.batch ?? 1;
  const sA = opts.strideA ?? M * K, sB = opts.strideB ?? K * N, sO = opts.strideOut ?? M * N;
  const alpha = opts.alpha ?? 1;
  const len = Math.max(opts.out?.length ?? 0, batch > 0 ? (batch - 1) * sO + M * N : 0);
  const res = new Float64Array(len);
  if (opts.out) { for (let i = 0; i < opts.out.length; i++) res[i] = opts.out[i]; }
  if (opts.accumulate && !opts.out) throw new Error("matmulRef: accumulate needs out");
  for (let z = 0; z < batch; z++) {
    const oa = z * sA, ob = z * sB, oo = z * sO;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = opts.transA ? a[oa + k * M + m] : a[oa + m * K + k];
          const bv = opts.transB ? b[ob + n * K + k] : b[ob + k * N + n];
          s += av * bv;
        }
        let v = alpha * s + (opts.bias ? opts.bias[n] : 0);
        if (opts.accumulate) v += res[oo + m * N + n];
        res[oo + m * N + n] = v;
      }
    }
  }
  return res;
}

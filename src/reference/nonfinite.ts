/**
 * Float64 CPU twin of `kernels/nonfinite.wgsl`: the index of the first element of `x` that is NaN or
 * ±Inf, or -1. Written from the definition (Number.isFinite on each value), not from the kernel's bit test.
 */
export function refFirstNonFinite(x: ArrayLike<number>): number {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) return i;
  return -1;
}

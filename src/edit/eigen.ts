/**
 * AlphaEdit's null-space projection: the eigenvectors of the key covariance C = E[kkᵀ] whose eigenvalues
 * lie below a threshold. {@link computeNullSpace} chooses between the host's float64 decomposition
 * (src/numeric/eigen.ts, re-exported here) and the GPU's float32 parallel Jacobi (src/gpu/jacobi_eigen.ts),
 * falling back to the host when the GPU does not converge.
 */
import type { Gpu } from "../gpu/device.ts";
import { jacobiEigenGpu, jacobiFits } from "../gpu/jacobi_eigen.ts";
import { isCpuAdapter } from "../model/memory.ts";

export { EigenError, symmetricEigen } from "../numeric/eigen.ts";
export type { SymmetricEigen } from "../numeric/eigen.ts";
import { symmetricEigen } from "../numeric/eigen.ts";

/**
 * Orthonormal basis of the null space AlphaEdit projects onto: the eigenvectors of the symmetric PSD `c`
 * [n, n] whose eigenvalue is below `threshold` in magnitude (EasyEdit `get_project`: the singular values
 * of the covariance, which for a symmetric PSD matrix are |eigenvalues|, `S < nullspace_threshold`).
 * Returns the basis as rows [rank, n] (P = UᵀU in this row convention) and the spectrum.
 */
export function nullSpaceBasis(
  c: ArrayLike<number>,
  n: number,
  threshold: number,
): { basis: Float64Array; rank: number; eigenvalues: Float64Array } {
  const { values, vectors } = symmetricEigen(c, n);
  const keep: number[] = [];
  for (let j = 0; j < n; j++) if (Math.abs(values[j]) < threshold) keep.push(j);
  const basis = new Float64Array(keep.length * n);
  keep.forEach((j, r) => basis.set(vectors.subarray(j * n, j * n + n), r * n));
  return { basis, rank: keep.length, eigenvalues: values };
}

/** How {@link computeNullSpace} decomposes C. */
export interface NullSpaceOptions {
  /** "host" (float64), "gpu" (float32 Jacobi, host fall-back), "auto": see {@link resolveEigenBackend} (default "host"). */
  backend?: "auto" | "gpu" | "host";
  /** The GPU ("gpu" / "auto" need it; without one the host is used). */
  gpu?: Gpu;
  /** Smallest n for which "auto" uses the GPU (default 512). */
  gpuMin?: number;
  /** Jacobi sweeps at most (default 40). */
  maxSweeps?: number;
  /** Jacobi off-diagonal tolerance relative to ‖C‖_F (default 2e-6). */
  tol?: number;
  /** Names the matrix in warnings (e.g. "layer 3"). */
  label?: string;
  warn?: (message: string) => void;
}

/** A null-space basis and how it was found. */
export interface NullSpace {
  /** Rows [rank, n], orthonormal (P = UᵀU). */
  basis: Float64Array;
  rank: number;
  /** Eigenvalues of C, ascending. */
  eigenvalues: Float64Array;
  /** What decomposed C. */
  method: "gpu-jacobi-f32" | "host-f64";
  /** Jacobi sweeps (GPU only). */
  sweeps?: number;
  /** Jacobi's final off-diagonal norm / ‖C‖_F (GPU only). */
  residual?: number;
  /**
   * Error bound δ of each eigenvalue: the off-diagonal remainder (Weyl) plus float32 rounding of the
   * rotations, (residual + √n · 2⁻²³) · ‖C‖_F, on the GPU; n · 2⁻⁵² · ‖C‖_F on the host.
   */
  band: number;
  /** Eigenvalues within δ of τ: their side of τ (kept or not) is not certain at this precision. */
  nearThreshold: number;
  /** δ / gap, gap = the distance across τ between the kept and the other eigenvalues: a Davis–Kahan estimate of ‖ΔP‖. */
  subspaceError: number;
}

/**
 * Where `backend` decomposes an [n, n] matrix: "gpu" on the GPU; "auto" on the GPU from `gpuMin` rows
 * (default 512) unless the adapter computes on the CPU (llvmpipe, lavapipe, ...: there the Jacobi's
 * ~100 n³ float32 operations run slower than the host's ~9 n³ in float64: 6.6 s against 0.15 s at
 * n = 256 on llvmpipe, benchmarks/editors_bench.ts); otherwise, and without a GPU, the host.
 */
export function resolveEigenBackend(
  backend: "auto" | "gpu" | "host",
  n: number,
  gpu: Gpu | undefined,
  gpuMin = 512,
): "gpu" | "host" {
  if (!gpu || backend === "host") return "host";
  if (backend === "gpu") return "gpu";
  return n >= gpuMin && !isCpuAdapter(gpu) ? "gpu" : "host";
}

/** Decompositions run by {@link computeNullSpace} in this process, by method (tests count cache hits with it). */
export const eigenCounts = { "gpu-jacobi-f32": 0, "host-f64": 0 };

/**
 * AlphaEdit's null space of the symmetric PSD `c` [n, n] at threshold τ, on the host or the GPU
 * ({@link NullSpaceOptions}). Eigenvalues with |λ| < τ are kept, exactly as the host rule; those within
 * the precision's bound δ of τ are counted ({@link NullSpace.nearThreshold}) and warned about, not moved.
 * A GPU run that does not converge within `maxSweeps` (or a matrix over one binding) warns, naming the
 * label and the residual, and falls back to the float64 host decomposition.
 */
export async function computeNullSpace(
  c: ArrayLike<number>,
  n: number,
  threshold: number,
  opts: NullSpaceOptions = {},
): Promise<NullSpace> {
  const backend = opts.backend ?? "host";
  const label = opts.label ?? "matrix";
  const useGpu = resolveEigenBackend(backend, n, opts.gpu, opts.gpuMin) === "gpu";
  let frob = 0;
  for (let i = 0; i < c.length; i++) frob += c[i] * c[i];
  frob = Math.sqrt(frob);
  let values: Float64Array, vectors: Float64Array;
  let method: NullSpace["method"] = "host-f64", sweeps: number | undefined, residual: number | undefined;
  let band = n * 2 ** -52 * frob;
  if (useGpu && !jacobiFits(opts.gpu!, n)) {
    opts.warn?.(
      `${label}: C (${n}×${n}) is over one storage binding of this GPU; decomposing it on the host (float64)`,
    );
  }
  if (useGpu && jacobiFits(opts.gpu!, n)) {
    const r = await jacobiEigenGpu(opts.gpu!, c, n, { maxSweeps: opts.maxSweeps, tol: opts.tol });
    eigenCounts["gpu-jacobi-f32"]++;
    if (r.converged) {
      ({ values, vectors } = r);
      method = "gpu-jacobi-f32";
      sweeps = r.sweeps;
      residual = r.residual;
      band = (r.residual + Math.sqrt(n) * 2 ** -23) * frob;
    } else {
      opts.warn?.(
        `${label}: the GPU Jacobi eigendecomposition did not converge in ${r.sweeps} sweeps (off-diagonal residual ${
          r.residual.toExponential(3)
        } of ‖C‖_F, tolerance ${
          (opts.tol ?? 2e-6).toExponential(1)
        }); falling back to the float64 host decomposition`,
      );
    }
  }
  if (method === "host-f64") {
    ({ values, vectors } = symmetricEigen(c, n));
    eigenCounts["host-f64"]++;
  }
  const keep: number[] = [];
  let near = 0, below = -Infinity, above = Infinity;
  for (let j = 0; j < n; j++) {
    const a = Math.abs(values![j]);
    if (a < threshold) {
      keep.push(j);
      below = Math.max(below, a);
    } else above = Math.min(above, a);
    if (Math.abs(a - threshold) <= band) near++;
  }
  if (near > 0) {
    opts.warn?.(
      `${label}: ${near} eigenvalue(s) of C lie within ${
        band.toExponential(2)
      } (the ${method} error bound) of nullspace_threshold ${threshold}: whether they are in the null space is uncertain at this precision (kept by |λ| < τ as computed)`,
    );
  }
  const basis = new Float64Array(keep.length * n);
  keep.forEach((j, r) => basis.set(vectors!.subarray(j * n, j * n + n), r * n));
  const gap = above - below;
  return {
    basis,
    rank: keep.length,
    eigenvalues: values!,
    method,
    sweeps,
    residual,
    band,
    nearThreshold: near,
    subspaceError: keep.length === 0 || keep.length === n ? 0 : band / gap,
  };
}

/**
 * Symmetric eigendecomposition on the GPU in float32 by parallel cyclic Jacobi (`kernels/jacobi_eigen.wgsl`,
 * float64 twin src/reference/jacobi_eigen.ts): sweeps of m − 1 rounds of m / 2 disjoint rotations until
 * the off-diagonal norm is at most `tol` · ‖A‖_F, read back once per sweep. About 8 m³ flops per sweep
 * (the blocks of A and of the eigenvectors), and 6 to 10 sweeps for a dense matrix: more arithmetic than
 * Householder tridiagonalisation, but every step is an independent 2x2 update.
 */
import { GpuError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { launch, uniforms } from "./pipeline.ts";
import { createTensor, poison, readRange, readTensor } from "./tensor.ts";

/** Options of {@link jacobiEigenGpu}. */
export interface JacobiEigenOptions {
  /** Sweeps at most (default 40); 0 only measures the off-diagonal norm. */
  maxSweeps?: number;
  /**
   * Stop when √(Σ_{a≠b} A_ab²) ≤ tol · ‖A‖_F (default 2e-6: about 20 float32 ulps; float32 rounding of
   * the rotations keeps the off-diagonal norm near 1e-7 · ‖A‖_F at best).
   */
  tol?: number;
}

/** Result of {@link jacobiEigenGpu}: eigenvalues ascending, eigenvectors as rows, and how it went. */
export interface JacobiEigenResult {
  n: number;
  /** Eigenvalues, ascending (float32 values). */
  values: Float64Array;
  /** Row-major [n, n]: row j is the unit eigenvector of `values[j]`. */
  vectors: Float64Array;
  /** Sweeps run. */
  sweeps: number;
  /** True when the off-diagonal norm reached `tol` within `maxSweeps`. */
  converged: boolean;
  /** Final √(off-diagonal Σ A_ab²) / ‖A‖_F. */
  residual: number;
}

/** Whether an [n, n] float32 matrix fits one storage binding on `gpu` (the kernel binds it whole). */
export function jacobiFits(gpu: Gpu, n: number): boolean {
  const m = n + (n % 2);
  return m * m * 4 <= gpu.bindingLimit;
}

/**
 * Eigenvalues and eigenvectors of the symmetric `a` (row-major [n, n], rounded to float32) on the GPU.
 * Non-convergence is not an error: the result says `converged: false` with its residual, and the caller
 * decides (AlphaEdit falls back to the float64 host decomposition). Throws {@link GpuError} when the
 * matrix does not fit one storage binding ({@link jacobiFits}) or holds a non-finite value.
 */
export async function jacobiEigenGpu(
  gpu: Gpu,
  a: ArrayLike<number>,
  n: number,
  opts: JacobiEigenOptions = {},
): Promise<JacobiEigenResult> {
  if (a.length !== n * n) throw new RangeError(`jacobiEigenGpu: ${a.length} values for a ${n}×${n} matrix`);
  const maxSweeps = opts.maxSweeps ?? 40, tol = opts.tol ?? 2e-6;
  if (!Number.isInteger(maxSweeps) || maxSweeps < 0) throw new RangeError(`maxSweeps ${maxSweeps}`);
  if (n === 0) {
    return {
      n,
      values: new Float64Array(0),
      vectors: new Float64Array(0),
      sweeps: 0,
      converged: true,
      residual: 0,
    };
  }
  if (n === 1) {
    return {
      n,
      values: Float64Array.of(Math.fround(a[0])),
      vectors: Float64Array.of(1),
      sweeps: 0,
      converged: true,
      residual: 0,
    };
  }
  const m = n + (n % 2), h = m / 2;
  if (!jacobiFits(gpu, n)) {
    throw new GpuError(
      `jacobiEigenGpu: a ${n}×${n} float32 matrix (${
        m * m * 4
      } bytes) is over the storage-binding limit of ${gpu.bindingLimit} bytes`,
    );
  }
  const A0 = new Float32Array(m * m), W0 = new Float32Array(m * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const v = a[i * n + j];
      if (!Number.isFinite(v)) throw new GpuError(`jacobiEigenGpu: non-finite value at (${i}, ${j})`);
      A0[i * m + j] = v;
    }
  }
  for (let i = 0; i < m; i++) W0[i * m + i] = 1;
  const A = createTensor(gpu, [m, m], { name: "jacobi.a", data: A0 });
  const W = createTensor(gpu, [m, m], { name: "jacobi.w", data: W0 });
  const rot = createTensor(gpu, [h, 4], { name: "jacobi.rot" });
  poison(rot); // every rotation slot must be written before it is read
  try {
    const offNorm = async () => {
      await launch(gpu, "jacobi_eigen", "off_norm", [{ uniform: uniforms(m, 0, { f: 1 }) }, A, rot], [1]);
      const [off, diag] = await readRange(rot, 0, 2);
      return Math.sqrt(off / Math.max(off + diag, Number.MIN_VALUE));
    };
    let residual = await offNorm(), sweeps = 0;
    const g1 = Math.ceil(h / 64), g2 = Math.ceil(h / 16);
    while (!(residual <= tol) && sweeps < maxSweeps) {
      for (let r = 0; r < m - 1; r++) {
        const u = { uniform: uniforms(m, r, { f: 1 }) };
        await launch(gpu, "jacobi_eigen", "rotations", [u, A, rot], [g1]);
        await launch(gpu, "jacobi_eigen", "rotate", [u, A, rot, W], [g2, g2]);
      }
      sweeps++;
      residual = await offNorm();
    }
    if (!Number.isFinite(residual)) {
      throw new GpuError("jacobiEigenGpu: the iteration produced non-finite values");
    }
    const Af = await readTensor(A), Wf = await readTensor(W);
    const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => Af[x * m + x] - Af[y * m + y]);
    const values = new Float64Array(n), vectors = new Float64Array(n * n);
    order.forEach((src, dst) => {
      values[dst] = Af[src * m + src];
      for (let k = 0; k < n; k++) vectors[dst * n + k] = Wf[src * m + k];
    });
    return { n, values, vectors, sweeps, converged: residual <= tol, residual };
  } finally {
    A.destroy();
    W.destroy();
    rot.destroy();
  }
}

/**
 * The padded A, W [m, m] and the off-norm pair after exactly `sweeps` sweeps and `rounds` rounds of one
 * more (for the twin test; no convergence test).
 */
export async function jacobiSweepsGpu(
  gpu: Gpu,
  a: ArrayLike<number>,
  n: number,
  sweeps: number,
  rounds = 0,
): Promise<{ A: Float32Array; W: Float32Array; m: number; offDiag: Float32Array }> {
  const m = n + (n % 2), h = m / 2;
  const A0 = new Float32Array(m * m), W0 = new Float32Array(m * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) A0[i * m + j] = a[i * n + j];
  for (let i = 0; i < m; i++) W0[i * m + i] = 1;
  const A = createTensor(gpu, [m, m], { name: "jacobi.a", data: A0 });
  const W = createTensor(gpu, [m, m], { name: "jacobi.w", data: W0 });
  const rot = createTensor(gpu, [h, 4], { name: "jacobi.rot" });
  poison(rot); // every rotation slot must be written before it is read
  try {
    for (let s = 0; s <= sweeps; s++) {
      for (let r = 0; r < (s < sweeps ? m - 1 : rounds); r++) {
        const u = { uniform: uniforms(m, r, { f: 1 }) };
        await launch(gpu, "jacobi_eigen", "rotations", [u, A, rot], [Math.ceil(h / 64)]);
        await launch(gpu, "jacobi_eigen", "rotate", [u, A, rot, W], [Math.ceil(h / 16), Math.ceil(h / 16)]);
      }
    }
    await launch(gpu, "jacobi_eigen", "off_norm", [{ uniform: uniforms(m, 0, { f: 1 }) }, A, rot], [1]);
    const offDiag = await readRange(rot, 0, 2);
    return { A: await readTensor(A), W: await readTensor(W), m, offDiag };
  } finally {
    A.destroy();
    W.destroy();
    rot.destroy();
  }
}

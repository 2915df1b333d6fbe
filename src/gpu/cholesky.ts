/**
 * Symmetric positive definite solves on the GPU in float32 (`kernels/cholesky.wgsl`, float64 twin
 * src/reference/cholesky.ts): a blocked right-looking Cholesky A = L Lᵀ (panels of {@link CHOLESKY_NB}
 * columns: the diagonal block factored in one workgroup, the panel below by row-wise substitution, the
 * trailing matrix by a tiled rank-NB update), then the triangular solves L Y = B and Lᵀ X = Y panel by
 * panel. A is held as row blocks in several buffers, each within the storage-binding limit, so a matrix
 * larger than one binding (d_k = 14336: 822 MB) is factored block by block.
 *
 * {@link solveSpdRefined} adds mixed-precision iterative refinement: the residual r = B − A X is computed
 * on the host in float64 from the caller's float64 A and the correction solved with the float32 factor,
 * which converges to the float64 solution while κ(A) · 2⁻²⁴ · c(n) < 1 (in practice κ up to ~1e6–1e7).
 */
import { GpuError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import { createTensor, type GpuTensor, poison, readTensor } from "./tensor.ts";

/** Panel width of the blocked factorisation (the kernel's NB). */
export const CHOLESKY_NB = 32;

/** Rows per storage block of an [n, n] factor on `gpu`, or undefined when even NB rows do not fit. */
export function choleskyRowsPerBlock(gpu: Gpu, n: number): number | undefined {
  if (n * n * 4 <= gpu.bindingLimit) return n;
  const rows = Math.floor(gpu.bindingLimit / (4 * n) / CHOLESKY_NB) * CHOLESKY_NB;
  return rows >= CHOLESKY_NB ? rows : undefined;
}

/**
 * Whether {@link GpuCholesky.factor} can hold an [n, n] matrix with `m` right-hand sides on `gpu`: NB rows of
 * A, the panel [n, NB] and B [n, m] must each fit one binding, and each block one buffer.
 */
export function choleskyFits(gpu: Gpu, n: number, m = 1): boolean {
  const rows = choleskyRowsPerBlock(gpu, n);
  return rows !== undefined && n * CHOLESKY_NB * 4 <= gpu.bindingLimit && n * m * 4 <= gpu.bindingLimit &&
    rows * n * 4 <= gpu.device.limits.maxBufferSize;
}

/** A Cholesky factor that failed: the first pivot (0-based) not above the threshold, or NaN. */
export class CholeskyPivotError extends GpuError {
  /** Creates the error for the failing pivot `pivot` of an n×n factorisation. */
  constructor(readonly pivot: number, n: number) {
    super(
      `GPU Cholesky: pivot ${pivot} of ${n} is not positive (the float32 matrix is not positive definite)`,
    );
  }
}

interface Block {
  r0: number;
  r1: number;
  t: GpuTensor;
}

/** The float32 factor L of an SPD matrix, resident on the GPU as row blocks; reusable for many solves. */
export class GpuCholesky {
  private constructor(
    readonly gpu: Gpu,
    readonly n: number,
    private readonly blocks: Block[],
  ) {}

  /** Number of storage buffers L spans (1 when it fits one binding). */
  get blockCount(): number {
    return this.blocks.length;
  }

  /**
   * Factors the symmetric `a` (row-major [n, n], rounded to float32; only the lower triangle is read).
   * A pivot ≤ `tiny` (default 1e-12 · max diagonal, the host's rule in src/edit/linalg.ts) or a NaN
   * throws {@link CholeskyPivotError}; a matrix that cannot be held ({@link choleskyFits}) or a non-finite
   * entry throws {@link GpuError}.
   */
  static async factor(
    gpu: Gpu,
    a: ArrayLike<number>,
    n: number,
    opts: { tiny?: number } = {},
  ): Promise<GpuCholesky> {
    if (a.length !== n * n) throw new RangeError(`GpuCholesky.factor: ${a.length} values for ${n}×${n}`);
    if (!choleskyFits(gpu, n)) {
      throw new GpuError(
        `GPU Cholesky: a ${n}×${n} float32 matrix cannot be split into blocks of ${CHOLESKY_NB} rows within the ` +
          `storage-binding limit of ${gpu.bindingLimit} bytes`,
      );
    }
    let maxDiag = 0;
    for (let i = 0; i < n; i++) maxDiag = Math.max(maxDiag, Math.abs(a[i * n + i]));
    const tiny = opts.tiny ?? Math.max(1e-12 * maxDiag, 1e-37);
    const per = choleskyRowsPerBlock(gpu, n)!;
    const blocks: Block[] = [];
    const pan = createTensor(gpu, [n, CHOLESKY_NB], { name: "cholesky.panel" });
    const status = createTensor(gpu, [4], {
      name: "cholesky.status",
      dtype: "u32",
      data: new Uint32Array(4),
    });
    let ok = false;
    try {
      for (let r0 = 0; r0 < n; r0 += per) {
        const r1 = Math.min(n, r0 + per);
        // The upper triangle is never read: NaN there makes a kernel that did read it fail the tests.
        const data = new Float32Array((r1 - r0) * n).fill(NaN);
        for (let i = r0; i < r1; i++) {
          for (let j = 0; j <= i; j++) {
            const v = a[i * n + j];
            if (!Number.isFinite(v)) throw new GpuError(`GPU Cholesky: non-finite value at (${i}, ${j})`);
            data[(i - r0) * n + j] = v;
          }
        }
        blocks.push({
          r0,
          r1,
          t: createTensor(gpu, [r1 - r0, n], { name: `cholesky.L.${blocks.length}`, data }),
        });
      }
      poison(pan); // every panel element read is written first
      const f = new GpuCholesky(gpu, n, blocks);
      await f.run(pan, status, tiny);
      const st = new Uint32Array((await readTensor(status)).buffer)[0];
      if (st !== 0) throw new CholeskyPivotError(st - 1, n);
      ok = true;
      return f;
    } finally {
      pan.destroy();
      status.destroy();
      if (!ok) { for (const b of blocks) b.t.destroy(); }
    }
  }

  private blockOf(row: number): Block {
    return this.blocks.find((b) => row >= b.r0 && row < b.r1)!;
  }

  private params(k: number, nb: number, b: Block, m = 0, tiny = 0): { uniform: ArrayBuffer } {
    return { uniform: uniforms(this.n, k, nb, b.r0, b.r1, m, { f: tiny }, 0) };
  }

  private async run(pan: GpuTensor, status: GpuTensor, tiny: number): Promise<void> {
    const { gpu, n } = this;
    for (let k = 0; k < n; k += CHOLESKY_NB) {
      const nb = Math.min(CHOLESKY_NB, n - k);
      const d = this.blockOf(k);
      await launch(gpu, "cholesky", "factor_diag", [this.params(k, nb, d, 0, tiny), d.t, pan, status], [1]);
      const below = this.blocks.filter((b) => b.r1 > k + nb);
      for (const b of below) {
        const rows = b.r1 - Math.max(b.r0, k + nb);
        await launch(
          gpu,
          "cholesky",
          "trsm",
          [this.params(k, nb, b), b.t, pan],
          grid(gpu, Math.ceil(rows / 64)),
        );
      }
      for (const b of below) {
        const rows = b.r1 - Math.max(b.r0, k + nb);
        const cols = n - (k + nb);
        await launch(gpu, "cholesky_syrk", "syrk", [this.params(k, nb, b), b.t, pan], [
          Math.ceil(cols / 64),
          Math.ceil(rows / 64),
        ]);
      }
    }
  }

  /**
   * X = (L Lᵀ)⁻¹ B in float32 for B row-major [n, m] (m right-hand sides as columns). Throws
   * {@link GpuError} when B [n, m] is over one storage binding.
   */
  async solve(b: ArrayLike<number>, m: number): Promise<Float32Array> {
    const { gpu, n } = this;
    if (b.length !== n * m) throw new RangeError(`GpuCholesky.solve: ${b.length} values for [${n}, ${m}]`);
    if (n * m * 4 > gpu.bindingLimit) {
      throw new GpuError(
        `GPU Cholesky solve: B [${n}, ${m}] is over the storage-binding limit of ${gpu.bindingLimit} bytes`,
      );
    }
    if (m === 0 || n === 0) return new Float32Array(n * m);
    const y = createTensor(gpu, [n, m], { name: "cholesky.y", data: Float32Array.from(b) });
    try {
      const cg = grid(gpu, Math.ceil(m / 64));
      for (let k = 0; k < n; k += CHOLESKY_NB) {
        const nb = Math.min(CHOLESKY_NB, n - k);
        const d = this.blockOf(k);
        await launch(gpu, "cholesky", "fwd_diag", [this.params(k, nb, d, m), d.t, y], cg);
        for (const bl of this.blocks) {
          if (bl.r1 <= k + nb) continue;
          const rows = bl.r1 - Math.max(bl.r0, k + nb);
          await launch(
            gpu,
            "cholesky",
            "fwd_update",
            [this.params(k, nb, bl, m), bl.t, y],
            grid(gpu, Math.ceil(rows * m / 64)),
          );
        }
      }
      const last = Math.floor((n - 1) / CHOLESKY_NB) * CHOLESKY_NB;
      for (let k = last; k >= 0; k -= CHOLESKY_NB) {
        const nb = Math.min(CHOLESKY_NB, n - k);
        const d = this.blockOf(k);
        await launch(gpu, "cholesky", "bwd_diag", [this.params(k, nb, d, m), d.t, y], cg);
        if (k > 0) {
          await launch(
            gpu,
            "cholesky",
            "bwd_update",
            [this.params(k, nb, d, m), d.t, y],
            grid(gpu, Math.ceil(k * m / 64)),
          );
        }
      }
      return await readTensor(y);
    } finally {
      y.destroy();
    }
  }

  /** The factor's lower triangle as row-major [n, n] float32 (zeros above the diagonal; for tests). */
  async readFactor(): Promise<Float32Array> {
    const { n } = this;
    const out = new Float32Array(n * n);
    for (const b of this.blocks) {
      const d = await readTensor(b.t);
      for (let i = b.r0; i < b.r1; i++) {
        for (let j = 0; j <= i; j++) out[i * n + j] = d[(i - b.r0) * n + j];
      }
    }
    return out;
  }

  /** Frees the factor's buffers. */
  destroy(): void {
    for (const b of this.blocks) b.t.destroy();
    this.blocks.length = 0;
  }
}

/** Options of {@link solveSpdRefined}. */
export interface RefineOptions {
  /** Refinement steps at most (default 30). */
  maxIterations?: number;
  /** Stop when every column's ‖correction‖∞ ≤ tol · ‖x‖∞ (default 1e-14). */
  tol?: number;
  /**
   * The result counts as converged when the last correction is at most this (default 1e-9): with the
   * float64 residual the attainable error is about κ · 2⁻⁵², so `tol` itself is out of reach for κ ≳ 1e2.
   */
  accept?: number;
}

/** Result of {@link solveSpdRefined}. */
export interface RefinedSolve {
  /** X [n, m] row-major, float64. */
  x: Float64Array;
  /** Refinement steps taken (each one host residual and one GPU solve). */
  iterations: number;
  /** Largest per-column ‖last correction‖∞ / ‖x‖∞: an estimate of the remaining relative error. */
  correction: number;
  /** True when `correction` reached `accept`. */
  converged: boolean;
}

/**
 * X = A⁻¹ B for the float64 SPD `a` [n, n] factored on the GPU as `f` (from the float32 rounding of the
 * same `a`), B row-major [n, m]: the float32 solve, then refinement x += solve(B − A x) with the residual
 * in float64 on the host, scaled per column to unit ∞-norm before it goes to the GPU (float32 range).
 * Stops at `tol`, after `maxIterations`, or when a correction is over 0.9 of the previous one (the float64
 * floor κ · 2⁻⁵² reached, or κ too large for the float32 factor to contract at all); `converged` says
 * whether the last correction is within `accept`.
 */
export async function solveSpdRefined(
  f: GpuCholesky,
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  m: number,
  opts: RefineOptions = {},
): Promise<RefinedSolve> {
  const n = f.n;
  const maxIt = opts.maxIterations ?? 30, tol = opts.tol ?? 1e-14, accept = opts.accept ?? 1e-9;
  const x = Float64Array.from(await f.solve(b, m));
  const r = new Float64Array(n * m), scale = new Float64Array(m);
  let prev = Infinity, correction = Infinity, it = 0;
  const colMax = (v: ArrayLike<number>, c: number) => {
    let s = 0;
    for (let i = 0; i < n; i++) s = Math.max(s, Math.abs(v[i * m + c]));
    return s;
  };
  if (x.some((v) => !Number.isFinite(v))) return { x, iterations: 0, correction: Infinity, converged: false };
  for (; it < maxIt; it++) {
    // r = B − A x in float64 (row i of A against the columns of x).
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < m; c++) r[i * m + c] = b[i * m + c];
      const ro = i * n;
      for (let k = 0; k < n; k++) {
        const aik = a[ro + k];
        if (aik === 0) continue;
        const xo = k * m;
        for (let c = 0; c < m; c++) r[i * m + c] -= aik * x[xo + c];
      }
    }
    for (let c = 0; c < m; c++) scale[c] = colMax(r, c) || 1;
    const rs = new Float32Array(n * m);
    for (let i = 0; i < n; i++) for (let c = 0; c < m; c++) rs[i * m + c] = r[i * m + c] / scale[c];
    const d = await f.solve(rs, m);
    correction = 0;
    for (let c = 0; c < m; c++) {
      let dn = 0;
      for (let i = 0; i < n; i++) {
        const dv = d[i * m + c] * scale[c];
        x[i * m + c] += dv;
        dn = Math.max(dn, Math.abs(dv));
      }
      const xn = colMax(x, c);
      correction = Math.max(correction, xn > 0 ? dn / xn : dn);
    }
    if (!Number.isFinite(correction)) {
      return { x, iterations: it + 1, correction: Infinity, converged: false };
    }
    if (correction <= tol || (it > 0 && correction > 0.9 * prev)) {
      return { x, iterations: it + 1, correction, converged: correction <= accept };
    }
    prev = correction;
  }
  return { x, iterations: it, correction, converged: correction <= accept };
}

/**
 * Where the edit updates' symmetric positive definite solves run (ROME's C⁻¹k, MEMIT's and EMMET's
 * (λC + KKᵀ)⁻¹K): the float64 host Cholesky (src/edit/linalg.ts, the default on CPU adapters and below
 * {@link SOLVE_GPU_MIN}) or the GPU's float32 blocked Cholesky with float64 iterative refinement
 * (src/gpu/cholesky.ts). The GPU path falls back to the host, with a warning, when the factorisation meets
 * a non-positive pivot, the matrix cannot be held, or the refinement does not converge; its result then
 * is exactly the host's.
 */
import type { Gpu } from "../gpu/device.ts";
import { choleskyFits, GpuCholesky, solveSpdRefined } from "../gpu/cholesky.ts";
import { isCpuAdapter } from "../model/memory.ts";
import { type Cholesky, choleskyRegularized, choleskySolve } from "./linalg.ts";

/** The `solve_backend` hparam: "host" (float64), "gpu" (float32 + refinement, host fall-back), "auto". */
export type SolveBackend = "auto" | "gpu" | "host";

/**
 * Smallest n for which "auto" solves on a hardware GPU. A guess, not measured on one (no hardware GPU in
 * the sessions so far): the host's float64 Cholesky costs n³/3 multiply-adds in single-threaded JS (32–39 s
 * at n = 3072 on the shared 2-core test machine), the GPU's is dispatch-bound below ~1000 (3n/32
 * dispatches per factor, 4n/32 per solve, and 3–7 solves per refined solve). On llvmpipe the two cross
 * near n = 1000 (benchmarks/solve_bench.ts), but "auto" keeps CPU adapters on the host regardless.
 */
export const SOLVE_GPU_MIN = 1024;

/**
 * Where `backend` solves an [n, n] system with `columns` right-hand sides in all: "gpu" on the GPU;
 * "auto" on the GPU from `gpuMin` rows unless the adapter computes on the CPU (llvmpipe and the like: the
 * task keeps their default results exactly the host's; benchmarks/solve_bench.ts measures both) or there
 * are more than n / 32 columns: each refinement step computes the float64 residual on the host (2n² per
 * column), so with many columns the refinement costs more than the host's own factor (n³/3) and solves;
 * otherwise, and without a GPU, the host.
 */
export function resolveSolveBackend(
  backend: SolveBackend,
  n: number,
  gpu: Gpu | undefined,
  gpuMin = SOLVE_GPU_MIN,
  columns = 1,
): "gpu" | "host" {
  if (!gpu || backend === "host") return "host";
  if (backend === "gpu") return "gpu";
  return n >= gpuMin && columns * 32 <= n && !isCpuAdapter(gpu) ? "gpu" : "host";
}

/** Options of {@link factorSpd}. */
export interface SpdOptions {
  backend?: SolveBackend;
  gpu?: Gpu;
  /** Smallest n for which "auto" uses the GPU (default {@link SOLVE_GPU_MIN}). */
  gpuMin?: number;
  /** Right-hand-side columns the factor will be used for in all (default 1; see {@link resolveSolveBackend}). */
  columns?: number;
  /** Names the matrix in warnings (e.g. "layer 3: λC + KKᵀ"). */
  label?: string;
  warn?: (message: string) => void;
  /** The warning for a host factor that needed the ridge λ·I (src/edit/linalg.ts `choleskyRegularized`). */
  regularized?: (lambda: number) => string;
}

/** A factored SPD matrix: solves with it, and how they ran. */
export interface SpdFactor {
  readonly n: number;
  /** Ridge λ the host factor added (0 when none, and on the GPU path). */
  readonly lambda: number;
  /** X = A⁻¹ B for B row-major [n, m]. */
  solve(b: Float64Array, m: number): Promise<Float64Array>;
  /**
   * `{ solve: {...} }` for the result's per-layer / statistics info when the GPU was asked for (backend,
   * refinement steps, last correction, fall-back); `{}` on the host path, so its output is unchanged.
   */
  info(): Record<string, unknown>;
  /** Frees the GPU factor, if any. */
  destroy(): void;
}

function hostFactor(a: Float64Array, n: number, opts: SpdOptions): Cholesky {
  const ch = choleskyRegularized(a, n);
  if (ch.lambda > 0 && opts.regularized) opts.warn?.(opts.regularized(ch.lambda));
  return ch;
}

class HostSpd implements SpdFactor {
  constructor(readonly n: number, private readonly ch: Cholesky) {}
  get lambda(): number {
    return this.ch.lambda;
  }
  solve(b: Float64Array, m: number): Promise<Float64Array> {
    return Promise.resolve(choleskySolve(this.ch, b, m));
  }
  info(): Record<string, unknown> {
    return {};
  }
  destroy(): void {}
}

class GpuSpd implements SpdFactor {
  private host: Cholesky | undefined;
  private steps = 0;
  private correction = 0;
  private fallback: string | undefined;
  constructor(
    readonly n: number,
    private readonly a: Float64Array,
    private f: GpuCholesky | undefined,
    private readonly opts: SpdOptions,
    fallback?: string,
  ) {
    this.fallback = fallback;
  }
  get lambda(): number {
    return this.host?.lambda ?? 0;
  }
  /** Factors on the host now (once): after a GPU failure, so that `lambda` and the ridge warning come at once. */
  ensureHost(): Cholesky {
    return this.host ??= hostFactor(this.a, this.n, this.opts);
  }
  private hostSolve(b: Float64Array, m: number): Float64Array {
    return choleskySolve(this.ensureHost(), b, m);
  }
  async solve(b: Float64Array, m: number): Promise<Float64Array> {
    const { n } = this;
    if (!this.f) return this.hostSolve(b, m);
    // Right-hand sides in column groups that fit one binding.
    const per = Math.max(1, Math.min(m, Math.floor(this.f.gpu.bindingLimit / (4 * Math.max(1, n)))));
    const x = new Float64Array(n * m);
    for (let c0 = 0; c0 < m; c0 += per) {
      const w = Math.min(per, m - c0);
      const bc = new Float64Array(n * w);
      for (let i = 0; i < n; i++) for (let c = 0; c < w; c++) bc[i * w + c] = b[i * m + c0 + c];
      const s = await solveSpdRefined(this.f, this.a, bc, w);
      this.steps = Math.max(this.steps, s.iterations);
      this.correction = Math.max(this.correction, s.correction);
      if (!s.converged) {
        this.fallback = `the refinement did not converge (relative correction ${
          s.correction.toExponential(2)
        } after ${s.iterations} steps: A is too ill-conditioned for a float32 factor)`;
        this.opts.warn?.(`${this.opts.label ?? "matrix"}: ${this.fallback}; solving on the host (float64)`);
        this.destroy();
        return this.hostSolve(b, m);
      }
      for (let i = 0; i < n; i++) for (let c = 0; c < w; c++) x[i * m + c0 + c] = s.x[i * w + c];
    }
    return x;
  }
  info(): Record<string, unknown> {
    return {
      solve: {
        backend: "gpu",
        method: this.fallback ? "host-f64" : "gpu-cholesky-f32-refined",
        refinement_steps: this.steps,
        correction: this.correction,
        ...(this.fallback ? { fallback: this.fallback } : {}),
      },
    };
  }
  destroy(): void {
    this.f?.destroy();
    this.f = undefined;
  }
}

/**
 * Factors the symmetric `a` [n, n] (float64, row-major; kept by reference for the GPU path's refinement,
 * so the caller must not change it while the factor lives) on the backend {@link resolveSolveBackend}
 * picks. The host path is exactly {@link choleskyRegularized} + {@link choleskySolve}, warning through
 * `opts.regularized` when a ridge was needed. The GPU path warns and uses the host when the matrix does
 * not fit, is not positive definite in float32, or a solve's refinement does not converge.
 */
export async function factorSpd(a: Float64Array, n: number, opts: SpdOptions = {}): Promise<SpdFactor> {
  const where = resolveSolveBackend(opts.backend ?? "auto", n, opts.gpu, opts.gpuMin, opts.columns);
  if (where === "host") return new HostSpd(n, hostFactor(a, n, opts));
  const gpu = opts.gpu!, label = opts.label ?? "matrix";
  const fail = (why: string) => {
    opts.warn?.(`${label}: ${why}; solving on the host (float64)`);
    const g = new GpuSpd(n, a, undefined, opts, why);
    g.ensureHost();
    return g;
  };
  if (!choleskyFits(gpu, n)) {
    return fail(
      `${n}×${n} cannot be split into GPU blocks within the binding limit of ${gpu.bindingLimit} bytes`,
    );
  }
  try {
    return new GpuSpd(n, a, await GpuCholesky.factor(gpu, a, n), opts);
  } catch (e) {
    return fail(`the GPU Cholesky failed (${(e as Error).message})`);
  }
}

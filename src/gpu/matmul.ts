/**
 * Launchers for the matrix-multiply kernels: the register-blocked batched GEMM every linear layer,
 * the lm-head and the backward passes use (`kernels/matmul.wgsl`), the shared-memory baseline it is
 * benchmarked against (`kernels/matmul_naive.wgsl`), and {@link measureMatmul} for `engram bench`.
 */
import { ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { type Binding, launch, uniforms } from "./pipeline.ts";
import { matmulUbo, uboFits, uboWorthIt } from "./matmul_ubo.ts";
import {
  createTensor,
  elementWindow,
  type GpuTensor,
  isPacked16,
  w16For,
  windowSlackElems,
} from "./tensor.ts";

/** Options of {@link matmul}. Sizes are element counts; strides are in elements. */
export interface MatmulOptions {
  /** Rows of op(A) and of out. */
  M: number;
  /** Columns of op(B) and of out. */
  N: number;
  /** Inner dimension: columns of op(A), rows of op(B). */
  K: number;
  /** Number of independent products (default 1). */
  batch?: number;
  /** A is stored [K,M] and used transposed (default false: stored [M,K]). */
  transA?: boolean;
  /** B is stored [N,K] and used transposed (default false: stored [K,N]), e.g. logits = X @ wte^T. */
  transB?: boolean;
  /** Length-N vector added to every row of every batch (not scaled by alpha). */
  bias?: GpuTensor;
  /** Scale of the product (default 1). */
  alpha?: number;
  /** Add the result to out's current contents instead of overwriting them (default false). */
  accumulate?: boolean;
  /** Elements between consecutive batches of A (default M*K, dense). */
  strideA?: number;
  /** Elements between consecutive batches of B (default K*N; 0 shares one B across the batch). */
  strideB?: number;
  /** Elements between consecutive batches of out (default M*N). */
  strideOut?: number;
  /**
   * Kernel variant by name ({@link MATMUL_VARIANTS}); default: the one the autotune chose for this
   * adapter ({@link ./matmul_tune.ts}). Every variant computes the same product; benchmarks and tests
   * pick one to compare them.
   */
  variant?: string;
}

/**
 * A matmul kernel variant: the register-blocked 4x4 kernel (`kernels/matmul.wgsl`, workgroup 16x4, or
 * 64x1 for a single row of tiles) or a lane-uniform one (`kernels/matmul_lanes.wgsl`: `wg` lanes share
 * 4*`rv` rows, each owns `cn` columns).
 */
export type MatmulVariant =
  | { name: string; kernel: "matmul" }
  | { name: string; kernel: "matmul_wide"; rm: number; rn: number; wgX: number; wgY: number }
  | { name: string; kernel: "matmul_lanes"; wg: number; rv: number; cn: number }
  | { name: string; kernel: "matmul_ubo"; fallback: string };

/** Every variant the autotune chooses from; the first is the default when no tune has run. */
export const MATMUL_VARIANTS: readonly MatmulVariant[] = [
  { name: "blocked4x4", kernel: "matmul" },
  { name: "wide8x8", kernel: "matmul_wide", rm: 2, rn: 2, wgX: 16, wgY: 4 },
  { name: "wide8x8wg64", kernel: "matmul_wide", rm: 2, rn: 2, wgX: 64, wgY: 1 },
  { name: "wide4x8", kernel: "matmul_wide", rm: 1, rn: 2, wgX: 16, wgY: 4 },
  { name: "wide8x16", kernel: "matmul_wide", rm: 2, rn: 4, wgX: 8, wgY: 8 },
  { name: "wide16x8", kernel: "matmul_wide", rm: 4, rn: 2, wgX: 8, wgY: 8 },
  { name: "wide16x16", kernel: "matmul_wide", rm: 4, rn: 4, wgX: 8, wgY: 8 },
  { name: "lanes32r8c2", kernel: "matmul_lanes", wg: 32, rv: 2, cn: 2 },
  { name: "ubo8x16", kernel: "matmul_ubo", fallback: "wide16x16" },
];

/** The variant named `name`; ShapeError naming the field for an unknown one. */
export function matmulVariant(name: string): MatmulVariant {
  const v = MATMUL_VARIANTS.find((x) => x.name === name);
  if (!v) {
    throw new ShapeError(
      `matmul variant '${name}' is not one of ${MATMUL_VARIANTS.map((x) => x.name).join(", ")}`,
      { field: "variant" },
    );
  }
  return v;
}

/** Per-Gpu choice of variant by transpose combination, set by the autotune (matmul_tune.ts). */
const chosen = new WeakMap<Gpu, Map<string, MatmulVariant>>();

/** Key of a transpose combination in the tuned choices: "nn", "nt", "tn", "tt". */
export function transKey(transA: boolean, transB: boolean): string {
  return (transA ? "t" : "n") + (transB ? "t" : "n");
}

/**
 * Sets the variant {@link matmul} uses on `gpu` for one transpose combination ({@link transKey}); the
 * autotune calls it. `undefined` restores the default.
 */
export function setMatmulVariant(gpu: Gpu, key: string, name: string | undefined): void {
  let m = chosen.get(gpu);
  if (!m) chosen.set(gpu, m = new Map());
  // An explicit choice (or the tune's own) stands: no tune runs for this combination afterwards.
  tunedKeys(gpu).set(key, Promise.resolve());
  if (name === undefined) m.delete(key);
  else m.set(key, matmulVariant(name));
}

const tuned = new WeakMap<Gpu, Map<string, Promise<unknown>>>();

function tunedKeys(gpu: Gpu): Map<string, Promise<unknown>> {
  let m = tuned.get(gpu);
  if (!m) tuned.set(gpu, m = new Map());
  return m;
}

/** ENGRAM_MATMUL_TUNE ("off", "fresh" or unset); unset without permission to read the environment. */
export function tuneMode(): string | undefined {
  try {
    return Deno.env.get("ENGRAM_MATMUL_TUNE");
  } catch {
    return undefined;
  }
}

async function pickVariant(gpu: Gpu, opts: MatmulOptions, transA: boolean, transB: boolean) {
  if (opts.variant !== undefined) return matmulVariant(opts.variant);
  const key = transKey(transA, transB);
  const keys = tunedKeys(gpu);
  let t = keys.get(key);
  if (!t) {
    // Each transpose combination is tuned on its first product without an explicit variant (the
    // tune's own products name theirs), so a process pays only for the combinations it uses. Loaded
    // lazily: matmul_tune.ts imports this module. A tune that fails (it never should) leaves the
    // default variant: products must not fail for it.
    t = tuneMode() === "off"
      ? Promise.resolve()
      : import("./matmul_tune.ts").then((m) => m.autotuneMatmul(gpu, { keys: [key] })).catch(() => undefined);
    keys.set(key, t);
  }
  await t;
  return chosen.get(gpu)?.get(key) ?? MATMUL_VARIANTS[0];
}

/** The variant names {@link matmul} uses on `gpu` per transpose combination (after the tune). */
export function chosenVariants(gpu: Gpu): Record<string, string> {
  const r: Record<string, string> = {};
  for (const k of ["nn", "nt", "tn", "tt"]) r[k] = chosen.get(gpu)?.get(k)?.name ?? MATMUL_VARIANTS[0].name;
  return r;
}

/** Override constants and output rows x columns per workgroup of `v` for an mb x nb product. */
function variantLaunch(
  v: MatmulVariant,
  mb: number,
  base: Record<string, number>,
  vec: { A: boolean; B: boolean },
  shape: { N: number; K: number; batch: number },
): { kernel: string; constants: Record<string, number>; rows: number; cols: number } {
  if (v.kernel === "matmul") {
    // A single row of tiles (decode steps, lm-head for the last token) would leave 3/4 of a 16x4
    // workgroup idle; lay the whole workgroup along N instead.
    const [wgX, wgY] = Math.ceil(mb / TILE) === 1 ? [64, 1] : [16, 4];
    return {
      kernel: "matmul",
      constants: { ...base, VEC_A: Number(vec.A), VEC_B: Number(vec.B), WG_X: wgX, WG_Y: wgY },
      rows: TILE * wgY,
      cols: TILE * wgX,
    };
  }
  if (v.kernel === "matmul_wide") {
    // Aligned operands only (kernels/matmul_wide.wgsl's preconditions); otherwise the 4x4 kernel.
    const ok = vec.A && vec.B && shape.K % 4 === 0 && (!base.TRANS_A || mb >= 4) &&
      (base.TRANS_B || shape.N >= 4);
    if (!ok) return variantLaunch(MATMUL_VARIANTS[0], mb, base, vec, shape);
    // A workgroup wider than the product (the world model's N = 96 against 64 x 8 columns) would idle
    // most of its lanes: narrow it to the columns there are and stack the rest along M.
    let wgX = v.wgX;
    while (wgX > 1 && (wgX / 2) * 4 * v.rn >= shape.N) wgX /= 2;
    let wgY = (v.wgX * v.wgY) / wgX;
    // A workgroup runs on one CPU thread: keep at least 8 of them (down to one 8-lane vector each) so
    // small products still spread over the cores.
    const groups = (x: number, y: number) =>
      Math.ceil(shape.N / (4 * v.rn * x)) * Math.ceil(mb / (4 * v.rm * y)) * shape.batch;
    while (wgX * wgY > 8 && groups(wgX, wgY) < 8) {
      if (wgY > 1) wgY /= 2;
      else wgX /= 2;
    }
    return {
      kernel: "matmul_wide",
      constants: { ...base, RM: v.rm, RN: v.rn, WG_X: wgX, WG_Y: wgY },
      rows: 4 * v.rm * wgY,
      cols: 4 * v.rn * wgX,
    };
  }
  // The uniform-window path is a launcher of its own (matmul_ubo.ts); the split path takes its fallback.
  if (v.kernel === "matmul_ubo") return variantLaunch(matmulVariant(v.fallback), mb, base, vec, shape);
  return {
    kernel: "matmul_lanes",
    constants: { ...base, WG: v.wg, RV: v.rv, CN: v.cn },
    rows: 4 * v.rv,
    cols: v.wg * v.cn,
  };
}

/** Outputs per invocation along each axis (the kernel's register tile is TILE x TILE). */
const TILE = 4;

function checkCount(name: string, v: number, allowZero = true): void {
  if (!Number.isInteger(v) || v < 0 || (!allowZero && v === 0) || v > 0xffffffff) {
    throw new ShapeError(`matmul ${name} = ${v} is not a valid size`, { field: name });
  }
}

/** Throws ShapeError unless `t` holds `batch` blocks of `block` elements spaced `stride` apart. */
function checkFits(
  t: GpuTensor,
  role: string,
  batch: number,
  stride: number,
  block: number,
  desc: string,
): void {
  const need = batch === 0 || block === 0 ? 0 : (batch - 1) * stride + block;
  if (need > t.numel) {
    throw new ShapeError(
      `matmul ${role} '${t.name}' has ${t.numel} elements ([${t.shape}]) but ${desc} needs ${need}`,
      { field: t.name },
    );
  }
}

/**
 * out[z] = alpha * op(A[z]) @ op(B[z]) + bias (+ out[z] when `accumulate`), for z in 0..batch-1.
 *
 * Row-major layouts: A is [M,K] (or [K,M] with `transA`), B is [K,N] (or [N,K] with `transB`), out is
 * [M,N]; `bias` is [N] broadcast over rows. Batch z of each operand starts at z * its stride. Tensors
 * may be larger than needed (workspaces) but never smaller: a tensor too small for the requested
 * sizes and strides throws {@link ShapeError} naming it. `out` must not alias A, B or bias.
 * The work is recorded, not waited for; call `gpu.flush()` or read the result.
 *
 * B may be a packed 16-bit tensor (dtype "bf16" or "f16": a weight kept in its file's dtype); the kernels
 * decode it to f32 as they load it and compute in f32, so the result is the f32 product of the decoded
 * values. A, bias and out are f32 (ShapeError otherwise).
 *
 * When every operand fits one storage binding ({@link Gpu.bindingLimit}) this is one dense dispatch
 * (per 65535-workgroup slice). Otherwise each batch is cut into M x N x K blocks whose operands are
 * strided sub-matrices inside binding windows (see {@link planMatmulBlocks}); K blocks after the
 * first accumulate into out, so a K split changes the summation order (rounding only).
 */
export async function matmul(
  gpu: Gpu,
  a: GpuTensor,
  b: GpuTensor,
  out: GpuTensor,
  opts: MatmulOptions,
): Promise<void> {
  const { M, N, K } = opts;
  const batch = opts.batch ?? 1;
  const transA = opts.transA ?? false, transB = opts.transB ?? false;
  const strideA = opts.strideA ?? M * K, strideB = opts.strideB ?? K * N, strideOut = opts.strideOut ?? M * N;
  for (const [n, v] of Object.entries({ M, N, K, batch, strideA, strideB, strideOut })) checkCount(n, v);
  const alpha = opts.alpha ?? 1;
  if (!Number.isFinite(alpha)) {
    throw new ShapeError(`matmul alpha = ${alpha} is not finite`, { field: "alpha" });
  }
  checkFits(a, "A", batch, strideA, M * K, transA ? `[${K},${M}] (transA)` : `[${M},${K}]`);
  checkFits(b, "B", batch, strideB, K * N, transB ? `[${N},${K}] (transB)` : `[${K},${N}]`);
  checkFits(out, "out", batch, strideOut, M * N, `[${M},${N}]`);
  if (opts.bias && opts.bias.numel !== N) {
    throw new ShapeError(`matmul bias '${opts.bias.name}' has shape [${opts.bias.shape}], expected [${N}]`, {
      field: opts.bias.name,
    });
  }
  if (batch > 1 && strideOut < M * N) {
    throw new ShapeError(`matmul strideOut ${strideOut} < M*N = ${M * N}: output batches would overlap`, {
      field: out.name,
    });
  }
  if (out === a || out === b || out === opts.bias) {
    throw new ShapeError(`matmul output '${out.name}' aliases an input`, { field: out.name });
  }
  for (const [role, t] of [["A", a], ["out", out], ["bias", opts.bias]] as const) {
    if (t && isPacked16(t.dtype)) {
      throw new ShapeError(`matmul ${role} '${t.name}' is ${t.dtype}: only B may be a 16-bit tensor`, {
        field: t.name,
      });
    }
  }
  if (M === 0 || N === 0 || batch === 0) return;

  const limit = gpu.bindingLimit;
  const fits = [a, b, out, opts.bias].every((t) => !t || t.buffer.size <= limit);
  if (!fits) return matmulSplit(gpu, a, b, out, opts, batch, strideA, strideB, strideOut, alpha);

  let variant = await pickVariant(gpu, opts, transA, transB);
  if (variant.kernel === "matmul_ubo") {
    // Asked for by name it runs wherever it fits; chosen by the tune, only on weights' shapes where it pays
    // (matmul_ubo.ts: N and K decide, never M, so a row's result does not depend on its batch).
    if (uboFits(gpu, { K }) && (opts.variant !== undefined || uboWorthIt({ N, K }))) {
      const accumulate = Boolean(opts.accumulate);
      const p = {
        M,
        N,
        K,
        batch,
        transA,
        transB,
        strideA,
        strideB,
        strideOut,
        alpha,
        bias: opts.bias,
        accumulate,
      };
      return await matmulUbo(gpu, a, b, out, p);
    }
    variant = matmulVariant(variant.fallback);
  }
  // vec4 loads need the contiguous dimension and every batch base to be 16-byte aligned.
  const vecA = (transA ? M : K) % 4 === 0 && (batch === 1 || strideA % 4 === 0);
  const vecB = (transB ? K : N) % 4 === 0 && (batch === 1 || strideB % 4 === 0);
  const { kernel, constants, rows, cols } = variantLaunch(
    variant,
    M,
    {
      TRANS_A: Number(transA),
      TRANS_B: Number(transB),
      HAS_BIAS: Number(Boolean(opts.bias)),
      ACCUMULATE: Number(Boolean(opts.accumulate)),
      W16: w16For(gpu, b.dtype),
    },
    { A: vecA, B: vecB },
    { N, K, batch },
  );
  // Without a bias the binding must still hold a read-only buffer; A is one that cannot conflict.
  const biasBuf = opts.bias ?? a;
  await dispatchTiles(gpu, kernel, [a, b, biasBuf, out], M, N, batch, rows, cols, constants, (x0, y0, z0) =>
    // The strided fields (lda .. off_bias) are unread without STRIDED.
    uniforms(M, N, K, strideA, strideB, strideOut, x0, y0, z0, { f: alpha }, 0, 0, 0, 0, 0, 0, 0));
}

/**
 * Records the dispatches of one (block of a) product, `rows` x `cols` outputs per workgroup, slicing
 * the grid at the per-dimension limit (offsets in workgroups).
 */
async function dispatchTiles(
  gpu: Gpu,
  kernel: string,
  operands: Binding[],
  M: number,
  N: number,
  batch: number,
  rows: number,
  cols: number,
  constants: Record<string, number>,
  params: (x0: number, y0: number, z0: number) => ArrayBuffer,
): Promise<void> {
  const lim = gpu.device.limits.maxComputeWorkgroupsPerDimension;
  const gx = Math.ceil(N / cols), gy = Math.ceil(M / rows);
  for (let z0 = 0; z0 < batch; z0 += lim) {
    for (let y0 = 0; y0 < gy; y0 += lim) {
      for (let x0 = 0; x0 < gx; x0 += lim) {
        await launch(
          gpu,
          kernel,
          "main",
          [{ uniform: params(x0, y0, z0) }, ...operands],
          [Math.min(lim, gx - x0), Math.min(lim, gy - y0), Math.min(lim, batch - z0)],
          constants,
        );
      }
    }
  }
}

/** Block sizes of a split product: each operand's block spans at most the given element count. */
export interface MatmulBlocks {
  Mb: number;
  Nb: number;
  Kb: number;
}

/** Block length for `count` blocks of `dim`: a multiple of 4 when at least 4 (vec4 loads stay usable). */
function blockLen(dim: number, count: number): number {
  const c = Math.ceil(dim / count);
  return c >= TILE ? Math.min(dim, Math.ceil(c / TILE) * TILE) : c;
}

/**
 * Chooses M, N, K block sizes for a product whose operands exceed one binding: the elements each
 * block of A, B and out spans in its row-major storage (first to last element touched) must be at
 * most `maxSpan`. An operand too large is cut along its slow (row) dimension first: the rows of a
 * block stay whole, so the windows carry little unused data; only when a single row is too long is
 * its fast dimension cut. K is cut only where A or B needs it (rows of B, or columns of A^T).
 */
export function planMatmulBlocks(
  M: number,
  N: number,
  K: number,
  transA: boolean,
  transB: boolean,
  maxSpan: number,
): MatmulBlocks {
  const count = { M: 1, N: 1, K: 1 };
  for (;;) {
    const Mb = blockLen(M, count.M), Nb = blockLen(N, count.N), Kb = blockLen(K, count.K);
    const blk = { M: Mb, N: Nb, K: Kb };
    // [span, slow dimension, fast dimension] of each operand's block.
    const spans: Array<[number, "M" | "N" | "K", "M" | "N" | "K"]> = [
      transA ? [(Kb - 1) * M + Mb, "K", "M"] : [(Mb - 1) * K + Kb, "M", "K"],
      transB ? [(Nb - 1) * K + Kb, "N", "K"] : [(Kb - 1) * N + Nb, "K", "N"],
      [(Mb - 1) * N + Nb, "M", "N"],
    ];
    const over = spans.find(([s]) => s > maxSpan);
    if (!over) return { Mb, Nb, Kb };
    const dim = blk[over[1]] > 1 ? over[1] : over[2];
    // Geometric growth keeps planning fast for huge dimensions and tiny limits.
    count[dim] += Math.max(1, Math.floor(count[dim] / 8));
  }
}

/** {@link matmul} for operands over the binding limit: block by block through windows (STRIDED). */
async function matmulSplit(
  gpu: Gpu,
  a: GpuTensor,
  b: GpuTensor,
  out: GpuTensor,
  opts: MatmulOptions,
  batch: number,
  strideA: number,
  strideB: number,
  strideOut: number,
  alpha: number,
): Promise<void> {
  const { M, N, K } = opts;
  const transA = opts.transA ?? false, transB = opts.transB ?? false;
  const lda = transA ? M : K, ldb = transB ? K : N, ldo = N;
  const { Mb, Nb, Kb } = planMatmulBlocks(M, N, K, transA, transB, windowSlackElems(gpu));
  // The blocks run the storage kernels (a uniform-window variant takes its fallback in variantLaunch).
  const variant = await pickVariant(gpu, opts, transA, transB);
  for (let z = 0; z < batch; z++) {
    const zA = z * strideA, zB = z * strideB, zO = z * strideOut;
    for (let m0 = 0; m0 < M; m0 += Mb) {
      const mb = Math.min(Mb, M - m0);
      for (let n0 = 0; n0 < N; n0 += Nb) {
        const nb = Math.min(Nb, N - n0);
        // A zero-K product still writes bias (or keeps out when accumulating): one pass with kb = 0.
        for (let k0 = 0; k0 < K || (K === 0 && k0 === 0); k0 += Math.max(Kb, 1)) {
          const kb = Math.min(Kb, K - k0);
          const first = k0 === 0;
          // First and one-past-last element of each block as stored (a kb = 0 block reads nothing
          // but still needs a valid window).
          const wa = transA
            ? elementWindow(a, zA + k0 * M + m0, zA + (k0 + Math.max(0, kb - 1)) * M + m0 + mb)
            : elementWindow(a, zA + m0 * K + k0, zA + (m0 + mb - 1) * K + k0 + Math.max(kb, 1));
          const wb = transB
            ? elementWindow(b, zB + n0 * K + k0, zB + (n0 + nb - 1) * K + k0 + Math.max(kb, 1))
            : elementWindow(b, zB + k0 * N + n0, zB + (k0 + Math.max(0, kb - 1)) * N + n0 + nb);
          const wo = elementWindow(out, zO + m0 * N + n0, zO + (m0 + mb - 1) * N + n0 + nb);
          const hasBias = Boolean(opts.bias) && first;
          const wbias = hasBias ? elementWindow(opts.bias!, n0, n0 + nb) : wa;
          const vecA = (!transA || mb % 4 === 0) && lda % 4 === 0 && wa.base % 4 === 0;
          const vecB = (transB || nb % 4 === 0) && ldb % 4 === 0 && wb.base % 4 === 0;
          const { kernel, constants, rows, cols } = variantLaunch(
            variant,
            mb,
            {
              TRANS_A: Number(transA),
              TRANS_B: Number(transB),
              HAS_BIAS: Number(hasBias),
              ACCUMULATE: Number(!first || Boolean(opts.accumulate)),
              STRIDED: 1,
              W16: w16For(gpu, b.dtype),
            },
            { A: vecA, B: vecB },
            { N: nb, K: kb, batch: 1 },
          );
          await dispatchTiles(
            gpu,
            kernel,
            [wa.window, wb.window, wbias.window, wo.window],
            mb,
            nb,
            1,
            rows,
            cols,
            constants,
            (x0, y0) =>
              uniforms(
                mb,
                nb,
                kb,
                0,
                0,
                0,
                x0,
                y0,
                0,
                { f: alpha },
                lda,
                ldb,
                ldo,
                wa.base,
                wb.base,
                wo.base,
                wbias.base,
              ),
          );
        }
      }
    }
  }
}

/**
 * out = A @ B with the classic 16x16 shared-memory tiled kernel (A [M,K], B [K,N], out [M,N],
 * row-major, no batch/transpose/bias). The benchmark baseline for {@link matmul}; not for model use.
 */
export async function matmulNaive(
  gpu: Gpu,
  a: GpuTensor,
  b: GpuTensor,
  out: GpuTensor,
  opts: { M: number; N: number; K: number },
): Promise<void> {
  const { M, N, K } = opts;
  for (const [n, v] of Object.entries({ M, N, K })) checkCount(n, v);
  for (const t of [a, b, out]) {
    if (isPacked16(t.dtype)) {
      throw new ShapeError(`matmulNaive reads f32 only, '${t.name}' is ${t.dtype}`, { field: t.name });
    }
  }
  checkFits(a, "A", 1, 0, M * K, `[${M},${K}]`);
  checkFits(b, "B", 1, 0, K * N, `[${K},${N}]`);
  checkFits(out, "out", 1, 0, M * N, `[${M},${N}]`);
  if (M === 0 || N === 0) return;
  const gx = Math.ceil(N / 16), gy = Math.ceil(M / 16);
  const lim = gpu.device.limits.maxComputeWorkgroupsPerDimension;
  if (gx > lim || gy > lim) {
    throw new ShapeError(`matmulNaive [${M},${N}] needs more than ${lim} workgroups per dimension`, {
      field: out.name,
    });
  }
  await launch(gpu, "matmul_naive", "main", [{ uniform: uniforms(M, N, K) }, a, b, out], [gx, gy, 1]);
}

/** Floating-point operations of one M x N x K product (a multiply and an add per term). */
export function matmulFlops(M: number, N: number, K: number): number {
  return 2 * M * N * K;
}

/** One {@link measureMatmul} row: throughput of the blocked and naive kernels on one shape. */
export interface MatmulMeasurement {
  /** [M, N, K]. */
  shape: [number, number, number];
  /** Mean wall time per blocked call, ms (calls recorded back to back, then one awaited flush). */
  ms: number;
  /** Calls recorded per flush for this shape. */
  callsPerFlush: number;
  /** Mean wall time per naive call, ms. */
  naiveMs: number;
  /** Blocked kernel, 1e9 FLOP/s ({@link matmulFlops} / time). */
  gflops: number;
  /** Naive shared-memory kernel, 1e9 FLOP/s. */
  naiveGflops: number;
  /** gflops / naiveGflops. */
  ratio: number;
}

/**
 * Times {@link matmul} and {@link matmulNaive} on each [M, N, K] shape with deterministic inputs:
 * one warm-up flush (pipeline compilation), then `iters` rounds of `callsPerFlush` calls followed
 * by an awaited `gpu.flush()`. Several calls per flush amortise submission latency (~10 ms per
 * flush on llvmpipe), so the figures measure the kernels rather than the queue; by default small
 * shapes get more calls per flush (about 64 MFLOP per flush, 2 to 16 calls).
 */
export async function measureMatmul(
  gpu: Gpu,
  shapes: Array<[number, number, number]>,
  iters = 2,
  callsPerFlush?: number,
): Promise<MatmulMeasurement[]> {
  const results: MatmulMeasurement[] = [];
  for (const [M, N, K] of shapes) {
    const calls = callsPerFlush ?? Math.min(16, Math.max(2, Math.ceil(64e6 / matmulFlops(M, N, K))));
    const fill = (n: number, s: number) => {
      const d = new Float32Array(n);
      for (let i = 0; i < n; i++) d[i] = Math.sin(i * s) * 0.5;
      return d;
    };
    const a = createTensor(gpu, [M, K], { name: "bench.a", data: fill(M * K, 0.7368) });
    const b = createTensor(gpu, [K, N], { name: "bench.b", data: fill(K * N, 1.3137) });
    const out = createTensor(gpu, [M, N], { name: "bench.out" });
    const time = async (run: () => Promise<void>) => {
      await run();
      await gpu.flush();
      const t0 = performance.now();
      for (let i = 0; i < iters; i++) {
        for (let j = 0; j < calls; j++) await run();
        await gpu.flush();
      }
      return (performance.now() - t0) / (iters * calls);
    };
    const ms = await time(() => matmul(gpu, a, b, out, { M, N, K }));
    const naiveMs = await time(() => matmulNaive(gpu, a, b, out, { M, N, K }));
    a.destroy();
    b.destroy();
    out.destroy();
    const flops = matmulFlops(M, N, K);
    const gflops = flops / (ms * 1e6), naiveGflops = flops / (naiveMs * 1e6);
    results.push({
      shape: [M, N, K],
      ms,
      callsPerFlush: calls,
      naiveMs,
      gflops,
      naiveGflops,
      ratio: gflops / naiveGflops,
    });
  }
  await gpu.flush();
  return results;
}

/** Float64 CPU twins of `kernels/rmsnorm.wgsl` and `kernels/rmsnorm_backward.wgsl`. */

/** Row placement, as in the GPU launcher's `RowAddressing` (elements; defaults give dense rows). */
export interface RmsNormRefAddressing {
  offset?: number;
  rowsPerGroup?: number;
  groupStride?: number;
  rowStride?: number;
}

/** Start of each of `rows` rows: offset + floor(i / rowsPerGroup) * groupStride + (i % rowsPerGroup) * rowStride. */
export function rowStarts(rows: number, cols: number, a: RmsNormRefAddressing = {}): number[] {
  const rs = a.rowStride ?? cols;
  const rpg = a.rowsPerGroup ?? rows;
  const gs = a.groupStride ?? rpg * rs;
  const off = a.offset ?? 0;
  return Array.from({ length: rows }, (_, i) => off + Math.floor(i / rpg) * gs + (i % rpg) * rs);
}

/** What {@link rmsNormRef} returns. */
export interface RmsNormRefResult {
  /** `base` (or zeros, length x.length) with the addressed rows overwritten by the normalised rows. */
  out: Float64Array;
  /** Per row rstd = 1 / sqrt(mean square + eps), [rows]. */
  stats: Float64Array;
}

/**
 * HF LlamaRMSNorm in float64: for each row of `x`, `out = weight * (x / sqrt(mean(x^2) + eps))`.
 * Rows are dense [rows, cols] unless `opts.addressing` places them; `opts.base` gives the values of
 * the elements no row covers (default 0).
 */
export function rmsNormRef(
  x: ArrayLike<number>,
  weight: ArrayLike<number>,
  rows: number,
  cols: number,
  eps = 1e-6,
  opts: { addressing?: RmsNormRefAddressing; base?: ArrayLike<number> } = {},
): RmsNormRefResult {
  const out = opts.base ? Float64Array.from(opts.base) : new Float64Array(x.length);
  const stats = new Float64Array(rows);
  rowStarts(rows, cols, opts.addressing).forEach((o, r) => {
    let ms = 0;
    for (let c = 0; c < cols; c++) ms += x[o + c] * x[o + c];
    const rstd = 1 / Math.sqrt(ms / cols + eps);
    for (let c = 0; c < cols; c++) out[o + c] = weight[c] * (x[o + c] * rstd);
    stats[r] = rstd;
  });
  return { out, stats };
}

/** What {@link rmsNormBackwardRef} returns. */
export interface RmsNormBackwardRefResult {
  /** Gradient with respect to x, laid out like x (length x.length; 0 outside the addressed rows). */
  dx: Float64Array;
  /** Gradient with respect to weight, [cols]. */
  dweight: Float64Array;
}

/**
 * Gradients of {@link rmsNormRef} in float64 for upstream `dout` (laid out like x). Recomputes each
 * row's rstd; with xhat = x * rstd and g = dout * weight: `dx = rstd * (g - xhat * mean(g * xhat))`,
 * `dweight[c] = sum_r dout * xhat`.
 */
export function rmsNormBackwardRef(
  dout: ArrayLike<number>,
  x: ArrayLike<number>,
  weight: ArrayLike<number>,
  rows: number,
  cols: number,
  eps = 1e-6,
  addressing?: RmsNormRefAddressing,
): RmsNormBackwardRefResult {
  const dx = new Float64Array(x.length);
  const dweight = new Float64Array(cols);
  for (const o of rowStarts(rows, cols, addressing)) {
    let ms = 0;
    for (let c = 0; c < cols; c++) ms += x[o + c] * x[o + c];
    const rstd = 1 / Math.sqrt(ms / cols + eps);
    let sgx = 0;
    for (let c = 0; c < cols; c++) {
      const xhat = x[o + c] * rstd;
      sgx += dout[o + c] * weight[c] * xhat;
      dweight[c] += dout[o + c] * xhat;
    }
    const mgx = sgx / cols;
    for (let c = 0; c < cols; c++) dx[o + c] = rstd * (dout[o + c] * weight[c] - x[o + c] * rstd * mgx);
  }
  return { dx, dweight };
}

/** Float64 CPU twin of `kernels/embedding_backward.wgsl`. */

/** What {@link embeddingBackwardRef} returns. */
export interface EmbeddingBackwardRefResult {
  /** Token-table gradient, [V * C]. */
  dwte: Float64Array;
  /** Position-table gradient, [P * C] (all 0 without positions). */
  dwpe: Float64Array;
}

/**
 * Gradients of {@link embeddingRef} in float64: `dwte[v] = sum_{t: ids[t] = v} dout[t]` and
 * `dwpe[p] = sum_{t: positions[t] = p} dout[t]`, rows of `dout` [T, C] with T = ids.length. Rows
 * never indexed are 0. With `positions` null/undefined (no learned positions) only dwte is
 * accumulated. Ids and positions must be in range.
 */
export function embeddingBackwardRef(
  dout: ArrayLike<number>,
  ids: ArrayLike<number>,
  positions: ArrayLike<number> | null | undefined,
  V: number,
  P: number,
  C: number,
): EmbeddingBackwardRefResult {
  const dwte = new Float64Array(V * C), dwpe = new Float64Array(P * C);
  for (let t = 0; t < ids.length; t++) {
    const a = ids[t] * C;
    for (let c = 0; c < C; c++) dwte[a + c] += dout[t * C + c];
    if (positions) {
      const b = positions[t] * C;
      for (let c = 0; c < C; c++) dwpe[b + c] += dout[t * C + c];
    }
  }
  return { dwte, dwpe };
}

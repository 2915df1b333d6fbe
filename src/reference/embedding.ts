/** Float64 CPU twin of `kernels/embedding.wgsl`. */

/**
 * `out[t, c] = wte[ids[t], c] + wpe[pos(t), c]` in float64, [T * C], with pos(t) = positions[t] when
 * given, else positionOffset + t. `wte` is [V, C] and `wpe` [P, C], row-major; with `wpe`
 * null/undefined (no learned positions) `out[t, c] = wte[ids[t], c]` and the position options are
 * ignored. Ids and positions must be in range (the twin does not clamp; out-of-range rows would read
 * undefined).
 */
export function embeddingRef(
  ids: ArrayLike<number>,
  wte: ArrayLike<number>,
  wpe: ArrayLike<number> | null | undefined,
  C: number,
  opts: { positionOffset?: number; positions?: ArrayLike<number> } = {},
): Float64Array {
  const T = ids.length;
  const out = new Float64Array(T * C);
  for (let t = 0; t < T; t++) {
    const pos = opts.positions ? opts.positions[t] : (opts.positionOffset ?? 0) + t;
    const a = ids[t] * C, b = pos * C;
    for (let c = 0; c < C; c++) out[t * C + c] = wpe ? wte[a + c] + wpe[b + c] : wte[a + c];
  }
  return out;
}

/** Float64 CPU twin of `kernels/rotary.wgsl`: rotary position embedding on the q and k slots of a qkv buffer. */
import type { RotaryOptions } from "../gpu/rotary.ts";

/**
 * Returns a float64 copy of `qkv` with every q and k head of rows 0..rows-1 rotated: pair i of a head
 * ((x[i], x[i + dim/2]) for `half`, (x[2i], x[2i+1]) for `interleaved`) becomes
 * (a c - b s, b c + a s), c = cos[positions[r] * dim/2 + i], s = ±sin[...] (minus for `inverse`).
 * Everything else is copied unchanged. Throws {@link RangeError} for a position outside the tables.
 */
export function rotaryRef(
  qkv: ArrayLike<number>,
  cos: ArrayLike<number>,
  sin: ArrayLike<number>,
  positions: ArrayLike<number>,
  { rows, layout, dim, style, inverse }: RotaryOptions,
): Float64Array {
  const out = Float64Array.from(qkv);
  const half = dim / 2;
  const nPos = cos.length / half;
  const sign = inverse ? -1 : 1;
  for (let r = 0; r < rows; r++) {
    const p = positions[r];
    if (!(p < nPos)) throw new RangeError(`row ${r}: position ${p} outside the ${nPos}-position tables`);
    const bases: number[] = [];
    for (let h = 0; h < layout.nHead; h++) {
      bases.push(r * layout.rowStride + layout.qOffset + h * layout.qHeadStride);
    }
    for (let g = 0; g < layout.nKvHead; g++) {
      bases.push(r * layout.rowStride + layout.kOffset + g * layout.kvHeadStride);
    }
    for (const base of bases) {
      for (let i = 0; i < half; i++) {
        const ia = style === "half" ? base + i : base + 2 * i;
        const ib = style === "half" ? base + i + half : base + 2 * i + 1;
        const c = cos[p * half + i], s = sign * sin[p * half + i];
        const a = out[ia], b = out[ib];
        out[ia] = a * c - b * s;
        out[ib] = b * c + a * s;
      }
    }
  }
  return out;
}

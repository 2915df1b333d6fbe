/**
 * Float64 twins of the 16-bit weight decoding (kernels/lib/unpack16.wgsl): each pattern's value computed
 * by arithmetic from its sign, exponent and mantissa fields, independently of the bit-shifting decoders
 * (src/gpu/half.ts, src/io/safetensors.ts). The twin of a product with a 16-bit weight is the float64
 * product of these decoded values (src/reference/matmul.ts `matmulRef`).
 */

/** Value of the bf16 pattern `h` (1 sign, 8 exponent, 7 mantissa bits; bias 127). */
export function bf16ValueRef(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 7) & 0xff, m = h & 0x7f;
  if (e === 0xff) return m === 0 ? s * Infinity : NaN;
  if (e === 0) return s * m * 2 ** -133; // subnormal: m/128 * 2^-126
  return s * (1 + m / 128) * 2 ** (e - 127);
}

/** Value of the f16 pattern `h` (1 sign, 5 exponent, 10 mantissa bits; bias 15). */
export function f16ValueRef(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0x1f) return m === 0 ? s * Infinity : NaN;
  if (e === 0) return s * m * 2 ** -24; // subnormal: m/1024 * 2^-14
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Decodes 16-bit patterns of `dtype` to float64 values. */
export function decode16Ref(bits: ArrayLike<number>, dtype: "bf16" | "f16"): Float64Array {
  const f = dtype === "bf16" ? bf16ValueRef : f16ValueRef;
  const out = new Float64Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = f(bits[i]);
  return out;
}

/**
 * Host decoding of 16-bit floats read back from packed GPU tensors (see `DType` in ./tensor.ts). Exact:
 * every bf16 and f16 value is a float32 value. Encoding (rounding float32 to 16 bits) lives with the file
 * formats (src/io/safetensors.ts), which the model layer uses before uploading.
 */

/** The float32 bit pattern of the f16 pattern `h` (subnormals, infinities, NaN payloads kept). */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >> 10) & 0x1f;
  let man = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (man << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (man << 13)) >>> 0;
  if (man === 0) return sign >>> 0;
  // Subnormal: normalise (value man * 2^-24).
  let e = 113;
  while ((man & 0x400) === 0) {
    man <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((man & 0x3ff) << 13)) >>> 0;
}

/** Decodes 16-bit patterns of `dtype` to float32. */
export function decode16(bits: Uint16Array, dtype: "bf16" | "f16"): Float32Array {
  const out = new Float32Array(bits.length);
  const o = new Uint32Array(out.buffer);
  if (dtype === "bf16") { for (let i = 0; i < bits.length; i++) o[i] = bits[i] << 16; }
  else for (let i = 0; i < bits.length; i++) o[i] = f16BitsToF32Bits(bits[i]);
  return out;
}

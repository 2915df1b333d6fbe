/**
 * Writes NumPy `.npy` arrays and `.npz` archives as `numpy.savez` does: a zip of stored (uncompressed)
 * `<name>.npy` entries, format version 1.0 headers padded to a multiple of 64 bytes. Read back by
 * `numpy.load` and by src/io/npz.ts.
 *
 * Dtypes: `<f4`, `<f8`, `<i8` and `<U<n>` (UTF-32 strings, `n` the longest string's code points, at
 * least 1, as numpy picks for `numpy.array(list_of_str)`); shape `[]` is a 0-d array (a scalar).
 */
import { zipSync } from "npm:fflate@0.8.3";

/** One array to write: row-major values of a numeric dtype, or strings for `<U<n>`. */
export type NpyValue =
  | { dtype: "<f4" | "<f8" | "<i8"; shape: number[]; data: ArrayLike<number> }
  | { dtype: "<U"; shape: number[]; strings: string[] };

function header(descr: string, shape: number[]): Uint8Array {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  let h = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // magic (6) + version (2) + length (2) + header + "\n", padded with spaces to a multiple of 64.
  const total = Math.ceil((10 + h.length + 1) / 64) * 64;
  h = h.padEnd(total - 10 - 1, " ") + "\n";
  const out = new Uint8Array(10 + h.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, h.length, true);
  for (let i = 0; i < h.length; i++) out[10 + i] = h.charCodeAt(i);
  return out;
}

/** Encodes one array as an `.npy` file. */
export function encodeNpy(v: NpyValue): Uint8Array {
  const numel = v.shape.reduce((a, b) => a * b, 1);
  let descr: string, body: Uint8Array;
  if (v.dtype === "<U") {
    if (v.strings.length !== numel) {
      throw new RangeError(`${v.strings.length} strings for shape [${v.shape}]`);
    }
    const cps = v.strings.map((s) => Array.from(s, (c) => c.codePointAt(0)!));
    const n = Math.max(1, ...cps.map((c) => c.length));
    descr = `<U${n}`;
    body = new Uint8Array(numel * n * 4);
    const dv = new DataView(body.buffer);
    cps.forEach((c, i) => c.forEach((cp, j) => dv.setUint32((i * n + j) * 4, cp, true)));
  } else {
    if (v.data.length !== numel) throw new RangeError(`${v.data.length} values for shape [${v.shape}]`);
    descr = v.dtype;
    const size = v.dtype === "<f4" ? 4 : 8;
    body = new Uint8Array(numel * size);
    const dv = new DataView(body.buffer);
    for (let i = 0; i < numel; i++) {
      const x = v.data[i];
      if (v.dtype === "<f4") dv.setFloat32(i * 4, x, true);
      else if (v.dtype === "<f8") dv.setFloat64(i * 8, x, true);
      else {
        if (!Number.isSafeInteger(x)) throw new RangeError(`int64 value ${x} is not a safe integer`);
        dv.setBigInt64(i * 8, BigInt(x), true);
      }
    }
  }
  const h = header(descr, v.shape);
  const out = new Uint8Array(h.length + body.length);
  out.set(h);
  out.set(body, h.length);
  return out;
}

/** Encodes named arrays as an `.npz` archive (entries `<name>.npy`, stored, as `numpy.savez`). */
export function encodeNpz(arrays: Record<string, NpyValue>): Uint8Array {
  const files: Record<string, [Uint8Array, { level: 0 }]> = {};
  for (const [name, v] of Object.entries(arrays)) files[`${name}.npy`] = [encodeNpy(v), { level: 0 }];
  return zipSync(files);
}

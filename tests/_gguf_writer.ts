/**
 * A minimal GGUF v3 writer for tests, written from the format description (ggml docs/gguf.md), not from
 * src/io/gguf.ts: little-endian, u64 counts and string lengths, 32-byte alignment of the data section
 * and of every tensor.
 */

/** A metadata value and its GGUF value type. */
export type GgufValue =
  | { u32: number }
  | { i32: number }
  | { f32: number }
  | { bool: boolean }
  | { str: string }
  | { u64: bigint }
  | { strs: string[] }
  | { f32s: number[] }
  | { i32s: number[] };

/** A tensor to write: dims fastest-first (ggml ne), ggml type id, raw data bytes. */
export interface GgufTensorSpec {
  name: string;
  ne: number[];
  type: number;
  data: Uint8Array;
}

const T = { U32: 4, I32: 5, F32: 6, BOOL: 7, STR: 8, ARR: 9, U64: 10 };

class Bytes {
  parts: number[] = [];
  u8(v: number) {
    this.parts.push(v & 0xff);
  }
  u32(v: number) {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    this.parts.push(...b);
  }
  i32(v: number) {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, v, true);
    this.parts.push(...b);
  }
  f32(v: number) {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.parts.push(...b);
  }
  u64(v: bigint | number) {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
    this.parts.push(...b);
  }
  str(s: string) {
    const e = new TextEncoder().encode(s);
    this.u64(e.length);
    for (const x of e) this.parts.push(x);
  }
}

function writeValue(b: Bytes, v: GgufValue): void {
  if ("u32" in v) (b.u32(T.U32), b.u32(v.u32));
  else if ("i32" in v) (b.u32(T.I32), b.i32(v.i32));
  else if ("f32" in v) (b.u32(T.F32), b.f32(v.f32));
  else if ("bool" in v) (b.u32(T.BOOL), b.u8(v.bool ? 1 : 0));
  else if ("str" in v) (b.u32(T.STR), b.str(v.str));
  else if ("u64" in v) (b.u32(T.U64), b.u64(v.u64));
  else if ("strs" in v) {
    b.u32(T.ARR), b.u32(T.STR), b.u64(v.strs.length);
    for (const s of v.strs) b.str(s);
  } else if ("f32s" in v) {
    b.u32(T.ARR), b.u32(T.F32), b.u64(v.f32s.length);
    for (const x of v.f32s) b.f32(x);
  } else {
    b.u32(T.ARR), b.u32(T.I32), b.u64(v.i32s.length);
    for (const x of v.i32s) b.i32(x);
  }
}

/** The bytes of a GGUF v3 file with `metadata` and `tensors`. */
export function buildGguf(metadata: Record<string, GgufValue>, tensors: GgufTensorSpec[]): Uint8Array {
  const b = new Bytes();
  for (const c of "GGUF") b.u8(c.charCodeAt(0));
  b.u32(3);
  b.u64(tensors.length);
  b.u64(Object.keys(metadata).length);
  for (const [k, v] of Object.entries(metadata)) (b.str(k), writeValue(b, v));
  const pad = (n: number) => Math.ceil(n / 32) * 32;
  let off = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    b.str(t.name);
    b.u32(t.ne.length);
    for (const d of t.ne) b.u64(d);
    b.u32(t.type);
    b.u64(off);
    offsets.push(off);
    off = pad(off + t.data.length);
  }
  const dataStart = pad(b.parts.length);
  const out = new Uint8Array(dataStart + off);
  out.set(b.parts);
  tensors.forEach((t, i) => out.set(t.data, dataStart + offsets[i]));
  return out;
}

/** Little-endian float32 bytes of `v`. */
export function f32Bytes(v: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(4 * v.length);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < v.length; i++) dv.setFloat32(4 * i, v[i], true);
  return out;
}

/** Little-endian float16 bytes of `v` (DataView.setFloat16: round to nearest even). */
export function f16Bytes(v: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(2 * v.length);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < v.length; i++) dv.setFloat16(2 * i, v[i], true);
  return out;
}

/** Q8_0 bytes of rows given as per-block f16 scales `d` and int8 quants `q` (32 per block). */
export function q8Bytes(d: number[], q: Int8Array): Uint8Array {
  const out = new Uint8Array(d.length * 34);
  const dv = new DataView(out.buffer);
  for (let b = 0; b < d.length; b++) {
    dv.setFloat16(b * 34, d[b], true);
    for (let j = 0; j < 32; j++) dv.setInt8(b * 34 + 2 + j, q[b * 32 + j]);
  }
  return out;
}

/**
 * NumPy `.npy` arrays and `.npz` archives (a zip of `.npy` files, as `numpy.savez` writes them), read
 * without NumPy. Used to import ROME's prebuilt key statistics (`*_mom2_100000.npz`).
 *
 * Supported: format versions 1, 2 and 3; little-endian dtypes `<f4`, `<f8`, `<i8` (and `|u1`/`|i1`,
 * `<i4`, `<U<n>` strings, which ROME's state dicts use for their `constructor` entry); C or Fortran
 * order (Fortran arrays are returned in row-major order). Anything else is an {@link InputError} naming
 * the file and the archive entry.
 */
import { unzipSync } from "npm:fflate@0.8.3";
import { InputError } from "../errors.ts";

/** A NumPy array, row-major. */
export interface NpyArray {
  /** The `descr` of the header, e.g. "<f4". */
  dtype: string;
  /** Dimensions, outermost first (`[]` for a 0-d array). */
  shape: number[];
  /** Values: Float32Array for "<f4", Float64Array for "<f8", Float64Array of the integers otherwise. */
  data: Float32Array | Float64Array;
  /** For `<U<n>` arrays: the strings (row-major); `data` is then empty. */
  strings?: string[];
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** Bytes per element of the numeric dtypes engram reads. */
const NUMERIC: Record<string, number> = { "<f4": 4, "<f8": 8, "<i8": 8, "<i4": 4, "|u1": 1, "|i1": 1 };

/**
 * Parses one `.npy` file. `where` (file, and entry within an archive) names it in errors.
 */
export function parseNpy(bytes: Uint8Array, where: { file?: string; field?: string } = {}): NpyArray {
  const bad = (msg: string) => new InputError(`not a supported .npy array: ${msg}`, where);
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) throw bad("missing the \\x93NUMPY magic");
  const major = bytes[6];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number, start: number;
  if (major === 1) {
    headerLen = dv.getUint16(8, true);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw bad("truncated header");
    headerLen = dv.getUint32(8, true);
    start = 12;
  } else throw bad(`format version ${major} (supported: 1, 2, 3)`);
  if (start + headerLen > bytes.length) throw bad("truncated header");
  const header = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(
    bytes.subarray(start, start + headerLen),
  );
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw bad(`header is not a {'descr', 'fortran_order', 'shape'} dict: ${header.trim()}`);
  }
  const shape = shapeText.split(",").map((s) => s.trim()).filter((s) => s !== "").map((s) => {
    const n = Number(s.replace(/L$/, ""));
    if (!Number.isInteger(n) || n < 0) throw bad(`shape (${shapeText}) is not a tuple of sizes`);
    return n;
  });
  const numel = shape.reduce((a, b) => a * b, 1);
  const body = bytes.subarray(start + headerLen);
  const str = /^<U(\d+)$/.exec(descr);
  let flat: NpyArray;
  if (str) {
    const n = Number(str[1]);
    if (body.length < numel * n * 4) {
      throw bad(`data has ${body.length} bytes, ${descr}${fmtShape(shape)} needs ${numel * n * 4}`);
    }
    const bdv = new DataView(body.buffer, body.byteOffset, body.byteLength);
    const strings: string[] = [];
    for (let i = 0; i < numel; i++) {
      let s = "";
      for (let j = 0; j < n; j++) {
        const cp = bdv.getUint32((i * n + j) * 4, true);
        if (cp === 0) break;
        s += String.fromCodePoint(cp);
      }
      strings.push(s);
    }
    flat = { dtype: descr, shape, data: new Float64Array(0), strings };
  } else {
    const size = NUMERIC[descr];
    if (size === undefined) {
      throw bad(
        `dtype '${descr}' (supported: ${
          Object.keys(NUMERIC).join(", ")
        }, <U<n>; big-endian and objects are not)`,
      );
    }
    if (body.length < numel * size) {
      throw bad(`data has ${body.length} bytes, ${descr}${fmtShape(shape)} needs ${numel * size}`);
    }
    // Copy: the entry's offset inside the archive need not be aligned for a typed-array view.
    const raw = body.slice(0, numel * size).buffer;
    let data: Float32Array | Float64Array;
    if (descr === "<f4") data = new Float32Array(raw);
    else if (descr === "<f8") data = new Float64Array(raw);
    else {
      const rdv = new DataView(raw);
      data = new Float64Array(numel);
      for (let i = 0; i < numel; i++) {
        if (descr === "<i8") {
          const v = rdv.getBigInt64(i * 8, true);
          if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) {
            throw bad(`int64 value ${v} is beyond 2^53`);
          }
          data[i] = Number(v);
        } else if (descr === "<i4") data[i] = rdv.getInt32(i * 4, true);
        else if (descr === "|u1") data[i] = rdv.getUint8(i);
        else data[i] = rdv.getInt8(i);
      }
    }
    flat = { dtype: descr, shape, data };
  }
  return fortran === "True" ? toRowMajor(flat) : flat;
}

function fmtShape(shape: number[]): string {
  return `[${shape.join(", ")}]`;
}

/** Reorders a Fortran-order (column-major) array into row-major order. */
function toRowMajor(a: NpyArray): NpyArray {
  const { shape } = a;
  if (shape.length < 2) return a;
  const numel = shape.reduce((x, y) => x * y, 1);
  // Row-major strides of the output; column-major strides of the input.
  const cStride = new Array(shape.length), fStride = new Array(shape.length);
  cStride[shape.length - 1] = 1;
  for (let d = shape.length - 2; d >= 0; d--) cStride[d] = cStride[d + 1] * shape[d + 1];
  fStride[0] = 1;
  for (let d = 1; d < shape.length; d++) fStride[d] = fStride[d - 1] * shape[d - 1];
  const src = (i: number) => {
    let f = 0, rem = i;
    for (let d = 0; d < shape.length; d++) {
      const idx = Math.floor(rem / cStride[d]);
      rem -= idx * cStride[d];
      f += idx * fStride[d];
    }
    return f;
  };
  if (a.strings) {
    const s = a.strings;
    return { ...a, strings: Array.from({ length: numel }, (_, i) => s[src(i)]) };
  }
  const out = a.data instanceof Float32Array ? new Float32Array(numel) : new Float64Array(numel);
  if (shape.length === 2) {
    const [R, C] = shape;
    for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) out[r * C + c] = a.data[c * R + r];
  } else for (let i = 0; i < numel; i++) out[i] = a.data[src(i)];
  return { ...a, data: out };
}

/** An opened `.npz` archive: entry names (without ".npy") and a parser per entry. */
export interface Npz {
  /** The archive's file name, for messages. */
  file: string;
  /** Entry names, without ".npy". */
  names: string[];
  /** Parses entry `name`; an {@link InputError} naming the file and entry when missing or unsupported. */
  get(name: string): NpyArray;
}

/**
 * Opens the `.npz` archive `bytes` (read from `file`, for messages). Entries are parsed on demand, so an
 * entry of an unsupported dtype only matters when asked for.
 */
export function openNpz(bytes: Uint8Array, file: string): Npz {
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(bytes);
  } catch (e) {
    throw new InputError(`not an .npz (zip) archive: ${(e as Error).message}`, { file });
  }
  const byName = new Map<string, Uint8Array>();
  for (const [k, v] of Object.entries(entries)) byName.set(k.endsWith(".npy") ? k.slice(0, -4) : k, v);
  return {
    file,
    names: [...byName.keys()],
    get(name: string): NpyArray {
      const b = byName.get(name);
      if (!b) {
        throw new InputError(`archive has no entry '${name}' (entries: ${[...byName.keys()].join(", ")})`, {
          file,
          field: name,
        });
      }
      return parseNpy(b, { file, field: name });
    },
  };
}

/** Reads and opens the `.npz` file `file`. */
export async function readNpz(file: string): Promise<Npz> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(file);
  } catch (e) {
    throw new InputError(`cannot read .npz: ${(e as Error).message}`, { file });
  }
  return openNpz(bytes, file);
}

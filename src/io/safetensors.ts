/**
 * Reading and writing the safetensors format (https://github.com/huggingface/safetensors):
 *
 *   [u64 little-endian N][N bytes of UTF-8 JSON header][data section]
 *
 * The header maps tensor names to `{dtype, shape, data_offsets: [begin, end]}` (offsets relative to the
 * start of the data section) plus an optional `__metadata__` string->string map.
 *
 * {@link parseSafetensors} validates the whole header up front and converts tensors to float32 lazily,
 * so a file may hold tensors of dtypes engram cannot use (e.g. GPT-2's `attn.bias` buffers) as long as
 * nobody asks for their data. Every error is a {@link SafetensorsError} naming the file and the tensor
 * or header field.
 */
import { SafetensorsError } from "../errors.ts";
import type { HostTensor, Undecoded16 } from "../model/config.ts";
import { contentBytes, type StreamedContent, writeFileAtomic } from "./atomic.ts";
import { excerpt, kindOf } from "./excerpt.ts";
import { isJsonObject, own, parseStrictJson } from "./strict_json.ts";

/** Bytes per element of every dtype the safetensors format defines (sub-byte dtypes excluded). */
export const DTYPE_SIZES: Readonly<Record<string, number>> = Object.freeze({
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
});

/** Dtypes that {@link SafetensorsTensor.data} converts to float32. */
export const FLOAT_DTYPES: readonly string[] = ["F32", "F16", "BF16", "F64"];

/** Largest header accepted (bytes), as in the reference reader; real headers are kilobytes. */
export const MAX_HEADER_BYTES = 100_000_000;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** float16 bits -> number. */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/**
 * float16 bits -> float32 bits (exact; a NaN keeps its sign and payload, which a JS number would not,
 * so an F16 tensor read and written again is the same bytes).
 */
export function f16ToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const e = (h >>> 10) & 0x1f;
  let m = h & 0x3ff;
  if (e === 31) return (sign | 0x7f800000 | (m << 13)) >>> 0;
  if (e !== 0) return (sign | ((e + 112) << 23) | (m << 13)) >>> 0;
  if (m === 0) return sign >>> 0;
  // Subnormal m * 2^-24: shift the leading one into the implicit-bit position.
  let exp = 113; // float32 biased exponent of 2^-14
  while ((m & 0x400) === 0) {
    m <<= 1;
    exp--;
  }
  return (sign | (exp << 23) | ((m & 0x3ff) << 13)) >>> 0;
}

/**
 * float32 bits -> bfloat16 bits, rounded to nearest, ties to even (what PyTorch's `.to(torch.bfloat16)`
 * does). Values past the largest bfloat16 round to infinity. A NaN keeps its sign and top payload bits
 * and stays a NaN (made quiet only when the kept payload would be zero, i.e. an infinity).
 */
export function f32BitsToBf16(u: number): number {
  u >>>= 0;
  if ((u & 0x7fffffff) > 0x7f800000) {
    const h = u >>> 16;
    return (h & 0x7f) === 0 ? h | 0x40 : h;
  }
  // Adding 0x7fff (+1 when the kept part is odd) carries into bit 16 exactly when rounding up.
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * float32 bits -> float16 bits, rounded to nearest, ties to even, subnormals included. Finite values
 * of magnitude 65520 and above (65504 + half an ulp) become infinity, as in IEEE conversion. A NaN
 * keeps its sign and the top 10 payload bits (quiet bit set when they are all zero).
 */
export function f32BitsToF16(u: number): number {
  u >>>= 0;
  const sign = (u >>> 16) & 0x8000;
  const abs = u & 0x7fffffff;
  const exp = abs >>> 23;
  const man = abs & 0x7fffff;
  if (exp === 0xff) {
    if (man === 0) return sign | 0x7c00;
    const p = man >>> 13;
    return sign | 0x7c00 | (p === 0 ? 0x200 : p);
  }
  const e = exp - 112; // float16 biased exponent
  if (e >= 31) return sign | 0x7c00;
  if (e >= 1) {
    let h = (e << 10) | (man >>> 13);
    const rest = man & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++; // a carry into the exponent is still right
    return sign | h;
  }
  // Below 2^-14: a subnormal (or zero) m * 2^-24; the float32 value times 2^24 is exact in a double.
  if (exp === 0) return sign; // float32 subnormals are far below half the smallest float16 subnormal
  const v = (0x800000 | man) * 2 ** (exp - 127 - 23 + 24);
  const fl = Math.floor(v), frac = v - fl;
  const m = frac > 0.5 || (frac === 0.5 && (fl & 1)) ? fl + 1 : fl; // 1024 is the smallest normal
  return sign | m;
}

/** The 16-bit or 32-bit float dtypes engram writes (each tensor in the dtype it was read from). */
export type WeightDtype = "F32" | "F16" | "BF16";

/** Whether `d` is a {@link WeightDtype}. */
export function isWeightDtype(d: unknown): d is WeightDtype {
  return d === "F32" || d === "F16" || d === "BF16";
}

/**
 * float32 values as the little-endian bytes of `dtype` (F16/BF16 rounded to nearest even, see
 * {@link f32BitsToF16} / {@link f32BitsToBf16}; exact for values that came from that dtype).
 */
export function encodeFloats(data: Float32Array, dtype: WeightDtype): Uint8Array {
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  if (dtype === "F32") {
    const out = new Uint8Array(4 * data.length);
    const dv = new DataView(out.buffer);
    for (let i = 0; i < bits.length; i++) dv.setUint32(4 * i, bits[i], true);
    return out;
  }
  const out = new Uint8Array(2 * data.length);
  const dv = new DataView(out.buffer);
  const enc = dtype === "F16" ? f32BitsToF16 : f32BitsToBf16;
  for (let i = 0; i < bits.length; i++) dv.setUint16(2 * i, enc(bits[i]), true);
  return out;
}

/**
 * The float32 values that `data` reads back as after being written in `dtype` (F32: `data` itself;
 * F16/BF16: a rounded copy, bit for bit what loading the written file gives).
 */
export function roundToDtype(data: Float32Array, dtype: WeightDtype): Float32Array {
  if (dtype === "F32") return data;
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  const out = new Uint32Array(data.length);
  if (dtype === "BF16") { for (let i = 0; i < out.length; i++) out[i] = f32BitsToBf16(bits[i]) << 16; }
  else for (let i = 0; i < out.length; i++) out[i] = f16ToF32Bits(f32BitsToF16(bits[i]));
  return new Float32Array(out.buffer);
}

/** One tensor of a parsed file: header info plus its raw bytes; `data` converts to float32 on first use. */
export class SafetensorsTensor {
  /** Float32 copy or view, filled on first access of {@link data}. */
  #data?: Float32Array;

  /** A tensor of a parsed file; the bytes stay raw until {@link data} is read. */
  constructor(
    /** Tensor name as stored in the file. */
    readonly name: string,
    /** safetensors dtype, e.g. "F32", "BF16". */
    readonly dtype: string,
    /** Shape (row-major). */
    readonly shape: number[],
    /** The tensor's raw little-endian bytes (a view into the parsed buffer). */
    readonly bytes: Uint8Array,
    /** File the tensor came from, for error messages. */
    readonly file: string,
  ) {}

  /** Number of elements (product of shape; 1 for a scalar). */
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /**
   * The values as float32 (F32 as is, F16/BF16 exactly, F64 rounded). For an aligned F32 tensor this is
   * a view into the parsed buffer, not a copy. Throws {@link SafetensorsError} for non-float dtypes.
   */
  get data(): Float32Array {
    if (this.#data) return this.#data;
    const n = this.numel, b = this.bytes;
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    let out: Float32Array;
    switch (this.dtype) {
      case "F32":
        if (LITTLE_ENDIAN && b.byteOffset % 4 === 0) out = new Float32Array(b.buffer, b.byteOffset, n);
        else {
          out = new Float32Array(n);
          for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
        }
        break;
      case "F16": {
        // Through the bits, so that NaN payloads survive (see f16ToF32Bits).
        const u = new Uint32Array(n);
        for (let i = 0; i < n; i++) u[i] = f16ToF32Bits(dv.getUint16(2 * i, true));
        out = new Float32Array(u.buffer);
        break;
      }
      case "BF16": {
        const u = new Uint32Array(n);
        for (let i = 0; i < n; i++) u[i] = dv.getUint16(2 * i, true) << 16;
        out = new Float32Array(u.buffer);
        break;
      }
      case "F64":
        out = new Float32Array(n);
        for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true);
        break;
      default:
        throw new SafetensorsError(
          `dtype ${this.dtype} cannot be converted to float32 (supported: ${FLOAT_DTYPES.join(", ")})`,
          { file: this.file, field: this.name },
        );
    }
    this.#data = out;
    return out;
  }

  /** Whether {@link data} has been read (and so converted, and possibly written to since). */
  get decoded(): boolean {
    return this.#data !== undefined;
  }

  /** `{shape, data}` as float32 (see {@link data}). */
  toHost(): HostTensor {
    return { shape: [...this.shape], data: this.data };
  }

  /**
   * A {@link HostTensor} of shape `shape` (default the file's) whose `data` converts on first read (the
   * same array as {@link data}); for an F16 / BF16 tensor, until then, `undecoded16` gives its stored
   * patterns without a float32 copy.
   */
  toLazyHost(shape: number[] = this.shape): HostTensor {
    // The returned object's getters read this tensor (a getter cannot be an arrow function).
    // deno-lint-ignore no-this-alias
    const t = this;
    const half: Undecoded16["dtype"] | undefined = t.dtype === "F16" || t.dtype === "BF16"
      ? t.dtype
      : undefined;
    let raw: Undecoded16 | undefined;
    return {
      shape: [...shape],
      get data() {
        return t.data;
      },
      get undecoded16() {
        if (!half || t.decoded) return undefined;
        // Made once: a view of the file's bytes (a copy only for a misaligned or big-endian layout).
        if (!raw) {
          const b = t.bytes, n = t.numel;
          const bits = LITTLE_ENDIAN && b.byteOffset % 2 === 0
            ? new Uint16Array(b.buffer, b.byteOffset, n)
            : Uint16Array.from({ length: n }, (_, i) => b[2 * i] | (b[2 * i + 1] << 8));
          raw = { dtype: half, bits };
        }
        return raw;
      },
    };
  }
}

/** A parsed safetensors file. */
export interface SafetensorsFile {
  /** Path (or label) given to the parser, used in error messages. */
  file: string;
  /** Tensors by name, in header order. */
  tensors: Map<string, SafetensorsTensor>;
  /** The `__metadata__` map ({} when absent). */
  metadata: Record<string, string>;
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** A number in the header written as something other than a non-negative integer literal (`4.0`, `1e3`, `-1`). */
class NotAnInteger {
  constructor(readonly text: string) {}
}

/** Header numbers: integer literals become numbers, anything else a {@link NotAnInteger} that no check accepts. */
function headerNumber(text: string, value: number): unknown {
  return /^(0|[1-9][0-9]*)$/.test(text) ? value : new NotAnInteger(text);
}

/** A short description of a header value for messages (number text as written; never the whole value). */
function show(v: unknown): string {
  if (v instanceof NotAnInteger) return v.text;
  if (
    Array.isArray(v) && v.length <= 8 && v.every((x) => x instanceof NotAnInteger || typeof x !== "object")
  ) {
    return `[${v.map((x) => (x instanceof NotAnInteger ? x.text : excerpt(x, 24))).join(", ")}]`;
  }
  return excerpt(v, 60);
}

/**
 * Parses and validates a safetensors file held in memory. `file` names it in errors.
 *
 * Checks, as the Rust reference reader (huggingface/safetensors) does: at least 8 bytes; header length
 * within the file and at most {@link MAX_HEADER_BYTES}; header is UTF-8 JSON holding an object
 * (surrounding whitespace, such as the writer's space padding, allowed); each entry is an object with a
 * known `dtype`, a `shape` of non-negative integer literals and `data_offsets` [begin, end] of
 * non-negative integer literals with end - begin == numel * dtype size; sorted by offsets, the tensors
 * tile the data section exactly: the first begins at 0, each begins where the previous one ends (no hole,
 * no overlap) and the last ends at the end of the file (no trailing bytes; this is also what catches a
 * declared header length that is off by a few bytes); `__metadata__` (if present and not null) maps
 * strings to strings. Beyond the reference: a key repeated in one JSON object is refused (the reference's
 * hash map keeps one silently), and nesting deeper than 64 levels is refused. Tensor names such as
 * `__proto__` or `constructor` are plain names. Tensor data is not converted here (see
 * {@link SafetensorsTensor.data}); aligned F32 data aliases `bytes`.
 */
export function parseSafetensors(bytes: Uint8Array, file: string): SafetensorsFile {
  const err = (msg: string, field?: string) => new SafetensorsError(msg, { file, field });
  if (bytes.length < 8) {
    throw err(
      `file is ${bytes.length} bytes, too short to hold the 8-byte header length (truncated or not safetensors)`,
    );
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n64 = dv.getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) {
    throw err(`header length ${n64} is absurd (over ${MAX_HEADER_BYTES} bytes): not a safetensors file?`);
  }
  const n = Number(n64);
  if (8 + n > bytes.length) {
    throw err(`header length ${n} runs past the end of the file (${bytes.length} bytes): file truncated?`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, 8 + n));
  } catch (e) {
    throw new SafetensorsError("header is not valid UTF-8", { file, field: "header", cause: e });
  }
  const header = parseStrictJson(text, {
    file,
    maxDepth: 64,
    number: headerNumber,
    error: (msg, field) =>
      new SafetensorsError(
        `header is ${msg}${field ? ` (at ${field.length > 80 ? field.slice(0, 80) + "…" : field})` : ""}`,
        {
          file,
          field: "header",
        },
      ),
  });
  if (!isJsonObject(header)) {
    throw err(`header must be a JSON object, got ${kindOf(header)}`, "header");
  }

  const data = bytes.subarray(8 + n);
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, SafetensorsTensor>();
  const spans: { name: string; begin: number; end: number }[] = [];
  for (const name of Object.keys(header)) {
    const entry = header[name];
    if (name === "__metadata__") {
      if (entry === null) continue;
      if (!isJsonObject(entry)) {
        throw err(`__metadata__ must be an object of strings, got ${kindOf(entry)}`, "__metadata__");
      }
      for (const k of Object.keys(entry)) {
        const v = entry[k];
        if (typeof v !== "string") {
          throw err(
            `__metadata__ value of '${excerpt(k, 40)}' must be a string, got ${show(v)}`,
            "__metadata__",
          );
        }
        // defineProperty: a key named "__proto__" stays an own key instead of setting the prototype.
        Object.defineProperty(metadata, k, {
          value: v,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      continue;
    }
    if (!isJsonObject(entry)) {
      throw err(
        `tensor entry must be an object with dtype, shape and data_offsets, got ${kindOf(entry)}`,
        name,
      );
    }
    const dtype = own(entry, "dtype"), shape = own(entry, "shape"), dataOffsets = own(entry, "data_offsets");
    if (dtype === undefined) throw err("tensor entry is missing 'dtype'", name);
    if (typeof dtype !== "string") throw err(`'dtype' must be a string, got ${show(dtype)}`, name);
    const size = Object.hasOwn(DTYPE_SIZES, dtype) ? DTYPE_SIZES[dtype] : undefined;
    if (size === undefined) {
      throw err(
        `unknown dtype '${dtype.length > 30 ? dtype.slice(0, 30) + "…" : dtype}' (known: ${
          Object.keys(DTYPE_SIZES).join(", ")
        })`,
        name,
      );
    }
    if (shape === undefined) throw err("tensor entry is missing 'shape'", name);
    if (!Array.isArray(shape)) throw err(`'shape' must be an array of integers, got ${show(shape)}`, name);
    for (const d of shape) {
      if (!isNonNegInt(d)) {
        throw err(
          `'shape' ${show(shape)} has a dimension that is not a non-negative integer: ${show(d)}`,
          name,
        );
      }
    }
    if (dataOffsets === undefined) throw err("tensor entry is missing 'data_offsets'", name);
    if (!Array.isArray(dataOffsets) || dataOffsets.length !== 2 || !dataOffsets.every(isNonNegInt)) {
      throw err(
        `'data_offsets' must be [begin, end] with non-negative integers, got ${show(dataOffsets)}`,
        name,
      );
    }
    const [begin, end] = dataOffsets as [number, number];
    if (end < begin) throw err(`'data_offsets' [${begin}, ${end}]: end is before begin`, name);
    if (end > data.length) {
      throw err(
        `'data_offsets' [${begin}, ${end}] run past the end of the data section (${data.length} bytes): file truncated?`,
        name,
      );
    }
    const numel = (shape as number[]).reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(numel * size)) {
      throw err(`'shape' ${show(shape)} of ${dtype} overflows (more bytes than any file holds)`, name);
    }
    if (end - begin !== numel * size) {
      throw err(
        `'data_offsets' [${begin}, ${end}] span ${end - begin} bytes but shape ${
          show(shape)
        } of ${dtype} needs ${numel * size}`,
        name,
      );
    }
    spans.push({ name, begin, end });
    tensors.set(
      name,
      new SafetensorsTensor(name, dtype, [...(shape as number[])], data.subarray(begin, end), file),
    );
  }
  // The reference sorts by (begin, end) and requires each tensor to start where the previous one ends.
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  let prev: { name: string; begin: number; end: number } | undefined;
  for (const c of spans) {
    if (c.begin < at) {
      throw err(
        `'data_offsets' [${c.begin}, ${c.end}] overlap tensor '${prev!.name}' [${prev!.begin}, ${prev!.end}]`,
        c.name,
      );
    }
    if (c.begin > at) {
      throw err(
        prev
          ? `'data_offsets' [${c.begin}, ${c.end}] leave a hole of ${
            c.begin - at
          } bytes after tensor '${prev.name}' [${prev.begin}, ${prev.end}]: tensors must be contiguous`
          : `'data_offsets' [${c.begin}, ${c.end}] leave a hole of ${c.begin} bytes at the start of the data section: the first tensor must begin at 0`,
        c.name,
      );
    }
    at = c.end;
    prev = c;
  }
  if (at !== data.length) {
    throw err(
      `the data section holds ${data.length} bytes but the tensors end at byte ${at}: ${
        data.length - at
      } trailing bytes (a wrong header length, or data appended to the file)`,
      prev ? prev.name : "header",
    );
  }
  return { file, tensors, metadata };
}

/** Reads and parses a safetensors file (see {@link parseSafetensors}); a missing file is a clear {@link SafetensorsError}. */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new SafetensorsError("file not found", { file: path, cause: e });
    }
    if (e instanceof Deno.errors.IsADirectory) {
      throw new SafetensorsError("is a folder, not a file", { file: path, cause: e });
    }
    throw new SafetensorsError(`cannot read file: ${(e as Error).message}`, { file: path, cause: e });
  }
  return parseSafetensors(bytes, path);
}

/** Tensors to write: a map or record of name -> float32 {shape, data}. */
export type TensorsToWrite = Map<string, HostTensor> | Record<string, HostTensor>;

/** Options of {@link serializeSafetensors}. */
export interface SerializeOptions {
  /**
   * File dtype of each tensor by its name in the file (default F32 for tensors not named). F16/BF16
   * round the float32 values to nearest even ({@link encodeFloats}).
   */
  dtypes?: ReadonlyMap<string, WeightDtype>;
}

/** A safetensors file laid out: its prefix (length + padded header JSON) and each tensor with its dtype. */
interface SafetensorsPlan {
  prefix: Uint8Array;
  entries: Array<{ name: string; t: HostTensor; dtype: WeightDtype }>;
  dataBytes: number;
}

/**
 * Lays out float32 tensors as Hugging Face's writer does: dtype F32 (or the one `opts.dtypes` gives the
 * tensor), tensors in name order, header JSON padded with spaces to a multiple of 8 bytes, `metadata` as
 * `__metadata__`. Checks every tensor before anything is written.
 */
function planSafetensors(
  tensors: TensorsToWrite,
  metadata: Record<string, string> | undefined,
  opts: SerializeOptions,
): SafetensorsPlan {
  const label = "<serializeSafetensors>";
  const sorted = (tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const parts: string[] = [];
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new SafetensorsError(`metadata value of '${k}' must be a string`, {
          file: label,
          field: "__metadata__",
        });
      }
    }
    parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  }
  let offset = 0;
  const entries: SafetensorsPlan["entries"] = [];
  for (const [name, t] of sorted) {
    if (name === "__metadata__") {
      throw new SafetensorsError("'__metadata__' is reserved", { file: label, field: name });
    }
    if (!t.shape.every(isNonNegInt)) {
      throw new SafetensorsError(`bad shape ${JSON.stringify(t.shape)}`, { file: label, field: name });
    }
    const numel = t.shape.reduce((a, b) => a * b, 1);
    // A tensor still undecoded from a 16-bit file is checked (and later written) without decoding it.
    const raw = t.undecoded16;
    if (raw ? raw.bits.length !== numel : !(t.data instanceof Float32Array) || t.data.length !== numel) {
      throw new SafetensorsError(
        `shape ${JSON.stringify(t.shape)} needs ${numel} float32 values, data has ${t.data?.length}`,
        { file: label, field: name },
      );
    }
    const dtype = opts.dtypes?.get(name) ?? "F32";
    if (!isWeightDtype(dtype)) {
      throw new SafetensorsError(`cannot write dtype ${excerpt(dtype, 20)} (F32, F16 or BF16)`, {
        file: label,
        field: name,
      });
    }
    entries.push({ name, t, dtype });
    const size = DTYPE_SIZES[dtype];
    parts.push(
      `${JSON.stringify(name)}:${
        JSON.stringify({ dtype, shape: t.shape, data_offsets: [offset, offset + size * numel] })
      }`,
    );
    offset += size * numel;
  }
  const header = new TextEncoder().encode(`{${parts.join(",")}}`);
  const padded = header.length + (8 - (header.length % 8)) % 8;
  const prefix = new Uint8Array(8 + padded).fill(0x20);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(padded), true);
  prefix.set(header, 8);
  return { prefix, entries, dataBytes: offset };
}

/** Float32 values converted per chunk of this many elements (64 MiB of F32). */
const CHUNK_ELEMENTS = 1 << 24;

function* planChunks(plan: SafetensorsPlan): Generator<Uint8Array> {
  yield plan.prefix;
  for (const { t, dtype } of plan.entries) {
    // Unchanged 16-bit tensors go out as read (the file's bits: what decoding and re-encoding gives).
    const raw = t.undecoded16;
    if (raw?.dtype === dtype && LITTLE_ENDIAN) {
      yield new Uint8Array(raw.bits.buffer, raw.bits.byteOffset, raw.bits.byteLength);
      continue;
    }
    if (dtype === "F32" && LITTLE_ENDIAN) {
      yield new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      continue;
    }
    for (let i = 0; i < t.data.length; i += CHUNK_ELEMENTS) {
      yield encodeFloats(t.data.subarray(i, Math.min(t.data.length, i + CHUNK_ELEMENTS)), dtype);
    }
  }
}

/**
 * Serializes float32 tensors to safetensors bytes, as Hugging Face's writer does: dtype F32 (or the
 * one `opts.dtypes` gives the tensor), tensors laid out in name order, header JSON padded with spaces
 * to a multiple of 8 bytes. `metadata` becomes `__metadata__`. Throws {@link SafetensorsError} naming
 * the tensor when its data length does not match its shape, or when a dtype is not F32/F16/BF16.
 */
export function serializeSafetensors(
  tensors: TensorsToWrite,
  metadata?: Record<string, string>,
  opts: SerializeOptions = {},
): Uint8Array {
  return contentBytes(safetensorsContent(tensors, metadata, opts));
}

/**
 * The same file as {@link serializeSafetensors}, as content that a writer streams: the header, then each
 * tensor converted to its dtype in chunks, so the file never exists as one buffer (a model of several
 * gigabytes would not fit one). Checks every tensor up front; the tensors must not change until written.
 */
export function safetensorsContent(
  tensors: TensorsToWrite,
  metadata?: Record<string, string>,
  opts: SerializeOptions = {},
): StreamedContent {
  const plan = planSafetensors(tensors, metadata, opts);
  return { size: plan.prefix.length + plan.dataBytes, chunks: () => planChunks(plan) };
}

/** Serializes (see {@link serializeSafetensors}) and writes `path` atomically. */
export async function writeSafetensors(
  path: string,
  tensors: TensorsToWrite,
  metadata?: Record<string, string>,
  opts: SerializeOptions = {},
): Promise<void> {
  await writeFileAtomic(path, safetensorsContent(tensors, metadata, opts));
}

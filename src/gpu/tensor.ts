/**
 * GPU tensors: a storage buffer plus a row-major shape. Elements are 32-bit (f32, or u32/i32 for ids), or
 * 16-bit floats (bf16, f16) packed two per u32 for weights kept in their file's dtype ({@link isPacked16}).
 * Sizes are checked against the adapter's maxBufferSize before allocation so an oversized tensor fails
 * with its name instead of a driver error. A tensor may exceed the storage-binding limit
 * ({@link Gpu.bindingLimit}); kernels then see it through {@link TensorWindow}s ({@link elementWindow}).
 */
import { GpuError, ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { decode16 } from "./half.ts";

/**
 * Element type of a {@link GpuTensor}. "f32", "u32", "i32" are 4 bytes. "bf16" and "f16" are 16-bit floats
 * packed two per 32-bit word, the whole tensor flat: element 2j is the low half of word j, element 2j+1
 * the high half (the little-endian byte order of a safetensors file, so a file's bytes are the buffer's),
 * and the last word of an odd-length tensor has a zero high half. Only the kernels that read weights
 * (the matmul B operand, the embedding gather) accept them; they decode to f32 and compute in f32.
 */
export type DType = "f32" | "u32" | "i32" | "bf16" | "f16";

/** Whether `dtype` is a packed 16-bit float type ("bf16" or "f16"). */
export function isPacked16(dtype: DType): dtype is "bf16" | "f16" {
  return dtype === "bf16" || dtype === "f16";
}

/** Bytes one element of `dtype` takes in a buffer (2 for packed 16-bit types). */
export function elementBytes(dtype: DType): number {
  return isPacked16(dtype) ? 2 : 4;
}

/**
 * Override value `W16` of the weight-reading kernels (kernels/lib/unpack16.wgsl) for a tensor's dtype:
 * 0 f32, 1 bf16, 2 f16.
 */
export function w16Code(dtype: DType): number {
  return dtype === "bf16" ? 1 : dtype === "f16" ? 2 : 0;
}

/**
 * `W16` for a weight of `dtype` read on `gpu`: {@link w16Code}, except 3 (the shader-f16 variant of the
 * kernel, `W16_NATIVE_F16` in pipeline.ts) for an F16 weight when `gpu.shaderF16` is on.
 */
export function w16For(gpu: Gpu, dtype: DType): number {
  return dtype === "f16" && gpu.shaderF16 ? 3 : w16Code(dtype);
}

/** A dense row-major tensor living in a GPU storage buffer. */
export class GpuTensor {
  private destroyed = false;
  /** Wraps `buffer` as a tensor of `shape` and `dtype` (use createTensor to allocate one). */
  constructor(
    readonly gpu: Gpu,
    readonly buffer: GPUBuffer,
    readonly shape: readonly number[],
    readonly dtype: DType,
    readonly name: string,
  ) {}
  /** Number of elements. */
  get numel(): number {
    return numel(this.shape);
  }
  /** Size in bytes of the elements (a packed 16-bit tensor: 2 per element, padding excluded). */
  get byteLength(): number {
    return this.numel * elementBytes(this.dtype);
  }
  /** Frees the GPU memory (after pending commands are submitted). */
  destroy(): void {
    // A tensor destroyed twice is uncounted once (its buffer is freed once either way).
    if (this.destroyed) return;
    this.destroyed = true;
    this.gpu.noteFreed(this.buffer.size);
    this.gpu.deferDestroy(this.buffer);
  }
}

/**
 * A byte range of a tensor's buffer bound to one kernel binding. `offset` is a multiple of the
 * device's `minStorageBufferOffsetAlignment`; `size` a multiple of 16 (so vec4 arrays see every element).
 */
export interface TensorWindow {
  tensor: GpuTensor;
  /** First byte bound. */
  offset: number;
  /** Bytes bound. */
  size: number;
}

/** A {@link TensorWindow} over elements [first, end) and where element `first` lies inside it. */
export interface ElementWindow {
  window: TensorWindow;
  /** Index (in elements, relative to the window) of element `first`. */
  base: number;
}

/**
 * The smallest aligned window holding elements [first, end) of `t`: it starts at `first` rounded down
 * to the offset alignment and ends at `end` rounded up to 16 bytes (never past the buffer). Kernels
 * add the returned `base` to their indices. Throws {@link GpuError} naming the tensor if the window
 * is over {@link Gpu.bindingLimit} (callers plan ranges with {@link windowSlackElems} to spare). An
 * empty tensor still has a 16-byte buffer: [0, 1) of it is a valid (unread) window.
 */
export function elementWindow(t: GpuTensor, first: number, end: number): ElementWindow {
  const align = t.gpu.device.limits.minStorageBufferOffsetAlignment;
  if (
    !(Number.isInteger(first) && Number.isInteger(end) && 0 <= first && first < end &&
      end <= Math.max(1, t.numel))
  ) {
    throw new ShapeError(`window [${first}, ${end}) is not inside [${t.shape}]`, { field: t.name });
  }
  // Packed 16-bit tensors hold two elements per word: an aligned byte offset is an even element.
  const eb = elementBytes(t.dtype);
  const offset = Math.floor((first * eb) / align) * align;
  const size = Math.min(t.buffer.size, Math.ceil((end * eb) / 16) * 16) - offset;
  if (size > t.gpu.bindingLimit) {
    throw new GpuError(
      `window of ${size} bytes of tensor '${t.name}' is over the binding limit of ${t.gpu.bindingLimit} bytes`,
      { field: t.name },
    );
  }
  return { window: { tensor: t, offset, size }, base: first - offset / eb };
}

/**
 * Elements a range may span so that its {@link elementWindow} (alignment below, 16-byte rounding
 * above) still fits the binding limit.
 */
export function windowSlackElems(gpu: Gpu): number {
  const elems = Math.floor(gpu.bindingLimit / 4) - gpu.device.limits.minStorageBufferOffsetAlignment / 4 - 4;
  return Math.max(1, elems);
}

/** Rows [first, end) of a matrix bound as one binding; `base` is element (first, 0) inside it. */
export interface RowChunk {
  first: number;
  end: number;
  binding: GpuTensor | TensorWindow;
  base: number;
}

/**
 * Cuts a row-major matrix of `rowLen`-element rows into consecutive row chunks that each fit one
 * binding: the whole tensor (one chunk, base 0) when it fits {@link Gpu.bindingLimit}, else as many
 * rows per window as fit. Throws {@link GpuError} naming the tensor if a single row does not fit.
 */
export function rowChunks(t: GpuTensor, rowLen: number): RowChunk[] {
  const rows = rowLen > 0 ? Math.floor(t.numel / rowLen) : 0;
  if (t.buffer.size <= t.gpu.bindingLimit) return [{ first: 0, end: rows, binding: t, base: 0 }];
  const per = Math.floor(windowSlackElems(t.gpu) / rowLen);
  if (per < 1) {
    throw new GpuError(
      `one row of tensor '${t.name}' (${
        rowLen * 4
      } bytes) is over the binding limit of ${t.gpu.bindingLimit} bytes`,
      { field: t.name },
    );
  }
  const chunks: RowChunk[] = [];
  for (let first = 0; first < rows; first += per) {
    const end = Math.min(rows, first + per);
    const w = elementWindow(t, first * rowLen, end * rowLen);
    chunks.push({ first, end, binding: w.window, base: w.base });
  }
  return chunks;
}

/** Product of a shape's dimensions. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Options for {@link createTensor}. */
export interface TensorOptions {
  /** Name used in error messages (e.g. "h.3.mlp.c_fc.weight"). */
  name?: string;
  /** Element type (default f32). */
  dtype?: DType;
  /**
   * Initial contents; length must equal the shape's element count. A packed 16-bit tensor takes the
   * 16-bit patterns as a Uint16Array (encode on the host first, e.g. src/io/safetensors.ts `encodeFloats`).
   */
  data?: Float32Array | Uint32Array | Int32Array | Uint16Array;
  /** Also bindable as a uniform buffer, in windows of the uniform binding limit (the matmul packs). */
  uniform?: boolean;
}

/** Allocates a tensor, optionally uploading data. Throws {@link GpuError} if it exceeds the adapter's limits. */
export function createTensor(gpu: Gpu, shape: readonly number[], opts: TensorOptions = {}): GpuTensor {
  gpu.checkAlive();
  const name = opts.name ?? "tensor";
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(`invalid shape [${shape}]`, { field: name });
  }
  const n = numel(shape);
  const dtype = opts.dtype ?? "f32";
  // Packed 16-bit tensors: ceil(n / 2) words.
  const bytes = Math.max(4, isPacked16(dtype) ? Math.ceil(n / 2) * 4 : n * 4);
  // Round to 16 bytes so vec4 kernels may read whole vectors at the tail.
  const size = Math.ceil(bytes / 16) * 16;
  // One tensor is one buffer: past the binding limit kernels bind it in windows, but maxBufferSize is hard.
  const cap = gpu.device.limits.maxBufferSize;
  if (size > cap) {
    throw new GpuError(
      `tensor '${name}' of shape [${shape}] needs ${bytes} bytes, over this adapter's largest buffer ` +
        `(maxBufferSize) of ${cap} bytes: too large even when split across bindings`,
      { field: name },
    );
  }
  if (opts.data && opts.data.length !== n) {
    throw new ShapeError(`data has ${opts.data.length} elements, shape [${shape}] needs ${n}`, {
      field: name,
    });
  }
  const buffer = gpu.device.createBuffer({
    label: name,
    size,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST |
      (opts.uniform ? GPUBufferUsage.UNIFORM : 0),
  });
  gpu.noteAllocated(size);
  const t = new GpuTensor(gpu, buffer, [...shape], dtype, name);
  if (opts.data) writeTensor(t, opts.data);
  return t;
}

/**
 * Uploads host data into a tensor (queued in order with pending commands). A packed 16-bit tensor takes
 * a Uint16Array of 16-bit patterns, written whole (offset 0, every element): a part would have to start
 * and end on word boundaries, which a caller cannot see.
 */
export function writeTensor(
  t: GpuTensor,
  data: Float32Array | Uint32Array | Int32Array | Uint16Array,
  offsetElems = 0,
): void {
  if (offsetElems + data.length > t.numel) {
    throw new ShapeError(`write of ${data.length} elements at ${offsetElems} overruns [${t.shape}]`, {
      field: t.name,
    });
  }
  if (isPacked16(t.dtype) !== (data instanceof Uint16Array)) {
    throw new ShapeError(
      `tensor is ${t.dtype}; it takes ${
        isPacked16(t.dtype) ? "16-bit patterns (Uint16Array)" : "32-bit data"
      }`,
      { field: t.name },
    );
  }
  if (data instanceof Uint16Array) {
    if (offsetElems !== 0 || data.length !== t.numel) {
      throw new ShapeError(`a ${t.dtype} tensor is written whole (${t.numel} values at 0)`, {
        field: t.name,
      });
    }
    // Whole words, from the caller's array without a copy (a weight may be hundreds of MB); an odd tail
    // goes as one last word with a zero high half.
    t.gpu.submit();
    const even = data.length & ~1;
    if (even > 0) {
      t.gpu.device.queue.writeBuffer(t.buffer, 0, data.buffer as ArrayBuffer, data.byteOffset, 2 * even);
    }
    if (even < data.length) {
      t.gpu.device.queue.writeBuffer(t.buffer, 2 * even, new Uint16Array([data[even], 0]));
    }
    releaseStaging(t.gpu, data.byteLength);
    return;
  }
  // queue.writeBuffer executes before later-submitted commands but after already-submitted ones:
  // submit what is recorded so the write lands in program order.
  t.gpu.submit();
  t.gpu.device.queue.writeBuffer(
    t.buffer,
    offsetElems * 4,
    data.buffer as ArrayBuffer,
    data.byteOffset,
    data.byteLength,
  );
  releaseStaging(t.gpu, data.byteLength);
}

/** Writes of at least this many bytes are followed by an empty submit ({@link releaseStaging}). */
const STAGING_RELEASE_BYTES = 1 << 20;

/**
 * After a large write: an empty queue submission, on which wgpu reclaims the staging copies of writes the
 * device has finished. Without it a model's upload, recorded without a wait, held a staging copy of every
 * weight until the next wait (llvmpipe, GPT-2 small: peak RSS 3.3× its 498 MB file; measured with 5 ×
 * 100 MB writes: peak 1205 MB without, 805 MB with).
 */
function releaseStaging(gpu: Gpu, bytes: number): void {
  if (bytes >= STAGING_RELEASE_BYTES) gpu.device.queue.submit([]);
}

/** Fills a tensor with NaN so a kernel that forgets to write an element is caught by tests. */
export function poison(t: GpuTensor): void {
  // 0x7fc0 is a quiet NaN in both bf16 and f16.
  if (isPacked16(t.dtype)) return writeTensor(t, new Uint16Array(t.numel).fill(0x7fc0));
  const d = new Float32Array(t.numel).fill(NaN);
  writeTensor(t, d);
}

/** Copies `count` elements from `src[srcOffset..]` into `dst[dstOffset..]`, in command order. */
export function copyTensor(
  src: GpuTensor,
  dst: GpuTensor,
  count = src.numel,
  srcOffset = 0,
  dstOffset = 0,
): void {
  if (srcOffset + count > src.numel || dstOffset + count > dst.numel) {
    throw new ShapeError(`copy of ${count} elements overruns [${src.shape}] -> [${dst.shape}]`, {
      field: dst.name,
    });
  }
  if (isPacked16(src.dtype) || isPacked16(dst.dtype)) {
    // Whole-tensor copies only: element offsets of packed data need not fall on word boundaries.
    if (src.dtype !== dst.dtype || srcOffset !== 0 || dstOffset !== 0 || count !== src.numel) {
      throw new ShapeError(`a ${src.dtype} tensor is copied whole into one of its dtype`, {
        field: dst.name,
      });
    }
    if (count > 0) {
      src.gpu.commandEncoder().copyBufferToBuffer(src.buffer, 0, dst.buffer, 0, Math.ceil(count / 2) * 4);
    }
    return;
  }
  if (count === 0) return;
  src.gpu.commandEncoder().copyBufferToBuffer(
    src.buffer,
    srcOffset * 4,
    dst.buffer,
    dstOffset * 4,
    count * 4,
  );
}

/** Reads a tensor back to the host (flushes pending work); a packed 16-bit one decoded to f32 exactly. */
export async function readTensor(t: GpuTensor): Promise<Float32Array> {
  if (isPacked16(t.dtype)) return (await readTensors([t]))[0];
  const bytes = await readBytes(t, 0, t.numel);
  return new Float32Array(bytes);
}

/** Reads a u32 tensor back to the host. */
export async function readTensorU32(t: GpuTensor): Promise<Uint32Array> {
  return new Uint32Array(await readBytes(t, 0, t.numel));
}

/** Reads `count` f32 elements starting at `offset` (flushes pending work); packed 16-bit ones decoded. */
export async function readRange(t: GpuTensor, offset: number, count: number): Promise<Float32Array> {
  return (await readTensors([{ tensor: t, offset, count }]))[0];
}

/** The raw 16-bit patterns of a packed 16-bit tensor (flushes pending work). */
export async function readTensorBits16(t: GpuTensor): Promise<Uint16Array> {
  if (!isPacked16(t.dtype)) throw new ShapeError(`tensor is ${t.dtype}, not a 16-bit one`, { field: t.name });
  const [r] = await readRegions([{ tensor: t, offset: 0, count: Math.ceil(t.numel / 2) }], true);
  return new Uint16Array(r.buffer, 0, t.numel).slice();
}

async function readBytes(t: GpuTensor, offset: number, count: number): Promise<ArrayBuffer> {
  // One region fills its staging buffer from byte 0: its host copy is exactly the elements read.
  const [r] = await readRegions([{ tensor: t, offset, count }]);
  return r.buffer;
}

/** Part of a tensor for {@link readTensors}: `count` elements from element `offset`. */
export interface TensorRange {
  tensor: GpuTensor;
  offset: number;
  count: number;
}

/**
 * Reads several tensors (or {@link TensorRange}s of them) back with one map: every copy goes into one
 * staging buffer, so a step's results cost one completion wait instead of one each. Element i of the
 * result holds tensor i's f32 elements (view a u32 tensor's with `new Uint32Array(r.buffer, r.byteOffset,
 * r.length)`). Each result owns its host buffer. The same tensor may appear more than once.
 */
export async function readTensors(items: ReadonlyArray<GpuTensor | TensorRange>): Promise<Float32Array[]> {
  const asked = items.map((it) => it instanceof GpuTensor ? { tensor: it, offset: 0, count: it.numel } : it);
  for (const { tensor: t, offset, count } of asked) checkRange(t, offset, count);
  // A packed 16-bit range is read as the words covering it and decoded on the host.
  const regions = asked.map((r) => {
    if (!isPacked16(r.tensor.dtype)) return r;
    const w0 = Math.floor(r.offset / 2), w1 = Math.ceil((r.offset + r.count) / 2);
    return { tensor: r.tensor, offset: w0, count: w1 - w0 };
  });
  // Each result gets its own buffer (a host copy), so no caller sees another's elements through `.buffer`.
  return (await readRegions(regions, true)).map((r, i) => {
    const { tensor: t, offset, count } = asked[i];
    if (!isPacked16(t.dtype)) {
      return new Float32Array(r.buffer.slice(r.byteOffset, r.byteOffset + r.count * 4));
    }
    const half = new Uint16Array(r.buffer, r.byteOffset + (offset % 2) * 2, count);
    return decode16(half, t.dtype);
  });
}

function checkRange(t: GpuTensor, offset: number, count: number): void {
  if (
    !(Number.isInteger(offset) && Number.isInteger(count)) || offset < 0 || count < 0 ||
    offset + count > t.numel
  ) {
    throw new ShapeError(`read of ${count} elements at ${offset} overruns [${t.shape}]`, { field: t.name });
  }
}

/**
 * Copies each region into a shared staging buffer (a new one only where the next region would pass the
 * adapter's maxBufferSize), submits with error checks and maps every staging buffer concurrently: the
 * maps complete after the submitted work, in one completion poll.
 */
async function readRegions(
  regions: ReadonlyArray<TensorRange>,
  words = false,
): Promise<Array<{ buffer: ArrayBuffer; byteOffset: number; count: number }>> {
  if (regions.length === 0) return [];
  const gpu = regions[0].tensor.gpu;
  for (const { tensor: t, offset, count } of regions) {
    if (t.gpu !== gpu) throw new ShapeError(`read of '${t.name}' mixes GPU devices`, { field: t.name });
    // With `words` the ranges are of 32-bit words (packed tensors' ranges are checked by the caller).
    if (!words || !isPacked16(t.dtype)) checkRange(t, offset, count);
  }
  const cap = Math.floor(gpu.device.limits.maxBufferSize / 4) * 4;
  // [staging index, byte offset in it] of every region.
  const at: Array<[number, number]> = [];
  const sizes: number[] = [0];
  for (const { count } of regions) {
    const bytes = count * 4;
    if (sizes[sizes.length - 1] > 0 && sizes[sizes.length - 1] + bytes > cap) sizes.push(0);
    at.push([sizes.length - 1, sizes[sizes.length - 1]]);
    sizes[sizes.length - 1] += bytes;
  }
  const staging = sizes.map((size) =>
    gpu.device.createBuffer({
      size: Math.max(4, size),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    })
  );
  try {
    const enc = gpu.commandEncoder();
    regions.forEach(({ tensor, offset, count }, i) => {
      if (count > 0) {
        enc.copyBufferToBuffer(tensor.buffer, offset * 4, staging[at[i][0]], at[i][1], count * 4);
      }
    });
    await gpu.submitChecked();
    await Promise.all(staging.map((s) => s.mapAsync(GPUMapMode.READ)));
    gpu.checkAlive();
    const host = staging.map((s, j) => s.getMappedRange().slice(0, sizes[j]));
    return regions.map(({ count }, i) => ({ buffer: host[at[i][0]], byteOffset: at[i][1], count }));
  } finally {
    for (const s of staging) s.destroy();
  }
}

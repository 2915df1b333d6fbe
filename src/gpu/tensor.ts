/**
 * GPU tensors: a storage buffer plus a row-major shape. Elements are 32-bit (f32, or u32/i32 for ids).
 * Sizes are checked against the adapter's limits before allocation so an oversized tensor fails with
 * its name instead of a driver error.
 */
import { GpuError, ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";

/** Element type of a {@link GpuTensor}; all are 4 bytes. */
export type DType = "f32" | "u32" | "i32";

/** A dense row-major tensor living in a GPU storage buffer. */
export class GpuTensor {
  private destroyed = false;
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
  /** Size in bytes. */
  get byteLength(): number {
    return this.numel * 4;
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
  dtype?: DType;
  /** Initial contents; length must equal the shape's element count. */
  data?: Float32Array | Uint32Array | Int32Array;
}

/** Allocates a tensor, optionally uploading data. Throws {@link GpuError} if it exceeds the adapter's limits. */
export function createTensor(gpu: Gpu, shape: readonly number[], opts: TensorOptions = {}): GpuTensor {
  gpu.checkAlive();
  const name = opts.name ?? "tensor";
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(`invalid shape [${shape}]`, { field: name });
  }
  const n = numel(shape);
  const bytes = Math.max(4, n * 4);
  const lim = gpu.device.limits;
  const cap = Math.min(lim.maxStorageBufferBindingSize, lim.maxBufferSize);
  if (bytes > cap) {
    throw new GpuError(
      `tensor '${name}' of shape [${shape}] needs ${bytes} bytes, over this adapter's storage-buffer limit of ${cap} bytes`,
      { field: name },
    );
  }
  if (opts.data && opts.data.length !== n) {
    throw new ShapeError(`data has ${opts.data.length} elements, shape [${shape}] needs ${n}`, {
      field: name,
    });
  }
  // Round to 16 bytes so vec4 kernels may read whole vectors at the tail.
  const size = Math.ceil(bytes / 16) * 16;
  const buffer = gpu.device.createBuffer({
    label: name,
    size,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
  gpu.noteAllocated(size);
  const t = new GpuTensor(gpu, buffer, [...shape], opts.dtype ?? "f32", name);
  if (opts.data) writeTensor(t, opts.data);
  return t;
}

/** Uploads host data into a tensor (queued in order with pending commands). */
export function writeTensor(
  t: GpuTensor,
  data: Float32Array | Uint32Array | Int32Array,
  offsetElems = 0,
): void {
  if (offsetElems + data.length > t.numel) {
    throw new ShapeError(`write of ${data.length} elements at ${offsetElems} overruns [${t.shape}]`, {
      field: t.name,
    });
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
}

/** Fills a tensor with NaN so a kernel that forgets to write an element is caught by tests. */
export function poison(t: GpuTensor): void {
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
  if (count === 0) return;
  src.gpu.commandEncoder().copyBufferToBuffer(
    src.buffer,
    srcOffset * 4,
    dst.buffer,
    dstOffset * 4,
    count * 4,
  );
}

/** Reads a tensor back to the host (flushes pending work). */
export async function readTensor(t: GpuTensor): Promise<Float32Array> {
  const bytes = await readBytes(t, 0, t.numel);
  return new Float32Array(bytes);
}

/** Reads a u32 tensor back to the host. */
export async function readTensorU32(t: GpuTensor): Promise<Uint32Array> {
  return new Uint32Array(await readBytes(t, 0, t.numel));
}

/** Reads `count` f32 elements starting at `offset` (flushes pending work). */
export async function readRange(t: GpuTensor, offset: number, count: number): Promise<Float32Array> {
  return new Float32Array(await readBytes(t, offset, count));
}

async function readBytes(t: GpuTensor, offset: number, count: number): Promise<ArrayBuffer> {
  const gpu = t.gpu;
  if (offset < 0 || offset + count > t.numel) {
    throw new ShapeError(`read of ${count} elements at ${offset} overruns [${t.shape}]`, { field: t.name });
  }
  const size = Math.max(4, count * 4);
  const staging = gpu.device.createBuffer({
    size: Math.ceil(size / 4) * 4,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  if (count > 0) gpu.commandEncoder().copyBufferToBuffer(t.buffer, offset * 4, staging, 0, count * 4);
  await gpu.flush();
  await staging.mapAsync(GPUMapMode.READ);
  const out = staging.getMappedRange().slice(0, count * 4);
  staging.unmap();
  staging.destroy();
  return out;
}

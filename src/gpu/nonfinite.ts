/**
 * Launcher of `kernels/nonfinite.wgsl`: the index of the first non-finite (NaN or ±Inf) element of an f32
 * tensor, found on the GPU in one dispatch (one per aligned window past the storage-binding limit). The
 * forward pass uses it on its log-probabilities, so that no forward finishes silently on non-finite values.
 */
import { ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import { elementRanges, fitsBinding } from "./blocks.ts";
import { createTensor, elementWindow, type GpuTensor, readTensors, readTensorU32 } from "./tensor.ts";

/** Elements scanned by one workgroup (WG × PER in the kernel). */
const BLOCK = 256 * 16;
/** The kernel's "none found" value. */
const NONE = 0xffffffff;

/** A recorded scan: one u32 flag per window (`stride` apart) and the first element of each window. */
export interface NonFiniteScan {
  /** u32 flags, 0xFFFFFFFF where the window holds no non-finite value, else its first index in the window. */
  flags: GpuTensor;
  /** First element of `x` scanned by each flag's dispatch (one entry, 0, when `x` fits one binding). */
  starts: number[];
  /** Elements between consecutive flags (the offset alignment, so each flag is its own window). */
  stride: number;
}

/**
 * Records the scan of `x` into new u32 flags and returns them; read them with {@link readFirstNonFinite}
 * (after the result they guard, so that both come back in one flush). An `x` larger than one storage
 * binding ({@link Gpu.bindingLimit}: all logits [R, V] of a large vocabulary) is scanned in aligned
 * windows, one dispatch and one flag each.
 */
export async function recordNonFiniteScan(gpu: Gpu, x: GpuTensor): Promise<NonFiniteScan> {
  if (x.dtype !== "f32") throw new ShapeError(`non-finite scan needs f32, got ${x.dtype}`, { field: x.name });
  if (x.numel >= NONE) throw new ShapeError(`non-finite scan of ${x.numel} elements`, { field: x.name });
  const whole = fitsBinding(gpu, x);
  const ranges = whole ? [[0, x.numel] as [number, number]] : elementRanges(gpu, x.numel);
  // One flag when x fits (the memory estimate counts 4 bytes); past the limit each window's flag sits at its
  // own aligned offset.
  const stride = whole ? 1 : Math.max(1, gpu.device.limits.minStorageBufferOffsetAlignment / 4);
  const flags = createTensor(gpu, [ranges.length * stride], {
    name: `${x.name}.nonfinite`,
    dtype: "u32",
    data: new Uint32Array(ranges.length * stride).fill(NONE),
  });
  for (const [k, [first, end]] of ranges.entries()) {
    const count = end - first;
    if (count === 0) continue;
    const b = whole ? x : elementWindow(x, first, end).window;
    const flag = whole ? flags : elementWindow(flags, k * stride, k * stride + 1).window;
    await launch(
      gpu,
      "nonfinite",
      "first_nonfinite",
      [{ uniform: uniforms(count) }, b, flag],
      grid(gpu, Math.ceil(count / BLOCK)),
    );
  }
  return { flags, starts: ranges.map(([first]) => first), stride };
}

/** The first non-finite index from a scan's flag words, or -1 (windows are in element order). */
function decode(scan: NonFiniteScan, words: Uint32Array): number {
  for (const [k, start] of scan.starts.entries()) {
    const v = words[k * scan.stride];
    if (v !== NONE) return start + v;
  }
  return -1;
}

/** Reads flags made by {@link recordNonFiniteScan} and frees them: the first non-finite index, or -1. */
export async function readFirstNonFinite(scan: NonFiniteScan): Promise<number> {
  try {
    return decode(scan, await readTensorU32(scan.flags));
  } finally {
    scan.flags.destroy();
  }
}

/**
 * Reads `x` back to the host together with the index of its first non-finite element (-1 if none): the
 * scan is one dispatch (one per window past the binding limit) and its flags come back in the same
 * staging buffer, so the check adds no extra round trip to the read the caller needed anyway. `extra`
 * tensors (a step's other results) come back in the same map, in order, in `extra`.
 */
export async function readWithNonFiniteCheck(
  gpu: Gpu,
  x: GpuTensor,
  extra: readonly GpuTensor[] = [],
): Promise<{ data: Float32Array; first: number; extra: Float32Array[] }> {
  const scan = await recordNonFiniteScan(gpu, x);
  try {
    const [data, f, ...rest] = await readTensors([x, scan.flags, ...extra]);
    return { data, first: decode(scan, new Uint32Array(f.buffer, f.byteOffset, f.length)), extra: rest };
  } finally {
    scan.flags.destroy();
  }
}

/** The index of the first non-finite element of `x`, or -1 when all are finite. */
export async function firstNonFinite(gpu: Gpu, x: GpuTensor): Promise<number> {
  return await readFirstNonFinite(await recordNonFiniteScan(gpu, x));
}

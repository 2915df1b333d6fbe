/**
 * Launcher of `kernels/nonfinite.wgsl`: the index of the first non-finite (NaN or ±Inf) element of an f32
 * tensor, found on the GPU in one dispatch. The forward pass uses it on its log-probabilities, so that no
 * forward finishes silently on non-finite values.
 */
import { ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import { createTensor, type GpuTensor, readTensor, readTensors, readTensorU32 } from "./tensor.ts";

/** Elements scanned by one workgroup (WG × PER in the kernel). */
const BLOCK = 256 * 16;
/** The kernel's "none found" value. */
const NONE = 0xffffffff;

/**
 * Records the scan of `x` into a new one-element u32 tensor and returns it; read it with
 * {@link readFirstNonFinite} (after the result it guards, so that both come back in one flush).
 */
export async function recordNonFiniteScan(gpu: Gpu, x: GpuTensor): Promise<GpuTensor> {
  if (x.dtype !== "f32") throw new ShapeError(`non-finite scan needs f32, got ${x.dtype}`, { field: x.name });
  if (x.numel >= NONE) throw new ShapeError(`non-finite scan of ${x.numel} elements`, { field: x.name });
  if (x.numel * 4 > gpu.bindingLimit) {
    throw new ShapeError(`non-finite scan of a tensor over the binding limit (use firstNonFinite)`, {
      field: x.name,
    });
  }
  const flag = createTensor(gpu, [1], {
    name: `${x.name}.nonfinite`,
    dtype: "u32",
    data: Uint32Array.of(NONE),
  });
  if (x.numel > 0) {
    const blocks = Math.ceil(x.numel / BLOCK);
    await launch(
      gpu,
      "nonfinite",
      "first_nonfinite",
      [{ uniform: uniforms(x.numel) }, x, flag],
      grid(gpu, blocks),
    );
  }
  return flag;
}

/** Index of the first non-finite value of `data`, or -1. */
function hostFirstNonFinite(data: Float32Array): number {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) return i;
  return -1;
}

/** Reads a flag made by {@link recordNonFiniteScan} and frees it: the first non-finite index, or -1. */
export async function readFirstNonFinite(flag: GpuTensor): Promise<number> {
  const v = (await readTensorU32(flag))[0];
  flag.destroy();
  return v === NONE ? -1 : v;
}

/**
 * Reads `x` back to the host together with the index of its first non-finite element (-1 if none): the
 * scan is one dispatch and its 4 bytes come back in the same staging buffer, so the check adds no extra
 * round trip to the read the caller needed anyway. `extra` tensors (a step's other results) come back in
 * the same map, in order, in `extra`.
 */
export async function readWithNonFiniteCheck(
  gpu: Gpu,
  x: GpuTensor,
  extra: readonly GpuTensor[] = [],
): Promise<{ data: Float32Array; first: number; extra: Float32Array[] }> {
  // A tensor past the binding limit (the logits of a large vocabulary at every position) is read whole
  // anyway: it is scanned on the host.
  if (x.numel * 4 > gpu.bindingLimit) {
    const [data, ...rest] = await readTensors([x, ...extra]);
    return { data, first: hostFirstNonFinite(data), extra: rest };
  }
  const flag = await recordNonFiniteScan(gpu, x);
  try {
    const [data, f, ...rest] = await readTensors([x, flag, ...extra]);
    const v = new Uint32Array(f.buffer, f.byteOffset, 1)[0];
    return { data, first: v === NONE ? -1 : v, extra: rest };
  } finally {
    flag.destroy();
  }
}

/** The index of the first non-finite element of `x`, or -1 when all are finite. */
export async function firstNonFinite(gpu: Gpu, x: GpuTensor): Promise<number> {
  if (x.numel * 4 > gpu.bindingLimit) return hostFirstNonFinite(await readTensor(x));
  return await readFirstNonFinite(await recordNonFiniteScan(gpu, x));
}

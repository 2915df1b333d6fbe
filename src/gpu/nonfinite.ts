/**
 * Launcher of `kernels/nonfinite.wgsl`: the index of the first non-finite (NaN or ±Inf) element of an f32
 * tensor, found on the GPU in one dispatch. The forward pass uses it on its log-probabilities, so that no
 * forward finishes silently on non-finite values.
 */
import { ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import { createTensor, type GpuTensor, readTensor, readTensorU32 } from "./tensor.ts";

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
 * round trip to the read the caller needed anyway.
 */
export async function readWithNonFiniteCheck(
  gpu: Gpu,
  x: GpuTensor,
): Promise<{ data: Float32Array; first: number }> {
  // A tensor past the binding limit (the logits of a large vocabulary at every position) is read whole
  // anyway: it is scanned on the host.
  if (x.numel * 4 > gpu.bindingLimit) {
    const data = await readTensor(x);
    return { data, first: hostFirstNonFinite(data) };
  }
  const flag = await recordNonFiniteScan(gpu, x);
  const n = x.numel;
  const staging = gpu.device.createBuffer({
    size: n * 4 + 4,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  try {
    const enc = gpu.commandEncoder();
    if (n > 0) enc.copyBufferToBuffer(x.buffer, 0, staging, 0, n * 4);
    enc.copyBufferToBuffer(flag.buffer, 0, staging, n * 4, 4);
    await gpu.flush();
    await staging.mapAsync(GPUMapMode.READ);
    const bytes = staging.getMappedRange().slice(0);
    staging.unmap();
    const v = new Uint32Array(bytes, n * 4, 1)[0];
    return { data: new Float32Array(bytes, 0, n), first: v === NONE ? -1 : v };
  } finally {
    staging.destroy();
    flag.destroy();
  }
}

/** The index of the first non-finite element of `x`, or -1 when all are finite. */
export async function firstNonFinite(gpu: Gpu, x: GpuTensor): Promise<number> {
  if (x.numel * 4 > gpu.bindingLimit) return hostFirstNonFinite(await readTensor(x));
  return await readFirstNonFinite(await recordNonFiniteScan(gpu, x));
}

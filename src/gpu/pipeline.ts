/**
 * Kernel sources and the compute-pipeline cache.
 *
 * Kernels live in `kernels/NAME.wgsl` and are read relative to this module, so `deno compile
 * --include kernels` embeds them in the standalone binary. Pipelines are compiled once per
 * (kernel, entry point, override constants) and reused.
 */
import { GpuError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import type { GpuTensor } from "./tensor.ts";

const sources = new Map<string, string>();

/** Returns the WGSL source of `kernels/<name>.wgsl`. */
export function kernelSource(name: string): string {
  let s = sources.get(name);
  if (s === undefined) {
    const url = new URL(`../../kernels/${name}.wgsl`, import.meta.url);
    try {
      s = Deno.readTextFileSync(url);
    } catch (e) {
      throw new GpuError(`kernel source kernels/${name}.wgsl could not be read: ${(e as Error).message}`);
    }
    sources.set(name, s);
  }
  return s;
}

const cache = new WeakMap<Gpu, Map<string, Promise<GPUComputePipeline>>>();

/**
 * Compiled pipeline for `entry` in `kernels/<kernel>.wgsl`, with optional pipeline-overridable
 * constants (e.g. workgroup size). WGSL compile errors become {@link GpuError} naming the kernel.
 */
export function getPipeline(
  gpu: Gpu,
  kernel: string,
  entry: string,
  constants: Record<string, number> = {},
): Promise<GPUComputePipeline> {
  let m = cache.get(gpu);
  if (!m) cache.set(gpu, m = new Map());
  const key = `${kernel}:${entry}:${JSON.stringify(constants)}`;
  let p = m.get(key);
  if (!p) {
    p = compile(gpu, kernel, entry, constants);
    m.set(key, p);
    p.catch(() => m!.delete(key));
  }
  return p;
}

async function compile(
  gpu: Gpu,
  kernel: string,
  entry: string,
  constants: Record<string, number>,
): Promise<GPUComputePipeline> {
  gpu.checkAlive();
  const code = kernelSource(kernel);
  const device = gpu.device;
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ label: kernel, code });
  let pipeline: GPUComputePipeline | undefined;
  let failure: string | undefined;
  try {
    pipeline = await device.createComputePipelineAsync({
      label: `${kernel}:${entry}`,
      layout: "auto",
      compute: { module, entryPoint: entry, constants },
    });
  } catch (e) {
    failure = (e as Error).message;
  }
  const err = await device.popErrorScope();
  if (err || failure || !pipeline) {
    let detail = err?.message ?? failure ?? "unknown error";
    try {
      const info = await module.getCompilationInfo();
      const msgs = info.messages.map((m) => `${m.type} at ${m.lineNum}:${m.linePos}: ${m.message}`);
      if (msgs.length) detail += "\n" + msgs.join("\n");
    } catch { /* compilation info is optional */ }
    throw new GpuError(`kernel kernels/${kernel}.wgsl entry '${entry}' failed to compile: ${detail}`);
  }
  return pipeline;
}

/** One binding of a dispatch: a tensor (storage) or raw uniform bytes. */
export type Binding = GpuTensor | { uniform: ArrayBuffer | ArrayBufferView };

/**
 * Records a dispatch of `entry` with bindings 0..n-1 of group 0 in the given order.
 * Uniforms are copied into a fresh small buffer that is freed after submission.
 */
export async function launch(
  gpu: Gpu,
  kernel: string,
  entry: string,
  bindings: Binding[],
  workgroups: [number, number?, number?],
  constants: Record<string, number> = {},
): Promise<void> {
  const pipeline = await getPipeline(gpu, kernel, entry, constants);
  const entries: GPUBindGroupEntry[] = bindings.map((b, i) => {
    if ("uniform" in b) {
      const src = b.uniform;
      const bytes = src instanceof ArrayBuffer
        ? new Uint8Array(src)
        : new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
      const size = Math.max(16, Math.ceil(bytes.byteLength / 16) * 16);
      const buf = gpu.device.createBuffer({ size, usage: GPUBufferUsage.UNIFORM, mappedAtCreation: true });
      new Uint8Array(buf.getMappedRange()).set(bytes);
      buf.unmap();
      gpu.deferDestroy(buf);
      return { binding: i, resource: { buffer: buf } };
    }
    return { binding: i, resource: { buffer: b.buffer } };
  });
  const bindGroup = gpu.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
  gpu.encode(pipeline, bindGroup, [workgroups[0], workgroups[1] ?? 1, workgroups[2] ?? 1]);
}

/**
 * Splits `n` workgroups into a 2-D grid that respects the per-dimension limit (65535 on most
 * adapters). Kernels recover the linear index as `wg.x + wg.y * num_workgroups.x`.
 */
export function grid(gpu: Gpu, n: number): [number, number] {
  const lim = gpu.device.limits.maxComputeWorkgroupsPerDimension;
  if (n <= lim) return [n, 1];
  const y = Math.ceil(n / lim);
  return [Math.ceil(n / y), y];
}

/** Packs u32/f32 uniform fields into a 16-byte-aligned buffer. Use `{f: x}` for an f32 field. */
export function uniforms(...fields: (number | { f: number })[]): ArrayBuffer {
  const buf = new ArrayBuffer(Math.max(16, Math.ceil((fields.length * 4) / 16) * 16));
  const u = new Uint32Array(buf);
  const f = new Float32Array(buf);
  fields.forEach((v, i) => {
    if (typeof v === "number") {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
        throw new RangeError(`uniform ${i} = ${v} is not a u32`);
      }
      u[i] = v;
    } else f[i] = v.f;
  });
  return buf;
}

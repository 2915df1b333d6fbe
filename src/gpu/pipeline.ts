/**
 * Kernel sources and the compute-pipeline cache.
 *
 * Kernels live in `kernels/NAME.wgsl`. They reach this module as text imports through the generated
 * `kernels/mod.ts` (scripts/gen_kernels.ts), never as file reads, so the library works when imported
 * from another folder, by URL, or from a `deno compile` binary. WGSL has no modules, so a kernel pulls
 * shared code in with a line `//#include "lib/x.wgsl"` (path relative to the including file, inside
 * `kernels/`); {@link expandKernel} pastes each file once. Pipelines are compiled once per (kernel,
 * entry point, override constants) and reused.
 */
import { KERNEL_FILES } from "../../kernels/mod.ts";
import { GpuError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import type { GpuTensor, TensorWindow } from "./tensor.ts";

/** A kernel's `//#include` names a file that cannot be read, or one outside `kernels/`. */
export class KernelIncludeError extends GpuError {
  /**
   * @param including the including file, relative to the kernel root (e.g. `kernels/softmax.wgsl`)
   * @param line 1-based line of the directive in `including`
   * @param target the path the directive names
   */
  constructor(
    readonly including: string,
    readonly line: number,
    readonly target: string,
    reason: string,
    cause?: unknown,
  ) {
    super(`line ${line}: //#include "${target}" ${reason}`, { file: including, field: target, cause });
  }
}

/** Where one line of an expanded kernel came from. */
export interface SourceLine {
  /** File relative to the kernel root's parent, e.g. `kernels/lib/kahan.wgsl`. */
  file: string;
  /** 1-based line in that file. */
  line: number;
}

/** A kernel with its includes pasted in, and the origin of every line (for compile errors). */
export interface ExpandedKernel {
  code: string;
  lines: SourceLine[];
}

/**
 * A set of kernel sources to expand from: the folder's name (used in messages and {@link SourceLine}s,
 * e.g. `kernels`) and each file's text by path relative to it (`softmax.wgsl`, `lib/kahan.wgsl`).
 */
export interface KernelSources {
  root: string;
  files: Readonly<Record<string, string>>;
}

/** This project's kernels, as imported by `kernels/mod.ts`. */
export const PROJECT_KERNELS: KernelSources = { root: "kernels", files: KERNEL_FILES };

const INCLUDE = /^\s*\/\/#include\s+"([^"]+)"\s*$/;
// Kernel names are plain file stems: shared fragments under kernels/lib/ can never be compiled alone.
const KERNEL_NAME = /^[a-z0-9_]+$/;
// Include paths are resolved as URLs below this made-up base; a result outside it leaves the root.
const BASE = "file:///kernel-root/";
const BASE_PATH = new URL(BASE).pathname;

/**
 * Takes `<root>/<name>.wgsl` from `sources` and resolves its `//#include "path"` lines recursively:
 * each path is relative to the file that names it and must stay inside the root; each file is pasted at
 * its first include only (later ones and include cycles become a one-line comment), so shared fragments
 * need no guards. A directive is a whole line; anything else (e.g. `// see //#include ...`) is left as
 * is.
 *
 * `swap` maps an include's resolved path to the file pasted instead (a kernel variant, e.g.
 * {@link F16_VARIANT}); the pasted lines name the file they came from.
 *
 * `sources` defaults to this project's kernels ({@link PROJECT_KERNELS}). Throws
 * {@link KernelIncludeError} naming the including file and line when an include is missing or leaves
 * the root, and {@link GpuError} when the kernel itself is missing.
 */
export function expandKernel(
  name: string,
  sources: KernelSources = PROJECT_KERNELS,
  swap: Readonly<Record<string, string>> = {},
): ExpandedKernel {
  if (!KERNEL_NAME.test(name)) {
    throw new GpuError(`'${name}' is not a kernel name (kernels/<name>.wgsl, letters, digits and _ only)`);
  }
  const { root, files } = sources;
  // A new .wgsl file only reaches the library once the generated import map lists it.
  const hint = sources === PROJECT_KERNELS ? " in kernels/mod.ts (run deno task kernels)" : "";
  const has = (path: string) => Object.hasOwn(files, path);
  const code: string[] = [];
  const lines: SourceLine[] = [];
  const seen = new Set<string>();
  const paste = (path: string, text: string) => {
    seen.add(path);
    const file = `${root}/${path}`;
    text.split(/\r?\n/).forEach((src, i) => {
      const m = INCLUDE.exec(src);
      if (!m) {
        code.push(src);
        lines.push({ file, line: i + 1 });
        return;
      }
      const url = new URL(m[1], BASE + path);
      if (url.protocol !== "file:" || url.host !== "" || !url.pathname.startsWith(BASE_PATH)) {
        throw new KernelIncludeError(file, i + 1, m[1], `leaves ${root}/`);
      }
      const named = decodeURIComponent(url.pathname.slice(BASE_PATH.length));
      const target = Object.hasOwn(swap, named) ? swap[named] : named;
      if (seen.has(target)) {
        code.push(`// (${root}/${target} already included)`);
        lines.push({ file, line: i + 1 });
        return;
      }
      if (!has(target)) {
        throw new KernelIncludeError(
          file,
          i + 1,
          m[1],
          `could not be read: ${root}/${target} does not exist${hint}`,
        );
      }
      paste(target, files[target]);
    });
  };
  const path = `${name}.wgsl`;
  if (!has(path)) {
    throw new GpuError(`kernel source ${root}/${path} could not be read: no such kernel${hint}`);
  }
  paste(path, files[path]);
  return { code: code.join("\n"), lines };
}

/**
 * The shader-f16 variant of the kernels that read weights through `lib/unpack16.wgsl`: launched with
 * `W16` = {@link W16_NATIVE_F16}, a kernel is compiled with `lib/unpack16_f16.wgsl` in its place and
 * `enable f16;` first, so an F16 weight is bound as `array<f16>` / `array<vec4<f16>>`. Only on a device
 * created with the `shader-f16` feature (see `Gpu.shaderF16`).
 */
export const F16_VARIANT = {
  swap: { "lib/unpack16.wgsl": "lib/unpack16_f16.wgsl" } as Readonly<Record<string, string>>,
  enable: "enable f16;",
  feature: "shader-f16" as GPUFeatureName,
} as const;

/** `W16` value that selects {@link F16_VARIANT} (0 f32, 1 bf16, 2 packed f16: lib/unpack16.wgsl). */
export const W16_NATIVE_F16 = 3;

// What a kernel launched with each W16 value reads a weight binding as.
const READS: Record<number, string> = { 0: "f32", 1: "bf16", 2: "f16", [W16_NATIVE_F16]: "f16" };

/** A kernel's source as {@link F16_VARIANT} compiles it: the swapped include, `enable f16;` first. */
export function expandKernelF16(name: string, sources: KernelSources = PROJECT_KERNELS): ExpandedKernel {
  const e = expandKernel(name, sources, F16_VARIANT.swap);
  if (e.code === expandKernel(name, sources).code) {
    throw new GpuError(
      `kernels/${name}.wgsl has no shader-f16 variant (it does not include lib/unpack16.wgsl)`,
    );
  }
  return {
    code: `${F16_VARIANT.enable}\n${e.code}`,
    lines: [{ file: `${sources.root}/${F16_VARIANT.swap["lib/unpack16.wgsl"]}`, line: 0 }, ...e.lines],
  };
}

/**
 * The subgroup variant of the row kernels that take their row statistics from `lib/online_softmax.wgsl`
 * (softmax, log-softmax, cross-entropy, the editors' delta loss): launched with the constant
 * `SUBGROUPS: 1` (a selector, removed before the pipeline is created), a kernel is compiled with
 * `lib/online_softmax_subgroup.wgsl` in its place, which folds a row's partials with subgroup operations
 * instead of every lane folding all of them. Only on a device created with the `subgroups` feature; the
 * workgroup size must be a multiple of the subgroup size (src/gpu/row_workgroup.ts chooses both).
 *
 * WGSL asks for `enable subgroups;` before subgroup operations (Chromium's Tint requires it), while
 * wgpu's naga, under Deno, rejects the directive (it treats subgroups as a device capability): the first
 * compile on a device tries the source with the directive, then without, and keeps the form that
 * compiles for that device.
 */
export const SUBGROUP_VARIANT = {
  swap: { "lib/online_softmax.wgsl": "lib/online_softmax_subgroup.wgsl" } as Readonly<Record<string, string>>,
  enable: "enable subgroups;",
  feature: "subgroups" as GPUFeatureName,
  selector: "SUBGROUPS",
} as const;

/** The kernel variants: the plain source, {@link F16_VARIANT}, {@link SUBGROUP_VARIANT}. */
type Variant = "plain" | "f16" | "subgroups";

/**
 * A kernel's source as {@link SUBGROUP_VARIANT} compiles it: the swapped include, with `enable
 * subgroups;` first when `enable` (default true). Throws {@link GpuError} for a kernel without it.
 */
export function expandKernelSubgroups(
  name: string,
  sources: KernelSources = PROJECT_KERNELS,
  enable = true,
): ExpandedKernel {
  const e = expandKernel(name, sources, SUBGROUP_VARIANT.swap);
  if (e.code === expandKernel(name, sources).code) {
    throw new GpuError(
      `kernels/${name}.wgsl has no subgroup variant (it does not include lib/online_softmax.wgsl)`,
    );
  }
  if (!enable) return e;
  return {
    code: `${SUBGROUP_VARIANT.enable}\n${e.code}`,
    lines: [
      { file: `${sources.root}/${SUBGROUP_VARIANT.swap["lib/online_softmax.wgsl"]}`, line: 0 },
      ...e.lines,
    ],
  };
}

const sources = new Map<string, ExpandedKernel>();

function expanded(name: string, variant: Variant = "plain", enable = true): ExpandedKernel {
  const key = `${name}:${variant}:${enable}`;
  let s = sources.get(key);
  if (s === undefined) {
    s = variant === "f16"
      ? expandKernelF16(name)
      : variant === "subgroups"
      ? expandKernelSubgroups(name, PROJECT_KERNELS, enable)
      : expandKernel(name);
    sources.set(key, s);
  }
  return s;
}

/** Returns the WGSL source of `kernels/<name>.wgsl` with its includes resolved (as compiled). */
export function kernelSource(name: string): string {
  return expanded(name).code;
}

const cache = new WeakMap<Gpu, Map<string, Promise<GPUComputePipeline>>>();

/**
 * Compiled pipeline for `entry` in `kernels/<kernel>.wgsl`, with optional pipeline-overridable
 * constants (e.g. workgroup size) and an explicit layout of bind group 0 (for dynamic offsets; default
 * the shader's own). WGSL compile errors become {@link GpuError} naming the kernel.
 */
export function getPipeline(
  gpu: Gpu,
  kernel: string,
  entry: string,
  constants: Record<string, number> = {},
  layout?: GPUBindGroupLayoutEntry[],
): Promise<GPUComputePipeline> {
  let m = cache.get(gpu);
  if (!m) cache.set(gpu, m = new Map());
  const key = `${kernel}:${entry}:${JSON.stringify(constants)}${layout ? ":" + JSON.stringify(layout) : ""}`;
  let p = m.get(key);
  if (!p) {
    p = compile(gpu, kernel, entry, constants, layout);
    m.set(key, p);
    p.catch(() => m!.delete(key));
  }
  return p;
}

// Per device: whether its compiler takes `enable subgroups;` (found on the first subgroup compile).
const subgroupDirective = new WeakMap<Gpu, boolean>();

async function compile(
  gpu: Gpu,
  kernel: string,
  entry: string,
  constants: Record<string, number>,
  layout?: GPUBindGroupLayoutEntry[],
): Promise<GPUComputePipeline> {
  gpu.checkAlive();
  const f16 = constants.W16 === W16_NATIVE_F16;
  if (f16 && !gpu.device.features.has(F16_VARIANT.feature)) {
    throw new GpuError(
      `kernel kernels/${kernel}.wgsl entry '${entry}': the shader-f16 variant needs a device with the ` +
        "shader-f16 feature, which this one lacks",
    );
  }
  const { [SUBGROUP_VARIANT.selector]: sg, ...overrides } = constants;
  if (sg === undefined) {
    return await compileSource(
      gpu,
      kernel,
      entry,
      overrides,
      expanded(kernel, f16 ? "f16" : "plain"),
      layout,
    );
  }
  if (sg !== 1 || f16) {
    throw new GpuError(
      `kernel kernels/${kernel}.wgsl entry '${entry}': ${SUBGROUP_VARIANT.selector} must be 1 (the subgroup variant), ` +
        "without the shader-f16 variant",
    );
  }
  if (!gpu.device.features.has(SUBGROUP_VARIANT.feature)) {
    throw new GpuError(
      `kernel kernels/${kernel}.wgsl entry '${entry}': the subgroup variant needs a device with the ` +
        "subgroups feature, which this one lacks",
    );
  }
  const known = subgroupDirective.get(gpu);
  if (known !== undefined) {
    return await compileSource(gpu, kernel, entry, overrides, expanded(kernel, "subgroups", known));
  }
  try {
    const p = await compileSource(gpu, kernel, entry, overrides, expanded(kernel, "subgroups", true));
    subgroupDirective.set(gpu, true);
    return p;
  } catch (withDirective) {
    try {
      const p = await compileSource(gpu, kernel, entry, overrides, expanded(kernel, "subgroups", false));
      subgroupDirective.set(gpu, false);
      return p;
    } catch (without) {
      throw new GpuError(
        `${(without as Error).message}\n(with '${SUBGROUP_VARIANT.enable}' first: ${
          (withDirective as Error).message
        })`,
      );
    }
  }
}

async function compileSource(
  gpu: Gpu,
  kernel: string,
  entry: string,
  constants: Record<string, number>,
  { code, lines }: ExpandedKernel,
  layout?: GPUBindGroupLayoutEntry[],
): Promise<GPUComputePipeline> {
  const device = gpu.device;
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ label: kernel, code });
  let pipeline: GPUComputePipeline | undefined;
  let failure: string | undefined;
  try {
    pipeline = await device.createComputePipelineAsync({
      label: `${kernel}:${entry}`,
      layout: layout
        ? device.createPipelineLayout({
          bindGroupLayouts: [device.createBindGroupLayout({ entries: layout })],
        })
        : "auto",
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
      const msgs = info.messages.map((m) => {
        // Line numbers count the expanded source: name the file the line came from.
        const at = lines[m.lineNum - 1];
        const where = at ? `${at.file}:${at.line}` : `line ${m.lineNum}`;
        return `${m.type} at ${where}:${m.linePos}: ${m.message}`;
      });
      if (msgs.length) detail += "\n" + msgs.join("\n");
    } catch { /* compilation info is optional */ }
    throw new GpuError(`kernel kernels/${kernel}.wgsl entry '${entry}' failed to compile: ${detail}`);
  }
  return pipeline;
}

/**
 * One binding of a dispatch: a whole tensor (storage), a byte window of one ({@link TensorWindow}, for
 * tensors over {@link Gpu.bindingLimit}), or raw uniform bytes.
 */
export type Binding = GpuTensor | TensorWindow | { uniform: ArrayBuffer | ArrayBufferView };

/**
 * Records a dispatch of `entry` with bindings 0..n-1 of group 0 in the given order.
 * Uniforms are copied into a fresh small buffer that is freed after submission. A whole tensor larger
 * than {@link Gpu.bindingLimit}, or a window over it, is a {@link GpuError} naming the kernel and the
 * tensor: a path that does not split such a tensor fails loudly instead of binding a partial view.
 */
export async function launch(
  gpu: Gpu,
  kernel: string,
  entry: string,
  bindings: Binding[],
  workgroups: [number, number?, number?],
  constants: Record<string, number> = {},
): Promise<void> {
  const limit = gpu.bindingLimit;
  for (const b of bindings) {
    if ("uniform" in b) continue;
    const [t, size] = "tensor" in b ? [b.tensor, b.size] : [b, b.buffer.size];
    // A packed 16-bit tensor is readable only by a kernel told its dtype (lib/unpack16.wgsl's W16, or
    // W16_NATIVE_F16 for an f16 one): any other kernel would read its words as f32.
    const reads = READS[constants.W16 ?? 0] ?? "f32";
    if ((t.dtype === "bf16" || t.dtype === "f16") && reads !== t.dtype) {
      throw new GpuError(
        `kernel kernels/${kernel}.wgsl entry '${entry}' reads ${reads}, but tensor '${t.name}' is stored as ${t.dtype}`,
        { field: t.name },
      );
    }
    if (size > limit) {
      throw new GpuError(
        `kernel kernels/${kernel}.wgsl entry '${entry}' would bind ${size} bytes of tensor '${t.name}' ` +
          `([${t.shape}]), over the storage-binding limit of ${limit} bytes; this path does not split it`,
        { field: t.name },
      );
    }
  }
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
    if ("tensor" in b) {
      return { binding: i, resource: { buffer: b.tensor.buffer, offset: b.offset, size: b.size } };
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

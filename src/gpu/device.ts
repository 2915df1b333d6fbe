/**
 * WebGPU device acquisition and the command queue engram records into.
 *
 * One {@link Gpu} per process (see {@link getGpu}). Launchers record compute passes into the pending
 * command encoder with {@link Gpu.encode}; {@link Gpu.flush} submits them inside validation and
 * out-of-memory error scopes, so a bad dispatch becomes a {@link GpuError} instead of a silent NaN.
 */
import { GpuError } from "../errors.ts";

/** What a user (or a benchmark file) needs to know about the adapter engram runs on. */
export interface AdapterDescription {
  /** `GPUAdapterInfo.vendor` as the adapter reports it (may be empty). */
  vendor: string;
  /** `GPUAdapterInfo.architecture` as the adapter reports it (may be empty). */
  architecture: string;
  /** `GPUAdapterInfo.device` as the adapter reports it (may be empty). */
  device: string;
  /** `GPUAdapterInfo.description`, the adapter's name (e.g. containing "llvmpipe" on Mesa). */
  description: string;
  /** Whether the adapter info says it is a fallback adapter (false when the field is absent). */
  isFallbackAdapter: boolean;
  /** Largest storage-buffer binding in bytes (the limit itself, not a {@link Gpu.setBindingLimit} value). */
  maxStorageBufferBindingSize: number;
  /** Largest buffer in bytes. */
  maxBufferSize: number;
  /** Bytes of workgroup (shared) memory one compute workgroup may use. */
  maxComputeWorkgroupStorageSize: number;
  /** Most invocations (threads) in one compute workgroup. */
  maxComputeInvocationsPerWorkgroup: number;
  /** The WebGPU backend (vulkan, gl, metal, dx12): from DENO_WEBGPU_BACKEND, else inferred (see adapterBackend). */
  backend: string;
  /** Where {@link backend} came from. */
  backendSource: "DENO_WEBGPU_BACKEND" | "inferred";
  /** The driver, where the description alone does not say (Mesa's llvmpipe is "llvmpipe" in GL and Vulkan). */
  driver: string;
  /** Smallest subgroup size the adapter reports (0 when it does not). */
  subgroupMinSize: number;
  /** Largest subgroup size the adapter reports (0 when it does not). */
  subgroupMaxSize: number;
  /** The adapter's optional features, sorted. */
  features: string[];
}

/** A live WebGPU device plus engram's pending-command state. */
export class Gpu {
  /** The adapter the device was requested from. */
  readonly adapter: GPUAdapter;
  /** The WebGPU device all buffers, pipelines and commands belong to. */
  readonly device: GPUDevice;
  /** Set once the device is lost; every later call throws. */
  lostReason: string | undefined;
  /**
   * Bytes of the live tensor buffers ({@link createTensor} adds a buffer's size, `GpuTensor.destroy`
   * subtracts it). Uniform and staging buffers are not counted: they are small or host-side.
   */
  allocatedBytes = 0;
  /** Largest {@link allocatedBytes} seen since the device was created or {@link resetPeak} was called. */
  peakAllocatedBytes = 0;
  private encoder: GPUCommandEncoder | undefined;
  private pass: GPUComputePassEncoder | undefined;
  private pendingDispatches = 0;
  /** Buffers (uniforms, staging) to destroy once the pending commands are submitted. */
  private garbage: GPUBuffer[] = [];
  private bindingOverride: number | undefined;
  /** Memory budget set with {@link Gpu.setMemoryBudget} (bytes), above ENGRAM_GPU_MEMORY. */
  memoryBudget: number | undefined;
  private f16Override: boolean | undefined;

  /**
   * Wraps a device requested from `adapter` and watches `device.lost` to set {@link lostReason}.
   * Use {@link getGpu} rather than constructing one directly.
   */
  constructor(adapter: GPUAdapter, device: GPUDevice) {
    this.adapter = adapter;
    this.device = device;
    device.lost.then((info) => {
      this.lostReason = `${info.reason}: ${info.message}`;
    });
  }

  /**
   * Largest storage binding (bytes) engram lets one dispatch see: the device's
   * `maxStorageBufferBindingSize`, unless lowered with {@link Gpu.setBindingLimit}. Tensors above it
   * (up to `maxBufferSize`) are allocated whole, and the kernels that may meet them bind them in windows.
   */
  get bindingLimit(): number {
    return this.bindingOverride ?? this.device.limits.maxStorageBufferBindingSize;
  }

  /**
   * Lowers the binding limit engram assumes (tests use it to run the split paths on small tensors);
   * `undefined` restores the device's limit. A value is a positive multiple of 16 bytes, at least
   * 1 KiB, and never above the device's own limit: anything else is a {@link GpuError}.
   */
  setBindingLimit(bytes: number | undefined): void {
    if (bytes !== undefined) {
      const dev = this.device.limits.maxStorageBufferBindingSize;
      if (!Number.isInteger(bytes) || bytes < 1024 || bytes % 16 !== 0 || bytes > dev) {
        throw new GpuError(
          `binding limit ${bytes} must be a multiple of 16 bytes between 1024 and the device's ${dev}`,
        );
      }
    }
    this.bindingOverride = bytes;
  }

  /**
   * Sets the bytes of tensor buffers engram may hold on this device, for this Gpu only (a process-wide
   * ENGRAM_GPU_MEMORY would reach every worker of a parallel test run); `undefined` clears it.
   */
  setMemoryBudget(bytes: number | undefined): void {
    if (bytes !== undefined && !(Number.isSafeInteger(bytes) && bytes >= 0)) {
      throw new GpuError(`memory budget ${bytes} must be a non-negative integer of bytes`);
    }
    this.memoryBudget = bytes;
  }

  /**
   * Whether kernels read F16 weights as `array<f16>` (the shader-f16 variant, kernels/lib/unpack16_f16.wgsl)
   * rather than as packed words decoded with `unpack2x16float`: true when the device has the `shader-f16`
   * feature, unless turned off with {@link Gpu.setShaderF16}. Both give the same f32 values (the conversion
   * is exact); BF16 weights are always packed (f16 cannot hold them).
   */
  get shaderF16(): boolean {
    return this.f16Override ?? this.device.features.has("shader-f16");
  }

  /**
   * Turns the shader-f16 variant off (`false`, e.g. to compare it with the packed path) or back on
   * (`true`; a {@link GpuError} when the device lacks the feature); `undefined` restores the default.
   */
  setShaderF16(on: boolean | undefined): void {
    if (on === true && !this.device.features.has("shader-f16")) {
      throw new GpuError("this device has no shader-f16 feature (the adapter does not offer it)");
    }
    this.f16Override = on;
  }

  /** Adapter name, vendor and the limits that bound tensor sizes. */
  describe(): AdapterDescription {
    return describeAdapter(this.adapter, this.device.limits);
  }

  /** Counts a new tensor buffer of `bytes` (called by createTensor). */
  noteAllocated(bytes: number): void {
    this.allocatedBytes += bytes;
    if (this.allocatedBytes > this.peakAllocatedBytes) this.peakAllocatedBytes = this.allocatedBytes;
  }

  /** Uncounts a destroyed tensor buffer of `bytes` (called once per tensor by GpuTensor.destroy). */
  noteFreed(bytes: number): void {
    this.allocatedBytes -= bytes;
  }

  /** Restarts {@link peakAllocatedBytes} from the bytes live now (to measure one operation's peak). */
  resetPeak(): void {
    this.peakAllocatedBytes = this.allocatedBytes;
  }

  /** Throws if the device was lost. Called before any GPU work. */
  checkAlive(): void {
    if (this.lostReason !== undefined) throw new GpuError(`the GPU device was lost (${this.lostReason})`);
  }

  /**
   * Records one compute dispatch into the pending command buffer. All dispatches of one flush share a
   * single compute pass: WebGPU orders storage writes between dispatches, so no barriers are needed.
   * `dynamicOffsets` are the bind group's dynamic buffer offsets, in binding order.
   */
  encode(
    pipeline: GPUComputePipeline,
    bindGroup: GPUBindGroup,
    workgroups: [number, number, number],
    dynamicOffsets?: number[],
  ): void {
    this.checkAlive();
    const lim = this.device.limits.maxComputeWorkgroupsPerDimension;
    for (const w of workgroups) {
      if (!Number.isInteger(w) || w < 0 || w > lim) {
        throw new GpuError(
          `dispatch of [${workgroups}] workgroups exceeds the adapter's limit of ${lim} per dimension`,
        );
      }
    }
    if (workgroups[0] * workgroups[1] * workgroups[2] === 0) return;
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    if (!this.pass) this.pass = this.encoder.beginComputePass();
    this.pass.setPipeline(pipeline);
    if (dynamicOffsets) this.pass.setBindGroup(0, bindGroup, dynamicOffsets);
    else this.pass.setBindGroup(0, bindGroup);
    this.pass.dispatchWorkgroups(workgroups[0], workgroups[1], workgroups[2]);
    this.pendingDispatches++;
    // Very long command buffers hurt latency and memory on some drivers; submit in chunks.
    if (this.pendingDispatches >= 512) this.submit();
  }

  /** Ends the open compute pass so a copy command can be recorded in order after it. */
  commandEncoder(): GPUCommandEncoder {
    this.checkAlive();
    if (this.pass) {
      this.pass.end();
      this.pass = undefined;
    }
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    return this.encoder;
  }

  /** Schedules a buffer for destruction after the pending commands have been submitted. */
  deferDestroy(buf: GPUBuffer): void {
    this.garbage.push(buf);
  }

  /** Submits pending commands without waiting for them. */
  submit(): void {
    this.checkAlive();
    if (this.pass) {
      this.pass.end();
      this.pass = undefined;
    }
    if (this.encoder) {
      this.device.queue.submit([this.encoder.finish()]);
      this.encoder = undefined;
    }
    this.pendingDispatches = 0;
    for (const b of this.garbage) b.destroy();
    this.garbage = [];
  }

  /**
   * Submits pending commands and waits for the GPU to finish them, turning any validation or
   * out-of-memory error raised meanwhile into a {@link GpuError}.
   */
  async flush(): Promise<void> {
    await this.submitChecked();
    await this.device.queue.onSubmittedWorkDone();
    this.checkAlive();
  }

  /**
   * Submits pending commands inside validation and out-of-memory error scopes and throws their errors
   * as {@link GpuError}, without waiting for the GPU to finish. Readbacks call this and then map their
   * staging buffer: a map already completes only after the work submitted before it, so waiting for
   * `onSubmittedWorkDone` first would add a second completion poll (about 11 ms on Deno's llvmpipe)
   * to every read. The scopes resolve as soon as the submission is validated.
   */
  async submitChecked(): Promise<void> {
    this.device.pushErrorScope("out-of-memory");
    this.device.pushErrorScope("validation");
    this.submit();
    const validation = await this.device.popErrorScope();
    const oom = await this.device.popErrorScope();
    this.checkAlive();
    if (validation) throw new GpuError(`WebGPU validation error: ${validation.message}`);
    if (oom) throw new GpuError(`GPU out of memory: ${oom.message}`);
  }
}

/**
 * Which adapter {@link getGpu} asks Deno for: `default` (= `high-performance`, engram's choice so far),
 * `low-power`, `fallback` (`forceFallbackAdapter`), or `cpu`: the first of those that is a software
 * rasterizer. Deno picks the backend itself (Vulkan, else GL, on Linux); `DENO_WEBGPU_BACKEND=gl|vulkan`
 * forces one.
 */
export const ADAPTER_CHOICES = ["default", "high-performance", "low-power", "fallback", "cpu"] as const;
/** One of {@link ADAPTER_CHOICES}. */
export type AdapterChoice = typeof ADAPTER_CHOICES[number];

const REQUESTS: Record<Exclude<AdapterChoice, "cpu">, GPURequestAdapterOptions> = {
  default: { powerPreference: "high-performance" },
  "high-performance": { powerPreference: "high-performance" },
  "low-power": { powerPreference: "low-power" },
  fallback: { forceFallbackAdapter: true },
};

const SOFTWARE = /llvmpipe|lavapipe|softpipe|swiftshader|\bwarp\b|basic render/i;

let choice: AdapterChoice = "default";
let current: Promise<Gpu> | undefined;
let currentChoice: AdapterChoice = "default";

/**
 * Chooses the adapter later {@link getGpu} calls use (the CLI's `--adapter`). A choice other than the
 * one the current Gpu was made with makes the next getGpu request a new adapter.
 */
export function setAdapterChoice(c: AdapterChoice): void {
  if (!(ADAPTER_CHOICES as readonly string[]).includes(c)) {
    throw new GpuError(`unknown adapter '${c}' (one of ${ADAPTER_CHOICES.join(", ")})`, {
      field: "--adapter",
    });
  }
  choice = c;
}

function envBackend(): string | undefined {
  try {
    // Asked only when granted: a bare Deno.env.get would prompt a library user on a terminal.
    const q = Deno.permissions.querySync({ name: "env", variable: "DENO_WEBGPU_BACKEND" });
    if (q.state !== "granted") return undefined;
    return Deno.env.get("DENO_WEBGPU_BACKEND") || undefined;
  } catch {
    return undefined; // no --allow-env: infer
  }
}

/**
 * A hint for the no-adapter error when DENO_WEBGPU_BACKEND (`raw`, undefined when unset) names no backend:
 * Deno 2.9 then finds no adapter at all (measured: an empty value, "primary" and "bogus" all give null for
 * every request, with llvmpipe and lavapipe installed), which reads like a missing driver. "" otherwise.
 */
export function backendHint(raw: string | undefined): string {
  if (raw === undefined) return "";
  const known = ["vulkan", "gl", "opengl", "metal", "dx12"];
  if (raw.split(",").every((p) => known.includes(p.trim().toLowerCase()))) return "";
  return `; DENO_WEBGPU_BACKEND is set to '${raw}', which names no backend (vulkan, gl, metal, dx12): ` +
    "unset it or name one";
}

function rawEnvBackend(): string | undefined {
  try {
    const q = Deno.permissions.querySync({ name: "env", variable: "DENO_WEBGPU_BACKEND" });
    return q.state === "granted" ? Deno.env.get("DENO_WEBGPU_BACKEND") : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The backend an adapter runs on. Deno's GPUAdapterInfo does not name it, so: DENO_WEBGPU_BACKEND when it
 * names one backend; else inferred. wgpu's GL backend has no bind-group limit and reports
 * maxBindingsPerBindGroup as 2^32 - 1 (Vulkan reports about a thousand): measured with Mesa's llvmpipe
 * under GL (4294967295) and lavapipe under Vulkan (1024) on the same machine.
 */
export function adapterBackend(
  limits: GPUSupportedLimits,
): { backend: string; source: "DENO_WEBGPU_BACKEND" | "inferred" } {
  const env = envBackend()?.trim().toLowerCase();
  if (env && /^[a-z0-9]+$/.test(env)) {
    return { backend: env === "opengl" ? "gl" : env, source: "DENO_WEBGPU_BACKEND" };
  }
  const huge = (limits as unknown as Record<string, number>).maxBindingsPerBindGroup >= 2 ** 32 - 1;
  const os = Deno.build.os;
  const native = os === "darwin" ? "metal" : os === "windows" ? "dx12" : "vulkan";
  return { backend: huge ? "gl" : native, source: "inferred" };
}

/** The description of `adapter` (limits from its device, or its own). */
export function describeAdapter(
  adapter: GPUAdapter,
  limits: GPUSupportedLimits = adapter.limits,
): AdapterDescription {
  const i = adapter.info as GPUAdapterInfo & {
    isFallbackAdapter?: boolean;
    subgroupMinSize?: number;
    subgroupMaxSize?: number;
  };
  const l = limits;
  const { backend, source } = adapterBackend(adapter.limits);
  const mesa = /llvmpipe/i.test(i.description);
  const driver = mesa
    ? backend === "vulkan"
      ? "lavapipe (Mesa's Vulkan driver on llvmpipe)"
      : `llvmpipe (Mesa's ${backend === "gl" ? "OpenGL" : backend} driver)`
    : "";
  return {
    vendor: i.vendor,
    architecture: i.architecture,
    device: i.device,
    description: i.description,
    isFallbackAdapter: Boolean(i.isFallbackAdapter),
    maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
    maxBufferSize: l.maxBufferSize,
    maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    backend,
    backendSource: source,
    driver,
    subgroupMinSize: i.subgroupMinSize ?? 0,
    subgroupMaxSize: i.subgroupMaxSize ?? 0,
    features: [...adapter.features].sort(),
  };
}

/** Whether an adapter is a software rasterizer (what `--adapter cpu` picks). */
export function isSoftwareAdapter(adapter: GPUAdapter): boolean {
  const i = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  return Boolean(i.isFallbackAdapter) || SOFTWARE.test(`${i.description} ${i.device} ${i.vendor}`);
}

function webgpu(): GPU {
  const nav = globalThis.navigator as Navigator & { gpu?: GPU };
  if (!nav?.gpu) throw new GpuError("WebGPU is not available in this runtime (navigator.gpu is undefined)");
  return nav.gpu;
}

/** What each request Deno offers returns (`engram info --adapters`): one entry per request. */
export async function listAdapters(): Promise<
  Array<{ choice: AdapterChoice; request: GPURequestAdapterOptions; adapter: AdapterDescription | null }>
> {
  const gpu = webgpu();
  const out = [];
  for (const c of ["high-performance", "low-power", "fallback"] as const) {
    const a = await gpu.requestAdapter(REQUESTS[c]);
    out.push({ choice: c, request: REQUESTS[c], adapter: a ? describeAdapter(a) : null });
  }
  return out;
}

async function requestChosen(c: AdapterChoice): Promise<GPUAdapter | null> {
  const gpu = webgpu();
  if (c !== "cpu") return await gpu.requestAdapter(REQUESTS[c]);
  for (const r of [REQUESTS.fallback, REQUESTS["low-power"], REQUESTS["high-performance"]]) {
    const a = await gpu.requestAdapter(r);
    if (a && isSoftwareAdapter(a)) return a;
  }
  throw new GpuError(
    "--adapter cpu: no software adapter (llvmpipe, lavapipe, SwiftShader, WARP) found; install Mesa " +
      "(Debian libgl1-mesa-dri, or mesa-vulkan-drivers for lavapipe)",
    { field: "--adapter" },
  );
}

/**
 * Returns the process-wide GPU, requesting the adapter's full limits (the defaults cap storage
 * buffers at 128 MiB and 8 per stage, too small for real models). Throws {@link GpuError} when
 * WebGPU or an adapter is unavailable.
 */
export function getGpu(): Promise<Gpu> {
  if (current && currentChoice !== choice) current = undefined;
  if (!current) {
    currentChoice = choice;
    current = acquire(choice);
    current.catch(() => (current = undefined));
  }
  return current;
}

/** Optional WebGPU features requested when the adapter offers them (see `Gpu.device.features`). */
export const OPTIONAL_FEATURES: readonly GPUFeatureName[] = ["shader-f16", "subgroups" as GPUFeatureName];

async function acquire(c: AdapterChoice): Promise<Gpu> {
  const adapter = await requestChosen(c);
  if (!adapter) {
    throw new GpuError(
      `no WebGPU adapter found${c === "default" ? "" : ` for --adapter ${c}`}; on Linux install Mesa ` +
        "(llvmpipe/lavapipe) or a GPU driver with Vulkan support" + backendHint(rawEnvBackend()),
    );
  }
  const want: Record<string, number> = {};
  for (
    const k of [
      "maxStorageBufferBindingSize",
      "maxBufferSize",
      "maxStorageBuffersPerShaderStage",
      "maxComputeWorkgroupStorageSize",
      "maxComputeInvocationsPerWorkgroup",
      "maxComputeWorkgroupSizeX",
      "maxComputeWorkgroupSizeY",
      "maxComputeWorkgroupsPerDimension",
    ] as const
  ) {
    want[k] = adapter.limits[k];
  }
  let device: GPUDevice;
  try {
    // Optional features engram's kernels may use where offered, requested only when the adapter has
    // them: "shader-f16" (F16 weights bound as array<f16>, see Gpu.shaderF16), "subgroups" (the softmax
    // family's row statistics, see row_workgroup.ts useSubgroups). No kernel needs them: without
    // shader-f16, 16-bit weights are read as packed pairs (kernels/lib/unpack16.wgsl), without subgroups
    // a row's partials are folded through workgroup memory.
    const requiredFeatures = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f));
    device = await adapter.requestDevice({ requiredLimits: want, requiredFeatures });
  } catch (e) {
    throw new GpuError(`could not create a WebGPU device: ${(e as Error).message}`, { cause: e });
  }
  return new Gpu(adapter, device);
}

/**
 * Workgroup size of the row-reduction kernels: layer norm and RMS norm (forward and backward `dx`),
 * softmax, cross-entropy and the editors' value loss (kernels/delta_loss.wgsl), which give each row one
 * workgroup of `WG` lanes that stream strided slices of the row and then each fold all `WG` partials; and
 * of the column sums (bias_grad, the norms' weight gradients).
 *
 * Chosen per adapter. On a GPU the kernels' own defaults (64 lanes for the norms, 128 for softmax and
 * cross-entropy) keep many lanes busy per row. On a software adapter (llvmpipe, lavapipe, SwiftShader;
 * {@link isSoftwareAdapter}) a workgroup's lanes are the SIMD lanes of one CPU core, every barrier splits
 * the shader into resumable parts, and each lane's fold costs `WG` loads (and exps): there a workgroup of
 * one 8-lane AVX2 vector (16 for the softmax family, whose rows are long) is 5–11× faster (llvmpipe, 2
 * cores, 1024 rows: layerNorm of 96 columns 11.5 → 1.0 ms, its backward 11.7 → 2.2 ms, cross-entropy
 * with its gradient over 1,284 columns 54 → 5.3 ms). The column sums of parameter gradients (bias, norm
 * weights: 32 columns × `RS` row lanes) drop their cross-lane fold there (RS 1): bias gradient of
 * 1024×384 0.82 → 0.46 ms. Results differ only by the summation order.
 */
import { type Gpu, isSoftwareAdapter } from "./device.ts";
import { SUBGROUP_VARIANT } from "./pipeline.ts";

/**
 * The families of row kernels: the norms (short rows), softmax / cross-entropy / delta loss (long rows), and
 * the column sums of the parameter gradients (bias, norm weights: a workgroup of 32 columns × `RS` row lanes
 * whose lanes fold after a barrier; their override is `RS`, at most 8).
 */
export type RowKernelFamily = "norm" | "softmax" | "columns";

/** Workgroup size (`WG`, or `RS` for "columns") on software adapters, per family. */
export const SOFTWARE_ROW_WORKGROUP: Readonly<Record<RowKernelFamily, number>> = {
  norm: 8,
  softmax: 16,
  columns: 1,
};

/** The override each family sets, and its largest value (32 columns × RS lanes ≤ 256 invocations). */
const OVERRIDE: Record<RowKernelFamily, [string, number]> = {
  norm: ["WG", 256],
  softmax: ["WG", 256],
  columns: ["RS", 8],
};

/** Sizes the WGSL kernels may be compiled with (powers of two up to the largest default). */
const ALLOWED = [1, 2, 4, 8, 16, 32, 64, 128, 256];

const software = new WeakMap<Gpu, boolean>();
const forced = new WeakMap<Gpu, number>();

/**
 * The override constants that size a `family` row kernel on `gpu`: `{}` (the kernel's default) on a
 * hardware adapter, `{ WG: n }` (`{ RS: n }` for "columns") on a software one or after
 * {@link setRowWorkgroup}. For the softmax family on a device where {@link useSubgroups} holds, also the
 * selector `SUBGROUPS: 1` of the subgroup variant, with `WG` always given.
 */
export function rowWorkgroupConstants(gpu: Gpu, family: RowKernelFamily): Record<string, number> {
  const [name, most] = OVERRIDE[family];
  const f = forced.get(gpu);
  let sw = software.get(gpu);
  if (sw === undefined) {
    sw = isSoftwareAdapter(gpu.adapter);
    software.set(gpu, sw);
  }
  const size = f !== undefined ? Math.min(f, most) : sw ? SOFTWARE_ROW_WORKGROUP[family] : undefined;
  if (family === "softmax" && useSubgroups(gpu, size ?? SOFTMAX_DEFAULT_WG)) {
    return { [name]: size ?? SOFTMAX_DEFAULT_WG, [SUBGROUP_VARIANT.selector]: 1 };
  }
  return size === undefined ? {} : { [name]: size };
}

/** The softmax family's own default workgroup size (kernels/softmax.wgsl, cross_entropy.wgsl, delta_loss.wgsl). */
const SOFTMAX_DEFAULT_WG = 128;

const subgroupsOff = new WeakSet<Gpu>();

/**
 * Whether the softmax family runs its subgroup variant ({@link SUBGROUP_VARIANT}) at workgroup size `wg`
 * on `gpu`: the device has the `subgroups` feature, the adapter reports its largest subgroup size, `wg`
 * is a multiple of it (so that every subgroup is full), and {@link setSubgroups} has not turned it off.
 */
export function useSubgroups(gpu: Gpu, wg: number): boolean {
  if (subgroupsOff.has(gpu) || !gpu.device.features.has(SUBGROUP_VARIANT.feature)) return false;
  const max = (gpu.adapter.info as GPUAdapterInfo & { subgroupMaxSize?: number }).subgroupMaxSize ?? 0;
  return max > 0 && wg % max === 0;
}

/**
 * Turns the subgroup variant of the softmax family off on `gpu` (`false`), or back to the per-adapter
 * choice (`true`). For tests and benchmarks that compare the two on one device.
 */
export function setSubgroups(gpu: Gpu, on: boolean): void {
  if (on) subgroupsOff.delete(gpu);
  else subgroupsOff.add(gpu);
}

/**
 * Fixes the row kernels' workgroup size on `gpu` (every family; "columns" takes at most 8 row lanes), or
 * with `undefined` returns to the per-adapter choice. For tests and benchmarks that compare sizes on one
 * adapter.
 */
export function setRowWorkgroup(gpu: Gpu, size: number | undefined): void {
  if (size === undefined) {
    forced.delete(gpu);
    return;
  }
  if (!ALLOWED.includes(size)) {
    throw new RangeError(`row workgroup size must be one of ${ALLOWED.join(", ")}, got ${size}`);
  }
  forced.set(gpu, size);
}

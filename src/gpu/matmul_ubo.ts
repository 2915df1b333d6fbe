/**
 * The matmul through uniform windows (kernels/matmul_pack.wgsl / matmul_pack4.wgsl, kernels/matmul_ubo.wgsl):
 * each operand is first laid out in 64 KiB tiles (op(A) in [MC, KC] tiles, op(B) in [KC, NC] tiles:
 * transposes and 16-bit decoding are done there), then one small dispatch per (row tile, column tile, group
 * of up to {@link UBO_WINDOWS} K tiles) binds those tiles as uniform buffers at dynamic offsets and stores
 * (first group) or adds its block.
 *
 * Why: llvmpipe runs a storage load with a non-constant index lane by lane with a bounds check per
 * scalar, and a uniform-buffer load as one gather: per vec4 about 13x cheaper on Mesa 22.3. Uniform
 * bindings are limited to 64 KiB (the WebGPU default), hence the tiles and the many dispatches. On real
 * GPUs the storage kernels win; the autotune chooses.
 *
 * Scratch: an A pack and a B pack of at most {@link UBO_PACK_BYTES} each (row tiles of A and column tiles
 * of B are packed and multiplied in chunks), tensors kept per Gpu and grown as needed.
 */
import type { Gpu } from "./device.ts";
import { GpuError } from "../errors.ts";
import { getPipeline, launch, uniforms } from "./pipeline.ts";
import { createTensor, type GpuTensor, w16For } from "./tensor.ts";

/** Bytes of one tile: the uniform window the product kernel binds (WebGPU's default binding limit). */
export const UBO_TILE_BYTES = 65536;
/** The most bytes either pack may take (the B pack is filled in chunks of column tiles below it). */
export const UBO_PACK_BYTES = 32 * 2 ** 20;
/** Bytes of one per-dispatch record (the minimum uniform offset alignment WebGPU guarantees). */
const RECORD = 256;
const WG = 32;

/** The operands of one product, as {@link matmul} has validated them. */
export interface UboProduct {
  M: number;
  N: number;
  K: number;
  batch: number;
  transA: boolean;
  transB: boolean;
  strideA: number;
  strideB: number;
  strideOut: number;
  alpha: number;
  bias?: GpuTensor;
  accumulate: boolean;
}

/**
 * Tile sizes for a product: rows MC and columns NC of 32, 64 or 128, K tile KC of 32, 64, 96 or 128 (so
 * MC·KC, KC·NC ≤ 16384), the smallest that hold the product's side: padding is computed, and each size
 * is one more pipeline.
 */
function tiles(M: number, N: number, K: number): { MC: number; NC: number; KC: number } {
  const side = (n: number) => (n <= 32 ? 32 : n <= 64 ? 64 : 128);
  return { MC: side(M), NC: side(N), KC: kTile(K) };
}

/** The K tile for inner dimension K (the one size both tiles share). */
function kTile(K: number): number {
  return Math.min(128, Math.ceil(K / 32) * 32);
}

/**
 * Whether the uniform-window path can run this product on `gpu`: the device's uniform binding limit holds
 * a tile, and the K tiles of one row or column tile fit a pack. It depends on K alone (and the device), never
 * on M: a row's result must not depend on what else is in the batch.
 */
export function uboFits(gpu: Gpu, p: { K: number }): boolean {
  const Kb = Math.ceil(p.K / kTile(p.K));
  return gpu.device.limits.maxUniformBufferBindingSize >= UBO_TILE_BYTES &&
    Kb * UBO_TILE_BYTES <= Math.min(UBO_PACK_BYTES, gpu.bindingLimit);
}

/**
 * Whether the path pays for a weight of this shape (the autotune's choice applies to these only; narrower
 * products keep the storage kernels). Only N and K decide, the weight's dimensions: with M or the batch
 * count deciding, a row's result would depend on how many rows are batched with it (the two paths round
 * differently). At a few rows the packing makes it ~1.5x slower than the storage kernels on llvmpipe.
 */
export function uboWorthIt(p: { N: number; K: number }): boolean {
  return p.N >= 64 && p.K >= 32;
}

const scratch = new WeakMap<Gpu, { a?: GpuTensor; b?: GpuTensor }>();

/** A scratch pack of at least `bytes`, grown (the old one freed after the pending commands). */
function pack(gpu: Gpu, which: "a" | "b", bytes: number): GpuTensor {
  let s = scratch.get(gpu);
  if (!s) scratch.set(gpu, s = {});
  const cur = s[which];
  if (cur && cur.buffer.size >= bytes) return cur;
  cur?.destroy();
  // A tensor, so that it counts as device memory (it stays for the Gpu's life).
  const t = createTensor(gpu, [Math.max(bytes, UBO_TILE_BYTES) / 4], {
    name: `matmul_ubo.pack_${which}`,
    uniform: true,
  });
  s[which] = t;
  return t;
}

/** K tiles one product dispatch multiplies (one A and one B window each: see lib/matmul_ubo_core.wgsl). */
export const UBO_WINDOWS = 3;

const window = (binding: number): GPUBindGroupLayoutEntry => ({
  binding,
  visibility: GPUShaderStage.COMPUTE,
  buffer: { type: "uniform", hasDynamicOffset: true, minBindingSize: UBO_TILE_BYTES },
});
// A0..A2, B0..B2, the record, bias, out: seven dynamic uniform buffers, within WebGPU's guaranteed 8.
const PRODUCT_LAYOUT: GPUBindGroupLayoutEntry[] = [
  ...Array.from({ length: 2 * UBO_WINDOWS }, (_, i) => window(i)),
  {
    binding: 2 * UBO_WINDOWS,
    visibility: GPUShaderStage.COMPUTE,
    buffer: { type: "uniform", hasDynamicOffset: true, minBindingSize: 32 },
  },
  { binding: 2 * UBO_WINDOWS + 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: "read-only-storage" } },
  { binding: 2 * UBO_WINDOWS + 2, visibility: GPUShaderStage.COMPUTE, buffer: { type: "storage" } },
];

/** Records the pack of tiles [t0, t0 + count) of op(X) into `dst` (tile t0 at its start). */
async function packTiles(
  gpu: Gpu,
  x: GpuTensor,
  dst: GpuTensor,
  f: { rows: number; cols: number; ld: number; base: number; tr: number; tc: number; major: number },
  order: { trans: boolean; colOrder: boolean },
  t0: number,
  count: number,
): Promise<void> {
  // Aligned operands take kernels/matmul_pack4.wgsl: 4 elements per storage load (4x4 blocks when
  // transposed), the case of every product whose contiguous dimensions and batch bases are multiples of 4.
  const aligned = f.base % 4 === 0 && f.ld % 4 === 0 && (order.trans ? f.rows : f.cols) % 4 === 0;
  const [kernel, entry] = aligned ? ["matmul_pack4", order.trans ? "cols" : "rows"] : ["matmul_pack", "main"];
  const perTile = (f.tr * f.tc) / (aligned && order.trans ? 16 : 4);
  const lim = gpu.device.limits.maxComputeWorkgroupsPerDimension;
  // Whole tiles per dispatch so that a dispatch's workgroups stay within the per-dimension limit.
  const step = Math.max(1, Math.floor((lim * 64) / perTile));
  for (let s = 0; s < count; s += step) {
    const n = Math.min(step, count - s);
    const params = uniforms(
      f.rows,
      f.cols,
      f.ld,
      f.base,
      f.tr,
      f.tc,
      f.major,
      t0 + s,
      n,
      Number(order.trans),
      Number(order.colOrder),
    );
    await launch(
      gpu,
      kernel,
      entry,
      [{ uniform: params }, x, { tensor: dst, offset: s * UBO_TILE_BYTES, size: n * UBO_TILE_BYTES }],
      [Math.ceil((n * perTile) / 64)],
      { W16: w16For(gpu, x.dtype) },
    );
  }
}

/**
 * Records out[z] = alpha · op(A[z]) @ op(B[z]) + bias (+ out[z] when accumulating) through uniform
 * windows, for operands {@link matmul} has validated and that fit one storage binding each. Groups of K
 * tiles after the first add into out, so partial sums over at most {@link UBO_WINDOWS} · 128 of k meet there
 * (rounding differs from the storage kernels' order only).
 */
export async function matmulUbo(
  gpu: Gpu,
  a: GpuTensor,
  b: GpuTensor,
  out: GpuTensor,
  p: UboProduct,
): Promise<void> {
  for (const t of [a, b, out, p.bias]) {
    // The pack and product kernels bind whole operands: the split path (matmul.ts) must never come here.
    if (t && t.buffer.size > gpu.bindingLimit) {
      throw new GpuError(
        `matmul through uniform windows would bind all ${t.buffer.size} bytes of '${t.name}', over the ` +
          `storage-binding limit of ${gpu.bindingLimit} bytes`,
        { field: t.name },
      );
    }
  }
  const { M, N, K } = p;
  const { MC, NC, KC } = tiles(M, N, K);
  const Mb = Math.ceil(M / MC), Nb = Math.ceil(N / NC), Kb = Math.ceil(K / KC);
  const vec = N % 4 === 0 && (p.batch === 1 || p.strideOut % 4 === 0);
  // Groups of K tiles per block: all full but the last, which holds the rest (one pipeline per window count).
  const groupsK = Math.ceil(Kb / UBO_WINDOWS);
  const pipelineFor = (nw: number) =>
    getPipeline(
      gpu,
      vec ? "matmul_ubo" : "matmul_ubo_scalar",
      "main",
      { MC, NC, KC, NW: nw, WG, HAS_BIAS: Number(Boolean(p.bias)), ACCUMULATE: Number(p.accumulate) },
      PRODUCT_LAYOUT,
    );
  const pipeline = await pipelineFor(Math.min(UBO_WINDOWS, Kb));
  const lastPipeline = await pipelineFor(Kb - UBO_WINDOWS * (groupsK - 1));
  // Row tiles per chunk of the A pack and column tiles per chunk of the B pack (each takes Kb tiles).
  const chunk = (count: number) =>
    Math.max(
      1,
      Math.min(count, Math.floor(Math.min(UBO_PACK_BYTES, gpu.bindingLimit) / (Kb * UBO_TILE_BYTES))),
    );
  const mbChunk = chunk(Mb), nbChunk = chunk(Nb);
  const aPack = pack(gpu, "a", mbChunk * Kb * UBO_TILE_BYTES);
  const bPack = pack(gpu, "b", nbChunk * Kb * UBO_TILE_BYTES);
  const groups = Math.ceil(((MC / 8) * (NC / 16)) / WG);
  // What the B pack holds (batch, first column tile): a shared B is packed once when it fits one chunk.
  let inB: string | undefined;
  for (let z = 0; z < p.batch; z++) {
    for (let mb0 = 0; mb0 < Mb; mb0 += mbChunk) {
      const mbs = Math.min(mbChunk, Mb - mb0);
      // op(A) [M, K] in [MC, KC] tiles, tile mb * Kb + kb: a chunk of row tiles is a contiguous run.
      await packTiles(
        gpu,
        a,
        aPack,
        { rows: M, cols: K, ld: p.transA ? M : K, base: z * p.strideA, tr: MC, tc: KC, major: Kb },
        { trans: p.transA, colOrder: false },
        mb0 * Kb,
        mbs * Kb,
      );
      for (let nb0 = 0; nb0 < Nb; nb0 += nbChunk) {
        const nbs = Math.min(nbChunk, Nb - nb0);
        // op(B) [K, N] in [KC, NC] tiles numbered down the columns (tile nb * Kb + kb), so that a chunk of
        // column tiles is one contiguous run of the pack.
        const key = `${p.strideB === 0 ? 0 : z}:${nb0}`;
        if (inB !== key) {
          await packTiles(
            gpu,
            b,
            bPack,
            { rows: K, cols: N, ld: p.transB ? K : N, base: z * p.strideB, tr: KC, tc: NC, major: Kb },
            { trans: p.transB, colOrder: true },
            nb0 * Kb,
            nbs * Kb,
          );
          inB = key;
        }
        products(mb0, mbs, nb0, nbs, z);
      }
    }
  }

  /**
   * Records the dispatches of row tiles [mb0, +mbs) × column tiles [nb0, +nbs): per block, one dispatch
   * per group of up to {@link UBO_WINDOWS} consecutive K tiles.
   */
  function products(mb0: number, mbs: number, nb0: number, nbs: number, z: number): void {
    const records = new ArrayBuffer(mbs * nbs * groupsK * RECORD);
    const u = new Uint32Array(records), f = new Float32Array(records);
    const dispatches: Array<{ last: boolean; offsets: number[] }> = [];
    let d = 0;
    for (let i = 0; i < mbs; i++) {
      for (let j = 0; j < nbs; j++) {
        for (let kb0 = 0; kb0 < Kb; kb0 += UBO_WINDOWS) {
          const o = (d * RECORD) / 4;
          u.set([(mb0 + i) * MC, (nb0 + j) * NC, kb0 === 0 ? 1 : 0, M, N, N, z * p.strideOut], o);
          f[o + 7] = p.alpha;
          const nw = Math.min(UBO_WINDOWS, Kb - kb0);
          // Unused windows repeat the group's first tile (the kernel compiles their loops out).
          const tile = (base: number, w: number) => (base + kb0 + (w < nw ? w : 0)) * UBO_TILE_BYTES;
          const offsets: number[] = [];
          for (let w = 0; w < UBO_WINDOWS; w++) offsets.push(tile(i * Kb, w));
          for (let w = 0; w < UBO_WINDOWS; w++) offsets.push(tile(j * Kb, w));
          offsets.push(d * RECORD);
          dispatches.push({ last: kb0 + UBO_WINDOWS >= Kb, offsets });
          d++;
        }
      }
    }
    const rbuf = gpu.device.createBuffer({
      size: records.byteLength,
      usage: GPUBufferUsage.UNIFORM,
      mappedAtCreation: true,
    });
    new Uint8Array(rbuf.getMappedRange()).set(new Uint8Array(records));
    rbuf.unmap();
    const entries: GPUBindGroupEntry[] = [];
    // In binding order: wgpu takes the dynamic offsets in the order of the entries.
    for (let i = 0; i < 2 * UBO_WINDOWS; i++) {
      const pack = i < UBO_WINDOWS ? aPack : bPack;
      entries.push({ binding: i, resource: { buffer: pack.buffer, size: UBO_TILE_BYTES } });
    }
    entries.push(
      { binding: 2 * UBO_WINDOWS, resource: { buffer: rbuf, size: 32 } },
      // Without a bias the binding still needs a read-only buffer: A cannot conflict with out.
      { binding: 2 * UBO_WINDOWS + 1, resource: { buffer: (p.bias ?? a).buffer } },
      { binding: 2 * UBO_WINDOWS + 2, resource: { buffer: out.buffer } },
    );
    // Every pipeline of this call has the same explicit layout, so one bind group serves them all.
    const bindGroup = gpu.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    for (const { last, offsets } of dispatches) {
      gpu.encode(last ? lastPipeline : pipeline, bindGroup, [groups, 1, 1], offsets);
    }
    // After the dispatches: a submit among them (every 512) must not free the records they still read.
    gpu.deferDestroy(rbuf);
  }
}

/** Launcher of `kernels/delta_loss.wgsl`: the δ optimisation's row losses and logit gradient on the GPU. */
import { ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import { rowWorkgroupConstants } from "./row_workgroup.ts";
import type { GpuTensor } from "./tensor.ts";

/** Row kinds of {@link deltaLoss}'s `info`. */
export const DELTA_LOSS_NLL = 0, DELTA_LOSS_KL = 1, DELTA_LOSS_KL_INIT = 2;

/**
 * Records the loss rows of ROME / MEMIT's δ optimisation (see kernels/delta_loss.wgsl): `info` u32
 * [rows·4] holds per row (kind, target or p0 row, bits of the f32 weight, 0); NLL rows give
 * w·(−log p(target)) and its gradient, KL rows w·KL(P ‖ P0) against the p0 row, KL-init rows write their
 * P0 row into p0 (loss and gradient 0). `logits`, `dlogits` f32 [rows, cols]; `losses` f32 [rows];
 * `p0` f32 [K, cols + 2] (a row's logits, their max and sum of exp(x − max)). Tensors must each fit one storage binding. Nothing runs until the next read.
 */
export async function deltaLoss(
  gpu: Gpu,
  logits: GpuTensor,
  info: GpuTensor,
  p0: GpuTensor,
  losses: GpuTensor,
  dlogits: GpuTensor,
  rows: number,
  cols: number,
): Promise<void> {
  const want: Array<[GpuTensor, number, string]> = [
    [logits, rows * cols, "f32"],
    [info, rows * 4, "u32"],
    [losses, rows, "f32"],
    [dlogits, rows * cols, "f32"],
  ];
  for (const [t, n, dtype] of want) {
    if (t.numel !== n || t.dtype !== dtype) {
      throw new ShapeError(`deltaLoss: '${t.name}' is [${t.shape}] ${t.dtype}, expected ${n} ${dtype}`, {
        field: t.name,
      });
    }
  }
  if (p0.numel % (cols + 2) !== 0 || p0.numel === 0) {
    throw new ShapeError(`deltaLoss: p0 has ${p0.numel} elements, not rows of ${cols} + 2`, {
      field: p0.name,
    });
  }
  for (const t of [logits, dlogits, p0]) {
    if (t.buffer.size > gpu.bindingLimit) {
      throw new ShapeError(`deltaLoss: '${t.name}' is over the storage-binding limit`, { field: t.name });
    }
  }
  await launch(
    gpu,
    "delta_loss",
    "delta_loss",
    [{ uniform: uniforms(rows, cols, { f: 1 }, 0) }, logits, info, p0, losses, dlogits],
    grid(gpu, rows),
    rowWorkgroupConstants(gpu, "softmax"),
  );
}

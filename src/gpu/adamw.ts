/** Launcher for the in-place AdamW optimizer step (`kernels/adamw.wgsl`). */
import { InputError, ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import { forElements } from "./blocks.ts";
import type { GpuTensor } from "./tensor.ts";

/** Hyperparameters of one {@link adamw} step (PyTorch's names and defaults). */
export interface AdamWOptions {
  /** Learning rate (>= 0). */
  lr: number;
  /** First-moment decay, in [0, 1). Default 0.9. */
  beta1?: number;
  /** Second-moment decay, in [0, 1). Default 0.999. */
  beta2?: number;
  /** Added to sqrt(vhat) (>= 0). Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay (param *= 1 - lr * weightDecay), >= 0. Default 0. */
  weightDecay?: number;
  /** 1-based step number, used for bias correction: 1 on the first update. */
  step: number;
  /** Factor applied to the gradient first (e.g. a gradient-clipping scale). Default 1. */
  gradScale?: number;
}

/** Defaults filled in and every hyperparameter validated; throws {@link InputError} naming the field. */
export function adamwHyper(opts: AdamWOptions): Required<AdamWOptions> {
  const h: Required<AdamWOptions> = {
    lr: opts.lr,
    beta1: opts.beta1 ?? 0.9,
    beta2: opts.beta2 ?? 0.999,
    eps: opts.eps ?? 1e-8,
    weightDecay: opts.weightDecay ?? 0,
    step: opts.step,
    gradScale: opts.gradScale ?? 1,
  };
  const bad = (field: string, need: string) => {
    throw new InputError(`adamw: ${field} = ${(h as Record<string, number>)[field]} must be ${need}`, {
      field,
    });
  };
  const finite = (x: number) => typeof x === "number" && Number.isFinite(x);
  if (!finite(h.lr) || h.lr < 0) bad("lr", "a finite number >= 0");
  if (!finite(h.beta1) || h.beta1 < 0 || h.beta1 >= 1) bad("beta1", "in [0, 1)");
  if (!finite(h.beta2) || h.beta2 < 0 || h.beta2 >= 1) bad("beta2", "in [0, 1)");
  if (!finite(h.eps) || h.eps < 0) bad("eps", "a finite number >= 0");
  if (!finite(h.weightDecay) || h.weightDecay < 0) bad("weightDecay", "a finite number >= 0");
  if (!Number.isInteger(h.step) || h.step < 1) bad("step", "an integer >= 1 (1-based)");
  if (!finite(h.gradScale)) bad("gradScale", "a finite number");
  return h;
}

/**
 * One AdamW step in place over `param`, `m`, `v` given `grad`, exactly as PyTorch's
 * `torch.optim.AdamW` (decoupled weight decay, bias-corrected moments):
 *
 * ```
 * g = grad * gradScale;  param *= 1 - lr * weightDecay
 * m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
 * param -= lr * mhat / (sqrt(vhat) + eps),  mhat = m / (1 - beta1^step),  vhat = v / (1 - beta2^step)
 * ```
 *
 * - `param`, `grad`, `m`, `v`: f32, the same number of elements (any shapes), four distinct buffers;
 *   `m` and `v` start as zeros and are carried between steps; `step` counts from 1.
 *
 * Tensors larger than one storage binding ({@link Gpu.bindingLimit}, e.g. GPT-2's wte and its moments)
 * are updated in aligned element windows, one dispatch per window.
 *
 * Records one dispatch (or one per window); nothing runs until the next {@link Gpu.flush} (or a read).
 * Throws {@link ShapeError} naming the offending tensor, {@link InputError} naming a bad hyperparameter.
 */
export async function adamw(
  gpu: Gpu,
  param: GpuTensor,
  grad: GpuTensor,
  m: GpuTensor,
  v: GpuTensor,
  opts: AdamWOptions,
): Promise<void> {
  const h = adamwHyper(opts);
  const all = [param, grad, m, v];
  const roles = ["param", "grad", "m", "v"];
  all.forEach((t, i) => {
    if (t.dtype !== "f32") {
      throw new ShapeError(`adamw ${roles[i]} must be f32, got ${t.dtype}`, { field: t.name });
    }
    if (t.numel !== param.numel) {
      throw new ShapeError(
        `adamw ${
          roles[i]
        } has shape [${t.shape}] (${t.numel} elements), param '${param.name}' has ${param.numel}`,
        { field: t.name },
      );
    }
    for (let j = 0; j < i; j++) {
      if (all[j].buffer === t.buffer) {
        throw new ShapeError(`adamw ${roles[i]} must not alias ${roles[j]} ('${all[j].name}')`, {
          field: t.name,
        });
      }
    }
  });
  const n = param.numel;
  // Params { n, ... }: the element count is the only size, so a window range passes its own count.
  const params = (count: number) =>
    uniforms(
      count,
      { f: h.beta1 },
      { f: 1 - h.beta1 },
      { f: h.beta2 },
      { f: 1 - h.beta2 },
      { f: h.eps },
      { f: 1 - h.lr * h.weightDecay },
      { f: h.lr / (1 - h.beta1 ** h.step) },
      { f: Math.sqrt(1 - h.beta2 ** h.step) },
      { f: h.gradScale },
    );
  // One dispatch, or past the binding limit the same aligned element range of all four per dispatch.
  await forElements(gpu, n, all, (b, count) =>
    launch(
      gpu,
      "adamw",
      "adamw",
      [{ uniform: params(count) }, ...b],
      grid(gpu, Math.ceil(count / 256)),
    ));
}

/** Launchers for the GELU activation kernel (`kernels/gelu.wgsl`) and the elementwise erf it contains. */
import { ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { forElements } from "./blocks.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import type { GpuTensor } from "./tensor.ts";

/**
 * Which GELU: `"tanh"` is GPT-2's `gelu_new` (PyTorch `approximate="tanh"`), `"none"` the exact erf
 * form `0.5 x (1 + erf(x / sqrt 2))` (HF `"gelu"`, e.g. GPT-NeoX/Pythia's `hidden_act`; PyTorch
 * `approximate="none"`). GPT-J uses `gelu_new`, the tanh form.
 */
export type GeluApproximate = "tanh" | "none";

/** Options of {@link gelu}. */
export interface GeluOptions {
  /** The GELU form; default `"tanh"` (GPT-2's). */
  approximate?: GeluApproximate;
}

/** Override constants of kernels/gelu*.wgsl for `approximate`; throws ShapeError for an unknown form. */
export function geluConstants(approximate: GeluApproximate | undefined, fn: string): Record<string, number> {
  const a = approximate ?? "tanh";
  if (a !== "tanh" && a !== "none") {
    throw new ShapeError(`${fn}: approximate = '${a}' must be "tanh" or "none"`, { field: "approximate" });
  }
  return { EXACT: a === "none" ? 1 : 0 };
}

function checkUnary(fn: string, x: GpuTensor, out: GpuTensor): void {
  for (const t of [x, out]) {
    if (t.dtype !== "f32") {
      throw new ShapeError(`${fn} tensors must be f32, got ${t.dtype}`, { field: t.name });
    }
  }
  if (out.numel !== x.numel) {
    throw new ShapeError(`${fn} output has shape [${out.shape}], input [${x.shape}]: sizes differ`, {
      field: out.name,
    });
  }
  if (out.buffer === x.buffer) {
    throw new ShapeError(`${fn} output must not alias its input`, { field: out.name });
  }
}

/**
 * GELU, elementwise in f32. Default (`opts.approximate = "tanh"`) is GPT-2's tanh approximation (HF
 * `gelu_new`): `out = 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))`; `"none"` is the exact
 * `out = 0.5 * x * (1 + erf(x / sqrt 2))`. Finite for every finite input (no NaN for large |x|).
 *
 * - `x`, `out`: f32 tensors of equal element count (any shape, e.g. [B*T, 4C]); `out` must not alias `x`.
 *
 * Records the dispatch; nothing runs until the next {@link Gpu.flush} (or a read). Throws
 * {@link ShapeError} naming the offending tensor on a size or dtype mismatch.
 */
export async function gelu(gpu: Gpu, x: GpuTensor, out: GpuTensor, opts: GeluOptions = {}): Promise<void> {
  const constants = geluConstants(opts.approximate, "gelu");
  checkUnary("gelu", x, out);
  // Past the binding limit (GPT-2 small's [B*T, 4C] from ~10900 tokens): aligned element windows.
  await forElements(
    gpu,
    x.numel,
    [x, out],
    // Whole vec4s (n % 4 == 0) take the vec4 entry: a quarter of the load / store instructions, the same bits.
    (b, n) =>
      launch(
        gpu,
        "gelu",
        n % 4 === 0 ? "gelu4" : "gelu",
        [{ uniform: uniforms(n) }, ...b],
        grid(gpu, Math.ceil(n / (n % 4 === 0 ? 1024 : 256))),
        constants,
      ),
  );
}

/**
 * The error function, elementwise in f32 (`kernels/lib/erf.wgsl`, the one exact GELU uses): about
 * 1e-7 absolute error everywhere and ~1e-7 relative for |x| < 1. Same tensor rules as {@link gelu}.
 */
export async function erf(gpu: Gpu, x: GpuTensor, out: GpuTensor): Promise<void> {
  checkUnary("erf", x, out);
  await forElements(
    gpu,
    x.numel,
    [x, out],
    (b, n) => launch(gpu, "gelu", "erf", [{ uniform: uniforms(n) }, ...b], grid(gpu, Math.ceil(n / 256))),
  );
}

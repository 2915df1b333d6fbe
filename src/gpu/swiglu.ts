/** Launchers for the SwiGLU gating kernels (`kernels/swiglu.wgsl`), forward and backward. */
import { ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { forElements } from "./blocks.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import type { GpuTensor } from "./tensor.ts";

function checkSame(fn: string, ref: GpuTensor, ts: GpuTensor[]): void {
  for (const t of [ref, ...ts]) {
    if (t.dtype !== "f32") {
      throw new ShapeError(`${fn} tensors must be f32, got ${t.dtype}`, { field: t.name });
    }
    if (t.numel !== ref.numel) {
      throw new ShapeError(`${fn} tensor has shape [${t.shape}], gate [${ref.shape}]: sizes differ`, {
        field: t.name,
      });
    }
  }
}

function checkNoAlias(fn: string, out: GpuTensor, others: GpuTensor[]): void {
  for (const t of others) {
    if (out.buffer === t.buffer) {
      throw new ShapeError(`${fn} output '${out.name}' must not alias '${t.name}'`, { field: out.name });
    }
  }
}

/**
 * SwiGLU gating, elementwise in f32: `out = silu(gate) * up` with `silu(g) = g * sigmoid(g)` (HF's
 * `act_fn(gate_proj(x)) * up_proj(x)` for `hidden_act = "silu"`). Finite for every finite input.
 *
 * - `gate`, `up`, `out`: f32 tensors of equal element count (any shape, e.g. [B*T, F]); `out` must
 *   alias neither input.
 *
 * Records the dispatch; nothing runs until the next {@link Gpu.flush} (or a read). Throws
 * {@link ShapeError} naming the offending tensor on a size, dtype or aliasing mismatch.
 */
export async function swiglu(gpu: Gpu, gate: GpuTensor, up: GpuTensor, out: GpuTensor): Promise<void> {
  checkSame("swiglu", gate, [up, out]);
  checkNoAlias("swiglu", out, [gate, up]);
  // Past the binding limit (a Llama MLP's [B*T, F] over many tokens): aligned element windows.
  await forElements(
    gpu,
    gate.numel,
    [gate, up, out],
    (b, n) =>
      launch(gpu, "swiglu", "swiglu", [{ uniform: uniforms(n, 0) }, ...b], grid(gpu, Math.ceil(n / 256))),
  );
}

/** Options of {@link swigluBackward}. */
export interface SwigluBackwardOptions {
  /** When true, the gradients are added to `dgate` and `dup` (`+=`); when false (default) they overwrite them. */
  accumulate?: boolean;
}

/**
 * Backward pass of {@link swiglu}, elementwise in f32, with `s = sigmoid(gate)`:
 * `dgate (+)= dout * up * s * (1 + gate * (1 - s))`, `dup (+)= dout * silu(gate)`.
 *
 * - `gate`, `up`: the forward's inputs; `dout`: gradient of its output; `dgate`, `dup`: the input
 *   gradients. All f32 of equal element count; outputs alias no input and not each other.
 * - `opts.accumulate`: `+=` instead of `=` for both outputs.
 *
 * Records the dispatch; nothing runs until the next {@link Gpu.flush} (or a read). Throws
 * {@link ShapeError} naming the offending tensor on a size, dtype or aliasing mismatch.
 */
export async function swigluBackward(
  gpu: Gpu,
  gate: GpuTensor,
  up: GpuTensor,
  dout: GpuTensor,
  dgate: GpuTensor,
  dup: GpuTensor,
  opts: SwigluBackwardOptions = {},
): Promise<void> {
  checkSame("swigluBackward", gate, [up, dout, dgate, dup]);
  checkNoAlias("swigluBackward", dgate, [gate, up, dout, dup]);
  checkNoAlias("swigluBackward", dup, [gate, up, dout]);
  await forElements(gpu, gate.numel, [gate, up, dout, dgate, dup], (b, n) =>
    launch(
      gpu,
      "swiglu",
      "swiglu_backward",
      [{ uniform: uniforms(n, opts.accumulate ? 1 : 0) }, ...b],
      grid(gpu, Math.ceil(n / 256)),
    ));
}

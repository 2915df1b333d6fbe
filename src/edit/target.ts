/**
 * The weight ROME, MEMIT, FT-L and KN edit — the MLP output projection of a layer (GPT-2 c_proj,
 * Llama down_proj, NeoX dense_4h_to_h, GPT-J fc_out) — addressed through the model's family, and
 * conversions between the editors' key→value orientation and the weight's own layout.
 *
 * Editors think of the projection as a map from keys (its inputs, width I: hook site `mlp_post.L`)
 * to values (its outputs, width C): an update u vᵀ is [I, C]. GPT-2's Conv1D stores W as [I, C]
 * already; nn.Linear stores [C, I], so a delta is transposed into the layout before it is applied.
 */
import type { TransformerModel } from "../model/transformer.ts";
import type { LinearSpec } from "../model/families/mod.ts";
import type { HostTensor } from "../model/config.ts";

/** The MLP output projection of `layer`: names, layout, keys (in) and values (out). */
export function mlpOutProjection(
  model: Pick<TransformerModel, "spec" | "config">,
  layer: number,
): LinearSpec {
  return model.spec.layer(model.config, layer).down;
}

/** A key→value matrix [I, C] (row i: the value written by key dimension i) in the layout of `p`. */
export function toLayout(p: LinearSpec, kv: Float32Array): HostTensor {
  if (p.layout === "conv1d") return { shape: [p.in, p.out], data: kv };
  return { shape: [p.out, p.in], data: transpose(kv, p.in, p.out) };
}

/** The weight of `p` (in its layout) as a key→value matrix [I, C]. */
export function toKeyValue(p: LinearSpec, w: Float32Array): Float32Array {
  return p.layout === "conv1d" ? w : transpose(w, p.out, p.in);
}

/** `W k + b` in float64: the projection's output for key `k` [I] (b = 0 when the projection has none). */
export function projectionOut(
  p: LinearSpec,
  w: Float32Array,
  b: Float32Array | undefined,
  k: ArrayLike<number>,
): Float64Array {
  const I = p.in, C = p.out;
  const out = b ? Float64Array.from(b) : new Float64Array(C);
  if (p.layout === "conv1d") {
    for (let i = 0; i < I; i++) {
      const ki = k[i];
      if (ki === 0) continue;
      for (let j = 0; j < C; j++) out[j] += ki * w[i * C + j];
    }
  } else {
    for (let j = 0; j < C; j++) {
      let s = 0;
      for (let i = 0; i < I; i++) s += w[j * I + i] * k[i];
      out[j] += s;
    }
  }
  return out;
}

/** Element index of (key i, value j) inside the weight of `p`. */
export function keyValueIndex(p: LinearSpec, i: number, j: number): number {
  return p.layout === "conv1d" ? i * p.out + j : j * p.in + i;
}

/** [rows, cols] → [cols, rows]. */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

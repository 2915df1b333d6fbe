/**
 * Float64 twin of `kernels/kv_append.wgsl` + `kernels/attention_cached.wgsl` (src/gpu/kv_cache.ts):
 * attention of T new query rows over keys and values of every earlier position, written from the
 * definition (scores, max-subtracted softmax, weighted sum), not from the kernel's online softmax.
 */
import type { QkvLayout } from "../gpu/attention.ts";

/**
 * `history[b]` holds the qkv rows of positions 0 .. start+T-1 of sequence b (each rowStride long,
 * laid out as `layout`, the last T rows are the new ones). Returns out [B*T, nHead*D] of the new rows.
 */
export function attentionCachedRef(
  history: Float64Array[],
  layout: QkvLayout,
  T: number,
  window?: number,
): Float64Array {
  const { nHead: H, nKvHead: KV, headDim: D, rowStride: RS } = layout;
  const B = history.length;
  const out = new Float64Array(B * T * H * D);
  const scale = 1 / Math.sqrt(D);
  for (let b = 0; b < B; b++) {
    const rows = history[b].length / RS;
    const start = rows - T;
    for (let t = 0; t < T; t++) {
      const P = start + t;
      for (let h = 0; h < H; h++) {
        const g = Math.floor(h / (H / KV));
        const q = (s: number) => P * RS + layout.qOffset + h * layout.qHeadStride + s;
        const keys: number[] = [];
        for (let s = 0; s <= P; s++) if (window === undefined || P - s < window) keys.push(s);
        const z = keys.map((s) => {
          let acc = 0;
          for (let d = 0; d < D; d++) {
            acc += history[b][q(d)] * history[b][s * RS + layout.kOffset + g * layout.kvHeadStride + d];
          }
          return acc * scale;
        });
        const m = Math.max(...z);
        const e = z.map((x) => Math.exp(x - m));
        const sum = e.reduce((a, x) => a + x, 0);
        for (let d = 0; d < D; d++) {
          let acc = 0;
          keys.forEach((
            s,
            j,
          ) => (acc += e[j] * history[b][s * RS + layout.vOffset + g * layout.kvHeadStride + d]));
          out[((b * T + t) * H + h) * D + d] = acc / sum;
        }
      }
    }
  }
  return out;
}

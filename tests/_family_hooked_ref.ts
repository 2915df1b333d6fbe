/**
 * A float64 forward of every family with patch hooks at every hook site and float64 weight overrides,
 * for the method tests on non-GPT-2 families (tests/family_methods_test.ts). It follows the definition of
 * src/reference/transformer.ts step by step (that reference has capture but no patching); the method
 * tests first check that, without hooks, it gives the reference's logits.
 *
 * A patch function `(v, T, width)` gets the site's value [T, width] (a fresh float64 array) and may
 * change it in place before anything downstream reads it. Sites: embed, resid_pre.L, head_out.L,
 * attn_out.L, mlp_post.L, mlp_out.L, resid_post.L, ln_f (as in the reference).
 */
import { type ModelConfig, resolveConfig, type WeightMap } from "../src/model/config.ts";
import { familySpec, type LinearSpec, type NormSpec } from "../src/model/families/mod.ts";
import { applyRotaryRef, geluErfRef, ropeInvFreqRef } from "../src/reference/transformer.ts";

/** Patch of one site: mutate `v` [T * width] in place. */
export type RefPatch = (v: Float64Array, T: number, width: number) => void;

/** Options of {@link hookedForwardRef}. */
export interface HookedRefOptions {
  /** Patches by site name. */
  patch?: Record<string, RefPatch>;
  /** Weights to read in float64 instead of the float32 map's (same layout), e.g. a perturbed one. */
  override?: Map<string, Float64Array>;
}

type Arr = ArrayLike<number>;

/** Logits [T, V] of `ids` under `opts`' patches and overrides. */
export function hookedForwardRef(
  config: ModelConfig,
  weights: WeightMap,
  ids: number[],
  opts: HookedRefOptions = {},
): Float64Array {
  const r = resolveConfig(config);
  const spec = familySpec(r);
  const { nLayer: L, nHead: H, nKvHead: KV, headDim: D, nEmbd: C, vocabSize: V } = r;
  const eps = r.layerNormEpsilon;
  const T = ids.length;
  const W = (n: string): Arr => opts.override?.get(n) ?? weights.get(n)!.data;
  const hook = (name: string, v: Float64Array, width: number) => opts.patch?.[name]?.(v, T, width);

  const lin = (x: Float64Array, p: LinearSpec): Float64Array => {
    const w = W(p.weight), b = p.bias ? W(p.bias) : undefined;
    const y = new Float64Array(T * p.out);
    for (let t = 0; t < T; t++) {
      for (let n = 0; n < p.out; n++) {
        let s = b ? b[n] : 0;
        for (let k = 0; k < p.in; k++) {
          s += x[t * p.in + k] * (p.layout === "conv1d" ? w[k * p.out + n] : w[n * p.in + k]);
        }
        y[t * p.out + n] = s;
      }
    }
    return y;
  };
  const norm = (x: Float64Array, rows: number, width: number, n: NormSpec, rms: boolean): Float64Array => {
    const g = W(n.weight), b = n.bias ? W(n.bias) : undefined;
    const y = new Float64Array(rows * width);
    for (let i = 0; i < rows; i++) {
      const row = x.subarray(i * width, (i + 1) * width);
      const mean = rms ? 0 : row.reduce((a, v) => a + v, 0) / width;
      const ms = row.reduce((a, v) => a + (v - mean) ** 2, 0) / width;
      const inv = 1 / Math.sqrt(ms + eps);
      for (let c = 0; c < width; c++) y[i * width + c] = g[c] * (row[c] - mean) * inv + (b ? b[c] : 0);
    }
    return y;
  };
  const rms = r.norm === "rmsnorm";
  const act = (v: number) =>
    r.activation === "gelu_erf"
      ? geluErfRef(v)
      : r.activation === "gelu_tanh"
      ? 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)))
      : v / (1 + Math.exp(-v));

  const wte = W(spec.embed);
  let x = new Float64Array(T * C);
  for (let t = 0; t < T; t++) {
    for (let c = 0; c < C; c++) {
      x[t * C + c] = wte[ids[t] * C + c] + (spec.positions ? W(spec.positions)[t * C + c] : 0);
    }
  }
  hook("embed", x, C);
  const inv = r.rope ? ropeInvFreqRef(r.rope, T) : undefined;
  for (let l = 0; l < L; l++) {
    const s = spec.layer(r, l);
    hook(`resid_pre.${l}`, x, C);
    const a = norm(x, T, C, s.ln1, rms);
    let q: Float64Array, k: Float64Array, v: Float64Array;
    if (s.qkv.length === 3) [q, k, v] = s.qkv.map((p) => lin(a, p));
    else {
      const y = lin(a, s.qkv[0]);
      q = new Float64Array(T * C), k = new Float64Array(T * C), v = new Float64Array(T * C);
      for (let t = 0; t < T; t++) {
        for (let h = 0; h < H; h++) {
          for (let d = 0; d < D; d++) {
            const [oq, ok, ov] = s.qkvLayout === "neox"
              ? [h * 3 * D, h * 3 * D + D, h * 3 * D + 2 * D]
              : [h * D, C + h * D, 2 * C + h * D];
            q[t * C + h * D + d] = y[t * 3 * C + oq + d];
            k[t * C + h * D + d] = y[t * 3 * C + ok + d];
            v[t * C + h * D + d] = y[t * 3 * C + ov + d];
          }
        }
      }
    }
    if (s.qNorm) q = norm(q, T * H, D, s.qNorm, true);
    if (s.kNorm) k = norm(k, T * KV, D, s.kNorm, true);
    if (r.rope && inv) {
      for (let t = 0; t < T; t++) {
        for (let h = 0; h < H; h++) applyRotaryRef(q, (t * H + h) * D, r.rope, inv, t);
        for (let g = 0; g < KV; g++) applyRotaryRef(k, (t * KV + g) * D, r.rope, inv, t);
      }
    }
    const heads = new Float64Array(T * H * D);
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / KV));
      for (let t = 0; t < T; t++) {
        const lo = r.slidingWindow === undefined ? 0 : Math.max(0, t - r.slidingWindow + 1);
        const sc: number[] = [];
        for (let u = lo; u <= t; u++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[(t * H + h) * D + d] * k[(u * KV + g) * D + d];
          sc.push(dot / Math.sqrt(D));
        }
        const m = Math.max(...sc);
        const e = sc.map((z) => Math.exp(z - m));
        const z = e.reduce((p, c) => p + c, 0);
        for (let u = lo; u <= t; u++) {
          for (let d = 0; d < D; d++) heads[(t * H + h) * D + d] += (e[u - lo] / z) * v[(u * KV + g) * D + d];
        }
      }
    }
    hook(`head_out.${l}`, heads, H * D);
    const attn = lin(heads, s.o);
    hook(`attn_out.${l}`, attn, C);
    let mid: Float64Array | undefined, mIn: Float64Array;
    if (r.parallelResidual === "none") {
      mid = Float64Array.from(x, (xv, i) => xv + attn[i]);
      mIn = norm(mid, T, C, s.ln2!, rms);
    } else mIn = r.parallelResidual === "two_norms" ? norm(x, T, C, s.ln2!, rms) : a;
    const up = lin(mIn, s.up);
    if (s.gate) {
      const gate = lin(mIn, s.gate);
      for (let i = 0; i < up.length; i++) up[i] *= gate[i] / (1 + Math.exp(-gate[i]));
    } else for (let i = 0; i < up.length; i++) up[i] = act(up[i]);
    hook(`mlp_post.${l}`, up, s.down.in);
    const mo = lin(up, s.down);
    hook(`mlp_out.${l}`, mo, C);
    x = mid
      ? Float64Array.from(mid, (m, i) => m + mo[i])
      : Float64Array.from(x, (xv, i) => xv + attn[i] + mo[i]);
    hook(`resid_post.${l}`, x, C);
  }
  const f = norm(x, T, C, spec.finalNorm, rms);
  hook("ln_f", f, C);
  const head = weights.has(spec.head) ? W(spec.head) : wte;
  const hb = spec.headBias && weights.has(spec.headBias) ? W(spec.headBias) : undefined;
  const logits = new Float64Array(T * V);
  for (let t = 0; t < T; t++) {
    for (let u = 0; u < V; u++) {
      let acc = hb ? hb[u] : 0;
      for (let c = 0; c < C; c++) acc += f[t * C + c] * head[u * C + c];
      logits[t * V + u] = acc;
    }
  }
  return logits;
}

/** log softmax of row `t` of logits [T, V]. */
export function logSoftmaxRow(logits: Float64Array, t: number, V: number): Float64Array {
  const row = logits.subarray(t * V, (t + 1) * V);
  let m = -Infinity;
  for (const v of row) m = Math.max(m, v);
  let s = 0;
  for (const v of row) s += Math.exp(v - m);
  const lse = m + Math.log(s);
  return Float64Array.from(row, (v) => v - lse);
}

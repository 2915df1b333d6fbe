/**
 * Float64 twin of attribution patching and AtP* (src/locate/atp.ts), written from the definitions (see
 * that module's comment and docs/notes/issue-18-atp.md) and sharing none of its code: every estimate is a directional
 * derivative of the metric, taken by central finite differences of a float64 forward that can overwrite
 * hook sites (injected, e.g. tests/_family_hooked_ref.ts), instead of a backward pass.
 *
 * - A site node (site, position t, unit u): Î = d/dε L(x_clean | site[t, u] += ε (corrupt − clean)).
 * - q / k / v nodes of head h: the change they make to the attention output z_{t,h} = Σ_s A_{t,s} v_s is
 *   written as a direction Δz on head_out (exactly recomputed rows A' for the QK fix, the softmax Jacobian
 *   times the logit change for plain AtP, A_{t,s} Δv_s for values), and Î = d/dε L(head_out += ε Δz).
 * - GradDrop's Î_GD_ℓ: the same derivatives with layer ℓ's attn_out and mlp_out held at their clean values.
 */
import { type ModelConfig, resolveConfig, type WeightMap } from "../model/config.ts";
import { familySpec, type LinearSpec, type NormSpec } from "../model/families/mod.ts";
import { applyRotaryRef, ropeInvFreqRef } from "./transformer.ts";

/** Mutates a site's values [T * width] in place. */
export type RefSitePatch = (v: Float64Array, T: number, width: number) => void;

/** A float64 forward with site overwrites: logits [T * V] of `ids`. */
export type PatchableForwardRef = (ids: number[], patch: Record<string, RefSitePatch>) => Float64Array;

/** The metric (same meaning as src/locate/atp.ts's AtpMetric). */
export type AtpMetricRef =
  | { kind: "prob"; answer: number }
  | { kind: "logprob"; answer: number }
  | { kind: "logit-diff"; answer: number; counterfactual: number };

/** Options of {@link attributionPatchingRef}. */
export interface AtpRefOptions {
  /** Hook sites to attribute (e.g. resid_pre.0, attn_out.1). */
  sites: string[];
  /** One score per unit (neuron or channel) instead of per site and position. */
  perNeuron?: boolean;
  /** Recompute the attention softmax for attention-pattern contributions (AtP*'s QK fix). */
  qkFix?: boolean;
  /**
   * AtP*'s GradDrop (eq. 11): hold each layer's attention and MLP outputs in turn (no derivative through
   * them) and average the magnitudes, 1/(L − 1) Σ_ℓ |Î_GD_ℓ|, with 0 for nodes inside layer ℓ (a mean, not
   * the largest change).
   */
  gradDrop?: boolean;
  /** Finite-difference step along the patch direction (default 1e-4). */
  eps?: number;
}

/** One node group's estimates [T * units]. */
export interface AtpRefSite {
  /** The site's name. */
  name: string;
  /** Units per position (1, or the width with perNeuron). */
  units: number;
  /** Scores [T, units]. */
  values: Float64Array;
}

/** The metric of the last row of logits [T * V], float64. */
export function metricRef(metric: AtpMetricRef, logits: Float64Array, T: number, V: number): number {
  const row = logits.subarray((T - 1) * V, T * V);
  if (metric.kind === "logit-diff") return row[metric.answer] - row[metric.counterfactual];
  let m = -Infinity;
  for (const v of row) if (v > m) m = v;
  let s = 0;
  for (const v of row) s += Math.exp(v - m);
  const lp = row[metric.answer] - m - Math.log(s);
  return metric.kind === "prob" ? Math.exp(lp) : lp;
}

/** Per-head q [T, H, D], k and v [T, KV, D] of layer `l` from its residual input, in float64. */
export function attentionInputsRef(
  config: ModelConfig,
  weights: WeightMap,
  residPre: Float64Array,
  T: number,
  l: number,
): { q: Float64Array; k: Float64Array; v: Float64Array } {
  const r = resolveConfig(config);
  const s = familySpec(r).layer(r, l);
  const { nHead: H, nKvHead: KV, headDim: D, nEmbd: C } = r;
  const W = (n: string) => weights.get(n)!.data;
  const norm = (x: Float64Array, rows: number, width: number, n: NormSpec, rms: boolean) => {
    const g = W(n.weight), b = n.bias ? W(n.bias) : undefined;
    const y = new Float64Array(rows * width);
    for (let i = 0; i < rows; i++) {
      let mean = 0;
      if (!rms) { for (let c = 0; c < width; c++) mean += x[i * width + c] / width; }
      let ms = 0;
      for (let c = 0; c < width; c++) ms += (x[i * width + c] - mean) ** 2 / width;
      const inv = 1 / Math.sqrt(ms + r.layerNormEpsilon);
      for (let c = 0; c < width; c++) {
        y[i * width + c] = g[c] * (x[i * width + c] - mean) * inv + (b ? b[c] : 0);
      }
    }
    return y;
  };
  const lin = (x: Float64Array, p: LinearSpec) => {
    const w = W(p.weight), b = p.bias ? W(p.bias) : undefined;
    const y = new Float64Array(T * p.out);
    for (let t = 0; t < T; t++) {
      for (let o = 0; o < p.out; o++) {
        let acc = b ? b[o] : 0;
        for (let i = 0; i < p.in; i++) {
          acc += x[t * p.in + i] * (p.layout === "conv1d" ? w[i * p.out + o] : w[o * p.in + i]);
        }
        y[t * p.out + o] = acc;
      }
    }
    return y;
  };
  const a = norm(residPre, T, C, s.ln1, r.norm === "rmsnorm");
  let q: Float64Array, k: Float64Array, v: Float64Array;
  if (s.qkv.length === 3) [q, k, v] = s.qkv.map((p) => lin(a, p));
  else {
    // One fused projection (GPT-2 blocked [q | k | v], NeoX per head [q k v]).
    const y = lin(a, s.qkv[0]);
    q = new Float64Array(T * H * D), k = new Float64Array(T * H * D), v = new Float64Array(T * H * D);
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < H; h++) {
        const base = s.qkvLayout === "neox" ? [3 * h * D, 3 * h * D + D, 3 * h * D + 2 * D] : [
          h * D,
          H * D + h * D,
          2 * H * D + h * D,
        ];
        for (let d = 0; d < D; d++) {
          q[(t * H + h) * D + d] = y[t * 3 * H * D + base[0] + d];
          k[(t * H + h) * D + d] = y[t * 3 * H * D + base[1] + d];
          v[(t * H + h) * D + d] = y[t * 3 * H * D + base[2] + d];
        }
      }
    }
  }
  if (s.qNorm) q = norm(q, T * H, D, s.qNorm, true);
  if (s.kNorm) k = norm(k, T * KV, D, s.kNorm, true);
  if (r.rope) {
    const inv = ropeInvFreqRef(r.rope, T);
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < H; h++) applyRotaryRef(q, (t * H + h) * D, r.rope, inv, t);
      for (let g = 0; g < KV; g++) applyRotaryRef(k, (t * KV + g) * D, r.rope, inv, t);
    }
  }
  return { q, k, v };
}

function softmax(x: number[]): number[] {
  const m = Math.max(...x);
  const e = x.map((v) => Math.exp(v - m));
  const z = e.reduce((p, c) => p + c, 0);
  return e.map((v) => v / z);
}

/**
 * Attribution-patching estimates of every node of `opts.sites` (kind names as in src/locate/atp.ts) by
 * finite differences; GradDrop gives 1/(L−1) Σ_ℓ |Î_GD_ℓ| with the terms of nodes inside layer ℓ zero.
 */
export function attributionPatchingRef(
  config: ModelConfig,
  weights: WeightMap,
  forward: PatchableForwardRef,
  cleanIds: number[],
  corruptIds: number[],
  metric: AtpMetricRef,
  opts: AtpRefOptions,
): { metricClean: number; metricCorrupt: number; sites: AtpRefSite[] } {
  const r = resolveConfig(config);
  const { nLayer: L, nHead: H, nKvHead: KV, headDim: D, vocabSize: V } = r;
  const T = cleanIds.length;
  const eps = opts.eps ?? 1e-4;
  const win = r.slidingWindow !== undefined && r.slidingWindow < T ? r.slidingWindow : T;
  // Every site's values of a run, captured by copying patches.
  const capture = (ids: number[]) => {
    const got = new Map<string, Float64Array>();
    const names = ["embed", "ln_f"];
    for (let l = 0; l < L; l++) {
      for (const k of ["resid_pre", "head_out", "attn_out", "mlp_post", "mlp_out", "resid_post"]) {
        names.push(`${k}.${l}`);
      }
    }
    const patch: Record<string, RefSitePatch> = {};
    for (const n of names) patch[n] = (v) => void got.set(n, Float64Array.from(v));
    const logits = forward(ids, patch);
    return { got, value: metricRef(metric, logits, T, V) };
  };
  const clean = capture(cleanIds), corrupt = capture(corruptIds);
  const attnClean = Array.from(
    { length: L },
    (_, l) => attentionInputsRef(config, weights, clean.got.get(`resid_pre.${l}`)!, T, l),
  );
  const attnCorrupt = Array.from(
    { length: L },
    (_, l) => attentionInputsRef(config, weights, corrupt.got.get(`resid_pre.${l}`)!, T, l),
  );
  // Clean probabilities A[l][h][t][s] (0 outside the visible keys).
  const probs = attnClean.map(({ q, k }) =>
    Array.from({ length: H }, (_, h) => {
      const g = Math.floor(h / (H / KV));
      return Array.from({ length: T }, (_, t) => {
        const lo = Math.max(0, t - win + 1);
        const sc: number[] = [];
        for (let s = lo; s <= t; s++) {
          let d = 0;
          for (let i = 0; i < D; i++) d += q[(t * H + h) * D + i] * k[(s * KV + g) * D + i];
          sc.push(d / Math.sqrt(D));
        }
        const p = softmax(sc);
        return Array.from({ length: T }, (_, s) => (s >= lo && s <= t ? p[s - lo] : 0));
      });
    })
  );

  // d/dε of the metric with `dir` added to `site` (scaled by ε), under the extra constant patches.
  const deriv = (site: string, dir: Float64Array, fixed: Record<string, RefSitePatch>) => {
    const at = (e: number) => {
      const patch: Record<string, RefSitePatch> = { ...fixed };
      const prev = fixed[site];
      patch[site] = (v, TT, w) => {
        prev?.(v, TT, w);
        for (let i = 0; i < dir.length; i++) v[i] += e * dir[i];
      };
      return metricRef(metric, forward(cleanIds, patch), T, V);
    };
    return (at(eps) - at(-eps)) / (2 * eps);
  };

  // The change of head_out.l [T, H·D] that node (kind, position p, unit u) makes.
  const headDirection = (kind: string, l: number, p: number, u: number): Float64Array => {
    const { q, k, v } = attnClean[l];
    const n = attnCorrupt[l];
    const dz = new Float64Array(T * H * D);
    const heads = kind === "q" ? [u] : Array.from({ length: H / KV }, (_, j) => u * (H / KV) + j);
    for (const h of heads) {
      const g = Math.floor(h / (H / KV));
      const A = probs[l][h];
      const queries = kind === "q"
        ? [p]
        : Array.from({ length: T }, (_, t) => t).filter((t) => t >= p && t - p < win);
      for (const t of queries) {
        const lo = Math.max(0, t - win + 1);
        const dA = new Float64Array(T);
        if (kind !== "v") {
          // Logits of row t with the node's corrupt vector.
          const logit = (qv: Float64Array, qi: number, kv: Float64Array, ki: number) => {
            let d = 0;
            for (let i = 0; i < D; i++) d += qv[qi + i] * kv[ki + i];
            return d / Math.sqrt(D);
          };
          const rowC: number[] = [], rowN: number[] = [];
          for (let s = lo; s <= t; s++) {
            rowC.push(logit(q, (t * H + h) * D, k, (s * KV + g) * D));
            if (kind === "q") rowN.push(logit(n.q, (t * H + h) * D, k, (s * KV + g) * D));
            else rowN.push(logit(q, (t * H + h) * D, s === p ? n.k : k, (s * KV + g) * D));
          }
          if (opts.qkFix) {
            const pN = softmax(rowN);
            for (let s = lo; s <= t; s++) dA[s] = pN[s - lo] - A[t][s];
          } else {
            // Softmax Jacobian times the logit change.
            let mean = 0;
            for (let s = lo; s <= t; s++) mean += A[t][s] * (rowN[s - lo] - rowC[s - lo]);
            for (let s = lo; s <= t; s++) dA[s] = A[t][s] * (rowN[s - lo] - rowC[s - lo] - mean);
          }
        }
        for (let i = 0; i < D; i++) {
          let acc = 0;
          if (kind === "v") acc = A[t][p] * (n.v[(p * KV + g) * D + i] - v[(p * KV + g) * D + i]);
          else for (let s = lo; s <= t; s++) acc += dA[s] * v[(s * KV + g) * D + i];
          dz[(t * H + h) * D + i] += acc;
        }
      }
    }
    return dz;
  };

  const groups: Array<{ kind: string; layer: number; name: string }> = [];
  for (const kind of opts.sites) {
    if (kind === "embed" || kind === "ln_f") groups.push({ kind, layer: -1, name: kind });
    else for (let l = 0; l < L; l++) groups.push({ kind, layer: l, name: `${kind}.${l}` });
  }
  const estimate = (fixed: Record<string, RefSitePatch>, dropped: number): AtpRefSite[] =>
    groups.map((g) => {
      const attnInput = g.kind === "q" || g.kind === "k" || g.kind === "v";
      const siteName = attnInput ? `head_out.${g.layer}` : g.name;
      const width = clean.got.get(siteName)!.length / T;
      const units = attnInput
        ? (g.kind === "q" ? H : KV)
        : g.kind === "head_out"
        ? H
        : g.kind === "mlp_post" && opts.perNeuron
        ? width
        : 1;
      const values = new Float64Array(T * units);
      const inside = dropped >= 0 && g.layer === dropped && g.kind !== "resid_pre" && g.kind !== "resid_post";
      if (inside) return { name: g.name, units, values };
      for (let t = 0; t < T; t++) {
        for (let u = 0; u < units; u++) {
          let dir: Float64Array;
          if (attnInput) dir = headDirection(g.kind, g.layer, t, u);
          else {
            dir = new Float64Array(T * width);
            const per = width / units;
            const xc = clean.got.get(g.name)!, xn = corrupt.got.get(g.name)!;
            for (let c = u * per; c < (u + 1) * per; c++) {
              dir[t * width + c] = xn[t * width + c] - xc[t * width + c];
            }
          }
          values[t * units + u] = deriv(siteName, dir, fixed);
        }
      }
      return { name: g.name, units, values };
    });

  if (!opts.gradDrop) {
    return { metricClean: clean.value, metricCorrupt: corrupt.value, sites: estimate({}, -1) };
  }
  let acc: AtpRefSite[] | undefined;
  for (let l = 0; l < L; l++) {
    // Layer l's outputs held at their clean values: no derivative flows through them.
    const fixed: Record<string, RefSitePatch> = {};
    for (const s of [`attn_out.${l}`, `mlp_out.${l}`]) {
      const c = clean.got.get(s)!;
      fixed[s] = (v) => v.set(c);
    }
    const e = estimate(fixed, l);
    acc ??= e.map((x) => ({ ...x, values: new Float64Array(x.values.length) }));
    e.forEach((x, i) => x.values.forEach((v, j) => (acc![i].values[j] += Math.abs(v) / (L - 1))));
  }
  return { metricClean: clean.value, metricCorrupt: corrupt.value, sites: acc! };
}

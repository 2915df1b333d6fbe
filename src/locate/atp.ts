/**
 * Attribution patching (AtP; Nanda 2022) and AtP* (Kramár, Lieberum, Shah & Nanda 2024, arXiv 2403.00745):
 * a first-order estimate of the effect of activation patching for every node at once.
 *
 * Definitions (the paper's §2.1–§3.1, in its notation; L is the metric):
 * - The effect of patching node n is I(n) = L(M(x_clean | do(n ← n(x_noise)))) − L(M(x_clean)): the
 *   corrupt ("noise") value is written into the clean run (§2.1, eq. 1).
 * - AtP: Î_AtP(n) = (n(x_noise) − n(x_clean))ᵀ ∂L(M(x_clean))/∂n, the gradient taken at the clean run
 *   (§2.2, eq. 4). One clean forward, one corrupt forward and one backward give every node.
 * - QK fix (§3.1.1): a query or key node acts through the attention softmax, where the linear
 *   approximation fails when the softmax saturates. For query q_t of head h the patched row of attention
 *   probabilities A'_t = softmax_s(scale · q_t(x_noise) · k_s(x_clean)) is computed exactly and only its
 *   effect on L is linearised: Î(q_t) = Σ_s (A'_{t,s} − A_{t,s}) ∂L/∂A_{t,s}. For key k_s of a kv head,
 *   every query t that sees s gets its row recomputed with only the logit of s changed, and the effects
 *   are summed over those queries (and over the query heads sharing the kv head).
 * - GradDrop (§3.1.2): for each layer ℓ the backward pass is run with the gradient through layer ℓ's
 *   contribution to the residual stream (its attention and MLP outputs) set to zero, giving Î_GD_ℓ(n);
 *   AtP* reports ĉ(n) = 1/(L − 1) Σ_ℓ |Î_GD_ℓ(n)|. A node inside layer ℓ has no path but through that
 *   layer's output, so its ℓ-term is 0 (which is why the paper divides by L − 1): the sum averages the
 *   other layers' terms. GradDrop estimates |c(n)|, so its values are magnitudes (no sign).
 *
 * Nodes here are hook sites (./model/hooks.ts) at every layer and position: residual streams, attention
 * and MLP outputs, per-head outputs (head_out split into heads), MLP neurons (summed per position or one
 * per neuron), ln_f, and the per-head attention inputs q, k, v (not hook sites: read from the saved forward).
 * The backward is the model's own (src/model/backward.ts); the metric's gradient enters through
 * `backwardFromLogitGrads` with this module's dlogits. GradDrop's zeroed gradients come from patching the
 * layer's attn_out / mlp_out with their own clean values: a patched row is a constant of the backward.
 */
import { InputError } from "../errors.ts";
import { backwardFromLogitGrads } from "../model/backward.ts";
import type { Hooks, PatchSpec, SiteTensor } from "../model/hooks.ts";
import { siteWidth } from "../model/hooks.ts";
import type { SavedForward, TransformerModel } from "../model/transformer.ts";
import { readTensors } from "../gpu/tensor.ts";
import type { RunSpec } from "./patching.ts";

/** The scalar L of the paper: a function of the next-token distribution after the last position. */
export type AtpMetric =
  | { kind: "prob"; answer: number }
  | { kind: "logprob"; answer: number }
  | { kind: "logit-diff"; answer: number; counterfactual: number };

/** The metric names, default first. */
export const ATP_METRICS = ["prob", "logprob", "logit-diff"] as const;

/** Node kinds: hook-site kinds plus the per-head attention inputs q, k, v. */
export type AtpSiteKind =
  | "embed"
  | "resid_pre"
  | "resid_post"
  | "attn_out"
  | "mlp_out"
  | "mlp_post"
  | "head_out"
  | "ln_f"
  | "q"
  | "k"
  | "v";

/** Every node kind. */
export const ATP_SITE_KINDS: readonly AtpSiteKind[] = [
  "embed",
  "resid_pre",
  "attn_out",
  "mlp_post",
  "mlp_out",
  "resid_post",
  "head_out",
  "q",
  "k",
  "v",
  "ln_f",
];

/** The kinds estimated when none are given. */
export const DEFAULT_ATP_SITES: readonly AtpSiteKind[] = [
  "resid_pre",
  "attn_out",
  "mlp_out",
  "resid_post",
  "head_out",
];

/** Options of {@link attributionPatching}. */
export interface AtpOptions {
  /** Node kinds to estimate (default {@link DEFAULT_ATP_SITES}). */
  sites?: Iterable<AtpSiteKind>;
  /** mlp_post: one value per neuron instead of the sum over neurons per position. */
  perNeuron?: boolean;
  /** q / k nodes: recompute the softmax exactly (the AtP* QK fix; default false: plain linear AtP). */
  qkFix?: boolean;
  /** AtP*'s GradDrop: report 1/(L−1) Σ_ℓ |Î_GD_ℓ| (L extra backward passes; needs L ≥ 2). */
  gradDrop?: boolean;
}

/** Estimates of one node kind at one layer. */
export interface AtpSiteResult {
  /** Node kind. */
  kind: AtpSiteKind;
  /** Layer, or -1 for embed and ln_f. */
  layer: number;
  /** Name: the hook site (`attn_out.3`) or `q.3` / `k.3` / `v.3`. */
  name: string;
  /** Values per position: 1 (summed), heads (head_out, q: H; k, v: kv heads) or neurons (mlp_post). */
  units: number;
  /** Estimates [T * units], index t * units + u. */
  values: Float64Array;
}

/** Result of {@link attributionPatching} and {@link activationPatchingSweep}. */
export interface AtpResult {
  /** L(M(x_clean)) and L(M(x_noise)). */
  metricClean: number;
  /** The metric's value in the corrupt run, L(M(x_noise)). */
  metricCorrupt: number;
  /** Tokens of the clean prompt (positions of every site). */
  T: number;
  /** One result per (kind, layer) node group. */
  sites: AtpSiteResult[];
  /** What the values are: "atp" (signed estimates), "atp-gd" (GradDrop magnitudes), "patching" (exact). */
  method: "atp" | "atp-gd" | "patching";
}

/** The metric value of one next-token log-probability row (logit-diff: a log-softmax shift cancels). */
export function metricValue(metric: AtpMetric, logprobs: ArrayLike<number>): number {
  if (metric.kind === "prob") return Math.exp(logprobs[metric.answer]);
  if (metric.kind === "logprob") return logprobs[metric.answer];
  return logprobs[metric.answer] - logprobs[metric.counterfactual];
}

/** The metric and dL/dlogits of one row of logits, in float64 (softmax by the max-shift). */
export function metricFromLogits(metric: AtpMetric, logits: ArrayLike<number>): {
  value: number;
  dlogits: Float64Array;
} {
  const V = logits.length;
  const d = new Float64Array(V);
  if (metric.kind === "logit-diff") {
    d[metric.answer] += 1;
    d[metric.counterfactual] -= 1;
    return { value: logits[metric.answer] - logits[metric.counterfactual], dlogits: d };
  }
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, logits[v]);
  let s = 0;
  for (let v = 0; v < V; v++) s += Math.exp(logits[v] - m);
  const lse = m + Math.log(s);
  const lp = logits[metric.answer] - lse;
  // d logp_a / d z_v = δ_va − p_v; d p_a / d z_v = p_a (δ_va − p_v).
  const w = metric.kind === "prob" ? Math.exp(lp) : 1;
  for (let v = 0; v < V; v++) d[v] = -w * Math.exp(logits[v] - lse);
  d[metric.answer] += w;
  return { value: metric.kind === "prob" ? Math.exp(lp) : lp, dlogits: d };
}

/** Checks a metric's token ids against the vocabulary. */
export function checkMetric(metric: AtpMetric, V: number): void {
  const ids = metric.kind === "logit-diff" ? [metric.answer, metric.counterfactual] : [metric.answer];
  for (const id of ids) {
    if (!(Number.isInteger(id) && id >= 0 && id < V)) {
      throw new InputError(`metric token id ${id} out of range [0, ${V})`, { field: "metric" });
    }
  }
  if (!(ATP_METRICS as readonly string[]).includes(metric.kind)) {
    throw new InputError(`unknown metric '${metric.kind}' (expected ${ATP_METRICS.join(", ")})`, {
      field: "metric",
    });
  }
}

/** Validated list of node kinds. */
function siteKinds(sites: Iterable<AtpSiteKind> | undefined): AtpSiteKind[] {
  const out = [...new Set(sites ?? DEFAULT_ATP_SITES)];
  if (out.length === 0) throw new InputError("no node kinds to estimate", { field: "sites" });
  for (const k of out) {
    if (!ATP_SITE_KINDS.includes(k)) {
      throw new InputError(`unknown node kind '${k}' (expected ${ATP_SITE_KINDS.join(", ")})`, {
        field: "sites",
      });
    }
  }
  return out;
}

/** The (kind, layer, name) of every node group of `kinds`, in a fixed order. */
export function nodeGroups(kinds: AtpSiteKind[], nLayer: number): Array<{
  kind: AtpSiteKind;
  layer: number;
  name: string;
}> {
  const out: Array<{ kind: AtpSiteKind; layer: number; name: string }> = [];
  for (const kind of kinds) {
    if (kind === "embed" || kind === "ln_f") out.push({ kind, layer: -1, name: kind });
    else for (let l = 0; l < nLayer; l++) out.push({ kind, layer: l, name: `${kind}.${l}` });
  }
  return out;
}

/** Attention-input node kinds: estimated by AtP, not hook sites, so activation patching cannot patch them. */
export const ATTN_INPUT: ReadonlySet<AtpSiteKind> = new Set<AtpSiteKind>(["q", "k", "v"]);

/** Per-head q, k, v and probabilities of one layer from one saved forward, host copies. */
interface AttnState {
  /** Fused q/k/v rows [T, rowStride] as attention read them (after q/k norms and rotary). */
  qkv: Float32Array;
}

/** The common part of one run: clean and corrupt activations, attention inputs. */
interface Runs {
  T: number;
  clean: Map<string, Float32Array>;
  corrupt: Map<string, Float32Array>;
  cleanAttn: AttnState[];
  corruptAttn: AttnState[];
  metricClean: number;
  metricCorrupt: number;
}

/** Hook sites whose values and gradients the kinds need. */
function neededSites(kinds: AtpSiteKind[], nLayer: number): string[] {
  const s = new Set<string>();
  for (const g of nodeGroups(kinds, nLayer)) {
    s.add(ATTN_INPUT.has(g.kind) ? `head_out.${g.layer}` : g.name);
  }
  return [...s];
}

/**
 * AtP (or with options AtP*'s parts) of every node of `sites` for the clean prompt `cleanIds` and the
 * corrupt run `corrupt` (another prompt of the same length, or the clean prompt with corruption hooks,
 * e.g. `corruptionHooks` of ./patching.ts). See the module comment for the definitions.
 */
export async function attributionPatching(
  model: TransformerModel,
  cleanIds: number[],
  corrupt: RunSpec,
  metric: AtpMetric,
  opts: AtpOptions = {},
): Promise<AtpResult> {
  const cfg = model.config;
  const L = cfg.nLayer;
  checkMetric(metric, cfg.vocabSize);
  const kinds = siteKinds(opts.sites);
  if (corrupt.ids.length !== cleanIds.length) {
    throw new InputError(
      `the corrupt prompt has ${corrupt.ids.length} tokens, the clean one ${cleanIds.length}: they must match`,
      { field: "corrupt" },
    );
  }
  if (opts.gradDrop && L < 2) {
    throw new InputError("GradDrop needs at least 2 layers (its average divides by L − 1)", {
      field: "gradDrop",
    });
  }
  const T = cleanIds.length;
  const sites = neededSites(kinds, L);
  const wantAttn = kinds.some((k) => ATTN_INPUT.has(k));

  // Corrupt forward: values only (saved activations when the attention inputs are needed).
  const corruptRun = await model.forwardForBackward([corrupt.ids], {
    hooks: { ...corrupt.hooks, capture: [...(corrupt.hooks?.capture ?? []), ...sites] },
  });
  let corruptAttn: AttnState[] = [];
  try {
    if (wantAttn) corruptAttn = await readAttn(corruptRun.saved);
  } finally {
    corruptRun.saved.destroy();
  }

  // Clean forward + backward from the metric's dlogits at the last position.
  const gradsOf = async (hooks: Hooks, wantAttnState = true) => {
    const { result, saved } = await model.forwardForBackward([cleanIds], { hooks });
    try {
      let value = 0;
      const bw = await backwardFromLogitGrads(model, saved, [T - 1], (logits) => {
        const r = metricFromLogits(metric, logits);
        value = r.value;
        return { loss: r.value, dlogits: Float32Array.from(r.dlogits) };
      }, { siteGrads: sites });
      const attn = wantAttn && wantAttnState ? await readAttn(saved) : [];
      return { result, value, grads: bw.siteGrads, attn };
    } finally {
      saved.destroy();
    }
  };
  // GradDrop patches every layer's attn_out / mlp_out with their clean values: capture them too.
  const gdSites = opts.gradDrop
    ? Array.from({ length: L }, (_, l) => [`attn_out.${l}`, `mlp_out.${l}`]).flat()
    : [];
  const clean = await gradsOf({ capture: [...new Set([...sites, ...gdSites])] });
  const runs: Runs = {
    T,
    clean: siteData(clean.result.captured),
    corrupt: siteData(corruptRun.result.captured),
    cleanAttn: clean.attn,
    corruptAttn,
    metricClean: metricValue(metric, clean.result.logprobs[0]),
    metricCorrupt: metricValue(metric, corruptRun.result.logprobs[0]),
  };
  const groups = nodeGroups(kinds, L);
  if (!opts.gradDrop) {
    return {
      metricClean: runs.metricClean,
      metricCorrupt: runs.metricCorrupt,
      T,
      sites: groups.map((g) => estimateGroup(model, runs, clean.grads, g, opts)),
      method: "atp",
    };
  }
  // GradDrop: layer ℓ's attn_out / mlp_out patched with their own clean values cut their gradient.
  const acc = groups.map((g) => ({ ...g, units: 0, values: new Float64Array(0) }));
  for (let l = 0; l < L; l++) {
    const patch: PatchSpec[] = [`attn_out.${l}`, `mlp_out.${l}`].map((site) => ({
      site,
      rows: Array.from({ length: T }, (_, t) => [0, t] as [number, number]),
      values: captured(runs, site),
    }));
    // The dropped run's forward is the clean one: its attention inputs are the clean run's.
    const dropped = await gradsOf({ patch }, false);
    groups.forEach((g, i) => {
      const e = estimateGroup(model, runs, dropped.grads, g, opts);
      if (acc[i].units === 0) {
        acc[i].units = e.units;
        acc[i].values = new Float64Array(e.values.length);
      }
      // Nodes inside layer ℓ reach the metric only through its output: their ℓ-term is 0.
      if (g.layer === l && g.kind !== "resid_pre" && g.kind !== "resid_post") return;
      for (let j = 0; j < e.values.length; j++) acc[i].values[j] += Math.abs(e.values[j]);
    });
  }
  for (const a of acc) for (let j = 0; j < a.values.length; j++) a.values[j] /= L - 1;
  return {
    metricClean: runs.metricClean,
    metricCorrupt: runs.metricCorrupt,
    T,
    sites: acc,
    method: "atp-gd",
  };
}

/** The flat values of captured sites (the estimates index them by position and unit themselves). */
function siteData(m: Map<string, SiteTensor>): Map<string, Float32Array> {
  return new Map([...m].map(([k, v]) => [k, v.data]));
}

/** Clean values of a site the estimates did not capture (GradDrop's patch values). */
function captured(runs: Runs, site: string): Float32Array {
  const v = runs.clean.get(site);
  if (!v) throw new InputError(`internal: clean values of ${site} were not captured`, { field: site });
  return v;
}

/** Reads every layer's fused q/k/v rows from a saved forward. */
async function readAttn(saved: SavedForward): Promise<AttnState[]> {
  const out: AttnState[] = [];
  // Every layer in one map (one completion wait).
  for (const qkv of await readTensors(saved.layers.map((a) => a.qkv))) out.push({ qkv });
  return out;
}

/** Estimates of one node group from one set of site gradients. */
function estimateGroup(
  model: TransformerModel,
  runs: Runs,
  grads: Map<string, Float32Array>,
  g: { kind: AtpSiteKind; layer: number; name: string },
  opts: AtpOptions,
): AtpSiteResult {
  const cfg = model.config;
  const T = runs.T;
  if (ATTN_INPUT.has(g.kind)) {
    const r = attentionNodeEstimates(
      model,
      g.kind as "q" | "k" | "v",
      runs.cleanAttn[g.layer].qkv,
      runs.corruptAttn[g.layer].qkv,
      grads.get(`head_out.${g.layer}`)!,
      T,
      Boolean(opts.qkFix),
    );
    return { ...g, units: r.units, values: r.values };
  }
  const width = siteWidth(cfg, g.name, "patch");
  const xc = runs.clean.get(g.name)!, xn = runs.corrupt.get(g.name)!, gr = grads.get(g.name)!;
  let units = 1;
  if (g.kind === "head_out") units = cfg.nHead;
  else if (g.kind === "mlp_post" && opts.perNeuron) units = width;
  const per = width / units;
  const values = new Float64Array(T * units);
  for (let t = 0; t < T; t++) {
    for (let c = 0; c < width; c++) {
      const i = t * width + c;
      values[t * units + Math.floor(c / per)] += (xn[i] - xc[i]) * gr[i];
    }
  }
  return { ...g, units, values };
}

/**
 * q / k / v node estimates of one layer from the fused q/k/v rows of the clean and corrupt runs and
 * dL/d head_out [T, H·D] of the clean run. With z_{t,h} = Σ_s A_{h,t,s} v_{s,g(h)}:
 * ∂L/∂A_{h,t,s} = ∂L/∂z_{t,h} · v_s and ∂L/∂v_{s,g} = Σ_{h∈g} Σ_t A_{h,t,s} ∂L/∂z_{t,h}.
 * Plain q / k: the gradient through the softmax, ∂L/∂a = A ⊙ (∂L/∂A − ⟨A, ∂L/∂A⟩_row), dotted with the
 * change of q or k. QK fix: the patched rows' softmax recomputed exactly (see the module comment).
 */
function attentionNodeEstimates(
  model: TransformerModel,
  kind: "q" | "k" | "v",
  qkvClean: Float32Array,
  qkvCorrupt: Float32Array,
  dz: Float32Array,
  T: number,
  qkFix: boolean,
): { units: number; values: Float64Array } {
  const lay = model.qkvLayout;
  const cfg = model.config;
  const H = lay.nHead, KV = lay.nKvHead, D = lay.headDim, S = lay.rowStride;
  const scale = 1 / Math.sqrt(D);
  const win = cfg.slidingWindow !== undefined && cfg.slidingWindow < T ? cfg.slidingWindow : T;
  const lo = (t: number) => Math.max(0, t - win + 1);
  const qAt = (t: number, h: number) => t * S + lay.qOffset + h * lay.qHeadStride;
  const kAt = (t: number, g: number) => t * S + lay.kOffset + g * lay.kvHeadStride;
  const vAt = (t: number, g: number) => t * S + lay.vOffset + g * lay.kvHeadStride;
  const dot = (a: Float32Array, ia: number, b: Float32Array, ib: number) => {
    let s = 0;
    for (let d = 0; d < D; d++) s += a[ia + d] * b[ib + d];
    return s;
  };
  const units = kind === "q" ? H : KV;
  const values = new Float64Array(T * units);
  const group = H / KV;
  for (let h = 0; h < H; h++) {
    const g = Math.floor(h / group);
    // Clean logits, probabilities and ∂L/∂A of this head, rows t over keys lo(t)..t.
    const a = new Float64Array(T * T), A = new Float64Array(T * T), gA = new Float64Array(T * T);
    const rowG = new Float64Array(T);
    for (let t = 0; t < T; t++) {
      let m = -Infinity;
      for (let s = lo(t); s <= t; s++) {
        a[t * T + s] = scale * dot(qkvClean, qAt(t, h), qkvClean, kAt(s, g));
        m = Math.max(m, a[t * T + s]);
      }
      let z = 0;
      for (let s = lo(t); s <= t; s++) z += A[t * T + s] = Math.exp(a[t * T + s] - m);
      for (let s = lo(t); s <= t; s++) {
        A[t * T + s] /= z;
        let gs = 0;
        for (let d = 0; d < D; d++) gs += dz[t * H * D + h * D + d] * qkvClean[vAt(s, g) + d];
        gA[t * T + s] = gs;
        rowG[t] += A[t * T + s] * gs;
      }
    }
    if (kind === "v") {
      for (let s = 0; s < T; s++) {
        let e = 0;
        for (let t = s; t < T && t - s < win; t++) {
          for (let d = 0; d < D; d++) {
            e += A[t * T + s] * dz[t * H * D + h * D + d] *
              (qkvCorrupt[vAt(s, g) + d] - qkvClean[vAt(s, g) + d]);
          }
        }
        values[s * units + g] += e;
      }
      continue;
    }
    if (kind === "q") {
      for (let t = 0; t < T; t++) {
        const qi = qAt(t, h);
        let e = 0;
        if (qkFix) {
          // Row t with the corrupt query against the clean keys, softmax exactly.
          const row: number[] = [];
          let m = -Infinity;
          for (let s = lo(t); s <= t; s++) {
            const v = scale * dot(qkvCorrupt, qi, qkvClean, kAt(s, g));
            row.push(v);
            m = Math.max(m, v);
          }
          let z = 0;
          for (const v of row) z += Math.exp(v - m);
          for (let s = lo(t); s <= t; s++) {
            e += (Math.exp(row[s - lo(t)] - m) / z - A[t * T + s]) * gA[t * T + s];
          }
        } else {
          for (let s = lo(t); s <= t; s++) {
            const da = A[t * T + s] * (gA[t * T + s] - rowG[t]); // ∂L/∂a_{t,s}
            let dq = 0;
            for (let d = 0; d < D; d++) {
              dq += (qkvCorrupt[qi + d] - qkvClean[qi + d]) * qkvClean[kAt(s, g) + d];
            }
            e += da * scale * dq;
          }
        }
        values[t * units + h] = e;
      }
      continue;
    }
    // Keys: key s changes the logit a_{t,s} of every query t that sees it.
    for (let s = 0; s < T; s++) {
      const ki = kAt(s, g);
      let e = 0;
      for (let t = s; t < T && t - s < win; t++) {
        const qi = qAt(t, h);
        let dq = 0;
        for (let d = 0; d < D; d++) dq += qkvClean[qi + d] * (qkvCorrupt[ki + d] - qkvClean[ki + d]);
        const delta = scale * dq;
        const As = A[t * T + s];
        if (!qkFix) {
          e += As * (gA[t * T + s] - rowG[t]) * delta;
          continue;
        }
        // Only logit s moves by delta: p'_s = σ(delta + logit(A_s)), the others scale by (1 − p'_s)/(1 − A_s).
        if (As >= 1) continue; // the only visible key: the row stays one-hot
        const ps = 1 / (1 + ((1 - As) / As) * Math.exp(-delta));
        const rest = rowG[t] - As * gA[t * T + s];
        e += ps * gA[t * T + s] + ((1 - ps) / (1 - As)) * rest - rowG[t];
      }
      values[s * units + g] += e;
    }
  }
  return { units, values };
}

/** Options of {@link activationPatchingSweep}. */
export interface SweepOptions {
  /** Node kinds to patch (default {@link DEFAULT_ATP_SITES}; q / k / v are refused). */
  sites?: Iterable<AtpSiteKind>;
  /** mlp_post: patch each neuron on its own instead of all neurons of a position together. */
  perNeuron?: boolean;
  /** Most patched sequences per forward pass (default 64). */
  maxBatch?: number;
}

/**
 * Full activation patching of every node of `sites` (the exact I(n) the estimates approximate): for each
 * node, the clean run with that node's value replaced by the corrupt run's, minus the clean metric. Nodes
 * of one site and layer are batched (one sequence per node). q / k / v nodes are not hook sites: refused.
 */
export async function activationPatchingSweep(
  model: TransformerModel,
  cleanIds: number[],
  corrupt: RunSpec,
  metric: AtpMetric,
  opts: SweepOptions = {},
): Promise<AtpResult> {
  const cfg = model.config;
  checkMetric(metric, cfg.vocabSize);
  const kinds = siteKinds(opts.sites);
  for (const k of kinds) {
    if (ATTN_INPUT.has(k)) {
      throw new InputError(`activation patching of '${k}' nodes is not supported (not a hook site)`, {
        field: "sites",
      });
    }
  }
  const T = cleanIds.length;
  if (corrupt.ids.length !== T) {
    throw new InputError(`the corrupt prompt has ${corrupt.ids.length} tokens, the clean one ${T}`, {
      field: "corrupt",
    });
  }
  const sites = neededSites(kinds, cfg.nLayer);
  const cleanRun = await model.forward([cleanIds], { hooks: { capture: sites } });
  const corruptRun = await model.forward([corrupt.ids], {
    hooks: { ...corrupt.hooks, capture: [...(corrupt.hooks?.capture ?? []), ...sites] },
  });
  const base = metricValue(metric, cleanRun.logprobs[0]);
  const maxBatch = Math.max(1, opts.maxBatch ?? 64);
  const out: AtpSiteResult[] = [];
  for (const g of nodeGroups(kinds, cfg.nLayer)) {
    const width = siteWidth(cfg, g.name, "patch");
    let units = 1;
    if (g.kind === "head_out") units = cfg.nHead;
    else if (g.kind === "mlp_post" && opts.perNeuron) units = width;
    const per = width / units;
    const xc = cleanRun.captured.get(g.name)!.data, xn = corruptRun.captured.get(g.name)!.data;
    const values = new Float64Array(T * units);
    const n = T * units;
    for (let j0 = 0; j0 < n; j0 += maxBatch) {
      const B = Math.min(maxBatch, n - j0);
      const rows: Array<[number, number]> = [];
      const vals = new Float32Array(B * width);
      for (let b = 0; b < B; b++) {
        const t = Math.floor((j0 + b) / units), u = (j0 + b) % units;
        rows.push([b, t]);
        // The clean row with unit u's slice from the corrupt run.
        vals.set(xc.subarray(t * width, (t + 1) * width), b * width);
        vals.set(xn.subarray(t * width + u * per, t * width + (u + 1) * per), b * width + u * per);
      }
      const r = await model.forward(Array.from({ length: B }, () => cleanIds), {
        hooks: { patch: [{ site: g.name, rows, values: vals }] },
      });
      for (let b = 0; b < B; b++) values[j0 + b] = metricValue(metric, r.logprobs[b]) - base;
    }
    out.push({ ...g, units, values });
  }
  return {
    metricClean: base,
    metricCorrupt: metricValue(metric, corruptRun.logprobs[0]),
    T,
    sites: out,
    method: "patching",
  };
}

/** Spearman rank correlation of two equal-length samples (average ranks for ties). */
export function spearman(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length || a.length < 2) {
    throw new InputError(`spearman needs two samples of equal length >= 2`, { field: "values" });
  }
  const ra = ranks(a), rb = ranks(b);
  const n = a.length;
  const ma = (n + 1) / 2;
  let sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (ra[i] - ma) * (rb[i] - ma);
    saa += (ra[i] - ma) ** 2;
    sbb += (rb[i] - ma) ** 2;
  }
  return saa === 0 || sbb === 0 ? NaN : sab / Math.sqrt(saa * sbb);
}

function ranks(x: ArrayLike<number>): Float64Array {
  const idx = Array.from({ length: x.length }, (_, i) => i).sort((i, j) => x[i] - x[j]);
  const r = new Float64Array(x.length);
  for (let i = 0; i < idx.length;) {
    let j = i;
    while (j + 1 < idx.length && x[idx[j + 1]] === x[idx[i]]) j++;
    for (let k = i; k <= j; k++) r[idx[k]] = (i + j) / 2 + 1;
    i = j + 1;
  }
  return r;
}

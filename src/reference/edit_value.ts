/**
 * Float64 twin of the target-value optimisation of ROME (`rome/compute_v.py`) and MEMIT
 * (`memit/compute_z.py`), written from the reference code, independently of src/edit/.
 *
 * Prompts (reference): the rewriting prompts `template.format(prompt)` followed by the target's tokens
 * but the last, one per template, and the KL prompt "{} is a"; the subject is located by the reference
 * rule (tokens of the text before "{}" plus the subject's tokens, minus one: its last token). This
 * counts tokens of the prefix and the subject separately, which equals tokenising them together for a
 * word-level tokenizer (the tests use one).
 *
 * A δ ∈ R^C is added at the subject's last token of every prompt, to the MLP output of layer L (ROME)
 * or to the residual output of block L (MEMIT); both reach the residual leaving block L additively (in
 * every family: sequential and parallel blocks alike add the MLP output to the residual), so the loss is
 * computed by {@link transformerTailForwardRef} from that stream and dL/dδ by
 * {@link transformerTailBackwardRef}. Clean activations come from {@link transformerForwardRef}: any
 * family (src/model/families/).
 *   loss = NLL + KL + WD, NLL = mean over rewriting prompts of −Σ log p(target) / len(target),
 *   KL = kl_factor · Σ p_new (log p_new − log p_init) at the KL prompt's subject token,
 *   WD = v_weight_decay · ‖δ‖ / ‖target_init‖² (norm not squared).
 * The loop (reference order): evaluate; stop if loss < early_stop_loss or at the last of
 * v_num_grad_steps; else one torch Adam step (β 0.9/0.999, ε 1e-8) and projection of δ into the ball
 * of radius clamp_norm_factor · ‖target_init‖.
 */
import { type ModelConfig, resolveConfig, type WeightMap } from "../model/config.ts";
import { familySpec, type LinearSpec } from "../model/families/mod.ts";
import { adamwRef } from "./adamw.ts";
import { transformerForwardRef } from "./transformer.ts";
import { transformerTailBackwardRef, transformerTailForwardRef } from "./transformer_tail.ts";

/**
 * Values of hook `sites` (names of {@link transformerForwardRef}) at position `pos` of `ids`, one
 * float64 row per site, from the float64 forward of any family.
 */
export function sitesAtRef(
  cfg: ModelConfig,
  weights: WeightMap,
  ids: number[],
  pos: number,
  sites: string[],
): Float64Array[] {
  const got = transformerForwardRef(cfg, weights, ids, { capture: sites }).sites;
  return sites.map((s) => {
    const v = got.get(s)!;
    const w = v.length / ids.length;
    return v.slice(pos * w, (pos + 1) * w);
  });
}

/** The weight ROME and MEMIT edit at `layer`: the family's MLP output projection (`down`). */
export function editedProjectionRef(cfg: ModelConfig, layer: number): LinearSpec {
  const r = resolveConfig(cfg);
  return familySpec(r).layer(r, layer).down;
}

/**
 * A key→value update `kv` [I, C] (row a: what key dimension a writes) in the storage layout of `p`:
 * itself for Conv1D [I, C], transposed for nn.Linear [C, I] (ROME's `upd_matrix_match_shape`).
 */
export function keyValueToLayoutRef(p: LinearSpec, kv: Float64Array): Float64Array {
  if (p.layout === "conv1d") return kv;
  const I = p.in, C = p.out;
  const out = new Float64Array(I * C);
  for (let a = 0; a < I; a++) for (let c = 0; c < C; c++) out[c * I + a] = kv[a * C + c];
  return out;
}

/** The part of a tokenizer the references need. */
export interface RefTokenizer {
  encode(text: string): number[];
}

/** An edit request (CounterFact fields). */
export interface RefRequest {
  prompt: string;
  subject: string;
  target_new: string;
}

/** Hyper-parameters of the value optimisation (reference names). */
export interface ValueHparams {
  v_num_grad_steps: number;
  v_lr: number;
  v_weight_decay: number;
  clamp_norm_factor: number;
  kl_factor: number;
  early_stop_loss: number;
}

/** Where δ is added: ROME's MLP output or MEMIT's block output, at layer `layer`. */
export interface ValueSite {
  kind: "mlp_out" | "resid_post";
  layer: number;
}

/** A tokenised prompt with its subject-last position and (rewriting prompts) target positions. */
export interface RefPrompt {
  ids: number[];
  lookup: number;
  targetPos: number[];
  targetIds: number[];
}

/**
 * Tokens of `template` filled with `prompt` and `subject` (reference rule for the subject's last token),
 * then `target` but its last token. `bos`, when given, is prepended (engram's prefix option).
 */
export function refPrompt(
  tok: RefTokenizer,
  template: string,
  prompt: string,
  subject: string,
  target?: number[],
  bos?: number,
): RefPrompt {
  // Literal substitution (Python's str.format): a string replacement would read "$&" etc. as patterns.
  const filled = template.replace("{}", () => prompt);
  const at = filled.indexOf("{}");
  if (at < 0) throw new RangeError(`refPrompt: no "{}" in '${filled}'`);
  const pre = bos === undefined ? [] : [bos];
  const prefix = filled.slice(0, at);
  const lookup = pre.length + tok.encode(prefix).length + tok.encode(subject).length - 1;
  const ids = [...pre, ...tok.encode(prefix + subject + filled.slice(at + 2))];
  const tgt = target ?? [];
  return {
    ids: [...ids, ...tgt.slice(0, -1)],
    lookup,
    targetPos: tgt.map((_, j) => ids.length - 1 + j),
    targetIds: tgt,
  };
}

/** Target token ids: the tokens of " " + target (the reference adds the space). */
export function refTarget(tok: RefTokenizer, target: string): number[] {
  return tok.encode(" " + target.trim());
}

/** Everything about one request's prompts that does not depend on δ. */
export interface ValueSetup {
  cfg: ModelConfig;
  weights: WeightMap;
  site: ValueSite;
  rewrite: RefPrompt[];
  kl: RefPrompt;
  /** Clean residual leaving block `site.layer`, [T * C], per prompt (rewrite..., kl). */
  clean: Float64Array[];
  /** Site value at the subject token of the first rewriting prompt (δ = 0). */
  targetInit: Float64Array;
}

/** Builds the prompts of `req` over `templates` and runs their clean forwards. */
export function valueSetupRef(
  cfg: ModelConfig,
  weights: WeightMap,
  tok: RefTokenizer,
  req: RefRequest,
  templates: string[],
  site: ValueSite,
  bos?: number,
): ValueSetup {
  const C = cfg.nEmbd;
  const tgt = refTarget(tok, req.target_new);
  const rewrite = templates.map((t) => refPrompt(tok, t, req.prompt, req.subject, tgt, bos));
  const kl = refPrompt(tok, "{}", "{} is a", req.subject, undefined, bos);
  const resid = `resid_post.${site.layer}`, own = `${site.kind}.${site.layer}`;
  const clean: Float64Array[] = [];
  let targetInit: Float64Array | undefined;
  for (const p of [...rewrite, kl]) {
    const { sites } = transformerForwardRef(cfg, weights, p.ids, { capture: [resid, own] });
    clean.push(sites.get(resid)!);
    targetInit ??= sites.get(own)!.slice(p.lookup * C, (p.lookup + 1) * C);
  }
  return { cfg, weights, site, rewrite, kl, clean, targetInit: targetInit! };
}

function logSoftmaxRow(x: Float64Array, off: number, V: number): Float64Array {
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, x[off + v]);
  let s = 0;
  for (let v = 0; v < V; v++) s += Math.exp(x[off + v] - m);
  const lse = m + Math.log(s);
  return Float64Array.from({ length: V }, (_, v) => x[off + v] - lse);
}

function l2(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return Math.sqrt(s);
}

/** Loss terms at one δ, and dloss/dδ. */
export interface ValueLoss {
  nll: number;
  kl: number;
  wd: number;
  loss: number;
  grad: Float64Array;
  /** log P at the KL prompt's subject token (P_init when δ = 0). */
  klLogprobs: Float64Array;
}

/**
 * The reference loss at `delta` and its analytic gradient. `klInit` is log P_init (omit at δ = 0: the
 * current distribution is used, giving KL = 0).
 */
export function valueLossRef(
  s: ValueSetup,
  delta: ArrayLike<number>,
  hp: ValueHparams,
  klInit?: Float64Array,
): ValueLoss {
  const { cfg, weights } = s;
  const C = cfg.nEmbd, V = cfg.vocabSize;
  const grad = new Float64Array(C);
  const prompts = [...s.rewrite, s.kl];
  let nll = 0, kl = 0;
  let klLogprobs: Float64Array = new Float64Array(V);
  prompts.forEach((p, i) => {
    const T = p.ids.length;
    const x = Float64Array.from(s.clean[i]);
    for (let j = 0; j < C; j++) x[p.lookup * C + j] += delta[j];
    const { logits, tape } = transformerTailForwardRef(cfg, weights, s.site.layer + 1, x, T);
    const dlogits = new Float64Array(T * V);
    if (i < s.rewrite.length) {
      const w = 1 / (p.targetIds.length * s.rewrite.length);
      p.targetPos.forEach((pos, j) => {
        const lp = logSoftmaxRow(logits, pos * V, V);
        const t = p.targetIds[j];
        nll -= w * lp[t];
        for (let v = 0; v < V; v++) dlogits[pos * V + v] += w * (Math.exp(lp[v]) - (v === t ? 1 : 0));
      });
    } else {
      const lp = logSoftmaxRow(logits, p.lookup * V, V);
      klLogprobs = lp;
      const q = klInit ?? lp;
      let d = 0;
      for (let v = 0; v < V; v++) d += Math.exp(lp[v]) * (lp[v] - q[v]);
      kl = hp.kl_factor * d;
      // d/dz_u Σ p (lp − q) = p_u (lp_u − q_u − Σ p (lp − q)).
      for (let v = 0; v < V; v++) {
        dlogits[p.lookup * V + v] = hp.kl_factor * Math.exp(lp[v]) * (lp[v] - q[v] - d);
      }
    }
    const dx = transformerTailBackwardRef(cfg, weights, tape, dlogits);
    for (let j = 0; j < C; j++) grad[j] += dx[p.lookup * C + j];
  });
  const dn = l2(delta), tn = l2(s.targetInit);
  const wd = (hp.v_weight_decay * dn) / (tn * tn);
  if (dn > 0) { for (let j = 0; j < C; j++) grad[j] += (hp.v_weight_decay * delta[j]) / (dn * tn * tn); }
  return { nll, kl, wd, loss: nll + kl + wd, grad, klLogprobs };
}

/** Outcome of {@link optimizeValueRef}. */
export interface ValueResult {
  targetInit: Float64Array;
  delta: Float64Array;
  /** Loss evaluations done (the reference's iterations). */
  steps: number;
  /** Loss at each evaluation, in order. */
  losses: number[];
  /** Steps after which the projection into the clamp ball changed δ. */
  clamped: number;
  /** Terms of the last evaluation. */
  nll: number;
  kl: number;
  wd: number;
  loss: number;
}

/**
 * Runs the reference loop. `gradient`, when given, replaces the analytic dloss/dδ (e.g. by finite
 * differences of {@link valueLossRef}); it receives δ and log P_init.
 */
export function optimizeValueRef(
  s: ValueSetup,
  hp: ValueHparams,
  gradient?: (delta: Float64Array, klInit: Float64Array) => Float64Array,
): ValueResult {
  const C = s.cfg.nEmbd;
  const delta = new Float64Array(C);
  const m = new Float64Array(C), v = new Float64Array(C);
  const losses: number[] = [];
  let klInit: Float64Array | undefined;
  let last: ValueLoss | undefined;
  let it = 0, clamped = 0;
  for (; it < hp.v_num_grad_steps; it++) {
    last = valueLossRef(s, delta, hp, klInit);
    klInit ??= last.klLogprobs;
    losses.push(last.loss);
    if (last.loss < hp.early_stop_loss) break;
    if (it === hp.v_num_grad_steps - 1) break;
    const g = gradient ? gradient(Float64Array.from(delta), klInit) : last.grad;
    adamwRef(delta, g, m, v, { lr: hp.v_lr, step: it + 1, weightDecay: 0 });
    const maxNorm = hp.clamp_norm_factor * l2(s.targetInit);
    const dn = l2(delta);
    if (dn > maxNorm) {
      for (let j = 0; j < C; j++) delta[j] *= maxNorm / dn;
      clamped++;
    }
  }
  return {
    targetInit: s.targetInit,
    delta,
    steps: Math.min(it + 1, hp.v_num_grad_steps),
    losses,
    clamped,
    nll: last?.nll ?? 0,
    kl: last?.kl ?? 0,
    wd: last?.wd ?? 0,
    loss: last?.loss ?? 0,
  };
}

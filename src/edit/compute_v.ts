/**
 * The target-value optimisation of ROME (`compute_v`: δ added to the MLP output of layer L) and of
 * MEMIT (`compute_z`: δ added to the residual output of block L), for many requests at once.
 *
 * Per request, δ ∈ R^C starts at 0 and is added at the subject's last token of every prompt (the
 * rewriting prompts `template(prompt) + target[:-1]` and the KL prompt "{subject} is a"). The loss is
 *   NLL  = mean over rewriting prompts of −Σ_target log p / len(target)
 *   KL   = kl_factor · KL(P_new ‖ P_init) at the KL prompt's subject-last position (P_init: δ = 0)
 *   WD   = v_weight_decay · ‖δ‖ / ‖target_init‖²   (the norm is not squared, as in the reference)
 * minimised by Adam (lr v_lr, PyTorch defaults β = (0.9, 0.999), ε = 1e-8); after each step δ is
 * projected into the ball of radius clamp_norm_factor · ‖target_init‖. The loop stops when the loss
 * is below early_stop_loss or after v_num_grad_steps evaluations (the last one takes no step).
 * Requests never interact (each δ only touches its own prompts), so they share forward passes; a
 * request that stops early drops out, which gives exactly its sequential result.
 *
 * Objectives of Hase et al. 2023 (`opts.objective`, belief-localization `rome/compute_v.py`,
 * `memit/compute_z.py`; the default is the NLL above):
 * - Fact Erasure (`loss: "prob"`): the NLL term is replaced by the target's probability exp(−NLL) (NLL as
 *   above, the mean over rewriting prompts), loss = exp(−NLL) + KL + WD, and the loop never stops early;
 *   with `stepLast` the last evaluation is followed by a step too (the reference's ROME; its MEMIT does
 *   not step after the last evaluation);
 * - Fact Forcing (`noiser`): every forward adds a fresh subject-noise draw to the subject's input
 *   embeddings of each prompt (the rewriting prompts and the KL prompt), so the loss is taken under the
 *   corrupted run; δ is added to the noised site value (two forwards per step: the noised site values,
 *   then the patched run with the same draws), and target_init is the noised site value of the first
 *   step, as the reference records it inside its noising hook.
 *
 * Gradients: dL/dlogits is computed on the host ({@link backwardFromLogitGrads}) and dL/dδ is the
 * gradient at the patched rows of the hook site.
 *
 * Cost: δ only enters at the hook site, so everything below it is the same at every step. At
 * `resid_post.L` and `mlp_out.L` the clean residual leaving block L is read once (with the clean site
 * values); each step then runs blocks L+1.. from it, the patched rows rebuilt on the host with the same
 * float32 additions the forward makes (`resid_post = (resid_pre + attn_out) + mlp_out`), and the backward
 * stops at the site. A step is one forward of the upper blocks, the logits rows read back, the backward
 * to the site and one read of its gradient (two maps). Other sites run the whole model per step.
 */
import type { Tokenizer } from "../io/tokenizer.ts";
import { backwardFromGpuLogitGrads, backwardFromLogitGrads } from "../model/backward.ts";
import { DELTA_LOSS_KL, DELTA_LOSS_KL_INIT, DELTA_LOSS_NLL, deltaLoss } from "../gpu/delta_loss.ts";
import { createTensor } from "../gpu/tensor.ts";
import { NonFiniteError } from "../model/nonfinite.ts";
import type { TransformerModel } from "../model/transformer.ts";
import type { CommonHparams } from "./hparams.ts";
import { chunkByTokens, type FactToken, padBatch, type PromptTokens, tokenizePrompt } from "./compute.ts";
import { encodeTarget } from "../prompt/encode.ts";
import { norm } from "./linalg.ts";
import type { EditRequest } from "./requests.ts";
import { logSoftmaxInto } from "../numeric/mod.ts";
import type { SubjectNoiser } from "../locate/subject_noiser.ts";

/** Hase et al. 2023's objectives of the δ optimisation (see the module comment); {} is ROME's NLL. */
export interface DeltaObjective {
  /** "nll" (default) or "prob": exp(−NLL), Fact Erasure's loss, with no early stopping. */
  loss?: "nll" | "prob";
  /** With the "prob" loss: also step after the last evaluation (belief-localization's ROME `compute_v`). */
  stepLast?: boolean;
  /** Fact Forcing: fresh subject noise on every forward of the optimisation. */
  noiser?: SubjectNoiser;
}

/** Per-request outcome of {@link optimizeDeltas}. */
export interface DeltaResult {
  /** Site value at the subject's last token of the un-prefixed prompt (δ = 0). */
  targetInit: Float64Array;
  /** The optimised δ; the target value is targetInit + δ. */
  delta: Float64Array;
  /** Loss terms at the last evaluation. */
  nll: number;
  kl: number;
  wd: number;
  loss: number;
  /** Loss evaluations performed. */
  steps: number;
  /** NLL of the target before optimisation (δ = 0). */
  nllInit: number;
}

interface Seq extends PromptTokens {
  r: number;
  kind: "rewrite" | "kl";
}

/** Builds the sequences of each request: rewriting prompts over all templates, then the KL prompt. */
export function deltaSequences(
  tokenizer: Tokenizer,
  nPositions: number,
  requests: EditRequest[],
  templates: string[],
  bos: boolean | undefined,
  factToken: FactToken = "subject_last",
): Seq[] {
  const seqs: Seq[] = [];
  requests.forEach((req, r) => {
    const tgt = encodeTarget(tokenizer, req.target_new, { fields: { target: "target_new" } });
    for (const tpl of templates) {
      seqs.push({
        ...tokenizePrompt(tokenizer, nPositions, tpl, req.prompt, req.subject, tgt, bos, factToken),
        r,
        kind: "rewrite",
      });
    }
    const kl = tokenizePrompt(
      tokenizer,
      nPositions,
      "{}",
      "{} is a",
      req.subject,
      undefined,
      bos,
      factToken,
    );
    seqs.push({ ...kl, r, kind: "kl" });
  });
  return seqs;
}

/** Optimises one δ per request at hook `site` (e.g. "mlp_out.5" for ROME, "resid_post.5" for MEMIT). */
export async function optimizeDeltas(
  model: TransformerModel,
  tokenizer: Tokenizer,
  requests: EditRequest[],
  templates: string[],
  site: string,
  hp: CommonHparams,
  opts: {
    maxTokens?: number;
    onStep?: (step: number, active: number, meanLoss: number) => void;
    /** Resume the upper blocks from the clean residual when the site allows it (default true). */
    resume?: boolean;
    /**
     * The loss and dL/dlogits on the GPU (kernels/delta_loss.wgsl, float32; default true when the rows
     * fit one storage binding); false computes them on the host in float64 from the logits read back.
     */
    gpuLoss?: boolean;
    /** The objective (default: the NLL on clean prompts). */
    objective?: DeltaObjective;
  } = {},
): Promise<DeltaResult[]> {
  const C = model.config.nEmbd, V = model.config.vocabSize;
  const seqs = deltaSequences(
    tokenizer,
    model.config.nPositions,
    requests,
    templates,
    hp.prefix_eos,
    hp.fact_token,
  );
  const nRewrite = templates.length;
  // Clean site values at every lookup row (they do not depend on δ: the patch is at the site itself),
  // and, when the upper blocks can be resumed, the clean residual leaving the site's block.
  const noiser = opts.objective?.noiser;
  const prob = opts.objective?.loss === "prob";
  // Under noise the site values change at every step: no resume, and the site values are read per step.
  const resume = opts.resume === false || noiser ? undefined : resumePlan(model, site, seqs);
  const { clean, post, mid } = noiser
    ? { clean: seqs.map(() => new Float32Array(C)), post: undefined, mid: undefined }
    : await cleanValues(model, seqs, site, resume, opts.maxTokens);
  const n = requests.length;
  const first = requests.map((_, r) => seqs.findIndex((s) => s.r === r && s.kind === "rewrite"));
  const res: DeltaResult[] = requests.map((_, r) => ({
    targetInit: Float64Array.from(clean[first[r]]),
    delta: new Float64Array(C),
    nll: 0,
    kl: 0,
    wd: 0,
    loss: 0,
    steps: 0,
    nllInit: 0,
  }));
  const initNorm = res.map((x) => norm(x.targetInit));
  const klInit: Array<Float64Array | undefined> = new Array(n);
  const m = requests.map(() => new Float64Array(C)), v2 = requests.map(() => new Float64Array(C));
  const b1 = 0.9, b2 = 0.999, eps = 1e-8;
  const active = new Set(requests.map((_, r) => r));
  const maxTokens = opts.maxTokens ?? 4096;
  const lp = new Float64Array(V);
  // The GPU loss needs the logits rows and P0 each in one storage binding; else the host computes it.
  const maxRows = seqs.reduce((a, s) => a + (s.kind === "kl" ? 1 : s.targetPos.length), 0);
  const fits = Math.max(Math.min(maxRows, maxTokens), n) * (V + 2) * 4 <= model.gpu.bindingLimit;
  const p0 = opts.gpuLoss !== false && fits
    ? createTensor(model.gpu, [n, V + 2], { name: "delta_loss.p0" })
    : undefined;
  const klSet = new Array<boolean>(n).fill(false);
  try {
    for (let it = 0; it < hp.v_num_grad_steps && active.size > 0; it++) {
      // dNLL/dδ (rewriting prompts) and dKL/dδ (the KL prompt) apart: erasure scales the first by −exp(−NLL).
      const grads = requests.map(() => new Float64Array(C)),
        gradsKl = requests.map(() => new Float64Array(C));
      const nll = new Float64Array(n), kl = new Float64Array(n);
      const idx = seqs.map((_, i) => i).filter((i) => active.has(seqs[i].r));
      const T0 = Math.max(...idx.map((i) => seqs[i].ids.length));
      for (const batch of chunkByTokens(idx, maxTokens, T0)) {
        const padded = padBatch(batch.map((i) => seqs[i].ids));
        const T = padded[0].length;
        // Fact Forcing: this step's noise draws for the batch, and the site values of the noised run.
        const noisePatch = noiser
          ? noiser.patches(
            model,
            batch.map((i, b) => ({ ids: seqs[i].ids, subjectRange: seqs[i].subjectRange, row: b })),
          )
          : [];
        if (noiser) {
          const { captured } = await model.forward(padded, { hooks: { patch: noisePatch, capture: [site] } });
          const v = captured.get(site)!.data;
          batch.forEach((i, b) =>
            clean[i].set(v.subarray((b * T + seqs[i].lookup) * C, (b * T + seqs[i].lookup + 1) * C))
          );
        }
        const values = new Float32Array(batch.length * C);
        batch.forEach((i, b) => {
          const d = res[seqs[i].r].delta, c = clean[i];
          for (let j = 0; j < C; j++) values[b * C + j] = c[j] + d[j];
        });
        // Resumed: block L's output with the patched rows; padded rows stay 0 (they only follow real rows).
        let x: Float32Array | undefined;
        if (resume) {
          x = new Float32Array(batch.length * T * C);
          batch.forEach((i, b) => {
            x!.set(post![i], b * T * C);
            const o = (b * T + seqs[i].lookup) * C, m = mid?.[i];
            for (let j = 0; j < C; j++) x![o + j] = m ? m[j] + values[b * C + j] : values[b * C + j];
          });
        }
        const rows: number[] = [];
        const owner: Array<{ i: number; j: number }> = []; // sequence and target index (-1: KL row)
        batch.forEach((i, b) => {
          const s = seqs[i];
          if (s.kind === "rewrite") {
            s.targetPos.forEach((p, j) => (rows.push(b * T + p), owner.push({ i, j })));
          } else rows.push(b * T + s.lookup), owner.push({ i, j: -1 });
        });
        const lossFn = (logits: Float32Array) => {
          for (let k = 0; k < logits.length; k++) {
            if (!Number.isFinite(logits[k])) {
              throw new NonFiniteError(
                `non-finite logit ${logits[k]} at row ${
                  Math.floor(k / V)
                } of the δ optimisation (step ${it})`,
                "logits",
              );
            }
          }
          const dl = new Float32Array(rows.length * V);
          let total = 0;
          owner.forEach(({ i, j }, k) => {
            const s = seqs[i];
            logSoftmaxInto(logits, k * V, V, lp);
            if (j >= 0) {
              const w = 1 / (s.targetIds.length * nRewrite);
              const t = s.targetIds[j];
              nll[s.r] += -lp[t] * w;
              total += -lp[t] * w;
              for (let u = 0; u < V; u++) dl[k * V + u] = w * Math.exp(lp[u]);
              dl[k * V + t] -= w;
            } else {
              if (!klInit[s.r]) klInit[s.r] = Float64Array.from(lp);
              const p0 = klInit[s.r]!;
              let d = 0;
              for (let u = 0; u < V; u++) d += Math.exp(lp[u]) * (lp[u] - p0[u]);
              kl[s.r] += hp.kl_factor * d;
              total += hp.kl_factor * d;
              for (let u = 0; u < V; u++) {
                dl[k * V + u] = hp.kl_factor * Math.exp(lp[u]) * (lp[u] - p0[u] - d);
              }
            }
          });
          return { loss: total, dlogits: dl };
        };
        const { saved } = await model.forwardForBackward(padded, {
          noReadback: true,
          ...(resume ? { resume: { layer: resume.layer + 1, x: x! } } : {
            hooks: {
              patch: [
                ...noisePatch,
                { site, rows: batch.map((i, b) => [b, seqs[i].lookup] as [number, number]), values },
              ],
            },
          }),
        });
        let g: Float32Array;
        try {
          if (p0) {
            // The loss on the GPU: row losses come back with the site gradient (one map per step).
            const info = new Uint32Array(rows.length * 4), wf = new Float32Array(info.buffer);
            owner.forEach(({ i, j }, k) => {
              const s = seqs[i];
              if (j >= 0) {
                info[k * 4] = DELTA_LOSS_NLL;
                info[k * 4 + 1] = s.targetIds[j];
                wf[k * 4 + 2] = 1 / (s.targetIds.length * nRewrite);
              } else {
                info[k * 4] = klSet[s.r] ? DELTA_LOSS_KL : DELTA_LOSS_KL_INIT;
                info[k * 4 + 1] = s.r;
                wf[k * 4 + 2] = hp.kl_factor;
              }
            });
            const ti = createTensor(model.gpu, [rows.length * 4], {
              name: "delta_loss.info",
              dtype: "u32",
              data: info,
            });
            const tl = createTensor(model.gpu, [rows.length], { name: "delta_loss.losses" });
            let rowLoss: Float32Array;
            try {
              const out = await backwardFromGpuLogitGrads(model, saved, rows, async (logits, dlogits) => {
                await deltaLoss(model.gpu, logits, ti, p0, tl, dlogits, rows.length, V);
                return [tl];
              }, { siteGrads: [site] });
              g = out.siteGrads.get(site)!;
              rowLoss = out.reads[0];
            } finally {
              ti.destroy();
              tl.destroy();
            }
            owner.forEach(({ i, j }, k) => {
              const s = seqs[i], v = rowLoss[k];
              if (!Number.isFinite(v)) {
                throw new NonFiniteError(
                  `non-finite loss ${v} at row ${k} of the δ optimisation (step ${it})`,
                  "logits",
                );
              }
              if (j >= 0) nll[s.r] += v;
              else kl[s.r] += v;
            });
            for (const i of batch) if (seqs[i].kind === "kl") klSet[seqs[i].r] = true;
          } else {
            g = (await backwardFromLogitGrads(model, saved, rows, lossFn, { siteGrads: [site] })).siteGrads
              .get(site)!;
          }
        } finally {
          saved.destroy();
        }
        batch.forEach((i, b) => {
          const gr = (seqs[i].kind === "kl" ? gradsKl : grads)[seqs[i].r], off = (b * T + seqs[i].lookup) * C;
          for (let j = 0; j < C; j++) gr[j] += g[off + j];
        });
      }
      if (noiser && it === 0) {
        // target_init: the noised site value of the first step (the reference records it under its hook).
        for (let r = 0; r < n; r++) {
          res[r].targetInit = Float64Array.from(clean[first[r]]);
          initNorm[r] = norm(res[r].targetInit);
        }
      }
      let lossSum = 0;
      const last = it === hp.v_num_grad_steps - 1;
      for (const r of [...active]) {
        const d = res[r].delta;
        const dn = norm(d);
        const denom = initNorm[r] * initNorm[r];
        const wd = denom > 0 ? (hp.v_weight_decay * dn) / denom : 0;
        const p = Math.exp(-nll[r]);
        const loss = (prob ? p : nll[r]) + kl[r] + wd;
        Object.assign(res[r], { nll: nll[r], kl: kl[r], wd, loss, steps: it + 1 });
        if (it === 0) res[r].nllInit = nll[r];
        lossSum += loss;
        // Erasure never stops early; its ROME variant also steps after the last evaluation.
        if ((!prob && loss < hp.early_stop_loss) || (last && !(prob && opts.objective?.stepLast))) {
          active.delete(r);
          continue;
        }
        const g = grads[r], gk = gradsKl[r], scale = prob ? -p : 1;
        for (let j = 0; j < C; j++) g[j] = scale * g[j] + gk[j];
        if (dn > 0 && denom > 0) {
          for (let j = 0; j < C; j++) g[j] += (hp.v_weight_decay * d[j]) / (dn * denom);
        }
        const t = it + 1;
        for (let j = 0; j < C; j++) {
          m[r][j] = b1 * m[r][j] + (1 - b1) * g[j];
          v2[r][j] = b2 * v2[r][j] + (1 - b2) * g[j] * g[j];
          const mh = m[r][j] / (1 - b1 ** t), vh = v2[r][j] / (1 - b2 ** t);
          d[j] -= (hp.v_lr * mh) / (Math.sqrt(vh) + eps);
        }
        const maxNorm = hp.clamp_norm_factor * initNorm[r];
        const nn = norm(d);
        if (nn > maxNorm && nn > 0) { for (let j = 0; j < C; j++) d[j] *= maxNorm / nn; }
      }
      opts.onStep?.(it, active.size, lossSum / n);
    }
  } finally {
    p0?.destroy();
  }
  return res;
}

/** Host bytes the clean residuals of a resumed optimisation may take (else every step runs the whole model). */
const RESUME_HOST_BYTES = 256 * 2 ** 20;

/** How the upper blocks resume for `site`: its block, and whether the site is the MLP branch. */
interface ResumePlan {
  layer: number;
  branch: boolean;
}

/** The resume plan of `site` (`resid_post.L` or `mlp_out.L`, the clean residuals within the host budget). */
function resumePlan(model: TransformerModel, site: string, seqs: Seq[]): ResumePlan | undefined {
  const m = /^(resid_post|mlp_out)\.(\d+)$/.exec(site);
  if (!m) return undefined;
  const bytes = seqs.reduce((a, s) => a + s.ids.length, 0) * model.config.nEmbd * 4;
  if (bytes > RESUME_HOST_BYTES) return undefined;
  return { layer: Number(m[2]), branch: m[1] === "mlp_out" };
}

/**
 * One clean forward (no δ) of every sequence: the site's value at its lookup row, and with a resume plan
 * the residual leaving block L at every real row (`post`, [len·C]) and, for the MLP branch, the residual
 * before the MLP's add at the lookup row (`mid` = resid_pre + attn_out in float32, as the forward adds).
 */
async function cleanValues(
  model: TransformerModel,
  seqs: Seq[],
  site: string,
  plan: ResumePlan | undefined,
  maxTokens = 4096,
): Promise<{ clean: Float32Array[]; post?: Float32Array[]; mid?: Float32Array[] }> {
  const C = model.config.nEmbd;
  const L = plan?.layer;
  const capture = [site];
  if (plan) capture.push(`resid_post.${L}`);
  if (plan?.branch) capture.push(`resid_pre.${L}`, `attn_out.${L}`);
  const clean: Float32Array[] = [], post: Float32Array[] = [], mid: Float32Array[] = [];
  const T0 = Math.max(...seqs.map((s) => s.ids.length));
  for (const batch of chunkByTokens(seqs, maxTokens, T0)) {
    const padded = padBatch(batch.map((s) => s.ids));
    const T = padded[0].length;
    const { captured } = await model.forward(padded, { hooks: { capture: [...new Set(capture)] } });
    const at = (name: string, b: number, p: number, n = 1) => {
      const v = captured.get(name)!, w = v.shape[2];
      return v.data.slice((b * T + p) * w, (b * T + p + n) * w);
    };
    batch.forEach((s, b) => {
      clean.push(at(site, b, s.lookup));
      if (!plan) return;
      post.push(at(`resid_post.${L}`, b, 0, s.ids.length));
      if (plan.branch) {
        const pre = at(`resid_pre.${L}`, b, s.lookup), attn = at(`attn_out.${L}`, b, s.lookup);
        const m = new Float32Array(C);
        for (let j = 0; j < C; j++) m[j] = pre[j] + attn[j];
        mid.push(m);
      }
    });
  }
  return { clean, ...(plan ? { post } : {}), ...(plan?.branch ? { mid } : {}) };
}

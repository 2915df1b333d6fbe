/**
 * MEMIT (Meng et al. 2023): many edits at once, spread over consecutive layers (methods.md 2(c)). The
 * editor computes the per-layer updates and leaves the model as it found it (`execute_memit`); while it
 * computes, each layer's update is put in place temporarily so later layers see it, as the reference does.
 *   1. z_i = h_L(init) + δ_i at the last edited layer L ({@link optimizeDeltas} at `resid_post.L`),
 *      all requests optimised together.
 *   2. For each edited layer l_i in ascending order: K = keys at l_i (c_proj input at the subject's last
 *      token, averaged within each template group, then across groups) on the model as updated so far;
 *      R = Z − H_L (current h_L at the un-prefixed prompts); resid = R / (|layers| − i);
 *      ΔW = (λC + KKᵀ)⁻¹ K residᵀ in the Conv1D [nInner, nEmbd] layout (the reference's
 *      resid · [(λC + KKᵀ)⁻¹K]ᵀ transposed): the solve in float64, the product on the GPU (matmul).
 * Context templates: "{}" and 5 texts of 10 tokens seeded by "The", "Therefore", "Because", "I", "You"
 * (src/edit/templates.ts).
 */
import { mlpOutProjection, toLayout } from "./target.ts";
import { InputError } from "../errors.ts";
import { matmul } from "../gpu/matmul.ts";
import { createTensor, readTensor } from "../gpu/tensor.ts";
import type { HostTensor } from "../model/config.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import type { TransformerModel } from "../model/transformer.ts";
import { type EditDeltas, type EditOptions, ScratchWeights } from "./apply.ts";
import { readAtPositions, requestKeys, tokenizePrompt } from "./compute.ts";
import { optimizeDeltas } from "./compute_v.ts";
import {
  checkLayers,
  checkMemitTemplates,
  memitDefaults,
  type MemitHparams,
  mergeHparams,
} from "./hparams.ts";
import { choleskyRegularized, choleskySolve, norm } from "./linalg.ts";
import { type EditRequest, normalizeRequest } from "./requests.ts";
import { layerStats } from "./stats.ts";
import { memitContextTemplates } from "./templates.ts";

/** Resolves MEMIT's hyper-parameters for `model`. */
export function memitHparams(model: TransformerModel, opts: EditOptions): MemitHparams {
  let hp = memitDefaults(model.config);
  if (opts.hparams) hp = mergeHparams(hp, opts.hparams, model.config);
  checkMemitTemplates(hp);
  if (opts.layers) hp = { ...hp, layers: [...opts.layers] };
  checkLayers(hp.layers, model.config);
  if (!hp.mom2_adjustment) {
    throw new InputError("MEMIT needs mom2_adjustment (the key covariance)", { field: "mom2_adjustment" });
  }
  if (hp.key !== "original") {
    throw new InputError(`hparam 'key' applies to ROME only; MEMIT has no "${hp.key}" variant`, {
      field: "key",
    });
  }
  return hp;
}

/** Computes MEMIT's updates for all `requests` at once; `model` is left unchanged. */
export async function memitEditor(
  model: TransformerModel,
  tokenizer: Tokenizer,
  requests: EditRequest[],
  opts: EditOptions,
): Promise<EditDeltas> {
  const hp = memitHparams(model, opts);
  const reqs = requests.map((r, i) => normalizeRequest(r, `request ${i}`));
  const { nInner: I, nEmbd: C, nPositions } = model.config;
  const n = reqs.length;
  const zLayer = hp.layers[hp.layers.length - 1];
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    opts.onWarning?.(m);
  };
  const tensors = new Map<string, HostTensor>();
  const deltaMap = new Map<string, HostTensor>();
  const scratch = new ScratchWeights(model);
  try {
    const stats = await layerStats(model, tokenizer, hp.layers, {
      corpus: opts.statsCorpus ?? (hp.mom2_dataset || undefined),
      files: opts.stats,
      maxSamples: hp.mom2_n_samples,
      cacheDir: opts.statsDir,
      onProgress: (d, t) => opts.onProgress?.("statistics", d, t),
    });
    if (zLayer === model.config.nLayer - 1 && hp.fact_token === "subject_last") {
      warn(
        `layer ${zLayer} is the last layer: a change at the subject's token cannot reach later prompt positions (no attention after it), so the edit has no effect unless the subject ends the prompt`,
      );
    }
    const groups = await memitContextTemplates(model, tokenizer, hp.context_template_length_params, hp.seed);
    const deltas = await optimizeDeltas(model, tokenizer, reqs, groups.flat(), `resid_post.${zLayer}`, hp, {
      onStep: (s) => opts.onProgress?.("optimise", s + 1, hp.v_num_grad_steps),
    });
    const Z = deltas.map((d) => d.targetInit.map((x, j) => x + d.delta[j]));
    tensors.set("z", { shape: [n, C], data: Float32Array.from(Z.flatMap((z) => [...z])) });
    const bare = reqs.map((req) => {
      const p = tokenizePrompt(
        tokenizer,
        nPositions,
        "{}",
        req.prompt,
        req.subject,
        undefined,
        hp.prefix_eos,
        hp.fact_token,
      );
      return { ids: p.ids, pos: p.lookup };
    });
    const layerInfo: Record<string, unknown>[] = [];
    for (let i = 0; i < hp.layers.length; i++) {
      const layer = hp.layers[i];
      const proj = mlpOutProjection(model, layer);
      const wName = proj.weight;
      const K = await requestKeys(model, tokenizer, reqs, groups, layer, hp.prefix_eos, hp.fact_token); // n × [I]
      const cur = await readAtPositions(model, bare, `resid_post.${zLayer}`);
      const remaining = hp.layers.length - i;
      const resid = new Float32Array(n * C); // [n, C]
      let residNorm = 0;
      for (let r = 0; r < n; r++) {
        for (let j = 0; j < C; j++) {
          const x = (Z[r][j] - cur[r][j]) / remaining;
          resid[r * C + j] = x;
          residNorm += x * x;
        }
      }
      // A = λC + K Kᵀ  ([I, I]); X = A⁻¹ K  ([I, n]).
      const st = stats.get(layer)!;
      const A = new Float64Array(I * I);
      for (let a = 0; a < I * I; a++) A[a] = hp.mom2_update_weight * st.mom2[a];
      const Kc = new Float64Array(I * n); // column r = key of request r
      for (let r = 0; r < n; r++) for (let a = 0; a < I; a++) Kc[a * n + r] = K[r][a];
      for (let r = 0; r < n; r++) {
        const k = K[r];
        for (let a = 0; a < I; a++) {
          const ka = k[a];
          if (ka === 0) continue;
          for (let b = 0; b < I; b++) A[a * I + b] += ka * k[b];
        }
      }
      const ch = choleskyRegularized(A, I);
      if (ch.lambda > 0) {
        warn(
          `layer ${layer}: λC + KKᵀ is singular or not positive definite; added ${
            ch.lambda.toExponential(3)
          }·I`,
        );
      }
      const X = Float32Array.from(choleskySolve(ch, Kc, n));
      const tx = createTensor(model.gpu, [I, n], { name: "memit.x", data: X });
      const tr = createTensor(model.gpu, [n, C], { name: "memit.resid", data: resid });
      const td = createTensor(model.gpu, [I, C], { name: "memit.delta" });
      let delta: Float32Array;
      try {
        await matmul(model.gpu, tx, tr, td, { M: I, N: C, K: n });
        delta = await readTensor(td);
      } finally {
        tx.destroy();
        tr.destroy();
        td.destroy();
      }
      const laid = toLayout(proj, delta);
      deltaMap.set(wName, laid);
      // W = W_orig + ΔW, in place for the later layers' keys and residuals.
      scratch.setDelta(wName, laid.data);
      tensors.set(`layer.${layer}.x`, { shape: [I, n], data: X });
      tensors.set(`layer.${layer}.resid`, { shape: [n, C], data: resid });
      layerInfo.push({
        layer,
        weight: wName,
        resid_norm: Math.sqrt(residNorm),
        statistics: { file: st.file, tokens: st.count, cached: st.cached },
        regularization_lambda: ch.lambda,
      });
      opts.onProgress?.("layers", i + 1, hp.layers.length);
    }
    return {
      method: "memit",
      deltas: deltaMap,
      tensors,
      hparams: { ...hp },
      info: {
        layers: hp.layers,
        z_layer: zLayer,
        context_templates: groups,
        layer_updates: layerInfo,
        requests: deltas.map((d, r) => ({
          subject: reqs[r].subject,
          target_new: reqs[r].target_new,
          nll_init: d.nllInit,
          nll: d.nll,
          kl: d.kl,
          weight_decay: d.wd,
          loss: d.loss,
          steps: d.steps,
          delta_norm: norm(d.delta),
        })),
      },
      warnings,
    };
  } finally {
    scratch.restore();
  }
}

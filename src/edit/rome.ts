/**
 * ROME (Meng et al. 2022): a rank-one update of `h.L.mlp.c_proj.weight` that maps the subject's key to
 * a new value. The editor computes the update and leaves the model as it found it (`execute_rome`);
 * src/edit/apply.ts applies it. Requests are computed one after another, each on the model with the
 * earlier requests' updates in place (`apply_rome_to_model` edits sequentially), which the editor sets up
 * temporarily. Per request (methods.md 2(b)):
 *   k*  = mean over the context templates of the c_proj input at the fact token (`fact_token`: the
 *         subject's last token by default, or the prompt's last token);
 *   u   = (λC)⁻¹ k* / ‖(λC)⁻¹ k* ‖ with C = E[kkᵀ] and λ = mom2_update_weight (λ cancels after
 *         normalisation; with mom2_adjustment false, u = k* / ‖k*‖);
 *   v*  = target_init + δ from {@link optimizeDeltas} at hook site `mlp_out.L`;
 *   right = (v* − W k₀ − b) / (k₀ · u), where k₀ is the key of the un-prefixed prompt and W k₀ + b its
 *         MLP output (= target_init) — hparam `key: "original"`, the reference;
 *         or, with `key: "consistent"` (r-ROME), right = (v* − W k* − b) / (k* · u), so that the edited
 *         layer maps the template-averaged key itself to v*: W' k* + b = v*;
 *   ΔW  = u rightᵀ — already the Conv1D [in, out] = [nInner, nEmbd] layout — summed over the requests
 *         in float64 and rounded once to float32.
 */
import { mlpOutProjection, projectionOut, toLayout } from "./target.ts";
import { InputError } from "../errors.ts";
import type { HostTensor } from "../model/config.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import type { TransformerModel } from "../model/transformer.ts";
import { type EditDeltas, type EditOptions, ScratchWeights } from "./apply.ts";
import { noisePatches, readAtPositions, requestKeys, tokenizePrompt } from "./compute.ts";
import { SubjectNoiser } from "../locate/subject_noiser.ts";
import { optimizeDeltas } from "./compute_v.ts";
import { checkLayers, mergeHparams, romeDefaults, type RomeHparams } from "./hparams.ts";
import { type Cholesky, choleskyRegularized, dot, norm } from "./linalg.ts";
import { factorSpd, type SolveBackend, type SpdFactor } from "./solve_backend.ts";
import type { Gpu } from "../gpu/device.ts";
import { type EditRequest, normalizeRequest } from "./requests.ts";
import { type LayerStats, layerStats, statsLogInfo, statsSumOptions } from "./stats.ts";
import { romeContextTemplates } from "./templates.ts";
import { nasInfo, nasRescale, type NasResult } from "./nas.ts";

/** Resolves ROME's hyper-parameters for `model` from defaults, overrides and `layers`. */
export function romeHparams(model: TransformerModel, opts: EditOptions): RomeHparams {
  let hp = romeDefaults(model.config);
  if (opts.hparams) hp = mergeHparams(hp, opts.hparams, model.config);
  if (opts.layers) hp = { ...hp, layers: [...opts.layers] };
  checkLayers(hp.layers, model.config);
  if (hp.layers.length !== 1) {
    throw new InputError(`ROME edits one layer, got [${hp.layers}]`, { field: "--layers" });
  }
  return hp;
}

/** Factorises λC (regularised when singular, with a warning). */
export function factorCovariance(stats: LayerStats, lambda: number, warn: (m: string) => void): Cholesky {
  const n = Math.round(Math.sqrt(stats.mom2.length));
  const a = new Float64Array(stats.mom2.length);
  for (let i = 0; i < a.length; i++) a[i] = lambda * stats.mom2[i];
  const ch = choleskyRegularized(a, n);
  if (ch.lambda > 0) {
    warn(
      `layer ${stats.layer}: key second moment is singular or not positive definite (${stats.count} tokens); ` +
        `added ${ch.lambda.toExponential(3)}·I to regularise it`,
    );
  }
  return ch;
}

/**
 * Factorises λC on the backend `hp.solve_backend` picks (src/edit/solve_backend.ts); the host path is
 * {@link factorCovariance} exactly (same factor, same warning).
 */
export function factorCovarianceOn(
  stats: LayerStats,
  lambda: number,
  warn: (m: string) => void,
  backend: SolveBackend,
  gpu: Gpu,
  columns = 1,
): Promise<SpdFactor> {
  const n = Math.round(Math.sqrt(stats.mom2.length));
  const a = new Float64Array(stats.mom2.length);
  for (let i = 0; i < a.length; i++) a[i] = lambda * stats.mom2[i];
  return factorSpd(a, n, {
    backend,
    gpu,
    columns,
    label: `layer ${stats.layer}: λC`,
    warn,
    regularized: (l) =>
      `layer ${stats.layer}: key second moment is singular or not positive definite (${stats.count} tokens); ` +
      `added ${l.toExponential(3)}·I to regularise it`,
  });
}

/** Computes ROME's update for `requests` (sequentially, as the reference applies them); `model` is left unchanged. */
export async function romeEditor(
  model: TransformerModel,
  tokenizer: Tokenizer,
  requests: EditRequest[],
  opts: EditOptions,
): Promise<EditDeltas> {
  const hp = romeHparams(model, opts);
  const reqs = requests.map((r, i) => normalizeRequest(r, `request ${i}`));
  const layer = hp.layers[0];
  const proj = mlpOutProjection(model, layer);
  const wName = proj.weight, bName = proj.bias;
  const I = model.config.nInner, C = model.config.nEmbd;
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    opts.onWarning?.(m);
  };
  const tensors = new Map<string, HostTensor>();
  const perRequest: Record<string, unknown>[] = [];
  const scratch = new ScratchWeights(model);
  let ch: SpdFactor | undefined;
  try {
    let statsInfo: Record<string, unknown> | undefined;
    if (hp.mom2_adjustment) {
      const sum = statsSumOptions(hp, model.config.nInner);
      const st = (await layerStats(model, tokenizer, [layer], {
        corpus: opts.statsCorpus ?? (hp.mom2_dataset || undefined),
        files: opts.stats,
        maxSamples: hp.mom2_n_samples,
        cacheDir: opts.statsDir,
        ...sum,
        onProgress: (d, t) => opts.onProgress?.("statistics", d, t),
      })).get(layer)!;
      ch = await factorCovarianceOn(
        st,
        hp.mom2_update_weight,
        warn,
        hp.solve_backend ?? "auto",
        model.gpu,
        reqs.length,
      );
      statsInfo = { ...statsLogInfo(st, sum), regularization_lambda: ch.lambda };
    }
    if (layer === model.config.nLayer - 1 && hp.fact_token === "subject_last") {
      warn(
        `layer ${layer} is the last layer: a change at the subject's token cannot reach later prompt positions (no attention after it), so the edit has no effect unless the subject ends the prompt`,
      );
    }
    // Fact Forcing: one noise stream through every forward of the edit (keys, δ, the bare prompt's key).
    const noiser = opts.objective?.noise ? new SubjectNoiser(opts.objective.noise) : undefined;
    const groups = await romeContextTemplates(model, tokenizer, hp.context_template_length_params, hp.seed);
    const templates = groups.flat();
    const total = new Float64Array(I * C); // Σ over requests of u rightᵀ
    // NAS (off unless `nas: true`): the anchor given, or the first request's ‖v*‖ on the model as given.
    let nasNorm = hp.nas ? hp.nas_norm : undefined;
    const nasDone: NasResult[] = [];
    for (let r = 0; r < reqs.length; r++) {
      const req = reqs[r];
      // Left vector: template-averaged key, then C⁻¹ and normalisation.
      const [kStar] = await requestKeys(
        model,
        tokenizer,
        [req],
        [templates],
        layer,
        hp.prefix_eos,
        hp.fact_token,
        noiser,
      );
      let u = kStar;
      if (ch) u = await ch.solve(kStar, 1);
      const un = norm(u);
      if (!(un > 0)) {
        throw new InputError(`request ${r}: the subject's key is zero at layer ${layer}`, {
          field: "subject",
        });
      }
      u = u.map((x) => x / un);
      // Right vector.
      const [d0] = await optimizeDeltas(model, tokenizer, [req], templates, `mlp_out.${layer}`, hp, {
        objective: { loss: opts.objective?.loss, stepLast: true, noiser },
        onStep: (s) =>
          opts.onProgress?.("optimise", r * hp.v_num_grad_steps + s + 1, reqs.length * hp.v_num_grad_steps),
      });
      // v₀ = target_init (the MLP output at the fact token); NAS rescales v* = v₀ + δ.
      let d = d0;
      if (hp.nas) {
        nasNorm ??= Math.hypot(...d0.targetInit.map((x, j) => x + d0.delta[j]));
        const nr = nasRescale(d0.targetInit, d0.delta, nasNorm, hp.nas_skip_factor ?? 2);
        nasDone.push(nr);
        d = { ...d0, delta: nr.delta };
      }
      let residual: Float64Array, denom: number;
      if (hp.key === "consistent") {
        // r-ROME: the template-averaged key in the denominator and in the current output W k* + b.
        const cur = projectionOut(
          proj,
          model.weights.get(wName)!.data,
          bName ? model.weights.get(bName)!.data : undefined,
          kStar,
        );
        residual = Float64Array.from(d.targetInit, (x, j) => x + d.delta[j] - cur[j]);
        denom = dot(kStar, u);
      } else {
        // ROME: the bare prompt's key k₀, whose output W k₀ + b is target_init, so v* − W k₀ − b = δ.
        const bare = tokenizePrompt(
          tokenizer,
          model.config.nPositions,
          "{}",
          req.prompt,
          req.subject,
          undefined,
          hp.prefix_eos,
          hp.fact_token,
        );
        const [k0] = await readAtPositions(
          model,
          [{ ids: bare.ids, pos: bare.lookup, subjectRange: bare.subjectRange }],
          `mlp_post.${layer}`,
          noiser && { patch: noisePatches(model, noiser) },
        );
        // Under noise k₀ comes from another draw than target_init: the reference's v* − (W k₀ + b).
        residual = noiser
          ? (() => {
            const cur = projectionOut(
              proj,
              model.weights.get(wName)!.data,
              bName ? model.weights.get(bName)!.data : undefined,
              k0,
            );
            return Float64Array.from(d.targetInit, (x, j) => x + d.delta[j] - cur[j]);
          })()
          : d.delta;
        denom = dot(k0, u);
      }
      if (!(Math.abs(denom) > 1e-12)) {
        throw new InputError(`request ${r}: key is orthogonal to the update direction (k·u = ${denom})`, {
          field: "subject",
        });
      }
      const right = Float32Array.from(residual, (x) => x / denom);
      const u32 = Float32Array.from(u);
      for (let i = 0; i < I; i++) {
        const ui = u32[i];
        for (let j = 0; j < C; j++) total[i * C + j] += ui * right[j];
      }
      // Later requests are computed on the model with this one's update in place.
      if (r + 1 < reqs.length) scratch.setDelta(wName, toLayout(proj, Float32Array.from(total)).data);
      tensors.set(`request.${r}.u`, { shape: [I], data: u32 });
      tensors.set(`request.${r}.right`, { shape: [C], data: right });
      tensors.set(`request.${r}.v_star`, {
        shape: [C],
        data: Float32Array.from(d.targetInit, (x, j) => x + d.delta[j]),
      });
      tensors.set(`request.${r}.k_star`, { shape: [I], data: Float32Array.from(kStar) });
      perRequest.push({
        subject: req.subject,
        target_new: req.target_new,
        nll_init: d.nllInit,
        nll: d.nll,
        kl: d.kl,
        weight_decay: d.wd,
        loss: d.loss,
        steps: d.steps,
        delta_norm: norm(d.delta),
        target_init_norm: norm(d.targetInit),
        denominator: denom,
      });
      opts.onProgress?.("requests", r + 1, reqs.length);
    }
    return {
      method: "rome",
      deltas: new Map([[wName, toLayout(proj, Float32Array.from(total))]]),
      tensors,
      hparams: { ...hp },
      info: {
        layer,
        weight: wName,
        key: hp.key,
        context_templates: templates,
        // The solve's backend details only when the GPU was asked for (host-path output unchanged).
        statistics: statsInfo && { ...statsInfo, ...ch?.info() },
        ...(nasNorm !== undefined ? { nas: nasInfo({ anchor: nasNorm, results: nasDone }) } : {}),
        requests: perRequest,
      },
      warnings,
    };
  } finally {
    ch?.destroy();
    scratch.restore();
  }
}

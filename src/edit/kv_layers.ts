/**
 * The layer loop MEMIT, AlphaEdit and EMMET share (EasyEdit `execute_memit`, `execute_AlphaEdit`,
 * `execute_emmet` differ only in the per-layer solve): z_i = h_L + δ_i optimised at the last edited layer
 * L, then for each edited layer l_i in ascending order, on the model as updated so far, the keys K
 * (template-group averages, {@link requestKeys}), the residual resid = (Z − H_L) / (|layers| − i) and
 * ΔW = X · resid with X [I, n] from the method's solve; the product runs on the GPU, X is float64 from
 * the host. The model is left as it was found (updates are put in place only while computing).
 */
import { mlpOutProjection, toLayout } from "./target.ts";
import { matmul } from "../gpu/matmul.ts";
import { createTensor, readTensor } from "../gpu/tensor.ts";
import type { HostTensor } from "../model/config.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import type { TransformerModel } from "../model/transformer.ts";
import { type EditDeltas, type EditOptions, ScratchWeights } from "./apply.ts";
import { noisePatches, readAtPositions, requestKeys, tokenizePrompt } from "./compute.ts";
import { SubjectNoiser } from "../locate/subject_noiser.ts";
import { optimizeDeltas } from "./compute_v.ts";
import type { CommonHparams } from "./hparams.ts";
import { norm } from "./linalg.ts";
import type { EditRequest } from "./requests.ts";
import { type LayerStats, layerStats, statsLogInfo, statsSumOptions } from "./stats.ts";
import { memitContextTemplates } from "./templates.ts";
import { nasInfo, nasShifts } from "./nas.ts";

/** What a method's solve sees at one edited layer. */
export interface LayerSolveInput {
  /** Position in the hparams' layer list. */
  index: number;
  layer: number;
  /** Keys per request, [n][I]. */
  K: Float64Array[];
  /** The layer's key statistics, when the method asked for them. */
  stats?: LayerStats;
  /** Warns the user (collected in the result's warnings). */
  warn: (m: string) => void;
}

/** A method's solve at one layer: ΔW_kv = X · resid, X [I, n] row-major. */
export interface LayerSolve {
  X: Float64Array;
  /** Method-specific details for the result's `layer_updates`. */
  info: Record<string, unknown>;
}

/** How a method plugs into {@link layeredKvEdit}. */
export interface LayeredMethod {
  method: string;
  /** Layers whose statistics C the solve needs (empty: none are read). */
  statsLayers: number[];
  solve(inp: LayerSolveInput): LayerSolve | Promise<LayerSolve>;
  /**
   * Runs after the last layer's update is in place, before the model is restored; `keysAt(layer)` gives
   * the requests' keys on the fully updated model (AlphaEdit accumulates them for later edits).
   */
  afterAll?(keysAt: (layer: number) => Promise<Float64Array[]>): Promise<void>;
}

/** Computes the per-layer deltas of `m` for all `reqs` at once; `model` is left unchanged. */
export async function layeredKvEdit(
  model: TransformerModel,
  tokenizer: Tokenizer,
  reqs: EditRequest[],
  hp: CommonHparams,
  opts: EditOptions,
  m: LayeredMethod,
): Promise<EditDeltas> {
  const { nInner: I, nEmbd: C, nPositions } = model.config;
  const n = reqs.length;
  const zLayer = hp.layers[hp.layers.length - 1];
  const warnings: string[] = [];
  const warn = (s: string) => {
    warnings.push(s);
    opts.onWarning?.(s);
  };
  const tensors = new Map<string, HostTensor>();
  const deltaMap = new Map<string, HostTensor>();
  const scratch = new ScratchWeights(model);
  try {
    const sum = statsSumOptions(hp, model.config.nInner);
    const stats = m.statsLayers.length === 0 ? new Map<number, LayerStats>() : await layerStats(
      model,
      tokenizer,
      m.statsLayers,
      {
        corpus: opts.statsCorpus ?? (hp.mom2_dataset || undefined),
        files: opts.stats,
        maxSamples: hp.mom2_n_samples,
        cacheDir: opts.statsDir,
        ...sum,
        onProgress: (d, t) => opts.onProgress?.("statistics", d, t),
      },
    );
    if (zLayer === model.config.nLayer - 1 && hp.fact_token === "subject_last") {
      warn(
        `layer ${zLayer} is the last layer: a change at the subject's token cannot reach later prompt positions (no attention after it), so the edit has no effect unless the subject ends the prompt`,
      );
    }
    const groups = await memitContextTemplates(model, tokenizer, hp.context_template_length_params, hp.seed);
    // Fact Forcing: one noise stream through the δ optimisation, the keys and the current h_L (not NAS).
    const noiser = opts.objective?.noise ? new SubjectNoiser(opts.objective.noise) : undefined;
    const deltas = await optimizeDeltas(model, tokenizer, reqs, groups.flat(), `resid_post.${zLayer}`, hp, {
      objective: { loss: opts.objective?.loss, noiser },
      onStep: (s) => opts.onProgress?.("optimise", s + 1, hp.v_num_grad_steps),
    });
    // NAS (off unless `nas: true`): v* = v₀ + δ rescaled to the anchor norm before z is formed.
    const nas = hp.nas
      ? await nasShifts(model, tokenizer, reqs, hp, zLayer, deltas.map((d) => d.delta))
      : undefined;
    const shift = (r: number) => nas ? nas.results[r].delta : deltas[r].delta;
    const Z = deltas.map((d, r) => d.targetInit.map((x, j) => x + shift(r)[j]));
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
      return { ids: p.ids, pos: p.lookup, subjectRange: p.subjectRange };
    });
    const layerInfo: Record<string, unknown>[] = [];
    for (let i = 0; i < hp.layers.length; i++) {
      const layer = hp.layers[i];
      const proj = mlpOutProjection(model, layer);
      const K = await requestKeys(
        model,
        tokenizer,
        reqs,
        groups,
        layer,
        hp.prefix_eos,
        hp.fact_token,
        noiser,
      );
      const cur = await readAtPositions(
        model,
        bare,
        `resid_post.${zLayer}`,
        noiser && { patch: noisePatches(model, noiser) },
      );
      const remaining = hp.layers.length - i;
      const resid = new Float32Array(n * C);
      let residNorm = 0;
      for (let r = 0; r < n; r++) {
        for (let j = 0; j < C; j++) {
          const x = (Z[r][j] - cur[r][j]) / remaining;
          resid[r * C + j] = x;
          residNorm += x * x;
        }
      }
      const st = stats.get(layer);
      const sol = await m.solve({ index: i, layer, K, stats: st, warn });
      const X = Float32Array.from(sol.X);
      const tx = createTensor(model.gpu, [I, n], { name: `${m.method}.x`, data: X });
      const tr = createTensor(model.gpu, [n, C], { name: `${m.method}.resid`, data: resid });
      const td = createTensor(model.gpu, [I, C], { name: `${m.method}.delta` });
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
      deltaMap.set(proj.weight, laid);
      scratch.setDelta(proj.weight, laid.data); // later layers see this layer's update
      tensors.set(`layer.${layer}.x`, { shape: [I, n], data: X });
      tensors.set(`layer.${layer}.resid`, { shape: [n, C], data: resid });
      layerInfo.push({
        layer,
        weight: proj.weight,
        resid_norm: Math.sqrt(residNorm),
        ...(st ? { statistics: statsLogInfo(st, sum) } : {}),
        ...sol.info,
      });
      opts.onProgress?.("layers", i + 1, hp.layers.length);
    }
    await m.afterAll?.((layer) =>
      requestKeys(model, tokenizer, reqs, groups, layer, hp.prefix_eos, hp.fact_token)
    );
    return {
      method: m.method,
      deltas: deltaMap,
      tensors,
      hparams: { ...hp },
      info: {
        layers: hp.layers,
        z_layer: zLayer,
        ...(nas ? { nas: nasInfo(nas) } : {}),
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

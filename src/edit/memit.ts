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
 *      resid · [(λC + KKᵀ)⁻¹K]ᵀ transposed): the solve in float64 on the host (or, with `solve_backend`,
 *      float32 on the GPU refined to float64 accuracy: src/edit/solve_backend.ts), the product on the GPU.
 * Context templates: "{}" and 5 texts of 10 tokens seeded by "The", "Therefore", "Because", "I", "You"
 * (src/edit/templates.ts).
 */
import { InputError } from "../errors.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import type { TransformerModel } from "../model/transformer.ts";
import type { EditDeltas, EditOptions } from "./apply.ts";
import { layeredKvEdit } from "./kv_layers.ts";
import {
  checkLayers,
  checkMemitTemplates,
  memitDefaults,
  type MemitHparams,
  mergeHparams,
} from "./hparams.ts";
import { factorSpd } from "./solve_backend.ts";
import { type EditRequest, normalizeRequest } from "./requests.ts";

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
  const I = model.config.nInner, n = reqs.length;
  return await layeredKvEdit(model, tokenizer, reqs, hp, opts, {
    method: "memit",
    statsLayers: hp.layers,
    // A = λC + K Kᵀ ([I, I]); X = A⁻¹ K ([I, n]).
    async solve({ layer, K, stats, warn }) {
      const A = new Float64Array(I * I);
      for (let a = 0; a < I * I; a++) A[a] = hp.mom2_update_weight * stats!.mom2[a];
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
      // Host path: choleskyRegularized + choleskySolve (src/edit/solve_backend.ts), as before the option.
      const ch = await factorSpd(A, I, {
        backend: hp.solve_backend ?? "auto",
        gpu: model.gpu,
        label: `layer ${layer}: λC + KKᵀ`,
        columns: n,
        warn,
        regularized: (l) =>
          `layer ${layer}: λC + KKᵀ is singular or not positive definite; added ${l.toExponential(3)}·I`,
      });
      try {
        const X = await ch.solve(Kc, n);
        return { X, info: { regularization_lambda: ch.lambda, ...ch.info() } };
      } finally {
        ch.destroy();
      }
    },
  });
}

/**
 * belief-localization's FT (`baselines/ft/ft_main.py: execute_ft`), the fine-tuning behind FT-1 / FT-5 in
 * Hase et al. 2023, with its objectives:
 *
 * - the loss of a step is `nll = −Σ_rows Σ_j log p(target_j | prompt, target_<j)` (teacher-forced, summed
 *   over the target's tokens and over the batch's rows), or for Fact Erasure `p = exp(−nll)`;
 * - for Fact Forcing the prompt is repeated `noise.samples` times and each row's subject embeddings get
 *   fresh Gaussian noise at every step (the reference's noising hook draws from one
 *   `RandomState(1)` stream, so step s row i is draw s·rows + i of that stream);
 * - a step updates (Adam, weight decay 0) only when the loss is at least 1e-2; after each step every
 *   trained parameter is clamped into [orig − ε, orig + ε]; unless erasing, training stops once the loss
 *   has stayed below 1e-2 for 5 steps in a row.
 *
 * The trained weights are the MLP output projection (weight and bias) of each layer, and for layer −1 the
 * token embedding matrix, of which only the rows of the subject's tokens train (`ft_main.py` with
 * `FT_subj_embeds`: the other rows' gradients are zeroed before each step; with a tied head that matrix is
 * the head too, as in the reference's GPT-2 / PyTorch). Training runs on the GPU copy, which is put back
 * from the host copy before returning; the change is returned as deltas.
 */
import { adamw } from "../../gpu/adamw.ts";
import { fill } from "../../gpu/reduce.ts";
import { createTensor, type GpuTensor, readTensor, writeTensor } from "../../gpu/tensor.ts";
import type { Tokenizer } from "../../io/tokenizer.ts";
import { Gradients, logitLossAndGradients } from "../../model/backward.ts";
import type { HostTensor } from "../../model/config.ts";
import type { TransformerModel } from "../../model/transformer.ts";
import type { EditDeltas } from "../../edit/apply.ts";
import { mlpOutModules } from "../../edit/ft.ts";
import { filledPrompt } from "../../edit/requests.ts";
import type { EditRequest } from "../../edit/requests.ts";
import { encodeTarget, encodeText, findTokenRange } from "../../prompt/encode.ts";
import { InputError } from "../../errors.ts";
import { corruptionPatch, type NoiseRng, subjectNoise } from "../../locate/patching.ts";

/** Settings of {@link fineTuneObjective}. */
export interface FtObjectiveOptions {
  /** Layers whose MLP output projection is trained; −1: the subject tokens' embedding rows. */
  layers: number[];
  /** Adam learning rate. */
  lr: number;
  /** Most optimisation steps. */
  numSteps: number;
  /** L∞ radius ε (0: unconstrained). */
  normConstraint: number;
  /** "nll" (every objective but erasure) or "prob" (Fact Erasure). */
  loss: "nll" | "prob";
  /** Fact Forcing: noise the subject's embeddings [a, b) of `samples` rows at every step. */
  noise?: { std: number; samples: number; seed: number; rng: NoiseRng; subjectRange: [number, number] };
}

/** Fine-tunes toward `req.target_new` as the reference's FT does; returns the deltas (the model is unchanged). */
export async function fineTuneObjective(
  model: TransformerModel,
  tokenizer: Tokenizer,
  req: EditRequest,
  o: FtObjectiveOptions,
): Promise<EditDeltas> {
  const cfg = model.config;
  const prompt = encodeText(tokenizer, filledPrompt(req), { nPositions: cfg.nPositions });
  const target = encodeTarget(tokenizer, req.target_new, { fields: { target: "target_new" } });
  const seq = [...prompt, ...target.slice(0, -1)];
  if (seq.length > cfg.nPositions) {
    throw new InputError(
      `prompt and target need ${seq.length} tokens, more than the context ${cfg.nPositions}`,
      {
        field: "prompt",
      },
    );
  }
  const R = o.noise ? o.noise.samples : 1;
  const T = seq.length;
  const batch = Array.from({ length: R }, () => seq);
  const rows: number[] = [], toks: number[] = [];
  for (let b = 0; b < R; b++) {
    target.forEach((tok, j) => {
      rows.push(b * T + prompt.length - 1 + j);
      toks.push(tok);
    });
  }
  const noise = o.noise
    ? subjectNoise(
      o.numSteps * R,
      o.noise.subjectRange[1] - o.noise.subjectRange[0],
      cfg.nEmbd,
      o.noise.std,
      o.noise.seed,
      o.noise.rng,
    )
    : undefined;
  const lossFn = (logits: Float32Array, _rows: number[], V: number) => {
    const d = new Float32Array(logits.length);
    let nll = 0;
    const soft: Float64Array[] = [];
    toks.forEach((tok, i) => {
      const off = i * V;
      let m = -Infinity;
      for (let v = 0; v < V; v++) m = Math.max(m, logits[off + v]);
      let s = 0;
      for (let v = 0; v < V; v++) s += Math.exp(logits[off + v] - m);
      const lse = m + Math.log(s);
      nll -= logits[off + tok] - lse;
      soft.push(Float64Array.from({ length: V }, (_, v) => Math.exp(logits[off + v] - lse)));
    });
    // d nll / d logit = softmax − onehot; d exp(−nll) = −exp(−nll) · d nll.
    const p = Math.exp(-nll);
    const scale = o.loss === "nll" ? 1 : -p;
    toks.forEach((tok, i) => {
      const off = i * V;
      for (let v = 0; v < V; v++) d[off + v] = scale * (soft[i][v] - (v === tok ? 1 : 0));
    });
    return { loss: o.loss === "nll" ? nll : p, dlogits: d };
  };
  const modules = mlpOutModules(cfg);
  const embed = model.spec.embed;
  const names = o.layers.flatMap((l) =>
    l === -1 ? [embed] : modules.map((m) => `${model.spec.blockPrefix}${l}.${m}`)
  );
  // Layer −1: the subject's token ids (ROME's find_token_range in the prompt), the only rows that train.
  const subjectIds = o.layers.includes(-1)
    ? new Set(prompt.slice(...findTokenRange(tokenizer, prompt, req.subject)))
    : undefined;
  const grads = new Gradients(model, names);
  const state = new Map<string, { m: GpuTensor; v: GpuTensor; orig: Float32Array }>();
  const losses: number[] = [];
  let updates = 0, patience = 0;
  try {
    for (const n of names) {
      const w = model.weight(n);
      const m = createTensor(model.gpu, w.shape, { name: `adam_m:${n}` });
      const v = createTensor(model.gpu, w.shape, { name: `adam_v:${n}` });
      await fill(model.gpu, m, 0);
      await fill(model.gpu, v, 0);
      state.set(n, { m, v, orig: model.weights.get(n)!.data.slice() });
    }
    for (let step = 0; step < o.numSteps; step++) {
      const hooks = noise
        ? {
          patch: [
            corruptionPatch(
              model,
              seq,
              o.noise!.subjectRange,
              noise,
              batch.map((_, i) => i),
              0,
              (i) => step * R + i,
            ),
          ],
        }
        : undefined;
      const { loss } = await logitLossAndGradients(model, batch, rows, lossFn, { grads, hooks });
      losses.push(loss);
      if (loss >= 1e-2) {
        updates++;
        if (subjectIds) {
          const g = await readTensor(grads.get(embed)), C = cfg.nEmbd;
          for (let v = 0; v < g.length / C; v++) if (!subjectIds.has(v)) g.fill(0, v * C, (v + 1) * C);
          writeTensor(grads.get(embed), g);
        }
        for (const n of names) {
          const s = state.get(n)!;
          await adamw(model.gpu, model.weight(n), grads.get(n), s.m, s.v, {
            lr: o.lr,
            weightDecay: 0,
            step: updates,
          });
        }
      }
      if (o.normConstraint > 0) {
        for (const n of names) {
          const w = model.weight(n), orig = state.get(n)!.orig;
          const cur = await readTensor(w);
          for (let i = 0; i < cur.length; i++) {
            cur[i] = Math.min(orig[i] + o.normConstraint, Math.max(orig[i] - o.normConstraint, cur[i]));
          }
          writeTensor(w, cur);
        }
      }
      if (o.loss === "nll") {
        patience = loss < 1e-2 ? patience + 1 : 0;
        if (patience >= 5) break;
      }
    }
    const deltas = new Map<string, HostTensor>();
    for (const n of names) {
      const cur = await readTensor(model.weight(n));
      const orig = state.get(n)!.orig;
      deltas.set(n, {
        shape: [...model.weights.get(n)!.shape],
        data: Float32Array.from(cur, (x, i) => x - orig[i]),
      });
    }
    return {
      method: "ft-objective",
      deltas,
      tensors: new Map(),
      hparams: {
        layers: o.layers,
        lr: o.lr,
        num_steps: o.numSteps,
        norm_constraint: o.normConstraint,
        loss: o.loss,
      },
      info: { losses, updates, noised: o.noise !== undefined },
      warnings: [],
    };
  } finally {
    for (const [n, s] of state) {
      model.setWeight(n, s.orig);
      s.m.destroy();
      s.v.destroy();
    }
    grads.destroy();
  }
}

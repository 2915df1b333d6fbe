/**
 * Fine-tuning baselines for knowledge editing, as ROME's `baselines/ft` (methods.md 2(b) "FT baselines")
 * and EasyEdit's FT-L / FT-M:
 *
 * - **FT-L** ("ft-l"): fine-tune the MLP output projection (`h.L.mlp.c_proj` weight and bias, ROME's
 *   `rewrite_module_tmp`) of one layer with Adam on the NLL of `target_new` at the prompt, and after every
 *   step clamp each parameter into the L∞ box `[orig − ε, orig + ε]` (`norm_constraint` ε).
 * - **FT** ("ft"): the same without the constraint (ROME's "unconstrained" baseline).
 *
 * Objective "prompt_last" (ROME / EasyEdit FT-L default): every target token is scored from the
 * distribution after the prompt's last token, loss = mean over requests of
 * `−Σ_j log p(target_j | prompt) / len(target)`. Objective "target_new" (EasyEdit FT-M): the target is
 * teacher-forced after the prompt and the loss is the mean per-request token NLL of the target, prompt
 * positions masked. Training stops early when a step's loss falls below `early_stop_loss` (ROME: 1e-2).
 *
 * Both only compute: training runs on the GPU copy of the weights and that copy is put back from the
 * untouched host copy before returning, so the model is left as it was; the trained change is returned
 * as deltas for src/edit/apply.ts to apply (src/edit/editors.ts lists the editors).
 *
 * Adam is the WGSL AdamW kernel (src/gpu/adamw.ts); with `weight_decay` 0 (the reference default) AdamW
 * and ROME's `torch.optim.Adam` are the same update.
 */
import { ConfigError, InputError } from "../errors.ts";
import { adamw } from "../gpu/adamw.ts";
import { boxBounds, boxClamp } from "../gpu/box_clamp.ts";
import { fill } from "../gpu/reduce.ts";
import { createTensor, type GpuTensor, readTensors } from "../gpu/tensor.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import { backwardFromLogitGrads, Gradients, type LogitLossFn } from "../model/backward.ts";
import { NonFiniteError } from "../model/nonfinite.ts";
import { type HostTensor, type ModelConfig, resolveConfig } from "../model/config.ts";
import { familySpec } from "../model/families/mod.ts";
import type { TransformerModel } from "../model/transformer.ts";
import { addDelta, type EditDeltas, type EditOptions, type Editor } from "./apply.ts";
import {
  checkLayers,
  FT_FILES,
  type FtFile,
  type HparamSchema,
  mergeBySchema,
  publishedModel,
} from "./hparams.ts";
import { FT_ALIASES, FT_HPARAMS, IGNORED_FT } from "../schema/hparams.ts";
import type { z } from "../schema/zod.ts";
import { sameType } from "../schema/same_type.ts";
import { type EditRequest, filledPrompt } from "./requests.ts";
import { encodeTarget, encodeText } from "../prompt/encode.ts";
import { logSumExp } from "../numeric/mod.ts";

/** Hyper-parameters of the fine-tuning editors (ROME `hparams/FT/*.json` names). */
export interface FtHparams {
  /** Layers whose modules are trained. */
  layers: number[];
  /** Weight names relative to the block (`h.{layer}.`, `layers.{layer}.`) that are trained (default: the MLP output projection). */
  modules: string[];
  /** Adam steps (ROME: 25). */
  num_steps: number;
  /** Learning rate (ROME: 5e-4). */
  lr: number;
  /** Decoupled weight decay of the AdamW kernel (ROME: 0). */
  weight_decay: number;
  /** L∞ radius of the change of every trained parameter; 0 = unconstrained. */
  norm_constraint: number;
  /** Stop when a step's loss is below this (ROME: 1e-2). */
  early_stop_loss: number;
  /** "prompt_last" (FT-L, ROME) or "target_new" (FT-M: teacher-forced target, prompt masked). */
  objective: "prompt_last" | "target_new";
  /** Explicit BOS override (see CommonHparams.prefix_eos); absent: the model's BOS policy. */
  prefix_eos?: boolean;
}
// The zod schema validates this type's files; the interface is what the public API shows (deno doc
// cannot document a z.infer alias): the two must stay the same type.
sameType<FtHparams, z.infer<typeof FT_HPARAMS>>(true);

/** ROME's FT-L hparams for gpt2-xl (`hparams/FT/gpt2-xl_constr.json`; methods.md 2(b)). */
export const FTL_GPT2_XL: FtHparams = {
  layers: [0],
  modules: ["mlp.c_proj.weight", "mlp.c_proj.bias"],
  num_steps: 25,
  lr: 5e-4,
  weight_decay: 0,
  norm_constraint: 5e-4,
  early_stop_loss: 1e-2,
  objective: "prompt_last",
};

/** ROME's unconstrained FT hparams for gpt2-xl (layer 1, no norm constraint). */
export const FT_GPT2_XL: FtHparams = { ...FTL_GPT2_XL, layers: [1], norm_constraint: 0 };

/** gpt2-xl's MLP width: the reference ε and lr were chosen for c_proj matrices with this many inputs. */
const XL_INNER = 6400;

/** `base` with the method fields of a published FT file ({@link FT_FILES}). */
function fromFile(base: FtHparams, f: FtFile): FtHparams {
  return {
    ...base,
    layers: [...f.layers],
    num_steps: f.num_steps,
    lr: f.lr,
    weight_decay: f.weight_decay,
    norm_constraint: f.norm_constraint === false ? 0 : f.norm_constraint,
  };
}

/**
 * FT-L defaults for `cfg`. At a published shape (gpt2-medium, gpt2-large, gpt2-xl, GPT-J 6B): ROME's
 * `hparams/FT/<model>_constr.json` exactly ({@link FT_FILES}: layer 0, 25 steps, lr 5e-4 at every size,
 * ε per size). At other shapes, ROME's layer 0 and 25 steps are kept, and the L∞ radius ε, which bounds
 * the change of each MLP output by ε·Σ|k_i| over the nInner inputs, is scaled with the lr by
 * 6400 / nInner from gpt2-xl's, to allow the same output change as on gpt2-xl (and let Adam reach the
 * box's corner in the same steps): for the world model (nInner 384) ε = lr ≈ 8.3e-3.
 */
export function ftlDefaults(cfg: ModelConfig): FtHparams {
  const modules = mlpOutModules(cfg);
  const file = FT_FILES.constr[publishedModel(cfg) ?? ""];
  if (file) return { ...fromFile(FTL_GPT2_XL, file), modules };
  const scale = Math.max(1, XL_INNER / cfg.nInner);
  return {
    ...FTL_GPT2_XL,
    modules,
    lr: FTL_GPT2_XL.lr * scale,
    norm_constraint: FTL_GPT2_XL.norm_constraint * scale,
  };
}

/**
 * Unconstrained FT defaults for `cfg`: ROME's `<model>_unconstr.json` at a published shape (gpt2-xl:
 * layer 1; GPT-J: layer 21); otherwise layer 1 (the last layer of a one-layer model), lr as FT-L's.
 */
export function ftDefaults(cfg: ModelConfig): FtHparams {
  const file = FT_FILES.unconstr[publishedModel(cfg) ?? ""];
  if (file) return { ...fromFile(FT_GPT2_XL, file), modules: mlpOutModules(cfg) };
  return { ...ftlDefaults(cfg), layers: [Math.min(1, cfg.nLayer - 1)], norm_constraint: 0 };
}

/** Reference hparam keys engram accepts and ignores (module names, devices, batch sizes). */
/**
 * Overrides `base` with a JSON object (reference snake_case keys; from `file` for messages), checking
 * types, ranges and layers. Unknown keys are a {@link ConfigError}. `norm_constraint: false` means 0.
 */
export function mergeFtHparams(base: FtHparams, over: unknown, cfg: ModelConfig, file?: string): FtHparams {
  return mergeBySchema(base, over, FT_SCHEMA, IGNORED_FT, cfg, file);
}

const FT_SCHEMA: HparamSchema = { ...FT_HPARAMS.shape, ...FT_ALIASES };

/**
 * The MLP output projection's weight (and bias) relative to its block, the modules FT and FT-L train by
 * default (ROME and EasyEdit's rewrite_module_tmp): `mlp.c_proj.*` on GPT-2, `mlp.down_proj.weight` on
 * Llama, `mlp.dense_4h_to_h.*` on NeoX, `mlp.fc_out.*` on GPT-J.
 */
export function mlpOutModules(cfg: ModelConfig): string[] {
  const c = resolveConfig(cfg), spec = familySpec(c);
  const p = spec.layer(c, 0).down, prefix = `${spec.blockPrefix}0.`;
  return [p.weight, ...(p.bias ? [p.bias] : [])].map((n) => n.slice(prefix.length));
}

/** Names of the weights {@link fineTune} trains for `hp` (checked against the model). */
export function ftWeightNames(model: TransformerModel, hp: FtHparams): string[] {
  const have = new Set(model.weightNames());
  const names: string[] = [];
  for (const l of hp.layers) {
    for (const m of hp.modules) {
      const n = `${model.spec.blockPrefix}${l}.${m}`;
      if (!have.has(n)) throw new ConfigError(`no weight '${n}' in the model`, { field: "modules" });
      names.push(n);
    }
  }
  return names;
}

/** Progress callback: `done` of `total` steps, with a short status text. */
export type FtProgress = (done: number, total: number, text?: string) => void;

/** What {@link fineTune} reports. */
export interface FtInfo {
  /** Loss before each step (the last entry is the loss that triggered the early stop, if any). */
  losses: number[];
  /** Optimizer steps taken. */
  steps: number;
  /** Whether training stopped early because the loss fell below early_stop_loss. */
  earlyStopped: boolean;
  /** max |W − W_orig| over the trained weights, once the deltas are applied. */
  maxAbsDelta: number;
  /** The hyper-parameters used, after defaults and overrides. */
  hparams: FtHparams;
}

interface Row {
  /** Flat row index b * T + t in the padded batch. */
  row: number;
  /** (token, weight) terms of −Σ weight · log p(token) at this row. */
  terms: Array<[number, number]>;
}

/** Right-padded batch (causal model: padding after a position cannot change it) and the loss rows. */
function buildBatch(
  tokenizer: Tokenizer,
  requests: EditRequest[],
  hp: FtHparams,
  cfg: ModelConfig,
): { batch: number[][]; rows: Row[] } {
  const seqs: number[][] = [];
  const specs: Array<{ promptLen: number; target: number[] }> = [];
  requests.forEach((r, i) => {
    const where = { record: `request ${i}`, fields: { target: "target_new" } };
    const p = encodeText(tokenizer, filledPrompt(r), {
      nPositions: cfg.nPositions,
      bos: hp.prefix_eos,
      where,
    });
    const t = encodeTarget(tokenizer, r.target_new, where);
    const seq = hp.objective === "target_new" ? [...p, ...t.slice(0, -1)] : p;
    if (seq.length > cfg.nPositions) {
      throw new InputError(
        `request ${i}: prompt and target need ${seq.length} tokens, more than the context ${cfg.nPositions}`,
        {
          field: "prompt",
        },
      );
    }
    seqs.push(seq);
    specs.push({ promptLen: p.length, target: t });
  });
  const T = Math.max(...seqs.map((s) => s.length));
  const pad = tokenizer.eosId ?? 0;
  const batch = seqs.map((s) => [...s, ...new Array(T - s.length).fill(pad)]);
  const rows: Row[] = [];
  const n = requests.length;
  specs.forEach(({ promptLen, target }, b) => {
    const w = 1 / (n * target.length);
    if (hp.objective === "prompt_last") {
      rows.push({ row: b * T + promptLen - 1, terms: target.map((tok) => [tok, w]) });
    } else {
      target.forEach((tok, j) => rows.push({ row: b * T + promptLen - 1 + j, terms: [[tok, w]] }));
    }
  });
  return { batch, rows };
}

/**
 * One training step's forward and backward (parameter gradients into `grads`) and its loss. The forward
 * reads nothing back (the loss reads its logits rows), so a step costs one completion wait less; a
 * non-finite loss runs the forward again with its readback, which names the first non-finite site
 * ({@link NonFiniteError}) as the forward of the reference path does, before any update is applied.
 */
async function stepLoss(
  model: TransformerModel,
  batch: number[][],
  rows: number[],
  lossFn: LogitLossFn,
  grads: Gradients,
): Promise<number> {
  const { saved } = await model.forwardForBackward(batch, { noReadback: true });
  let loss: number;
  try {
    ({ loss } = await backwardFromLogitGrads(model, saved, rows, lossFn, { grads }));
  } finally {
    saved.destroy();
  }
  if (!Number.isFinite(loss)) {
    await model.forward(batch);
    throw new NonFiniteError(`fine-tuning: the loss is ${loss}`, "logits");
  }
  return loss;
}

/**
 * Fine-tunes on `requests` and returns the trained change of each weight as a delta (float32 `trained −
 * original`) with training statistics. Training updates the GPU copy only; it is put back from the host
 * copy before returning (also on failure), so `model` is left as it was.
 */
export async function fineTune(
  model: TransformerModel,
  tokenizer: Tokenizer,
  requests: EditRequest[],
  hp: FtHparams,
  onProgress?: FtProgress,
): Promise<{ weights: string[]; deltas: Map<string, HostTensor>; info: FtInfo }> {
  if (requests.length === 0) throw new InputError("no edit requests", { field: "requests" });
  const gpu = model.gpu;
  const names = ftWeightNames(model, hp);
  const { batch, rows } = buildBatch(tokenizer, requests, hp, model.config);
  const rowIdx = rows.map((r) => r.row);
  const lossFn = (logits: Float32Array, _rows: number[], V: number) => {
    let loss = 0;
    const d = new Float32Array(logits.length);
    rows.forEach((r, i) => {
      const off = i * V;
      const lse = logSumExp(logits, off, V);
      let wsum = 0;
      for (const [tok, w] of r.terms) {
        loss += -w * (logits[off + tok] - lse);
        wsum += w;
        d[off + tok] -= w;
      }
      for (let v = 0; v < V; v++) d[off + v] += wsum * Math.exp(logits[off + v] - lse);
    });
    return { loss, dlogits: d };
  };
  const grads = new Gradients(model);
  const state = new Map<
    string,
    { m: GpuTensor; v: GpuTensor; orig: Float32Array; lo?: GpuTensor; hi?: GpuTensor }
  >();
  for (const n of names) {
    const w = model.weight(n);
    const m = createTensor(gpu, w.shape, { name: `adam_m:${n}` });
    const v = createTensor(gpu, w.shape, { name: `adam_v:${n}` });
    await fill(gpu, m, 0);
    await fill(gpu, v, 0);
    const orig = model.weights.get(n)!.data.slice();
    const [lo, hi] = hp.norm_constraint > 0 ? boxBounds(gpu, orig, hp.norm_constraint, `box:${n}`) : [];
    state.set(n, { m, v, orig, lo, hi });
  }
  const losses: number[] = [];
  let earlyStopped = false;
  try {
    for (let step = 1; step <= hp.num_steps; step++) {
      const loss = await stepLoss(model, batch, rowIdx, lossFn, grads);
      losses.push(loss);
      for (const n of names) {
        const s = state.get(n)!;
        await adamw(gpu, model.weight(n), grads.get(n), s.m, s.v, {
          lr: hp.lr,
          weightDecay: hp.weight_decay,
          step,
        });
      }
      if (hp.norm_constraint > 0) {
        // The clamp to orig ∓ eps runs on the GPU (bitwise the host clamp: src/reference/box_clamp.ts):
        // no readback per step.
        for (const n of names) {
          const s = state.get(n)!;
          await boxClamp(gpu, model.weight(n), s.lo!, s.hi!);
        }
      }
      onProgress?.(step, hp.num_steps, `loss ${loss.toFixed(4)}`);
      if (loss < hp.early_stop_loss) {
        earlyStopped = true;
        break;
      }
    }
    let maxAbsDelta = 0;
    const deltas = new Map<string, HostTensor>();
    const finals = await readTensors(names.map((n) => model.weight(n)));
    for (const [j, n] of names.entries()) {
      const cur = finals[j];
      const orig = state.get(n)!.orig;
      const d = Float32Array.from(cur, (x, i) => x - orig[i]);
      // The change the applied edit makes (orig + d rounds to cur whenever the subtraction was exact).
      const applied = addDelta(orig, d);
      for (let i = 0; i < d.length; i++) maxAbsDelta = Math.max(maxAbsDelta, Math.abs(applied[i] - orig[i]));
      deltas.set(n, { shape: [...model.weights.get(n)!.shape], data: d });
    }
    return {
      weights: names,
      deltas,
      info: { losses, steps: losses.length, earlyStopped, maxAbsDelta, hparams: hp },
    };
  } finally {
    // The host copy was never written: put the GPU copy back from it.
    for (const [n, s] of state) model.setWeight(n, s.orig);
    grads.destroy();
    for (const s of state.values()) {
      s.m.destroy();
      s.v.destroy();
      s.lo?.destroy();
      s.hi?.destroy();
    }
  }
}

function makeEditor(method: "ft-l" | "ft", defaults: (cfg: ModelConfig) => FtHparams): Editor {
  return async (
    model: TransformerModel,
    tokenizer: Tokenizer,
    requests: EditRequest[],
    opts: EditOptions = {},
  ): Promise<EditDeltas> => {
    let hp = defaults(model.config);
    if (opts.hparams) hp = mergeFtHparams(hp, opts.hparams, model.config);
    if (opts.layers) {
      checkLayers(opts.layers, model.config);
      hp = { ...hp, layers: [...opts.layers] };
    }
    const { deltas, info } = await fineTune(
      model,
      tokenizer,
      requests,
      hp,
      opts.onProgress && ((done, total) => opts.onProgress!("steps", done, total)),
    );
    // The edit log keeps each delta as `delta.NAME`.
    const tensors = new Map([...deltas].map(([n, t]) => [`delta.${n}`, t]));
    const { hparams: _hp, ...rest } = info;
    return { method, deltas, tensors, hparams: { ...hp }, info: { ...rest }, warnings: [] };
  };
}

/** FT-L editor: constrained fine-tuning of one layer's MLP output projection ({@link ftlDefaults}). */
export const ftlEditor: Editor = makeEditor("ft-l", ftlDefaults);

/** Unconstrained FT editor ({@link ftDefaults}). */
export const ftEditor: Editor = makeEditor("ft", ftDefaults);

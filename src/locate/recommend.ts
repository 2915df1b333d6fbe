/**
 * Recommending edit layers from causal tracing, the way ROME's and MEMIT's authors chose theirs.
 *
 * The evidence is the average indirect effect (AIE) of the MLP at the subject's last token, per layer
 * (ROME's `notebooks/average_causal_effects.ipynb`: the "last subject token" line of the MLP plot, each
 * layer l restoring the MLP outputs of the window of `traceWindow` layers centred on l), over the facts
 * the model knows ({@link traceFacts}). The rule ({@link pickLayers}):
 * - ROME edits one layer: the peak, the layer of the largest AIE (ROME edits gpt2-xl's layer 17, where its
 *   MLP effect at the last subject token peaks). Ties go to the lowest layer (numpy's argmax).
 * - MEMIT edits the critical window of `window` consecutive layers ending at the peak,
 *   [peak − window + 1, peak] (MEMIT: gpt2-xl 13–17, five layers). A window that would start below
 *   layer 0 is clipped there (fewer layers), never shifted past the peak.
 * The window defaults to 5 (kmeng01/memit `hparams/MEMIT/gpt2-xl.json`; their GPT-J file uses 6, layers
 * 3–8), or the model's depth when it has fewer layers; an explicit window larger than the model is an
 * {@link InputError}.
 */
import { InputError } from "../errors.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import type { ModelConfig } from "../model/config.ts";
import type { TransformerModel } from "../model/transformer.ts";
import type { TraceFact } from "../prompt/facts.ts";
import { memitDefaults, romeDefaults } from "../edit/hparams.ts";
import type { FactToken } from "../edit/compute.ts";
import { type EasyEditFile, easyEditFiles } from "../edit/easyedit_layers.ts";
import { TOKEN_CLASSES } from "./average.ts";
import { type FactsTrace, traceFacts, type TraceFactsOptions } from "./trace_facts.ts";

/** MEMIT's critical-window size in kmeng01/memit's gpt2-xl file (layers 13–17). */
export const MEMIT_WINDOW = 5;

/** The window used when none is given: {@link MEMIT_WINDOW}, or the model's depth when shallower. */
export function defaultMemitWindow(nLayer: number): number {
  return Math.min(MEMIT_WINDOW, nLayer);
}

/** What {@link pickLayers} chose, and why. */
export interface LayerPick {
  /** Layer of the largest AIE (the lowest such layer on ties). */
  peak: number;
  /** Every layer whose AIE equals the peak's (length > 1: a tie, broken to the lowest). */
  tied: number[];
  /** ROME's layer: [peak]. */
  rome: number[];
  /** MEMIT's layers: `window` consecutive layers ending at the peak, clipped at layer 0. */
  memit: number[];
  /** The MEMIT window asked for (before clipping). */
  window: number;
  /** Whether the window was clipped at layer 0 (MEMIT gets fewer than `window` layers). */
  clipped: boolean;
  /** Every layer has the same AIE: the curve carries no information about where to edit. */
  flat: boolean;
  /** The peak's 95% CI excludes 0 (AIE − CI > 0); false when no CI was given. */
  significant: boolean;
}

/**
 * Applies the rule of the module doc to an AIE curve (`aie[l]`, one value per layer) with its 95% CI
 * half-widths. Throws {@link InputError} for an empty or non-finite curve or a window that is not an
 * integer in [1, layers].
 */
export function pickLayers(aie: number[], window: number, ci95?: number[]): LayerPick {
  const L = aie.length;
  if (L === 0) throw new InputError("the AIE curve has no layers", { field: "aie" });
  if (aie.some((v) => !Number.isFinite(v))) {
    throw new InputError("the AIE curve has non-finite values", { field: "aie" });
  }
  if (!(Number.isInteger(window) && window >= 1 && window <= L)) {
    throw new InputError(
      `the MEMIT window must be an integer in [1, ${L}] (the model's layers), got ${window}`,
      {
        field: "--window",
      },
    );
  }
  const max = Math.max(...aie), min = Math.min(...aie);
  const tied = aie.flatMap((v, l) => (v === max ? [l] : []));
  const peak = tied[0];
  const lo = peak - window + 1;
  const memit = Array.from({ length: peak - Math.max(0, lo) + 1 }, (_, i) => Math.max(0, lo) + i);
  return {
    peak,
    tied,
    rome: [peak],
    memit,
    window,
    clipped: lo < 0,
    flat: max === min,
    significant: ci95 !== undefined && aie[peak] - ci95[peak] > 0,
  };
}

/** The token class whose MLP curve is read: the subject's last token (reference) or the prompt's last. */
export function factTokenClass(factToken: FactToken): number {
  return TOKEN_CLASSES.indexOf(factToken === "last" ? "last token" : "last subject token");
}

/** Options of {@link recommendLayers}. */
export interface RecommendOptions extends TraceFactsOptions {
  /** MEMIT window (default {@link defaultMemitWindow}). */
  memitWindow?: number;
  /**
   * Read the MLP curve at the subject's last token ("subject_last", the reference) or at the prompt's
   * last token ("last"); the hparams files get the same `fact_token`.
   */
  factToken?: FactToken;
}

/** The AIE curve of one kind at one token class. */
export interface AieCurve {
  /** Trace kind (hidden, mlp or attn). */
  kind: string;
  /** Token class, a name of {@link TOKEN_CLASSES}. */
  tokenClass: string;
  /** Per layer. */
  mean: number[];
  /** 95% CI half-widths per layer. */
  ci95: number[];
  /** Samples pooled (see src/locate/average.ts). */
  count: number;
}

/** EasyEdit's published layers for this model, if it publishes a file for its shape. */
export interface EasyEditMatch {
  /** EasyEdit's ROME files that match the model (empty: none). */
  rome: EasyEditFile[];
  /** EasyEdit's MEMIT files that match the model (empty: none). */
  memit: EasyEditFile[];
}

/** What {@link recommendLayers} returns. */
export interface Recommendation {
  /** The layers chosen from the MLP curve. */
  pick: LayerPick;
  /** The MLP curve the pick used. */
  curve: AieCurve;
  /** The curves of every traced kind at the same token class. */
  curves: AieCurve[];
  /** The whole averaged trace of the facts. */
  trace: FactsTrace;
  /** The token the curve was read at and the hparams' `fact_token` (default "subject_last"). */
  factToken: FactToken;
  /** Ready hparams objects (`engram edit --hparams`): the family defaults with the layers substituted. */
  hparams: { rome: Record<string, unknown>; memit: Record<string, unknown> };
  /** EasyEdit's published layers for the model's shape, for comparison. */
  easyedit: EasyEditMatch;
}

/**
 * Hparams objects for ROME and MEMIT at `cfg`: engram's defaults for the model (src/edit/hparams.ts) with
 * `layers` and `fact_token` substituted, and a comment saying where the layers came from.
 */
export function recommendedHparams(
  cfg: ModelConfig,
  pick: LayerPick,
  factToken: FactToken,
  note = "",
): { rome: Record<string, unknown>; memit: Record<string, unknown> } {
  const why = (m: string) =>
    `${m} for this model from engram recommend-layers: engram's defaults with the layers chosen from the ` +
    `MLP AIE peak at layer ${pick.peak}${note ? ` (${note})` : ""}`;
  return {
    rome: { comment: why("ROME"), ...romeDefaults(cfg), layers: pick.rome, fact_token: factToken },
    memit: { comment: why("MEMIT"), ...memitDefaults(cfg), layers: pick.memit, fact_token: factToken },
  };
}

/**
 * Traces `facts` ({@link traceFacts}; the MLP kind is always traced), reads the MLP AIE curve at the
 * subject's last token (the prompt's last with `factToken: "last"`) and picks ROME and MEMIT layers ({@link pickLayers}). The window is checked
 * before any tracing.
 */
export async function recommendLayers(
  model: TransformerModel,
  tok: Tokenizer,
  facts: TraceFact[],
  opts: RecommendOptions = {},
): Promise<Recommendation> {
  const L = model.config.nLayer;
  const window = opts.memitWindow ?? defaultMemitWindow(L);
  pickLayers(new Array(L).fill(0), window); // the window's check, before the long work
  const factToken = opts.factToken ?? "subject_last";
  const kinds = opts.kinds ?? ["mlp"];
  const trace = await traceFacts(model, tok, facts, {
    ...opts,
    kinds: kinds.includes("mlp") ? kinds : [...kinds, "mlp"],
  });
  const cls = factTokenClass(factToken);
  const curves: AieCurve[] = [...trace.averages].map(([kind, a]) => ({
    kind,
    tokenClass: a.classes[cls],
    mean: a.mean[cls],
    ci95: a.ci95[cls],
    count: a.count[cls],
  }));
  const curve = curves.find((c) => c.kind === "mlp")!;
  const pick = pickLayers(curve.mean, window, curve.ci95);
  return {
    pick,
    curve,
    curves,
    trace,
    factToken,
    hparams: recommendedHparams(model.config, pick, factToken, `${trace.traced} facts`),
    easyedit: { rome: easyEditFiles(model.config, "ROME"), memit: easyEditFiles(model.config, "MEMIT") },
  };
}

/**
 * `engram atp`: attribution patching (AtP, and AtP* with --qk-fix / --grad-drop or --star) of one fact:
 * every node of the chosen site kinds at every layer and position, for a clean prompt and a corrupt run
 * (another prompt of the same token length, or ROME's Gaussian noise on the subject's embeddings).
 *
 * `--json` prints {"schema": "engram-atp/1", "tokens", "subject_range", "metric", "metric_clean",
 * "metric_corrupt", "method", "sites": [{"name", "kind", "layer", "units", "values" ([token][unit])}]};
 * otherwise the largest estimates, one line each.
 */
import { InputError } from "../errors.ts";
import { loadHFModel } from "../io/hf_model.ts";
import { getGpu } from "../gpu/device.ts";
import { encodeFact, encodeTarget, encodeText } from "../prompt/encode.ts";
import { withFieldNames } from "../prompt/errors.ts";
import {
  ATP_METRICS,
  ATP_SITE_KINDS,
  type AtpMetric,
  type AtpSiteKind,
  ATTN_INPUT,
  attributionPatching,
  DEFAULT_ATP_SITES,
} from "../locate/atp.ts";
import { corruptionHooks, embeddingStd, subjectNoise } from "../locate/patching.ts";
import type { RunSpec } from "../locate/patching.ts";
import { type AtpComparison, compareAtpWithPatching } from "../locate/atp_compare.ts";
import { bosFlag, COMMON_FLAGS, FACT_FLAGS, intFlag, required } from "./args.ts";
import { type CommandSpec, parseCommand } from "./spec.ts";
import { parseNoiseFlag } from "./trace.ts";
import type { AtpOutput } from "../schema/tools_output.ts";
import { schemaTag } from "../schema/common.ts";
import { uploadModel, weightsFlag } from "./upload.ts";

/** Flags and help of `engram atp`. */
export const atpSpec: CommandSpec = {
  name: "atp",
  summary: "attribution patching (AtP; AtP* with --star) of every node at every layer and position",
  usage: 'atp --model DIR --prompt "..." --subject S --target T [--corrupt-prompt "..." | --noise X|sK] ' +
    "[--seed S] [--metric prob|logprob|logit-diff --counterfactual C] [--sites resid_pre,attn_out,...] " +
    "[--per-neuron] [--qk-fix] [--grad-drop] [--star] [--compare] [--top K] [--bos auto|on|off] [--json]",
  description: `Estimates, for every node of the chosen site kinds, the effect on the metric of patching the
    corrupt run's activation into the clean run (a first-order Taylor estimate from one forward and one
    backward pass each). The corrupt run is another prompt of the same token length, or ROME's Gaussian
    noise on the subject's embeddings. --json prints {"schema": "engram-atp/1", "tokens", "subject_range",
    "metric", "metric_clean",
    "metric_corrupt", "method", "sites": [{"name", "kind", "layer", "units", "values" ([token][unit])}]};
    otherwise the largest estimates, one line each. --compare also runs full activation patching of the
    same nodes and reports, per site kind, the Spearman correlation of estimates and exact effects, the
    overlap of their top --top nodes and both wall times (JSON: "comparison").`,
  flags: {
    model: COMMON_FLAGS.model,
    prompt: { type: "string", value: '"..."', required: true, help: "the clean prompt" },
    subject: { type: "string", value: "S", required: true, help: "the subject, a substring of the prompt" },
    target: { type: "string", value: "T", required: true, help: "the answer whose metric is attributed" },
    "corrupt-prompt": {
      type: "string",
      value: '"..."',
      help: "the corrupt run: another prompt of the same token length (instead of noise)",
    },
    noise: {
      type: "string",
      value: "X|sK",
      default: "s3",
      help: "noise on the subject's embeddings: an absolute std X, or sK = K x the std of wte",
    },
    seed: { type: "int", value: "S", default: 1, help: "seed of the noise" },
    metric: {
      type: "string",
      choices: ATP_METRICS,
      default: "prob",
      help: "the metric: p(target), log p(target), or logit(target) - logit(counterfactual)",
    },
    counterfactual: { type: "string", value: "C", help: "the other answer of --metric logit-diff" },
    sites: {
      type: "string",
      value: "KIND,...",
      default: DEFAULT_ATP_SITES.join(","),
      help: `site kinds to attribute, comma-separated, among ${ATP_SITE_KINDS.join(", ")}`,
    },
    "per-neuron": { type: "boolean", help: "one estimate per neuron instead of per site" },
    "qk-fix": { type: "boolean", help: "AtP*'s QK fix: attention patterns recomputed for query / key nodes" },
    "grad-drop": { type: "boolean", help: "AtP*'s GradDrop: gradients with each layer's residual dropped" },
    star: { type: "boolean", help: "AtP*: --qk-fix and --grad-drop" },
    compare: {
      type: "boolean",
      help: "also run full activation patching: Spearman and top-K overlap per kind, and both times",
    },
    top: {
      type: "int",
      value: "K",
      default: 10,
      help: "estimates printed without --json; with --compare, the K of the top-K overlap",
    },
    bos: COMMON_FLAGS.bos,
    weights: COMMON_FLAGS.weights,
    json: COMMON_FLAGS.json,
  },
  examples: [
    'atp --model fixtures/world/model --prompt "Narnux Zava was born in" --subject "Narnux Zava" ' +
    "--target Frostwick --noise s3 --star --top 10",
  ],
};

/** Entry point of `engram atp`. */
export async function atpCommand(argv: string[]): Promise<void> {
  const f = parseCommand(atpSpec, argv);
  const modelDir = required(f, "model", "atp");
  const prompt = required(f, "prompt", "atp");
  const subject = required(f, "subject", "atp");
  const target = required(f, "target", "atp");
  const top = intFlag(f, "top", 10, 1, 1 << 20);
  const seed = intFlag(f, "seed", 1, 0, 2 ** 32 - 1);
  const kind = (f.metric as string | undefined) ?? "prob";
  if (!(ATP_METRICS as readonly string[]).includes(kind)) {
    throw new InputError(`--metric must be one of ${ATP_METRICS.join(", ")}, got '${kind}'`, {
      field: "--metric",
    });
  }
  if ((kind === "logit-diff") !== (f.counterfactual !== undefined)) {
    throw new InputError("--counterfactual is needed with --metric logit-diff, and only there", {
      field: "--counterfactual",
    });
  }
  if (f["corrupt-prompt"] !== undefined && f.noise !== undefined) {
    throw new InputError("give --corrupt-prompt or --noise, not both", { field: "--noise" });
  }
  const sites = f.sites === undefined
    ? [...DEFAULT_ATP_SITES]
    : String(f.sites).split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (const s of sites) {
    if (!ATP_SITE_KINDS.includes(s as AtpSiteKind)) {
      throw new InputError(`--sites: unknown kind '${s}' (expected ${ATP_SITE_KINDS.join(", ")})`, {
        field: "--sites",
      });
    }
  }

  if (f.compare && sites.every((s) => ATTN_INPUT.has(s as AtpSiteKind))) {
    throw new InputError(
      "--compare needs a site kind activation patching can patch (q, k, v are not hook sites)",
      {
        field: "--sites",
      },
    );
  }

  const hf = await loadHFModel(modelDir, { bos: bosFlag(f) });
  const tok = hf.tokenizer;
  if (!tok) throw new InputError(`${modelDir} has no tokenizer files`, { file: modelDir, field: "--model" });
  const e = withFieldNames(
    FACT_FLAGS,
    () => encodeFact(tok, { prompt, subject, target }, { nPositions: hf.config.nPositions }),
  );
  const ids = e.ids.slice(0, e.promptLength);
  const answer = e.target![0];
  const metric: AtpMetric = kind === "logit-diff"
    ? { kind, answer, counterfactual: encodeTarget(tok, String(f.counterfactual))[0] }
    : { kind: kind as "prob" | "logprob", answer };
  if ((f.star || f["grad-drop"]) && hf.config.nLayer < 2) {
    throw new InputError(
      `GradDrop needs at least 2 layers (its average divides by L − 1); ${modelDir} has ${hf.config.nLayer}`,
      { field: f.star ? "--star" : "--grad-drop" },
    );
  }
  const model = uploadModel(await getGpu(), hf, weightsFlag(f));
  try {
    let corrupt: RunSpec;
    if (f["corrupt-prompt"] !== undefined) {
      const cids = encodeText(tok, String(f["corrupt-prompt"]), { nPositions: hf.config.nPositions });
      if (cids.length !== ids.length) {
        throw new InputError(
          `--corrupt-prompt has ${cids.length} tokens, --prompt ${ids.length}: they must be equally long`,
          { field: "--corrupt-prompt" },
        );
      }
      corrupt = { ids: cids };
    } else {
      // ROME's corruption: Gaussian noise (default 3 x the std of wte) on the subject's embeddings.
      const noise = parseNoiseFlag((f.noise as string | undefined) ?? "s3");
      const C = hf.config.nEmbd;
      const std = "absolute" in noise
        ? noise.absolute
        : noise.multiple * embeddingStd(hf.weights, C, undefined, model.spec.embed);
      const [a, b] = e.subjectRange;
      corrupt = {
        ids,
        hooks: corruptionHooks(model, ids, e.subjectRange, subjectNoise(1, b - a, C, std, seed)),
      };
    }
    const star = Boolean(f.star);
    const atpOpts = {
      sites: sites as AtpSiteKind[],
      perNeuron: Boolean(f["per-neuron"]),
      qkFix: star || Boolean(f["qk-fix"]),
      gradDrop: star || Boolean(f["grad-drop"]),
    };
    const cmp = f.compare
      ? await compareAtpWithPatching(model, ids, corrupt, metric, { ...atpOpts, top })
      : undefined;
    const r = cmp?.atp ?? await attributionPatching(model, ids, corrupt, metric, atpOpts);
    const tokens = ids.map((id) => tok.tokenString(id));
    if (f.json) {
      const out: AtpOutput = {
        schema: schemaTag("atp", 1),
        tokens,
        subject_range: e.subjectRange,
        metric,
        metric_clean: r.metricClean,
        metric_corrupt: r.metricCorrupt,
        method: r.method,
        sites: r.sites.map((s) => ({
          name: s.name,
          kind: s.kind,
          layer: s.layer,
          units: s.units,
          values: Array.from(
            { length: r.T },
            (_, t) => [...s.values.subarray(t * s.units, (t + 1) * s.units)],
          ),
        })),
        ...(cmp ? { comparison: comparisonJson(cmp) } : {}),
      };
      console.log(JSON.stringify(out));
      return;
    }
    console.log(
      `${r.method}: metric ${kind} clean ${r.metricClean.toPrecision(4)}, corrupt ${
        r.metricCorrupt.toPrecision(4)
      }`,
    );
    const all = r.sites.flatMap((s) =>
      [...s.values].map((v, i) => ({
        name: s.name,
        t: Math.floor(i / s.units),
        u: i % s.units,
        units: s.units,
        v,
      }))
    ).sort((x, y) => Math.abs(y.v) - Math.abs(x.v)).slice(0, top);
    for (const x of all) {
      const unit = x.units > 1 ? ` unit ${x.u}` : "";
      console.log(
        `${x.v.toPrecision(4).padStart(11)}  ${x.name}${unit} @ ${x.t} ${JSON.stringify(tokens[x.t])}`,
      );
    }
    if (cmp) {
      console.log(
        `vs full activation patching (${cmp.patchingSeconds.toFixed(2)} s; ${r.method} ${
          cmp.atpSeconds.toFixed(2)
        } s, ${(cmp.patchingSeconds / cmp.atpSeconds).toFixed(1)}x faster):`,
      );
      for (const a of cmp.kinds) {
        console.log(
          `  ${a.kind.padEnd(10)} ${String(a.nodes).padStart(6)} nodes  Spearman ${
            a.spearman === null ? "n/a (constant)" : a.spearman.toFixed(3)
          }  top-${a.k} overlap ${a.topRecall.toFixed(2)}`,
        );
      }
      if (cmp.notCompared.length) console.log(`  not compared (no hook site): ${cmp.notCompared.join(", ")}`);
    }
  } finally {
    model.destroy();
  }
}

/** The JSON of a comparison with full activation patching. */
function comparisonJson(c: AtpComparison): NonNullable<AtpOutput["comparison"]> {
  return {
    atp_seconds: c.atpSeconds,
    patching_seconds: c.patchingSeconds,
    kinds: c.kinds.map((a) => ({
      kind: a.kind,
      nodes: a.nodes,
      spearman: a.spearman,
      k: a.k,
      top_recall: a.topRecall,
    })),
    not_compared: c.notCompared,
  };
}

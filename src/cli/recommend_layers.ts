/**
 * `engram recommend-layers --model DIR --facts FILE [--limit N] [--window W] [--out DIR] [--json]`:
 * traces the facts (as `trace --facts`, MLP kind; `--kind all` adds hidden and attention curves), prints
 * the MLP average indirect effect per layer at the subject's last token with its 95% CI, and recommends
 * ROME's layer (the peak) and MEMIT's window (W layers ending at the peak), by the rule of
 * src/locate/recommend.ts. It says which layers EasyEdit's published files use at a model of this shape.
 * `--out DIR` writes recommend.json, ready `rome.json` / `memit.json` hparams files for
 * `engram edit --hparams` and `aie_KIND.svg` plots; an existing DIR is replaced only with --overwrite.
 * Tracing flags and defaults are those of `trace --facts` (10 samples, noise s3 over the file's subjects,
 * window 10, seed 1, numpy noise, --known whole, --pool token).
 */
import { InputError } from "../errors.ts";
import { loadHFModel } from "../io/hf_model.ts";
import { commitStaged, stageDir } from "../io/atomic.ts";
import { getGpu } from "../gpu/device.ts";
import { CLASS_POOLS, type ClassPool } from "../locate/average.ts";
import { KNOWN_RULES, type KnownRule } from "../locate/known.ts";
import { NOISE_RNGS, type NoiseRng } from "../locate/patching.ts";
import { TRACE_KINDS, type TraceKind } from "../locate/trace.ts";
import { defaultMemitWindow, pickLayers, type Recommendation, recommendLayers } from "../locate/recommend.ts";
import { readTraceFacts } from "../prompt/facts.ts";
import { aieLineSvg } from "../report/aie_plot.ts";
import type { FactToken } from "../edit/compute.ts";
import { bosFlag, choiceFlag, COMMON_FLAGS, intFlag, required } from "./args.ts";
import { type CommandSpec, parseCommand } from "./spec.ts";
import { guardOutputs } from "./outputs.ts";
import { progress } from "./progress.ts";
import { parseNoiseFlag } from "./trace.ts";
import type { RecommendLayersOutput } from "../schema/tools_output.ts";
import { schemaTag } from "../schema/common.ts";
import { uploadModel, weightsFlag } from "./upload.ts";

const KIND_COLOR: Record<string, string> = { hidden: "#6a51a3", mlp: "#238b45", attn: "#cb181d" };

/** Flags and help of `engram recommend-layers`. */
export const recommendLayersSpec: CommandSpec = {
  name: "recommend-layers",
  summary: "trace facts and recommend ROME / MEMIT edit layers from the MLP AIE at the last subject token",
  usage: "recommend-layers --model DIR --facts FILE [--limit N] [--window W] [--kind mlp|all] " +
    "[--fact-token subject_last|last] [--trace-window W] [--samples N] [--noise X|sK] [--seed S] " +
    "[--known whole|greedy|first] [--include-unknown] [--out DIR] [--overwrite] [--json]",
  description: `Traces the facts as trace --facts does (same defaults), prints the MLP average indirect
    effect per layer at the subject's last token with its 95% CI, and picks ROME's layer (the peak, lowest on
    ties) and MEMIT's window (W layers ending at the peak, clipped at layer 0). Names the layers of EasyEdit's
    published file for a model of this shape. --out writes rome.json / memit.json for edit --hparams,
    recommend.json and aie_KIND.svg.`,
  flags: {
    model: COMMON_FLAGS.model,
    facts: { type: "string", value: "FILE", required: true, help: "the facts traced (as trace --facts)" },
    limit: { type: "int", value: "N", default: "all", unit: "facts", help: "trace the first N facts" },
    window: {
      type: "int",
      value: "W",
      default: "5 (the model's depth when shallower)",
      unit: "layers",
      help: "MEMIT's window: W layers ending at the AIE peak (kmeng01/memit's gpt2-xl: 5)",
    },
    "trace-window": { type: "int", value: "W", default: 10, unit: "layers", help: "trace's --window" },
    kind: {
      type: "string",
      choices: ["mlp", "all"],
      default: "mlp",
      help: "curves traced (all: hidden, mlp, attn)",
    },
    "fact-token": {
      type: "string",
      choices: ["subject_last", "last"],
      default: "subject_last",
      help: "where the curve is read and the edit applied: the subject's last token (ROME's) or the prompt's",
    },
    samples: { type: "int", value: "N", default: 10, help: "noise samples per restored state" },
    noise: { type: "string", value: "X|sK", default: "s3", help: "noise std (as trace --noise)" },
    seed: { type: "int", value: "S", default: 1, help: "seed of the noise" },
    "noise-rng": {
      type: "string",
      choices: NOISE_RNGS,
      default: "numpy",
      help: "noise generator (as trace)",
    },
    known: {
      type: "string",
      choices: KNOWN_RULES,
      default: "whole",
      help: "when the model knows a fact (as trace)",
    },
    "include-unknown": { type: "boolean", help: "trace facts the model does not know too" },
    pool: {
      type: "string",
      choices: CLASS_POOLS,
      default: "token",
      help: "how averages pool tokens (as trace)",
    },
    bos: COMMON_FLAGS.bos,
    weights: COMMON_FLAGS.weights,
    "batch-rows": {
      type: "int",
      value: "N",
      default: 4096,
      unit: "rows",
      help: "most rows per batched forward",
    },
    out: {
      type: "string",
      value: "DIR",
      help: "write rome.json, memit.json, recommend.json and aie_KIND.svg",
    },
    overwrite: { type: "boolean", help: "replace an --out folder engram wrote" },
    json: COMMON_FLAGS.json,
  },
  examples: [
    "recommend-layers --model fixtures/world/model --facts fixtures/world/train_prompts.jsonl --limit 20 " +
    "--trace-window 1 --fact-token last",
  ],
};

/** Entry point of `engram recommend-layers`. */
export async function recommendLayersCommand(argv: string[]): Promise<void> {
  const f = parseCommand(recommendLayersSpec, argv);
  const modelDir = required(f, "model", "recommend-layers");
  const factsFile = required(f, "facts", "recommend-layers");
  const kindFlag = choiceFlag(f, "kind", ["mlp", "all"] as const, "mlp");
  const kinds: TraceKind[] = kindFlag === "all" ? [...TRACE_KINDS] : ["mlp"];
  const factToken: FactToken = choiceFlag(f, "fact-token", ["subject_last", "last"] as const, "subject_last");
  const samples = intFlag(f, "samples", 10, 1, 10000);
  const traceWindow = intFlag(f, "trace-window", 10, 1, 100000);
  const seed = intFlag(f, "seed", 1, 0, 2 ** 32 - 1);
  const maxRows = intFlag(f, "batch-rows", 4096, 1, 1 << 24);
  const noiseRng: NoiseRng = choiceFlag(f, "noise-rng", NOISE_RNGS, "numpy");
  const known: KnownRule = choiceFlag(f, "known", KNOWN_RULES, "whole");
  const pool: ClassPool = choiceFlag(f, "pool", CLASS_POOLS, "token");
  const noise = parseNoiseFlag((f.noise as string | undefined) ?? "s3");
  const bos = bosFlag(f);
  const outDir = f.out as string | undefined;
  const overwrite = Boolean(f.overwrite);
  const guard = await guardOutputs("recommend-layers", [{ path: outDir, flag: "--out" }], [
    { path: modelDir, flag: "--model" },
    { path: factsFile, flag: "--facts" },
  ], { overwrite });
  try {
    const all = await readTraceFacts(factsFile);
    const limit = intFlag(f, "limit", all.length, 1, all.length);
    const hf = await loadHFModel(modelDir, { bos });
    const tok = hf.tokenizer;
    if (!tok) {
      throw new InputError(`${modelDir} has no tokenizer files`, { file: modelDir, field: "--model" });
    }
    const L = hf.config.nLayer;
    const window = intFlag(f, "window", defaultMemitWindow(L), 1, 100000);
    pickLayers(new Array(L).fill(0), window); // a window larger than the model fails before any tracing
    const model = uploadModel(await getGpu(), hf, weightsFlag(f));
    let rec: Recommendation;
    try {
      const bar = progress(`trace ${limit} facts`, limit);
      let invalid = 0;
      rec = await recommendLayers(model, tok, all.slice(0, limit), {
        kinds,
        samples,
        noise,
        noiseFacts: all, // as trace --facts: the noise level comes from every subject in the file
        window: traceWindow,
        seed,
        noiseRng,
        known,
        includeUnknown: Boolean(f["include-unknown"]),
        pool,
        maxRows,
        file: factsFile,
        memitWindow: window,
        factToken,
        onFact: (d, _t, traced) => bar.update(d, `traced ${traced}`),
        onInvalid: (fact, e) => {
          if (++invalid <= 3) {
            console.error(`recommend-layers: warning: fact ${fact.id} skipped: ${e.message}`);
          }
        },
      });
      bar.done();
    } finally {
      model.destroy();
    }
    const out = summary(rec, { modelDir, factsFile, samples, traceWindow, seed, noiseRng, known, pool });
    if (bos !== "auto") {
      // The facts were traced with a forced BOS policy: the editor should see the same prompts.
      for (const hp of [rec.hparams.rome, rec.hparams.memit]) hp.prefix_eos = bos === "on";
    }
    if (outDir) {
      const files: Record<string, string> = {
        "recommend.json": JSON.stringify(out, null, 2) + "\n",
        "rome.json": JSON.stringify(rec.hparams.rome, null, 2) + "\n",
        "memit.json": JSON.stringify(rec.hparams.memit, null, 2) + "\n",
      };
      for (const c of rec.curves) {
        files[`aie_${c.kind}.svg`] = aieLineSvg({
          mean: c.mean,
          ci95: c.ci95,
          title:
            `AIE of ${
              c.kind === "hidden" ? "the hidden state" : c.kind === "mlp" ? "MLP" : "attention"
            } at ` +
            `the ${c.tokenClass} (${rec.trace.traced} facts, 95% CI)`,
          color: KIND_COLOR[c.kind],
          shade: c.kind === "mlp" ? rec.pick.memit : undefined,
          mark: c.kind === "mlp" ? rec.pick.peak : undefined,
          xlabel: c.kind === "hidden"
            ? "single restored layer"
            : `center of interval of ${Math.min(traceWindow, L)} restored layers`,
        });
      }
      await commitStaged([await stageDir(outDir, files, { kind: "recommend-layers", flag: "--out" })], {
        overwrite,
      });
    }
    if (f.json) console.log(JSON.stringify(out));
    else printText(rec, outDir);
  } finally {
    await guard.release();
  }
}

/** The JSON summary (printed with --json, written as recommend.json). */
function summary(
  rec: Recommendation,
  o: {
    modelDir: string;
    factsFile: string;
    samples: number;
    traceWindow: number;
    seed: number;
    noiseRng: NoiseRng;
    known: KnownRule;
    pool: ClassPool;
  },
): RecommendLayersOutput {
  const t = rec.trace, p = rec.pick;
  const files = (fs: Recommendation["easyedit"]["rome"]) =>
    fs.length === 0 ? null : fs.map((x) => ({ file: x.file, model: x.model, layers: x.layers }));
  return {
    schema: schemaTag("recommend-layers", 1),
    model: o.modelDir,
    facts_file: o.factsFile,
    records: t.records,
    traced: t.traced,
    unknown: t.unknown,
    skipped_invalid: t.invalid,
    layers: t.nLayer,
    fact_token: rec.factToken,
    token_class: rec.curve.tokenClass,
    trace_window: Math.min(o.traceWindow, t.nLayer),
    samples: o.samples,
    noise_std: t.noiseStd,
    seed: o.seed,
    noise_rng: o.noiseRng,
    known_rule: o.known,
    pool: o.pool,
    mean_p_clean: t.meanPClean,
    mean_p_corrupt: t.meanPCorrupt,
    aie: { kind: "mlp", mean: rec.curve.mean, ci95: rec.curve.ci95, count: rec.curve.count },
    curves: Object.fromEntries(
      rec.curves.map((c) => [c.kind, { mean: c.mean, ci95: c.ci95, count: c.count }]),
    ),
    recommendation: {
      rule: "ROME: the layer of the largest MLP AIE (lowest on ties); MEMIT: `window` layers ending there, " +
        "clipped at layer 0",
      peak: p.peak,
      peak_aie: rec.curve.mean[p.peak],
      peak_ci95: rec.curve.ci95[p.peak],
      tied: p.tied,
      rome_layers: p.rome,
      memit_layers: p.memit,
      window: p.window,
      clipped: p.clipped,
      flat: p.flat,
      significant: p.significant,
    },
    easyedit: {
      rome: files(rec.easyedit.rome),
      memit: files(rec.easyedit.memit),
      commit: "14cea8245f06715684592ab55184939b99d70784",
    },
    forwards: t.forwards,
    seconds: t.seconds,
  };
}

/** The text report: the AIE bar chart and the recommendation. */
function printText(rec: Recommendation, outDir: string | undefined): void {
  const t = rec.trace, p = rec.pick, c = rec.curve;
  console.log(
    `traced ${t.traced} of ${t.records} facts (${t.unknown} not known, ${t.invalid} invalid); mean p_clean ` +
      `${t.meanPClean.toFixed(4)}, p_corrupt ${t.meanPCorrupt.toFixed(4)}, noise std ${
        t.noiseStd.toPrecision(3)
      }`,
  );
  console.log(`MLP AIE at the ${c.tokenClass} (window ${Math.min(t.window, t.nLayer)}), 95% CI:`);
  const scale = Math.max(1e-12, ...c.mean.map(Math.abs));
  c.mean.forEach((v, l) => {
    const n = Math.round((Math.abs(v) / scale) * 40);
    const bar = (v < 0 ? "-" : "#").repeat(n);
    const tag = l === p.peak ? "  <- ROME, MEMIT end" : p.memit.includes(l) ? "  <- MEMIT" : "";
    console.log(
      `  ${String(l).padStart(3)} ${v.toFixed(4).padStart(8)} ± ${c.ci95[l].toFixed(4)} |${
        bar.padEnd(40)
      }|${tag}`,
    );
  });
  for (const o of rec.curves.filter((x) => x.kind !== "mlp")) {
    const best = o.mean.indexOf(Math.max(...o.mean));
    console.log(`${o.kind} AIE at the ${o.tokenClass}: max ${o.mean[best].toFixed(4)} at layer ${best}`);
  }
  console.log(
    `ROME layer: ${p.rome[0]} (AIE ${c.mean[p.peak].toFixed(4)} ± ${c.ci95[p.peak].toFixed(4)})` +
      (p.tied.length > 1 ? `; tied with layers ${p.tied.slice(1).join(", ")}, lowest taken` : ""),
  );
  console.log(
    `MEMIT layers: ${p.memit.join(", ")} (${p.window} layers ending at the peak${
      p.clipped ? `, clipped at layer 0 to ${p.memit.length}` : ""
    })`,
  );
  if (p.flat) console.log("warning: every layer has the same AIE; the curve does not locate the fact");
  if (t.window >= t.nLayer && t.nLayer > 1) {
    // Each centre's window then covers every layer: the MLP curve is the same at every layer.
    console.log(
      `note: the trace window ${t.window} covers all ${t.nLayer} layers; --trace-window 1 separates them`,
    );
  } else if (!p.significant) {
    console.log(
      `warning: the peak's 95% CI includes 0: no layer's MLP effect at the ${c.tokenClass} is told apart ` +
        `from 0 by these facts (trace more facts${
          rec.factToken === "last" ? "" : ", or read --fact-token last"
        })`,
    );
  }
  const ee = (m: string, fs: Recommendation["easyedit"]["rome"]) =>
    fs.length === 0
      ? `EasyEdit ${m}: no published file for this model's shape`
      : `EasyEdit ${m}: layers ${fs[0].layers.join(", ")} (${
        fs.map((x) => `${x.file}, ${x.model}`).join("; ")
      })`;
  console.log(ee("ROME", rec.easyedit.rome));
  console.log(ee("MEMIT", rec.easyedit.memit));
  if (outDir) console.log(`wrote ${outDir}/{recommend.json, rome.json, memit.json, aie_*.svg}`);
}

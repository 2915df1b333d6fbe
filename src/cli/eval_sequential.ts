/**
 * `engram eval --mode sequential --every M [--batch-size B] [--ppl-text FILE] [--wild] [--out DIR]`: the
 * sequential-editing curve of each method (src/evaluate/sequential.ts) on a fresh copy of the model. A
 * method written `NAME+nas` (e.g. `memit+nas`) runs NAME with NAS switched on. With --out, each method's
 * records go to DIR/<method>/ as they are made (a rerun resumes them), and DIR/summary.json plus one SVG
 * per metric (DIR/<metric>.svg, every method a line) are rewritten after each record.
 */
import { InputError } from "../errors.ts";
import { getGpu } from "../gpu/device.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import type { ModelConfig, WeightMap } from "../model/config.ts";
import { TransformerModel } from "../model/transformer.ts";
import type { EditOptions } from "../edit/editors.ts";
import type { EditRequest } from "../prompt/requests.ts";
import { runSequential, type SequentialCurve } from "../evaluate/sequential.ts";
import { curveSvgs } from "../report/curves.ts";
import { progress } from "./progress.ts";
import type { EvalSequentialSummary } from "../schema/eval_sequential_output.ts";
import { schemaTag } from "../schema/common.ts";

/** A `--method` entry: the editor's name and whether NAS is on (`NAME+nas`). */
export function parseMethodSpec(spec: string): { method: string; nas: boolean } {
  const m = /^(.+)\+nas$/.exec(spec);
  return m ? { method: m[1], nas: true } : { method: spec, nas: false };
}

/** Writes DIR/summary.json and the SVGs of `curves`. */
export async function writeCurveReport(dir: string, curves: SequentialCurve[]): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const points: EvalSequentialSummary["curves"] = curves.map((c) => ({
    label: c.label,
    method: c.method,
    n: c.n,
    batch_size: c.batch_size,
    every: c.every,
    nas: c.nas,
    nas_norm: c.nas_norm,
    baseline: c.baseline,
    records: c.records.map((r) => ({
      edits: r.edits,
      reliability: r.metrics.reliability,
      generalization: r.metrics.generalization,
      locality: r.metrics.locality,
      wild_exact: r.metrics.wild_exact,
      wild_contains: r.metrics.wild_contains,
      perplexity: r.perplexity,
      weights: r.weights,
      edit_s: r.edit_s,
      eval_s: r.eval_s,
      nas_skipped: r.nas_skipped,
    })),
  }));
  const summary: EvalSequentialSummary = { schema: schemaTag("eval-sequential-summary", 1), curves: points };
  await writeFileAtomic(`${dir}/summary.json`, JSON.stringify(summary, null, 2) + "\n");
  for (const [name, svg] of curveSvgs(curves)) await writeFileAtomic(`${dir}/${name}`, svg);
}

/** Runs the sequential curves of `specs` (see the module comment). */
export async function evalSequential(
  specs: string[],
  config: ModelConfig,
  weights: WeightMap,
  tokenizer: Tokenizer,
  requests: EditRequest[],
  o: {
    every: number;
    batchSize: number;
    editOptions: (spec: string) => EditOptions;
    pplTexts?: string[];
    wild: boolean;
    nasSamples?: number;
    out?: string;
    meta: Record<string, unknown>;
    /** The file's dtype of each weight (`HFModel.dtypes`): 16-bit ones stay 16-bit on the GPU. */
    weightDtypes?: ReadonlyMap<string, string>;
  },
): Promise<SequentialCurve[]> {
  const labels = new Set<string>();
  for (const s of specs) {
    if (!/^[A-Za-z0-9_+-]+$/.test(s) || labels.has(s)) {
      throw new InputError(`--method '${s}' cannot name an output folder (or is given twice)`, {
        field: "--method",
      });
    }
    labels.add(s);
  }
  const curves: SequentialCurve[] = [];
  for (const spec of specs) {
    const { method, nas } = parseMethodSpec(spec);
    // A fresh copy of the unedited weights per method: the run leaves its model edited.
    const copy: WeightMap = new Map(
      [...weights].map(([k, t]) => [k, { ...t, shape: [...t.shape], data: t.data.slice() }]),
    );
    const model = TransformerModel.create(await getGpu(), config, copy, { weightDtypes: o.weightDtypes });
    const bar = progress(`eval ${spec} (sequential)`, requests.length);
    try {
      const curve = await runSequential(model, tokenizer, method, requests, {
        label: spec,
        batchSize: o.batchSize,
        every: o.every,
        edit: o.editOptions(spec),
        nas,
        pplTexts: o.pplTexts,
        wild: o.wild,
        nasSamples: o.nasSamples,
        outDir: o.out ? `${o.out}/${spec}` : undefined,
        meta: o.meta,
        onProgress: (d, _t, text) => bar.update(d, text),
      });
      curves.push(curve);
      bar.done();
      if (o.out) await writeCurveReport(o.out, curves);
    } finally {
      model.destroy();
    }
  }
  return curves;
}

/**
 * `runLocalizationStudy`: the workflow of Hase et al. 2023, "Does Localization Inform Editing?"
 * (google/belief-localization; methods.md 2(f)) on a CounterFact-format file. For every case: trace it,
 * edit it at every chosen layer with every method and objective, score each edit
 * (src/evaluate/localization/case.ts); then regress edit success on the tracing effect, on the layer
 * and on both (src/evaluate/localization/summary.ts), and write the per-case JSON, the summary, SVG
 * figures and an HTML report into the study folder (src/evaluate/localization/folder.ts). The run
 * resumes: cases already in the folder are kept.
 */
import { InputError } from "../../errors.ts";
import type { Tokenizer } from "../../io/tokenizer.ts";
import type { TransformerModel } from "../../model/transformer.ts";
import type { EditRequest } from "../../edit/requests.ts";
import { writeFileAtomic } from "../../io/atomic.ts";
import { localizationFigures, localizationHtml } from "../../report/localization_report.ts";
import {
  type CaseEditContext,
  type CaseResult,
  type CaseSettings,
  checkFtOverrides,
  type DroppedCase,
  studyCase,
} from "./case.ts";
import { modelFingerprint, openStudyFolder, readCase, writeCase } from "./folder.ts";
import { editsPerCase, EMBEDDING_LAYER, methodSpec, OBJECTIVES, STUDY_METHODS } from "./objectives.ts";
import { type StudySummary, summarize } from "./summary.ts";
import type { StudyLocalizationOutput } from "../../schema/study_localization_output.ts";
import { schemaTag, snakeKeys } from "../../schema/common.ts";

/** Defaults of the study settings (the reference's, see docs/notes/issue-16-locstudy.md). */
export const STUDY_DEFAULTS = {
  traceWindow: 5,
  editWindow: 5,
  samples: 10,
  seed: 1,
  noiseRng: "numpy",
  targetProb: "sequence",
  knownOnly: true,
  minPredProb: 0.02,
  scoreProb: "sequence",
} as const;

/** Options of {@link runLocalizationStudy}. */
export interface LocalizationStudyOptions {
  /** The study folder. */
  out: string;
  /** Names recorded in the folder (for messages and the report). */
  modelName: string;
  /** The data file's name. */
  dataFile: string;
  /** Settings every case uses (checked by {@link checkStudySettings}). */
  settings: CaseSettings;
  /** How the cases reach the editors (hparams, key statistics). */
  edit?: CaseEditContext;
  /** Progress: `done` of `total` units (a trace or an edit each), with a short text. */
  onProgress?: (done: number, total: number, text: string) => void;
}

/** What a study run did. */
export interface LocalizationStudyResult {
  /** The summary of every case in the folder. */
  summary: StudySummary;
  /** Whether the folder held an earlier run with the same model and settings. */
  resumed: boolean;
  /** Cases studied in this run (the others were on disk). */
  newCases: number;
  /** Files written: summary.json, the figures and report.html. */
  files: string[];
  /**
   * What summary.json holds (and `study localization --json` prints): the summary in snake_case
   * (schemas/engram-study-localization.json).
   */
  summaryJson: Record<string, unknown>;
}

/** Checks the settings against the model; errors name the flag. */
export function checkStudySettings(s: CaseSettings, nLayer: number): void {
  if (s.methods.length === 0) throw new InputError("no methods to study", { field: "--methods" });
  for (const m of s.methods) {
    if (!STUDY_METHODS.includes(m)) {
      throw new InputError(`unknown study method '${m}' (known: ${STUDY_METHODS.join(", ")})`, {
        field: "--methods",
      });
    }
  }
  if (s.objectives.length === 0) throw new InputError("no objectives to study", { field: "--objectives" });
  for (const o of s.objectives) {
    if (!OBJECTIVES.includes(o)) {
      throw new InputError(
        `unknown objective '${o}' (known: ${OBJECTIVES.join(", ")})`,
        { field: "--objectives" },
      );
    }
  }
  if (editsPerCase(s.methods, s.objectives, s.layers) === 0) {
    throw new InputError(
      `none of the methods ${s.methods.join(", ")} can run ${s.objectives.join(", ")}`,
      { field: "--objectives" },
    );
  }
  if (s.layers.length === 0) throw new InputError("no layers to edit", { field: "--layers" });
  for (const l of s.layers) {
    if (!(Number.isInteger(l) && l >= EMBEDDING_LAYER && l < nLayer)) {
      throw new InputError(
        `layer ${l} out of range: the model has layers 0..${nLayer - 1} (and −1, the embeddings)`,
        {
          field: "--layers",
        },
      );
    }
  }
  if (new Set(s.layers).size !== s.layers.length) {
    throw new InputError("--layers lists a layer twice", { field: "--layers" });
  }
  for (
    const [k, v] of [["traceWindow", s.traceWindow], ["editWindow", s.editWindow], [
      "samples",
      s.samples,
    ]] as const
  ) {
    if (!(Number.isInteger(v) && v >= 1)) {
      throw new InputError(`${k} must be a positive integer, got ${v}`, { field: k });
    }
  }
}

/** Runs (or resumes) the study of `requests` on `model`. */
export async function runLocalizationStudy(
  model: TransformerModel,
  tokenizer: Tokenizer,
  requests: EditRequest[],
  o: LocalizationStudyOptions,
): Promise<LocalizationStudyResult> {
  const s = o.settings;
  const nLayer = model.config.nLayer;
  checkStudySettings(s, nLayer);
  if (requests.length === 0) {
    throw new InputError("the data file holds no cases", { file: o.dataFile, field: "--data" });
  }
  // Every objective compares with or starts from target_true (and tracing explains it): refuse up front.
  requests.forEach((r, i) => {
    if (r.ground_truth === undefined) {
      throw new InputError(
        `record ${i} has no target_true (ground_truth): every objective (${
          s.objectives.join(", ")
        }) starts from it and tracing explains it`,
        { file: o.dataFile, field: `[${i}].ground_truth` },
      );
    }
  });
  for (const m of s.methods) {
    const h = o.edit?.hparams?.[m];
    if (h && methodSpec(m).editor === "ft") checkFtOverrides(h);
  }
  const settings = { ...s } as unknown as Record<string, unknown>;
  const header = {
    kind: "engram localization study" as const,
    fingerprint: modelFingerprint(model),
    model: o.modelName,
    data: o.dataFile,
    settings: { ...settings, hparams: o.edit?.hparams ?? {}, cases: requests.length },
  };
  const { resumed } = await openStudyFolder(o.out, header);
  const perCase = 1 + editsPerCase(s.methods, s.objectives, s.layers);
  const total = requests.length * perCase;
  const done: CaseResult[] = [];
  const dropped: DroppedCase[] = [];
  let newCases = 0;
  for (let i = 0; i < requests.length; i++) {
    let c = await readCase(o.out, i);
    if (!c) {
      c = await studyCase(
        model,
        tokenizer,
        requests[i],
        i,
        s,
        { ...o.edit, dataFile: o.dataFile },
        (d, _t, text) => o.onProgress?.(i * perCase + d, total, `case ${i}: ${text}`),
      );
      await writeCase(o.out, c);
      newCases++;
    }
    if ("dropped" in c) dropped.push(c);
    else done.push(c);
    o.onProgress?.((i + 1) * perCase, total, `case ${i} ${"dropped" in c ? "dropped" : "done"}`);
  }
  if (done.length === 0) {
    throw new InputError(
      `no usable case: ${dropped.map((d) => `record ${d.index}: ${d.dropped}`).join("; ")}`,
      { file: o.dataFile, field: "--data" },
    );
  }
  const summary = summarize(done, dropped, {
    nLayer,
    methods: s.methods,
    objectives: s.objectives,
    layers: s.layers,
  });
  const files: string[] = [];
  const write = async (name: string, text: string) => {
    await writeFileAtomic(`${o.out}/${name}`, text);
    files.push(`${o.out}/${name}`);
  };
  const summaryJson: StudyLocalizationOutput = {
    schema: schemaTag("study-localization", 1),
    model: o.modelName,
    data: o.dataFile,
    settings: snakeKeys(s),
    ...snakeKeys(summary),
  };
  await write("summary.json", JSON.stringify(summaryJson, null, 1) + "\n");
  const figures = localizationFigures(summary);
  await Deno.mkdir(`${o.out}/figures`, { recursive: true });
  for (const [name, svg] of figures) await write(`figures/${name}`, svg);
  await write(
    "report.html",
    localizationHtml(summary, figures, { model: o.modelName, data: o.dataFile, settings }),
  );
  return { summary, summaryJson, resumed, newCases, files };
}

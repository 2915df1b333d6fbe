/**
 * The schemas of every JSON document engram writes (command outputs, result files), by schema name.
 * Each document carries `schema: "<name>/<version>"`; the names here are those strings' name part.
 * `scripts/gen_schemas.ts` writes each as `schemas/<name>.json` (JSON Schema, by zod's `toJSONSchema`).
 *
 * @module
 */
import type { z } from "./zod.ts";
import { generateOutput, predictOutput } from "./predict_output.ts";
import { evalOutput } from "./eval_output.ts";
import {
  evalSequentialCurveFile,
  evalSequentialMeta,
  evalSequentialOutput,
  evalSequentialSummary,
} from "./eval_sequential_output.ts";
import { traceFactsOutput, traceOutput } from "./trace_output.ts";
import { attributeOutput, neuronsOutput } from "./attribute_output.ts";
import { atpOutput, logitLensOutput, recommendLayersOutput } from "./tools_output.ts";
import { editLinkOutput, editLogOutput, editOutput, revertCheckOutput } from "./edit_output.ts";
import {
  accuracyOutput,
  demoOutput,
  infoAdaptersOutput,
  infoOutput,
  trainCleanOutput,
  trainOutput,
  versionOutput,
} from "./misc_output.ts";
import { attributionStudySchema } from "./attribution_study.ts";
import { benchOutput } from "./bench_output.ts";
import {
  studyLocalizationCase,
  studyLocalizationHeader,
  studyLocalizationOutput,
} from "./study_localization_output.ts";

/** Output schemas by name (explicit map: adding a schema means adding it here). */
export const OUTPUT_SCHEMAS: Readonly<Record<string, z.ZodType>> = {
  "engram-predict": predictOutput,
  "engram-generate": generateOutput,
  "engram-trace": traceOutput,
  "engram-trace-facts": traceFactsOutput,
  "engram-eval": evalOutput,
  "engram-eval-sequential": evalSequentialOutput,
  "engram-eval-sequential-summary": evalSequentialSummary,
  "engram-eval-sequential-curve": evalSequentialCurveFile,
  "engram-eval-sequential-meta": evalSequentialMeta,
  "engram-neurons": neuronsOutput,
  "engram-attribute": attributeOutput,
  "engram-atp": atpOutput,
  "engram-logit-lens": logitLensOutput,
  "engram-recommend-layers": recommendLayersOutput,
  "engram-edit": editOutput,
  "engram-edit-log": editLogOutput,
  "engram-edit-link": editLinkOutput,
  "engram-revert-check": revertCheckOutput,
  "engram-accuracy": accuracyOutput,
  "engram-info": infoOutput,
  "engram-info-adapters": infoAdaptersOutput,
  "engram-version": versionOutput,
  "engram-demo": demoOutput,
  "engram-train": trainOutput,
  "engram-train-clean": trainCleanOutput,
  "engram-bench": benchOutput,
  "engram-attribution-study": attributionStudySchema,
  "engram-study-localization": studyLocalizationOutput,
  "engram-study-localization-header": studyLocalizationHeader,
  "engram-study-localization-case": studyLocalizationCase,
};

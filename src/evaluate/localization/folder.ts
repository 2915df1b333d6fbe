/**
 * The study folder: `study.json` (the model's fingerprint and the settings), one `cases/case_<i>.json`
 * per case (finished or dropped), `summary.json`, `figures/*.svg` and `report.html`, plus engram's output
 * marker. A run resumes: cases already on disk are kept. Resuming a folder written for another model
 * ({@link StudyModelMismatchError}) or with other settings ({@link StudySettingsMismatchError}) is refused.
 */
import { createHash } from "node:crypto";
import { InputError } from "../../errors.ts";
import { lstatOrUndefined, markerText, OUTPUT_MARKER, writeFileAtomic } from "../../io/atomic.ts";
import type { TransformerModel } from "../../model/transformer.ts";
import type { CaseResult, DroppedCase } from "./case.ts";
import { schemaTag, snakeKeys } from "../../schema/common.ts";
import {
  type StudyLocalizationCase,
  studyLocalizationCase,
  type StudyLocalizationHeader,
} from "../../schema/study_localization_output.ts";

/** The folder was written for a model with other weights or another config. */
export class StudyModelMismatchError extends InputError {}

/** The folder was written with other study settings (methods, objectives, layers, tracing). */
export class StudySettingsMismatchError extends InputError {}

/**
 * SHA-256 of the model's config and every weight (name, shape, float32 values, in name order): two
 * folders of the same weights have the same fingerprint wherever they lie.
 */
export function modelFingerprint(model: TransformerModel): string {
  const h = createHash("sha256");
  h.update(JSON.stringify(model.config));
  for (const name of [...model.weights.keys()].sort()) {
    const t = model.weights.get(name)!;
    h.update(`${name}:${t.shape.join("x")};`);
    h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return h.digest("hex");
}

/** The header of a study folder (written as `study.json`, snake_case: {@link headerJson}). */
export interface StudyHeader {
  kind: "engram localization study";
  fingerprint: string;
  model: string;
  data: string;
  settings: Record<string, unknown>;
}

/** Settings as written: snake_case keys, the per-method hparams (keyed by method) kept as they are. */
function settingsJson(settings: Record<string, unknown>): Record<string, unknown> {
  return snakeKeys(settings, [".hparams"]);
}

/** `study.json`'s document (schemas/engram-study-localization-header.json). */
export function headerJson(h: StudyHeader): StudyLocalizationHeader {
  return {
    schema: schemaTag("study-localization-header", 1),
    kind: h.kind,
    fingerprint: h.fingerprint,
    model: h.model,
    data: h.data,
    settings: settingsJson(h.settings) as StudyLocalizationHeader["settings"],
  };
}

/** Canonical JSON (sorted keys) for comparing settings. */
/** JSON with object keys sorted, so that two settings objects compare by value (the study folders' check). */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(",")}}`;
  }
  return JSON.stringify(v);
}

/** What every study folder's `study.json` holds, whatever the study. */
interface HeaderIdentity {
  kind: string;
  model: string;
  fingerprint: string;
}

/**
 * Reads the header `file` of a study folder being resumed and checks it is a `what` study of the same model
 * as `header` (kind, then weight fingerprint: {@link StudyModelMismatchError}); the caller compares settings.
 */
export async function readStudyHeader<H extends HeaderIdentity>(
  file: string,
  header: HeaderIdentity,
  what: string,
): Promise<H> {
  let old: H;
  try {
    old = JSON.parse(await Deno.readTextFile(file));
  } catch (e) {
    throw new InputError(`cannot read the study header: ${(e as Error).message}`, {
      file,
      field: "study.json",
    });
  }
  if (old.kind !== header.kind) {
    throw new InputError(
      `not ${/^[aeiou]/.test(what) ? "an" : "a"} ${what} study folder (kind '${old.kind}')`,
      {
        file,
        field: "kind",
      },
    );
  }
  if (old.fingerprint !== header.fingerprint) {
    throw new StudyModelMismatchError(
      `the study folder was written for another model (${old.model}, fingerprint ${
        String(old.fingerprint).slice(0, 12)
      }…), not ${header.model} (${header.fingerprint.slice(0, 12)}…): give a new --out`,
      { file, field: "fingerprint" },
    );
  }
  return old;
}

/** Path of case `index`'s file. */
export function casePath(dir: string, index: number): string {
  return `${dir}/cases/case_${index}.json`;
}

/**
 * Creates the study folder, or opens it for resuming after checking its header against `header`.
 * A folder that exists, is not empty and holds neither engram's marker nor a study header is refused.
 */
export async function openStudyFolder(dir: string, header: StudyHeader): Promise<{ resumed: boolean }> {
  const st = await lstatOrUndefined(dir);
  const headerFile = `${dir}/study.json`;
  if (st && !st.isDirectory) {
    throw new InputError(`${dir} exists and is not a folder`, { file: dir, field: "--out" });
  }
  if (st) {
    const h = await lstatOrUndefined(headerFile);
    if (h) {
      const old = await readStudyHeader<StudyHeader>(headerFile, header, "localization");
      // A folder of an earlier engram (camelCase settings, no schema) compares the same once converted.
      const oldSettings = settingsJson((old.settings ?? {}) as Record<string, unknown>);
      if (canonical(oldSettings) !== canonical(settingsJson(header.settings))) {
        throw new StudySettingsMismatchError(
          `the study folder was written with other settings (${canonical(oldSettings)}); ` +
            `resume with the same flags or give a new --out`,
          { file: headerFile, field: "settings" },
        );
      }
      await Deno.mkdir(`${dir}/cases`, { recursive: true });
      return { resumed: true };
    }
    const entries = [];
    for await (const e of Deno.readDir(dir)) entries.push(e.name);
    if (entries.length > 0 && !entries.includes(OUTPUT_MARKER)) {
      throw new InputError(`${dir} is a non-empty folder that engram did not write`, {
        file: dir,
        field: "--out",
      });
    }
  }
  await Deno.mkdir(`${dir}/cases`, { recursive: true });
  if (!(await lstatOrUndefined(`${dir}/${OUTPUT_MARKER}`))) {
    await writeFileAtomic(`${dir}/${OUTPUT_MARKER}`, markerText("localization study"));
  }
  await writeFileAtomic(headerFile, JSON.stringify(headerJson(header), null, 1) + "\n");
  return { resumed: false };
}

/**
 * Reads case `index` when it is on disk (a half-written or unreadable file, or one that does not match
 * `engram-study-localization-case/1`, counts as absent and is studied again). A file of an earlier engram
 * (no `schema`: the library's camelCase fields) is read as it is.
 */
export async function readCase(dir: string, index: number): Promise<CaseResult | DroppedCase | undefined> {
  let v;
  try {
    v = JSON.parse(await Deno.readTextFile(casePath(dir, index)));
  } catch {
    return undefined;
  }
  if (!v || typeof v !== "object" || v.index !== index) return undefined;
  if (!("schema" in v)) return v;
  const r = studyLocalizationCase.safeParse(v);
  return r.success ? caseFromJson(r.data) : undefined;
}

/** A case as written (schemas/engram-study-localization-case.json): the library's fields in snake_case. */
export function caseJson(c: CaseResult | DroppedCase): StudyLocalizationCase {
  const schema = schemaTag("study-localization-case", 1);
  if ("dropped" in c) return { schema, ...c };
  return {
    schema,
    ...c,
    trace: snakeKeys(c.trace),
    edits: c.edits.map(({ editedLayers, ...e }) => ({ ...e, edited_layers: editedLayers })),
  };
}

/** The inverse of {@link caseJson}. */
export function caseFromJson(v: StudyLocalizationCase): CaseResult | DroppedCase {
  if ("dropped" in v) {
    const { schema: _, ...d } = v;
    return d;
  }
  const { schema: _, trace: t, edits, ...rest } = v;
  return {
    ...rest,
    trace: {
      ids: t.ids,
      subjectRange: t.subject_range,
      answer: t.answer,
      predicted: t.predicted,
      known: t.known,
      pClean: t.p_clean,
      pCorrupt: t.p_corrupt,
      kinds: t.kinds.map((k) => ({
        kind: k.kind,
        window: k.window,
        subjectLastEffect: k.subject_last_effect,
        subjectLastFraction: k.subject_last_fraction,
        maxTokenFraction: k.max_token_fraction,
        peak: k.peak,
      })),
    },
    edits: edits.map(({ edited_layers, ...e }) => ({ ...e, editedLayers: edited_layers })),
  };
}

/** Writes case `index` atomically. */
export async function writeCase(dir: string, c: CaseResult | DroppedCase): Promise<void> {
  await writeFileAtomic(casePath(dir, c.index), JSON.stringify(caseJson(c), null, 1) + "\n");
}

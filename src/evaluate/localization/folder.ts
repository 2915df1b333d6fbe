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

/** What `study.json` holds. */
export interface StudyHeader {
  kind: "engram localization study";
  fingerprint: string;
  model: string;
  data: string;
  settings: Record<string, unknown>;
}

/** Canonical JSON (sorted keys) for comparing settings. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(",")}}`;
  }
  return JSON.stringify(v);
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
      let old: StudyHeader;
      try {
        old = JSON.parse(await Deno.readTextFile(headerFile));
      } catch (e) {
        throw new InputError(`cannot read the study header: ${(e as Error).message}`, {
          file: headerFile,
          field: "study.json",
        });
      }
      if (old.kind !== header.kind) {
        throw new InputError(`not a localization study folder (kind '${old.kind}')`, {
          file: headerFile,
          field: "kind",
        });
      }
      if (old.fingerprint !== header.fingerprint) {
        throw new StudyModelMismatchError(
          `the study folder was written for another model (${old.model}, fingerprint ${
            String(old.fingerprint).slice(0, 12)
          }…), not ${header.model} (${header.fingerprint.slice(0, 12)}…): give a new --out`,
          { file: headerFile, field: "fingerprint" },
        );
      }
      if (canonical(old.settings) !== canonical(header.settings)) {
        throw new StudySettingsMismatchError(
          `the study folder was written with other settings (${canonical(old.settings)}); ` +
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
  await writeFileAtomic(headerFile, JSON.stringify(header, null, 1) + "\n");
  return { resumed: false };
}

/** Reads case `index` when it is on disk (a half-written or unreadable file counts as absent). */
export async function readCase(dir: string, index: number): Promise<CaseResult | DroppedCase | undefined> {
  try {
    const v = JSON.parse(await Deno.readTextFile(casePath(dir, index)));
    return v && typeof v === "object" && v.index === index ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Writes case `index` atomically. */
export async function writeCase(dir: string, c: CaseResult | DroppedCase): Promise<void> {
  await writeFileAtomic(casePath(dir, c.index), JSON.stringify(c, null, 1) + "\n");
}

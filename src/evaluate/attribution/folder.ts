/**
 * The attribution study folder (`--out DIR`): `study.json` (the model's weight fingerprint and the
 * settings), one `tests/test_<i>.json` per finished test, `summary.json`, `figures/*.svg`, `report.html`
 * and engram's output marker. An existing folder is refused (code "exists") unless `--resume` (same model
 * and settings: finished tests are kept) or `--overwrite` (an engram-written folder is cleared).
 *
 * @module
 */
import { EngramError } from "../../errors.ts";
import {
  checkReplaceable,
  lstatOrUndefined,
  markerText,
  OUTPUT_MARKER,
  writeFileAtomic,
} from "../../io/atomic.ts";
import { canonical, readStudyHeader, StudySettingsMismatchError } from "../localization/folder.ts";
import type { TestRecord } from "./record.ts";

/** What `study.json` holds. */
export interface AttributionHeader {
  kind: "engram attribution study";
  fingerprint: string;
  model: string;
  settings: Record<string, unknown>;
}

/** Path of test `index`'s file. */
export function testPath(dir: string, index: number): string {
  return `${dir}/tests/test_${index}.json`;
}

/**
 * Creates the folder, or (with `resume`) opens it after checking its header: another model's weights
 * ({@link StudyModelMismatchError}) or other settings ({@link StudySettingsMismatchError}) are refused.
 */
export async function openAttributionFolder(
  dir: string,
  header: AttributionHeader,
  opts: { overwrite?: boolean; resume?: boolean } = {},
): Promise<{ resumed: boolean }> {
  const st = await lstatOrUndefined(dir);
  const headerFile = `${dir}/study.json`;
  if (st && opts.resume && (await lstatOrUndefined(headerFile))) {
    const old = await readStudyHeader<AttributionHeader>(headerFile, header, "attribution");
    if (canonical(old.settings) !== canonical(header.settings)) {
      throw new StudySettingsMismatchError(
        `the study folder was written with other settings (${canonical(old.settings)}); ` +
          `resume with the same flags or give a new --out`,
        { file: headerFile, field: "settings" },
      );
    }
    await Deno.mkdir(`${dir}/tests`, { recursive: true });
    return { resumed: true };
  }
  if (st) {
    if (opts.resume && !opts.overwrite) {
      throw new EngramError("exists", "exists but holds no attribution study to resume (no study.json)", {
        file: dir,
        field: "--out",
      });
    }
    await checkReplaceable(dir, opts.overwrite === true, "--out");
    await Deno.remove(dir, { recursive: true });
  }
  await Deno.mkdir(`${dir}/tests`, { recursive: true });
  await writeFileAtomic(`${dir}/${OUTPUT_MARKER}`, markerText("attribution study"));
  await writeFileAtomic(headerFile, JSON.stringify(header, null, 1) + "\n");
  return { resumed: false };
}

/** Reads test `index` when it is on disk (a half-written or unreadable file counts as absent). */
export async function readTest(dir: string, index: number): Promise<TestRecord | undefined> {
  try {
    const v = JSON.parse(await Deno.readTextFile(testPath(dir, index)));
    return v && typeof v === "object" && v.index === index ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Writes test `index` atomically. */
export async function writeTest(dir: string, t: TestRecord): Promise<void> {
  await writeFileAtomic(testPath(dir, t.index), JSON.stringify(t, null, 1) + "\n");
}

/**
 * The link from an edited model folder to its edit log, and the check that finds a model without its log.
 *
 * `engram edit` writes `engram_edit.json` into the edited model: the log folder's path (relative to the
 * model folder) and the SHA-256 of the log's log.json bytes. `engram revert --check` reads it and reports
 * a missing log, a log that is not this edit's (replaced since), or model weights that are not the ones
 * the edit produced.
 */
import { isAbsolute, join, relative, resolve } from "node:path";
import { InputError } from "../errors.ts";
import { EDIT_LINK } from "../io/model_folder.ts";
import { excerpt } from "../io/excerpt.ts";
import { isJsonObject, own, parseStrictJson } from "../io/strict_json.ts";
import type { WeightMap } from "../model/config.ts";
import { readEditLog, sha256F32 } from "./log.ts";

/** SHA-256 (hex) of bytes. */
export async function sha256Bytes(b: Uint8Array): Promise<string> {
  const h = new Uint8Array(await crypto.subtle.digest("SHA-256", b as Uint8Array<ArrayBuffer>));
  return Array.from(h, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** The content of {@link EDIT_LINK} for the model folder `modelDir` whose log is `logDir`. */
export async function editLinkText(
  modelDir: string,
  logDir: string,
  logJson: string,
  method: string,
): Promise<string> {
  return JSON.stringify(
    {
      schema: "engram-edit-link/1",
      comment: "written by engram edit: the edit log of this model (undo: engram revert)",
      log: relative(resolve(modelDir), resolve(logDir)),
      log_json_sha256: await sha256Bytes(new TextEncoder().encode(logJson)),
      method,
    },
    null,
    2,
  ) + "\n";
}

/** What {@link checkEditedModel} found. */
export interface EditCheck {
  log: string;
  method: string;
  weights: string[];
}

/**
 * Checks that edited model folder `modelDir` (with weights `weights`) has its log: `logDir`, or the one
 * its {@link EDIT_LINK} names. Throws {@link InputError} naming the file and field for a model without a
 * link, a missing or unreadable log, a log that is not this edit's, or weights the edit did not produce.
 */
export async function checkEditedModel(
  modelDir: string,
  weights: WeightMap,
  logDir?: string,
): Promise<EditCheck> {
  const lf = join(modelDir, EDIT_LINK);
  let link: Record<string, unknown> | undefined;
  try {
    const v = parseStrictJson(await Deno.readTextFile(lf), { file: lf, maxDepth: 8 });
    if (!isJsonObject(v)) throw new InputError("must hold a JSON object", { file: lf });
    link = v;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw e instanceof InputError ? e : new InputError(
        `cannot read: ${(e as Error).message}`,
        { file: lf },
      );
    }
    if (logDir === undefined) {
      throw new InputError(`no ${EDIT_LINK}: not a model engram edit wrote (give --log to check one)`, {
        file: lf,
      });
    }
  }
  let log = logDir;
  if (log === undefined) {
    const rel = own(link!, "log");
    if (typeof rel !== "string" || rel === "") {
      throw new InputError(`must name the log folder, got ${excerpt(rel)}`, { file: lf, field: "log" });
    }
    log = isAbsolute(rel) ? rel : resolve(modelDir, rel);
  }
  const jf = join(log, "log.json");
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(jf);
  } catch (e) {
    throw new InputError(
      `this edited model has no edit log: ${(e as Error).message} (it cannot be reverted)`,
      { file: jf, field: logDir === undefined ? `${EDIT_LINK} log` : "--log" },
    );
  }
  const want = link ? own(link, "log_json_sha256") : undefined;
  if (want !== undefined && want !== await sha256Bytes(bytes)) {
    throw new InputError(
      `is not the log of this edited model (its checksum differs from the one in ${lf}: replaced since?)`,
      { file: jf, field: "log_json_sha256" },
    );
  }
  const parsed = await readEditLog(log);
  for (const w of parsed.json.weights) {
    const cur = weights.get(w.name);
    if (!cur || (await sha256F32(cur.data)) !== w.edited_sha256) {
      throw new InputError(`weight '${w.name}' is not the one this log's edit produced`, {
        file: join(modelDir, "model.safetensors"),
        field: w.name,
      });
    }
  }
  return { log, method: parsed.json.method, weights: parsed.json.weights.map((w) => w.name) };
}

/**
 * The `--hparams` flag of `edit` and `eval`, read and checked before any work starts:
 *
 * - `FILE` or an inline JSON object `{...}`: the same overrides for every method;
 * - `METHOD=FILE[,METHOD=FILE...]` (e.g. `rome=rome.json,ft-l=ftl.json`): one file per method; methods
 *   not named use their defaults.
 *
 * Every file is read and its values checked against the method's schema and the model's config (layers
 * in range, known keys), so that a typo in the last method's file fails before the first method runs.
 */
import { isJsonObject, parseStrictJson } from "../io/strict_json.ts";
import { ConfigError, InputError } from "../errors.ts";
import type { ModelConfig } from "../model/config.ts";
import { readHparamsFile } from "../edit/hparams.ts";
import { checkMemitTemplates, memitDefaults, mergeHparams, romeDefaults } from "../edit/hparams.ts";
import { ftDefaults, ftlDefaults, mergeFtHparams } from "../edit/ft.ts";
import { knDefaults, mergeKnHparams } from "../edit/kn.ts";
import { alphaEditDefaults, mergeAlphaEditHparams } from "../edit/alphaedit_hparams.ts";
import { emmetDefaults, mergeEmmetHparams } from "../edit/emmet_hparams.ts";

/** Overrides per method (absent: defaults), with the file each came from. */
export type HparamsByMethod = Map<string, { hparams: Record<string, unknown>; file?: string }>;

const PAIR = /^([A-Za-z0-9_-]+)=(.+)$/;

async function readObject(spec: string, file?: string): Promise<Record<string, unknown>> {
  let o: unknown;
  if (spec.trim().startsWith("{")) {
    // The strict parser: duplicate keys, prototype-named keys and deep nesting are typed errors, as in a file.
    o = parseStrictJson(spec, {
      maxDepth: 16,
      error: (msg, field) =>
        new ConfigError(`--hparams is not valid JSON: ${msg}`, { field: field ?? "--hparams" }),
    });
  } else o = await readHparamsFile(spec);
  if (!isJsonObject(o)) throw new ConfigError("hparams must be a JSON object", { file, field: "--hparams" });
  return o;
}

/**
 * Parses `--hparams` for `methods`. A `NAME=FILE` list must name only methods in `methods`, each once;
 * a value that is not such a list is one FILE (or JSON) for all methods.
 */
export async function readHparamsFlag(
  value: string | undefined,
  methods: string[],
): Promise<HparamsByMethod> {
  const out: HparamsByMethod = new Map();
  if (value === undefined) return out;
  const json = value.trim().startsWith("{");
  const parts = json ? [] : value.split(",");
  const pairs = parts.map((p) => p.match(PAIR));
  // A list when it has several parts or names a requested method; a single path that merely contains
  // "=" stays a path.
  const isMap = parts.length > 1 ||
    (pairs.length === 1 && pairs[0] !== null && methods.includes(pairs[0][1]));
  if (!isMap) {
    const file = json ? undefined : value;
    const o = await readObject(value, file);
    for (const m of methods) out.set(m, { hparams: o, file });
    return out;
  }
  parts.forEach((p, i) => {
    const m = pairs[i];
    if (m === null) {
      throw new InputError(
        `--hparams: '${p}' is not METHOD=FILE (give FILE, JSON, or METHOD=FILE,METHOD=FILE)`,
        {
          field: "--hparams",
        },
      );
    }
    if (!methods.includes(m[1])) {
      throw new InputError(
        `--hparams: '${m[1]}' is not one of the methods given with --method (${methods.join(", ")})`,
        {
          field: "--hparams",
        },
      );
    }
    if (out.has(m[1])) throw new InputError(`--hparams names '${m[1]}' twice`, { field: "--hparams" });
    out.set(m[1], { hparams: {}, file: m[2] });
  });
  for (const [m, e] of out) out.set(m, { hparams: await readObject(e.file!, e.file), file: e.file });
  return out;
}

/**
 * Checks `hparams` as `method`'s editor will (types, ranges, known keys, layers against `cfg`); errors
 * name the file and key. Methods without a known schema are only checked to be JSON objects.
 */
export function validateHparams(
  method: string,
  hparams: Record<string, unknown>,
  cfg: ModelConfig,
  file?: string,
) {
  switch (method) {
    case "rome":
      return mergeHparams(romeDefaults(cfg), hparams, cfg, file);
    case "memit":
      return checkedMemit(mergeHparams(memitDefaults(cfg), hparams, cfg, file), file);
    case "alphaedit":
      return checkedMemit(mergeAlphaEditHparams(alphaEditDefaults(cfg), hparams, cfg, file), file);
    case "emmet":
      return checkedMemit(mergeEmmetHparams(emmetDefaults(cfg), hparams, cfg, file), file);
    case "ft-l":
      return mergeFtHparams(ftlDefaults(cfg), hparams, cfg, file);
    case "ft":
      return mergeFtHparams(ftDefaults(cfg), hparams, cfg, file);
    case "kn":
      return mergeKnHparams(knDefaults(cfg), hparams, cfg, file);
    default:
      return hparams;
  }
}

function checkedMemit<T extends Parameters<typeof checkMemitTemplates>[0]>(hp: T, file?: string): T {
  checkMemitTemplates(hp, file);
  return hp;
}

/**
 * engram's JSON documents by name: every input it reads (hparams, requests, facts, configs) and every output
 * it writes (`"schema": "engram-<name>/<major>"`) has a zod schema here, published as JSON Schema in
 * `schemas/<name>.json`. This module gives library users the same checks without zod in their types.
 *
 * @example Validate a result file engram wrote, and an hparams file before an edit
 * ```ts
 * import { validateInput, validateOutput } from "./mod.ts";
 * const version = JSON.parse(new TextDecoder().decode(
 *   new Deno.Command(Deno.execPath(), { args: ["run", "-P", "src/cli.ts", "version", "--json"] }).outputSync().stdout,
 * ));
 * validateOutput(version); // "engram-version"
 * validateInput("hparams_rome", { layers: [0], fact_token: "last" }, { file: "rome.json" });
 * ```
 *
 * @module
 */
import { InputError } from "../errors.ts";
import { INPUT_SCHEMAS } from "./inputs.ts";
import { OUTPUT_SCHEMAS } from "./outputs.ts";
import { type InputWhere, parseInput } from "./validate.ts";
import { z } from "./zod.ts";

/** The names of the input schemas (`schemas/<name>.json`), e.g. `hparams_rome`, `requests`, `facts`. */
export const INPUT_SCHEMA_NAMES: readonly string[] = Object.freeze(Object.keys(INPUT_SCHEMAS).sort());

/** The names of the output schemas (`schemas/<name>.json`), e.g. `engram-trace`, `engram-eval`. */
export const OUTPUT_SCHEMA_NAMES: readonly string[] = Object.freeze(Object.keys(OUTPUT_SCHEMAS).sort());

function named(map: Readonly<Record<string, z.ZodType>>, name: string, kind: string): z.ZodType {
  const s = Object.hasOwn(map, name) ? map[name] : undefined;
  if (!s) throw new InputError(`no ${kind} schema '${name}' (one of ${Object.keys(map).sort().join(", ")})`);
  return s;
}

/**
 * Checks `value` (the parsed JSON of an input file) against the input schema `name` and returns it as the
 * schema parses it (defaults filled where the schema has them). A mismatch throws an `InputSchemaError`
 * naming `where.file`, the record and the JSON path of the first problem.
 */
export function validateInput(name: string, value: unknown, where: InputWhere = {}): unknown {
  return parseInput(named(INPUT_SCHEMAS, name, "input"), value, where);
}

/**
 * Checks a JSON document engram wrote against the output schema its `schema` field names
 * (`engram-<name>/<major>`) and returns that name. A document without a known `schema`, or one that does not
 * match it, throws an `InputSchemaError` naming `where.file` and the JSON path of the first problem.
 */
export function validateOutput(doc: unknown, where: InputWhere = {}): string {
  const tag = (doc !== null && typeof doc === "object" && "schema" in doc) ? doc.schema : undefined;
  if (typeof tag !== "string" || !/^engram-[a-z0-9-]+\/\d+$/.test(tag)) {
    throw new InputError(`${where.file ? `${where.file}: ` : ""}$.schema: expected "engram-<name>/<major>"`, {
      file: where.file,
      field: "schema",
    });
  }
  const name = tag.slice(0, tag.indexOf("/"));
  parseInput(named(OUTPUT_SCHEMAS, name, "output"), doc, where);
  return name;
}

/** The JSON Schema (draft 2020-12) of the input or output schema `name`, as `schemas/<name>.json` holds it. */
export function jsonSchema(name: string): Record<string, unknown> {
  const input = Object.hasOwn(INPUT_SCHEMAS, name);
  const s = input ? INPUT_SCHEMAS[name] : named(OUTPUT_SCHEMAS, name, "input or output");
  return { $id: `engram/${name}`, ...z.toJSONSchema(s, { io: input ? "input" : "output" }) };
}

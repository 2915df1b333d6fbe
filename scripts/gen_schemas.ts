/**
 * Writes `schemas/<name>.json`, the JSON Schema of every input and output document of engram, from the
 * zod schemas in `src/schema/` (the one source of the TypeScript types too). Run after changing a schema:
 * `deno run -P scripts/gen_schemas.ts`; `--check` exits 1 when a committed file is stale or missing, or
 * when `schemas/` holds a file no schema writes.
 */
import { jsonSchema } from "../src/schema/mod.ts";
import { INPUT_SCHEMAS } from "../src/schema/inputs.ts";
import { OUTPUT_SCHEMAS } from "../src/schema/outputs.ts";

/** The JSON Schema files by file name (`<name>.json`), as their text. */
export function schemaFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const map of [INPUT_SCHEMAS, OUTPUT_SCHEMAS]) {
    for (const name of Object.keys(map)) {
      if (!/^[a-z0-9_.-]+$/.test(name)) throw new Error(`schema name '${name}' has unusual characters`);
      const file = `${name}.json`;
      if (files.has(file)) throw new Error(`schema '${name}' is both an input and an output schema`);
      files.set(file, JSON.stringify(jsonSchema(name), null, 2) + "\n");
    }
  }
  return files;
}

if (import.meta.main) {
  const dir = new URL("../schemas/", import.meta.url);
  const files = schemaFiles();
  const present = new Set<string>();
  try {
    for (const e of Deno.readDirSync(dir)) if (e.isFile && e.name.endsWith(".json")) present.add(e.name);
  } catch { /* no folder yet */ }
  const check = Deno.args.includes("--check");
  const stale: string[] = [];
  for (const [file, text] of files) {
    let old: string | undefined;
    try {
      old = Deno.readTextFileSync(new URL(file, dir));
    } catch { /* missing */ }
    if (old === text) continue;
    if (check) stale.push(file);
    else {
      Deno.mkdirSync(dir, { recursive: true });
      Deno.writeTextFileSync(new URL(file, dir), text);
    }
  }
  const orphans = [...present].filter((f) => !files.has(f));
  if (check) {
    if (stale.length || orphans.length) {
      console.error(
        `schemas/ is stale: ${
          [...stale.map((f) => `${f} differs`), ...orphans.map((f) => `${f} has no schema`)]
            .join(", ")
        }; run deno run -P scripts/gen_schemas.ts`,
      );
      Deno.exit(1);
    }
  } else for (const f of orphans) Deno.removeSync(new URL(f, dir));
}

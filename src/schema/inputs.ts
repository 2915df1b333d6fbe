/**
 * The schemas of every JSON input engram reads (hparams, request and fact files, configs), by name.
 * `scripts/gen_schemas.ts` writes each as `schemas/<name>.json` (JSON Schema, by zod's `toJSONSchema`).
 *
 * @module
 */
import type { z } from "./zod.ts";

/** Input schemas by name (explicit map: adding a schema means adding it here). */
export const INPUT_SCHEMAS: Readonly<Record<string, z.ZodType>> = {};

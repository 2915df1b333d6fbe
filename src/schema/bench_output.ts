/**
 * Output schema of `engram bench --json` / `--out FILE` (`engram-bench/3`; `bench compare` also reads
 * the camelCase records of `engram-bench/2`).
 *
 * @module
 */
import { z } from "./zod.ts";
import { schemaField } from "./common.ts";

/** One measured figure. */
export const benchFigure = z.strictObject({
  name: z.string(),
  value: z.number(),
  unit: z.string(),
  higher_is_better: z.boolean(),
  baseline: z.strictObject({ name: z.string(), value: z.number(), ratio: z.number() }).optional()
    .describe("a same-run reference and value / reference"),
  load1: z.number().describe("1-minute load average when measured"),
  detail: z.string().optional(),
});

/** `engram bench --json`. */
export const benchOutput = z.strictObject({
  schema: schemaField("bench", 3),
  engram: z.string(),
  deno: z.string(),
  v8: z.string(),
  date: z.string(),
  command: z.string(),
  host: z.strictObject({
    cpus: z.int(),
    loadavg_start: z.array(z.number()),
    loadavg_end: z.array(z.number()),
  }),
  adapter: z.strictObject({
    vendor: z.string(),
    architecture: z.string(),
    device: z.string(),
    description: z.string(),
    is_fallback_adapter: z.boolean(),
    max_storage_buffer_binding_size: z.number(),
    max_buffer_size: z.number(),
    max_compute_workgroup_storage_size: z.number(),
    max_compute_invocations_per_workgroup: z.number(),
    backend: z.string().nullable(),
    backend_source: z.string().optional(),
    driver: z.string().optional(),
    subgroup_min_size: z.number().optional(),
    subgroup_max_size: z.number().optional(),
    limits: z.record(z.string(), z.number()).describe("the device's WebGPU limits, snake_case"),
    features: z.array(z.string()),
  }),
  matmul_variants: z.record(z.string(), z.string()).describe("the tuned matmul variant per transpose case"),
  figures: z.array(benchFigure),
  raw: z.record(z.string(), z.unknown()).describe("each section's measurements"),
});
/** What `engram bench --json` prints. */
export type BenchOutput = z.infer<typeof benchOutput>;

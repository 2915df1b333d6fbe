/**
 * The schemas of every JSON input engram reads (hparams, request and fact files, configs), by name.
 * `scripts/gen_schemas.ts` writes each as `schemas/<name>.json` (JSON Schema, by zod's `toJSONSchema`).
 *
 * @module
 */
import type { z } from "./zod.ts";
import { HPARAMS_FILE_SCHEMAS } from "./hparams.ts";
import { REQUEST_RECORD, REQUESTS_FILE } from "./requests.ts";
import { FACT_RECORD, FACTS_FILE } from "./facts.ts";
import { HF_CONFIG } from "./hf_config.ts";
import { CORPUS_RECORD, STATS_DECLARATION_FILE, TRAIN_CONFIG_FILE } from "./train.ts";

/** Input schemas by name (explicit map: adding a schema means adding it here). */
export const INPUT_SCHEMAS: Readonly<Record<string, z.ZodType>> = {
  hparams_rome: HPARAMS_FILE_SCHEMAS.rome,
  hparams_memit: HPARAMS_FILE_SCHEMAS.memit,
  hparams_alphaedit: HPARAMS_FILE_SCHEMAS.alphaedit,
  hparams_emmet: HPARAMS_FILE_SCHEMAS.emmet,
  hparams_ft: HPARAMS_FILE_SCHEMAS.ft,
  hparams_kn: HPARAMS_FILE_SCHEMAS.kn,
  /** A requests file as one JSON document (JSON lines: each line is a `request_record`). */
  requests: REQUESTS_FILE,
  request_record: REQUEST_RECORD,
  /** A `trace --facts` file as a JSON array (JSON lines: each line is a `fact_record`). */
  facts: FACTS_FILE,
  fact_record: FACT_RECORD,
  /** `engram train --config`. */
  train_config: TRAIN_CONFIG_FILE,
  /** One line of a training corpus (JSON lines). */
  corpus_record: CORPUS_RECORD,
  /** A model folder's config.json (the fields engram reads; the rest pass through). */
  hf_config: HF_CONFIG,
  /** A model folder's engram_stats.json. */
  engram_stats: STATS_DECLARATION_FILE,
};

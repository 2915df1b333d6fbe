/**
 * The edit options a model folder ships: its hyper-parameters for a method (`hparams/<method>.json`,
 * e.g. fixtures/world/model/hparams/rome.json) and its declared statistics corpus (`engram_stats.json`),
 * so that a library caller edits a loaded model as `engram edit` would, without re-reading them by hand.
 */
import { existsSync } from "node:fs";
import type { EditOptions } from "./apply.ts";
import { readHparamsFile } from "./hparams.ts";
import { declaredStatsCorpus } from "./stats.ts";

/**
 * `{ hparams, statsCorpus }` for editing the model of folder `dir` with `method`: the folder's
 * `hparams/<method>.json` when present (else none: the method's defaults apply) and the corpus its
 * `engram_stats.json` declares (else none). Spread it into {@link EditOptions} and add your own options.
 */
export async function modelEditOptions(dir: string, method: string): Promise<EditOptions> {
  const file = `${dir}/hparams/${method.toLowerCase()}.json`;
  const opts: EditOptions = {};
  if (existsSync(file)) opts.hparams = (await readHparamsFile(file)) as Record<string, unknown>;
  const corpus = await declaredStatsCorpus(dir);
  if (corpus) opts.statsCorpus = corpus;
  return opts;
}

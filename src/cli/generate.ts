/** `engram generate`: greedy or sampled continuation of a prompt. */
import { bosFlag, COMMON_FLAGS, FACT_FLAGS, intFlag, numFlag, parseIds, required } from "./args.ts";
import { type CommandSpec, parseCommand } from "./spec.ts";
import { loadModel } from "../model/load.ts";
import { promptIds } from "../prompt/encode.ts";
import { withFieldNames } from "../prompt/errors.ts";
import { generate } from "../model/generate.ts";
import type { GenerateOutput } from "../schema/predict_output.ts";
import { schemaTag } from "../schema/common.ts";

/** Flags and help of `engram generate`. */
export const generateSpec: CommandSpec = {
  name: "generate",
  summary: "greedy (temperature 0, the default) or sampled continuation of a prompt",
  usage: 'generate --model DIR (--text "..." | --ids 1,2,3) [--max-tokens N] [--temperature T] [--top-k K] ' +
    "[--seed S] [--no-cache] [--logprobs] [--bos auto|on|off] [--json]",
  description: `Stops after --max-tokens or at the tokenizer's end-of-text token. --json prints {"schema":
    "engram-generate/1", "prompt_ids", "generated_ids" (the new tokens), "text", "stopped_by", "cached"}
    (schemas/engram-generate.json).`,
  flags: {
    model: COMMON_FLAGS.model,
    text: { type: "string", value: '"..."', help: "the prompt (or --ids)" },
    ids: { type: "string", value: "1,2,3", help: "token ids of the prompt, comma-separated, run as given" },
    "max-tokens": {
      type: "int",
      value: "N",
      default: 20,
      unit: "tokens",
      help: "tokens to generate at most",
    },
    temperature: { type: "number", value: "T", default: 0, help: "sampling temperature; 0 is greedy" },
    "top-k": { type: "int", value: "K", default: 0, help: "sample among the K most likely tokens; 0 is all" },
    seed: { type: "int", value: "S", default: 0, help: "seed of the sampler (mulberry32)" },
    "no-cache": {
      type: "boolean",
      help: "recompute the whole sequence for every new token instead of attending over the KV cache",
    },
    logprobs: { type: "boolean", help: "with --json, also print each generated token's log-probability" },
    bos: COMMON_FLAGS.bos,
    json: COMMON_FLAGS.json,
  },
  examples: ['generate --model fixtures/world/model --text "Narnux Zava was born in" --max-tokens 5'],
};

/** Runs `generate`; prints the continuation (or JSON with --json). */
export async function generateCommand(argv: string[]): Promise<void> {
  const f = parseCommand(generateSpec, argv);
  const lm = await loadModel(required(f, "model", "generate"), { bos: bosFlag(f) });
  const explicit = f.ids !== undefined ? parseIds(f.ids as string) : undefined;
  const ids = withFieldNames(FACT_FLAGS, () => promptIds(lm, f.text as string | undefined, explicit));
  const res = await generate(lm.model, ids, {
    maxTokens: intFlag(f, "max-tokens", 20, 0, 100000),
    temperature: numFlag(f, "temperature", 0, 0),
    topK: intFlag(f, "top-k", 0, 0),
    seed: intFlag(f, "seed", 0, 0, 2 ** 32 - 1),
    eosId: lm.tokenizer?.eosId,
    cache: !f["no-cache"],
  });
  const text = lm.tokenizer ? lm.tokenizer.decode(res.ids) : null;
  if (f.json) {
    const out: GenerateOutput = {
      schema: schemaTag("generate", 1),
      prompt_ids: ids,
      generated_ids: res.ids,
      text,
      stopped_by: res.stoppedBy,
      cached: res.cached,
      ...(f.logprobs ? { token_logprobs: res.tokenLogprobs } : {}),
    };
    console.log(JSON.stringify(out));
  } else console.log(text !== null ? (f.text ?? "") + text : res.ids.join(" "));
  lm.model.destroy();
}

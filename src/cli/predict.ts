/** `engram predict`: next-token log-probabilities for a prompt. */
import { bosFlag, COMMON_FLAGS, FACT_FLAGS, intFlag, parseIds, required } from "./args.ts";
import { type CommandSpec, parseCommand } from "./spec.ts";
import { loadModel } from "../model/load.ts";
import { promptIds } from "../prompt/encode.ts";
import { withFieldNames } from "../prompt/errors.ts";
import { topK } from "../numeric/mod.ts";
import type { PredictOutput } from "../schema/predict_output.ts";
import { schemaTag } from "../schema/common.ts";

/** Flags and help of `engram predict`. */
export const predictSpec: CommandSpec = {
  name: "predict",
  summary: "next-token log-probabilities of the prompt's last position",
  usage: 'predict --model DIR (--text "..." | --ids 1,2,3) [--top K] [--bos auto|on|off] [--json]',
  description: `--json prints one object {"schema": "engram-predict/1", "prompt_ids", "top": [{"id", "token",
    "logprob"}...], "logprobs"} (schemas/engram-predict.json), where logprobs is the full log-probability
    vector (natural log) of the next token. Text is encoded with the
    model's BOS convention (--bos); --ids are run as given.`,
  flags: {
    model: COMMON_FLAGS.model,
    text: { type: "string", value: '"..."', help: "the prompt (or --ids)" },
    ids: { type: "string", value: "1,2,3", help: "token ids of the prompt, comma-separated, run as given" },
    top: { type: "int", value: "K", default: 10, help: "how many of the most likely next tokens to print" },
    bos: COMMON_FLAGS.bos,
    json: COMMON_FLAGS.json,
  },
  examples: ['predict --model fixtures/world/model --text "Narnux Zava was born in" --top 5'],
};

/** Runs `predict`: JSON (`engram-predict/1`: prompt_ids, top, logprobs) with --json, a table otherwise. */
export async function predictCommand(argv: string[]): Promise<void> {
  const f = parseCommand(predictSpec, argv);
  const dir = required(f, "model", "predict");
  const k = intFlag(f, "top", 10, 1);
  const lm = await loadModel(dir, { bos: bosFlag(f) });
  // Text gets the model's BOS policy (src/prompt); explicit --ids are run as given.
  const explicit = f.ids !== undefined ? parseIds(f.ids as string) : undefined;
  const ids = withFieldNames(FACT_FLAGS, () => promptIds(lm, f.text as string | undefined, explicit));
  const { logprobs } = await lm.model.forward([ids]);
  const lp = logprobs[0];
  const tok = (id: number) => lm.tokenizer?.tokenString(id) ?? null;
  const top = topK(lp, k).map((id) => ({ id, token: tok(id), logprob: lp[id] }));
  if (f.json) {
    const out: PredictOutput = {
      schema: schemaTag("predict", 1),
      prompt_ids: ids,
      top,
      logprobs: Array.from(lp),
    };
    console.log(JSON.stringify(out));
  } else {
    console.log(`prompt ids: ${ids.join(" ")}`);
    for (const t of top) {
      console.log(
        `${String(t.id).padStart(7)}  ${t.logprob.toFixed(4).padStart(9)}  p=${
          Math.exp(t.logprob).toFixed(4)
        }  ${JSON.stringify(t.token)}`,
      );
    }
  }
  lm.model.destroy();
}

/** `engram generate`: greedy or sampled continuation of a prompt. */
import { bosFlag, FACT_FLAGS, intFlag, numFlag, parseFlags, parseIds, required } from "./args.ts";
import { loadModel } from "../model/load.ts";
import { promptIds } from "../prompt/encode.ts";
import { withFieldNames } from "../prompt/errors.ts";
import { generate } from "../model/generate.ts";

/** Runs `generate`; prints the continuation (or JSON with --json). */
export async function generateCommand(argv: string[]): Promise<void> {
  const f = parseFlags("generate", argv, {
    model: { type: "string" },
    text: { type: "string" },
    ids: { type: "string" },
    "max-tokens": { type: "string" },
    temperature: { type: "string" },
    "top-k": { type: "string" },
    seed: { type: "string" },
    bos: { type: "string" },
    json: { type: "boolean" },
  });
  const lm = await loadModel(required(f, "model", "generate"), { bos: bosFlag(f) });
  const explicit = f.ids !== undefined ? parseIds(f.ids as string) : undefined;
  const ids = withFieldNames(FACT_FLAGS, () => promptIds(lm, f.text as string | undefined, explicit));
  const res = await generate(lm.model, ids, {
    maxTokens: intFlag(f, "max-tokens", 20, 0, 100000),
    temperature: numFlag(f, "temperature", 0, 0),
    topK: intFlag(f, "top-k", 0, 0),
    seed: intFlag(f, "seed", 0, 0, 2 ** 32 - 1),
    eosId: lm.tokenizer?.eosId,
  });
  const text = lm.tokenizer ? lm.tokenizer.decode(res.ids) : null;
  if (f.json) console.log(JSON.stringify({ prompt_ids: ids, ids: res.ids, text, stopped_by: res.stoppedBy }));
  else console.log(text !== null ? (f.text ?? "") + text : res.ids.join(" "));
  lm.model.destroy();
}

/** `engram predict`: next-token log-probabilities for a prompt. */
import { bosFlag, FACT_FLAGS, intFlag, parseFlags, parseIds, required } from "./args.ts";
import { loadModel } from "../model/load.ts";
import { promptIds } from "../prompt/encode.ts";
import { withFieldNames } from "../prompt/errors.ts";
import { topK } from "../numeric/mod.ts";

/** Runs `predict`; prints JSON `{ids, top: [{id, token, logprob}], logprobs}` with --json, a table otherwise. */
export async function predictCommand(argv: string[]): Promise<void> {
  const f = parseFlags("predict", argv, {
    model: { type: "string" },
    text: { type: "string" },
    ids: { type: "string" },
    top: { type: "string" },
    bos: { type: "string" },
    json: { type: "boolean" },
  });
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
    console.log(JSON.stringify({ ids, top, logprobs: Array.from(lp) }));
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

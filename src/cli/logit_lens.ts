/** `engram logit-lens`: the top tokens of every layer's residual stream, read through the final norm and head. */
import { InputError } from "../errors.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { logitLens } from "../locate/logit_lens.ts";
import { loadModel } from "../model/load.ts";
import { encodeTarget, promptIds } from "../prompt/encode.ts";
import { withFieldNames } from "../prompt/errors.ts";
import { logitLensSvg } from "../report/logit_lens.ts";
import { bosFlag, COMMON_FLAGS, FACT_FLAGS, intFlag, parseIds, required } from "./args.ts";
import { guardOutputs } from "./outputs.ts";
import { type CommandSpec, parseCommand } from "./spec.ts";
import type { LogitLensOutput } from "../schema/tools_output.ts";
import { schemaTag } from "../schema/common.ts";

/** Flags and help of `engram logit-lens`. */
export const logitLensSpec: CommandSpec = {
  name: "logit-lens",
  summary: "top next tokens of the embedding and of every layer's residual stream, at every position",
  usage: 'logit-lens --model DIR (--text "..." | --ids 1,2,3) [--target T | --target-id N] [--top-k K] ' +
    "[--svg FILE] [--color-by top1|target] [--bos auto|on|off] [--json]",
  description: `Each row (the embedding, then resid_post of layers 0 .. L−1) is put through the final norm and
    the unembedding, as the model's own output is. --json prints {"schema": "engram-logit-lens/1",
    "prompt_ids", "tokens", "layers", "sites", "shape", "top_ids", "top_tokens", "top_probs"[, "target":
    {"id", "token", "rank", "prob"}]}, rows by layer; --svg writes a heatmap with the top-1 token in each
    cell.`,
  flags: {
    model: COMMON_FLAGS.model,
    text: { type: "string", value: '"..."', help: "the prompt (or --ids)" },
    ids: { type: "string", value: "1,2,3", help: "token ids of the prompt, comma-separated, run as given" },
    target: {
      type: "string",
      value: "T",
      help: "an answer whose rank and probability are reported per cell",
    },
    "target-id": { type: "int", value: "N", help: "the same for a token id" },
    "top-k": { type: "int", value: "K", default: 5, help: "tokens reported per cell" },
    svg: { type: "string", value: "FILE", help: "write the heatmap to FILE" },
    "color-by": {
      type: "string",
      choices: ["top1", "target"],
      default: "top1",
      help: "cell colour: the top-1 token's probability or the target's",
    },
    bos: COMMON_FLAGS.bos,
    json: COMMON_FLAGS.json,
  },
  examples: ['logit-lens --model fixtures/world/model --text "Narnux Zava was born in" --target Frostwick'],
};

/** Runs `logit-lens`. */
export async function logitLensCommand(argv: string[]): Promise<void> {
  const f = parseCommand(logitLensSpec, argv);
  const dir = required(f, "model", "logit-lens");
  if (f.target !== undefined && f["target-id"] !== undefined) {
    throw new InputError("give --target or --target-id, not both", { field: "--target-id" });
  }
  const colorBy = (f["color-by"] ?? "top1") as string;
  if (colorBy !== "top1" && colorBy !== "target") {
    throw new InputError(`--color-by must be top1 or target, got '${colorBy}'`, { field: "--color-by" });
  }
  const svgFile = f.svg as string | undefined;
  const guard = await guardOutputs("logit-lens", [{ path: svgFile, flag: "--svg" }], [
    { path: dir, flag: "--model" },
  ], { files: true });
  try {
    const lm = await loadModel(dir, { bos: bosFlag(f), requireTokenizer: true });
    try {
      const explicit = f.ids !== undefined ? parseIds(f.ids as string) : undefined;
      const ids = withFieldNames(FACT_FLAGS, () => promptIds(lm, f.text as string | undefined, explicit));
      // The answer as an edit or trace encodes it (leading space): its first token.
      const target = f["target-id"] !== undefined
        ? intFlag(f, "target-id", 0, 0, lm.model.config.vocabSize - 1)
        : typeof f.target === "string"
        ? withFieldNames({ target: "--target" }, () => encodeTarget(lm.tokenizer, f.target as string)[0])
        : undefined;
      if (colorBy === "target" && target === undefined) {
        throw new InputError("--color-by target needs --target or --target-id", { field: "--color-by" });
      }
      const r = await logitLens(lm.model, lm.tokenizer, ids, { topK: intFlag(f, "top-k", 5, 1), target });
      if (svgFile) await writeFileAtomic(svgFile, logitLensSvg(r, { colorBy: colorBy as "top1" | "target" }));
      if (f.json) {
        const out: LogitLensOutput = {
          schema: schemaTag("logit-lens", 1),
          prompt_ids: r.ids,
          tokens: r.tokens,
          layers: r.layers,
          sites: r.sites,
          shape: r.shape,
          top_ids: r.topIds,
          top_tokens: r.topTokens,
          top_probs: r.topProbs,
          ...(r.target ? { target: r.target } : {}),
        };
        console.log(JSON.stringify(out));
        return;
      }
      const T = r.tokens.length;
      for (let t = 0; t < T; t++) {
        console.log(`position ${t} ${JSON.stringify(r.tokens[t])}:`);
        r.layers.forEach((layer, l) => {
          const cells = r.topTokens[l][t].map((tok, j) =>
            `${JSON.stringify(tok)} ${r.topProbs[l][t][j].toFixed(3)}`
          );
          const tgt = r.target
            ? `  target rank ${r.target.rank[l][t]} p ${r.target.prob[l][t].toFixed(4)}`
            : "";
          console.log(`  ${layer.padStart(5)}  ${cells.join("  ")}${tgt}`);
        });
      }
      if (svgFile) console.log(`wrote ${svgFile}`);
    } finally {
      lm.model.destroy();
    }
  } finally {
    await guard.release();
  }
}

/**
 * The prompt module: the one home of facts and prompts in engram.
 *
 * - Facts and edit requests, and their readers: EasyEdit CounterFact and MEND zsRE, ROME's CounterFact
 *   and known_1000, engram's JSONL fact files (./requests.ts, ./facts.ts).
 * - One encoding ({@link encodeFact}, {@link encodeText}, {@link encodeTarget}): the subject's token
 *   range from character spans (ROME's `find_token_range`), one target-spacing rule (" " + target unless
 *   it starts with a space), one check that the input fits the context.
 * - The BOS policy ({@link BosMode}): decided once at load from the tokenizer's own convention (`auto`;
 *   HF GPT-2 adds no BOS, Llama-family tokenizers do) or forced `on` / `off`; the loaded tokenizer
 *   carries it as `bosId`.
 * - Typed errors naming file, record and fact field (./errors.ts).
 *
 * Example (run with `deno run -A src/prompt/mod.ts`): the world model's tokenizer declares the
 * end-of-text prefix it was trained with, so `auto` prepends it.
 *
 * ```ts
 * import { loadTokenizer } from "../io/tokenizer.ts";
 * import { encodeFact } from "./mod.ts";
 *
 * const tok = await loadTokenizer("fixtures/world/model");
 * const f = encodeFact(tok, { prompt: "{} was born in", subject: "Narnux Zava", target: "Frostwick" }, {
 *   nPositions: 24,
 * });
 * console.log(f.ids.map((id) => tok.tokenString(id)), f.subjectRange, f.target);
 * ```
 */
export {
  EmptyTargetError,
  FactError,
  type FactWhere,
  PromptTooLongError,
  SubjectNotInPromptError,
  withFieldNames,
} from "./errors.ts";
export {
  bosPrefix,
  type EncodedFact,
  encodeFact,
  type EncodeFactOptions,
  type EncodeOptions,
  encodeTarget,
  encodeText,
  type FactInput,
  findTokenRange,
  promptIds,
  spacedTarget,
  tokenOffsets,
} from "./encode.ts";
export { BOS_MODES, type BosConvention, type BosMode, parseBosMode, resolveBos, withBos } from "./bos.ts";
export {
  type EditRequest,
  filledPrompt,
  normalizeRequest,
  parseRequestRecord,
  parseRequests,
  type PromptAnswer,
  readRequests,
} from "./requests.ts";
export { parseTraceFacts, readTraceFacts, type TraceFact } from "./facts.ts";

if (import.meta.main) {
  const { loadTokenizer } = await import("../io/tokenizer.ts");
  const { encodeFact } = await import("./encode.ts");
  const dir = Deno.args[0] ?? new URL("../../fixtures/world/model", import.meta.url).pathname;
  const tok = await loadTokenizer(dir);
  const f = encodeFact(tok, { prompt: "{} was born in", subject: "Narnux Zava", target: "Frostwick" }, {
    nPositions: 24,
  });
  console.log(`BOS convention: ${JSON.stringify(tok.bosConvention)}`);
  console.log(`tokens: ${JSON.stringify(f.ids.map((id) => tok.tokenString(id)))}`);
  console.log(`subject tokens [${f.subjectRange}], target ids ${JSON.stringify(f.target)}`);
}

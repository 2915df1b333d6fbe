/**
 * The BOS policy as the CLI and library take it: `auto` (the tokenizer's own convention, read from its
 * files at load), `on` or `off`. The policy itself lives on the loaded tokenizer (`Tokenizer.bosId`,
 * src/io/tokenizer.ts); the encoders in ./encode.ts apply it.
 */
import { InputError } from "../errors.ts";
import { BOS_MODES, type BosMode } from "../io/tokenizer.ts";

export { BOS_MODES, type BosConvention, type BosMode, resolveBos, withBos } from "../io/tokenizer.ts";

/** Parses a `--bos` value (absent: "auto"). */
export function parseBosMode(v: unknown, field = "--bos"): BosMode {
  if (v === undefined) return "auto";
  if (typeof v !== "string" || !(BOS_MODES as readonly string[]).includes(v)) {
    throw new InputError(`must be ${BOS_MODES.join(", ")}, got ${JSON.stringify(v)}`, { field });
  }
  return v as BosMode;
}

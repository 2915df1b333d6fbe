/**
 * Runs fuzz cases and classifies each outcome:
 *
 * - `typed`: the parser threw an {@link EngramError} (InputError, ConfigError, SafetensorsError, ...);
 * - `accepted`: it returned, and the target's independent check (if any) agrees the input is valid;
 * - `wrong`: it returned, but the check found the acceptance incorrect;
 * - `crash`: any other exception (TypeError, RangeError, a stack overflow, ...);
 * - `hang`: the case took longer than `hangMs` (in-process this is measured after the fact; the
 *   isolated runner in scripts/fuzz.ts stops a case that never returns);
 * - `memory`: the process's resident memory grew by more than `memoryBytes` during the case.
 *
 * Mutant i of a format is determined by (format, seed, i) alone, so a finding is reproduced by its index.
 */
import { EngramError } from "../errors.ts";
import { excerpt } from "../io/excerpt.ts";
import { mutantRng, mutate } from "./mutators.ts";
import type { FuzzTarget, PreparedTarget } from "./targets.ts";

/** Outcome of one case. */
export type Outcome = "typed" | "accepted" | "wrong" | "crash" | "hang" | "memory";

/** One finding: a case whose outcome was not typed or accepted. */
export interface Finding {
  format: string;
  index: number;
  outcome: Outcome;
  /** Error name and message (cut), or the check's complaint. */
  message: string;
  /** The first bytes of the input, as text. */
  input: string;
  /** Milliseconds the case took. */
  ms: number;
}

/** Counts of one format. */
export interface FormatStats {
  format: string;
  tried: number;
  typed: number;
  accepted: number;
  wrong: number;
  crash: number;
  hang: number;
  memory: number;
  /** Typed errors whose message is over 300 characters (a message must cut long values short). */
  long: number;
  /** Findings, at most `maxFindings` kept. */
  findings: Finding[];
  seconds: number;
}

/** Options of {@link runFormat}. */
export interface RunOptions {
  count: number;
  seed?: number;
  /** First mutant index (default 0). */
  start?: number;
  hangMs?: number;
  memoryBytes?: number;
  maxFindings?: number;
}

/** A new, empty stats record. */
export function emptyStats(format: string): FormatStats {
  return {
    format,
    tried: 0,
    typed: 0,
    accepted: 0,
    wrong: 0,
    crash: 0,
    hang: 0,
    memory: 0,
    long: 0,
    findings: [],
    seconds: 0,
  };
}

/** The input of mutant `index` of a format (index -1 .. -k: the seeds themselves). */
export function mutantInput(t: FuzzTarget, p: PreparedTarget, seed: number, index: number): Uint8Array {
  if (index < 0) return p.seeds[(-index - 1) % p.seeds.length];
  const r = mutantRng(seed, t.name, index);
  const s = p.seeds[Math.floor(r() * p.seeds.length)];
  return mutate(s, t.kind, r, p.seeds);
}

/** Runs one case; returns its outcome and, when not typed/accepted, a message. */
export async function runCase(
  p: PreparedTarget,
  input: Uint8Array,
): Promise<{ outcome: "typed" | "accepted" | "wrong" | "crash"; message?: string }> {
  let result: unknown;
  try {
    result = await p.run(input);
  } catch (e) {
    if (e instanceof EngramError) {
      return {
        outcome: "typed",
        message: e.message.length > 300 ? `(${e.message.length}-char message)` : undefined,
      };
    }
    const err = e as Error;
    const top = typeof err?.stack === "string" ? err.stack.split("\n").slice(1, 3).join(" |").trim() : "";
    return {
      outcome: "crash",
      message: `${err?.name ?? typeof e}: ${excerpt(err?.message ?? e, 160)} ${top}`,
    };
  }
  if (p.check) {
    let msg: string | undefined;
    try {
      msg = p.check(result, input);
    } catch (e) {
      msg = `check failed: ${(e as Error).message}`;
    }
    if (msg !== undefined) return { outcome: "wrong", message: msg };
  }
  return { outcome: "accepted" };
}

/** Input shown in a finding: the first 120 characters as text. */
export function showInput(input: Uint8Array): string {
  return excerpt(new TextDecoder().decode(input.subarray(0, 400)), 120) +
    (input.length > 400 ? ` (${input.length} bytes)` : "");
}

/** Adds one outcome to `stats`. */
export function record(
  stats: FormatStats,
  index: number,
  outcome: Outcome,
  message: string | undefined,
  input: Uint8Array | undefined,
  ms: number,
  maxFindings: number,
): void {
  stats.tried++;
  stats[outcome]++;
  if (outcome !== "typed" && outcome !== "accepted" && stats.findings.length < maxFindings) {
    stats.findings.push({
      format: stats.format,
      index,
      outcome,
      message: message ?? outcome,
      input: input ? showInput(input) : "",
      ms: Math.round(ms),
    });
  }
}

/** Runs `opts.count` mutants of `t` in this process (seeds first), and counts outcomes. */
export async function runFormat(
  t: FuzzTarget,
  opts: RunOptions,
  prepared?: PreparedTarget,
): Promise<FormatStats> {
  const p = prepared ?? (await t.setup());
  const seed = opts.seed ?? 1;
  const hangMs = opts.hangMs ?? 2000;
  const memoryBytes = opts.memoryBytes ?? 512 * 2 ** 20;
  const maxFindings = opts.maxFindings ?? 50;
  const stats = emptyStats(t.name);
  const t0 = performance.now();
  const start = opts.start ?? 0;
  try {
    for (let i = start; i < start + opts.count; i++) {
      const input = mutantInput(t, p, seed, i);
      const rss0 = Deno.memoryUsage().rss;
      const c0 = performance.now();
      const { outcome, message } = await runCase(p, input);
      const ms = performance.now() - c0;
      const grew = Deno.memoryUsage().rss - rss0;
      const final: Outcome = ms > hangMs ? "hang" : grew > memoryBytes ? "memory" : outcome;
      const msg = final === outcome
        ? message
        : `${final === "hang" ? `${ms.toFixed(0)} ms` : `${(grew / 2 ** 20).toFixed(0)} MiB`} (${outcome}${
          message ? `: ${message}` : ""
        })`;
      record(stats, i, final, msg, input, ms, maxFindings);
      if (final === "typed" && message !== undefined) stats.long++;
    }
  } finally {
    if (!prepared) await p.close?.();
  }
  stats.seconds = (performance.now() - t0) / 1000;
  return stats;
}

/**
 * Fuzz worker: runs a range of mutants of one format and reports each case before and after it runs,
 * so the parent (scripts/fuzz.ts) can stop a case that hangs or blows up memory and resume after it.
 */
import { mutantInput, runCase, showInput } from "./runner.ts";
import { target } from "./targets.ts";

/** A job for the worker. */
export interface WorkerJob {
  format: string;
  seed: number;
  start: number;
  end: number;
}

/** Messages the worker posts. */
export type WorkerMessage =
  | { type: "ready" }
  | { type: "begin"; index: number }
  | { type: "done"; index: number; outcome: string; message?: string; input?: string; ms: number }
  | { type: "finished" };

// deno-lint-ignore no-explicit-any
const self_ = self as any;
self_.onmessage = async (ev: MessageEvent<WorkerJob>) => {
  const job = ev.data;
  const t = target(job.format);
  const p = await t.setup();
  self_.postMessage({ type: "ready" } satisfies WorkerMessage);
  try {
    for (let i = job.start; i < job.end; i++) {
      self_.postMessage({ type: "begin", index: i } satisfies WorkerMessage);
      let input: Uint8Array;
      try {
        input = mutantInput(t, p, job.seed, i);
      } catch (e) {
        // A bug of the fuzzer, not of the parser: reported as such.
        const message = `fuzzer error making the mutant: ${(e as Error).message}`;
        self_.postMessage(
          { type: "done", index: i, outcome: "crash", message, ms: 0 } satisfies WorkerMessage,
        );
        continue;
      }
      const c0 = performance.now();
      const { outcome, message } = await runCase(p, input);
      const ms = performance.now() - c0;
      const bad = outcome !== "typed" && outcome !== "accepted";
      self_.postMessage(
        {
          type: "done",
          index: i,
          outcome,
          message,
          input: bad ? showInput(input) : undefined,
          ms,
        } satisfies WorkerMessage,
      );
    }
  } finally {
    await p.close?.();
  }
  self_.postMessage({ type: "finished" } satisfies WorkerMessage);
};

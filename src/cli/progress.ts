/**
 * A one-line progress display on stderr: redrawn in place on a terminal, a few plain lines otherwise;
 * nothing with `--quiet` (./log.ts).
 */
import { progressEnabled } from "./log.ts";

/** Creates a progress reporter for `total` units; `update(done, text)` redraws, `done()` ends the line. */
export function progress(
  label: string,
  total: number,
): { update(done: number, text?: string): void; done(): void } {
  if (!progressEnabled()) return { update() {}, done() {} };
  const tty = Deno.stderr.isTerminal();
  const enc = new TextEncoder();
  let lastPrinted = -1;
  const t0 = performance.now();
  return {
    update(done: number, text = "") {
      const frac = total > 0 ? Math.min(1, done / total) : 1;
      const secs = (performance.now() - t0) / 1000;
      const eta = frac > 0 ? secs * (1 / frac - 1) : 0;
      const width = 24;
      const bar = "#".repeat(Math.round(frac * width)).padEnd(width, ".");
      const line = `${label} [${bar}] ${done}/${total} ${text} ${secs.toFixed(0)}s elapsed, ~${
        eta.toFixed(0)
      }s left`;
      if (tty) Deno.stderr.writeSync(enc.encode(`\r\x1b[2K${line}`));
      else {
        const decile = Math.floor(frac * 10);
        if (decile !== lastPrinted) {
          lastPrinted = decile;
          Deno.stderr.writeSync(enc.encode(line + "\n"));
        }
      }
    },
    done() {
      if (tty) Deno.stderr.writeSync(enc.encode("\n"));
    },
  };
}

/** Shared test helpers: seeded random inputs and error measures (llm.c style: compare tensor by tensor). */
import assert from "node:assert/strict";

/** Seeded PRNG returning floats in [0, 1) (the same mulberry32 the sampler uses). */
export { mulberry32 as rng } from "../src/model/generate.ts";

/** A fresh seed per call, printed on failure so a failing case can be replayed. */
export function freshSeed(): number {
  return (Math.random() * 2 ** 31) >>> 0;
}

/** n standard-normal samples (Box–Muller) scaled by `scale`, as float32. */
export function randn(r: () => number, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12);
    const v = r();
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return out;
}

/** max |a - b| / max(max |b|, floor): relative error against a reference. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-6): number {
  assert.equal(a.length, b.length, "length mismatch");
  let num = 0;
  let den = floor;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= num)) num = Number.isNaN(d) ? Infinity : Math.max(num, d);
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

/** max |a - b| (Infinity if any NaN). */
export function maxAbsErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, "length mismatch");
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (Number.isNaN(d)) return Infinity;
    m = Math.max(m, d);
  }
  return m;
}

/** Asserts relErr(actual, expected) <= tol with a message naming what was compared and the seed. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: number,
  what: string,
  seed?: number,
): number {
  const e = relErr(actual, expected);
  assert.ok(e <= tol, `${what}: relative error ${e.toExponential(3)} > ${tol} (seed ${seed})`);
  return e;
}

/** Path of the shared data folder beside the clone. */
export const SHARED = new URL("../../shared/data/", import.meta.url).pathname;

/** Runs the CLI (`src/cli.ts`) in a subprocess and returns its exit code and output. */
export async function engram(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../src/cli.ts", import.meta.url).pathname, ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

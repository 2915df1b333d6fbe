/**
 * The matmul autotune: on a Gpu's first product, times every variant of {@link MATMUL_VARIANTS} on one
 * shape per transpose combination, checks each result against the float64 twin (a variant that is
 * wrong on this adapter is never chosen), and tells {@link matmul} the fastest correct one. The choice
 * is kept per process and in a JSON file under the user's cache folder (`$ENGRAM_CACHE/matmul-tune.json`,
 * else `$XDG_CACHE_HOME/engram/` or `~/.cache/engram/`), keyed by the adapter's description and a hash of
 * the kernels' sources, so later processes on the same adapter skip the timing. `ENGRAM_MATMUL_TUNE=off`
 * disables the tune (the 4x4 kernel everywhere); `=fresh` ignores the file and rewrites it.
 */
import type { Gpu } from "./device.ts";
import { matmul, MATMUL_VARIANTS, setMatmulVariant, transKey, tuneMode } from "./matmul.ts";
import { kernelSource } from "./pipeline.ts";
import { createTensor, poison, readTensor } from "./tensor.ts";
import { matmulRef } from "../reference/matmul.ts";

/** One variant's result in a tune. */
export interface VariantTiming {
  variant: string;
  /** Best mean milliseconds per call over the timed rounds. */
  ms: number;
  gflops: number;
  /** Largest |gpu − float64| / (1 + |float64|) over the output. */
  error: number;
  /** Within the tune's tolerance (only these can be chosen). */
  ok: boolean;
}

/** The outcome of a tune for one transpose combination. */
export interface TuneEntry {
  /** "nn", "nt", "tn", "tt" (A then B; t = transposed). */
  key: string;
  shape: [number, number, number];
  chosen: string;
  timings: VariantTiming[];
}

/** A whole tune, as stored in the cache file. */
export interface TuneResult {
  adapter: string;
  kernelsHash: string;
  date: string;
  loadavg?: number[];
  entries: TuneEntry[];
}

/** Options of {@link autotuneMatmul}. */
export interface TuneOptions {
  /** Cache file; `null` neither reads nor writes one (tests). Default {@link defaultTuneFile}. */
  cacheFile?: string | null;
  /** [M, N, K] timed per combination (default [128, 256, 192]: about 13 MFLOP). */
  shape?: [number, number, number];
  /** Timed rounds, variants interleaved in each (default 2). */
  rounds?: number;
  /** Accepted error against the twin (default 1e-4, relative to 1 + |value|). */
  tolerance?: number;
  /** Transpose combinations to tune ({@link transKey}; default all four). */
  keys?: string[];
}

/** The default cache file of the tune. */
export function defaultTuneFile(): string | null {
  try {
    const env = Deno.env.get("ENGRAM_CACHE");
    if (env) return `${env}/matmul-tune.json`;
    const xdg = Deno.env.get("XDG_CACHE_HOME");
    const home = Deno.env.get("HOME");
    if (!xdg && !home) return null;
    return `${xdg ?? `${home}/.cache`}/engram/matmul-tune.json`;
  } catch {
    return null; // no permission to read the environment: keep the tune in memory
  }
}

/**
 * Version of the tune's method, hashed with the kernels: 2 subtracts the flush's completion wait (version 1
 * timed two products per flush, so on a CPU adapter the wait decided), and stored tunes of 1 are redone.
 */
const TUNE_METHOD = "2";

/** A short FNV-1a hash of the tune's method and the matmul kernels' sources: a change of either invalidates
 * stored tunes. */
function kernelsHash(): string {
  let h = 0x811c9dc5;
  for (const s of [TUNE_METHOD, ...["matmul", "matmul_wide", "matmul_lanes"].map(kernelSource)]) {
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}

function adapterKey(gpu: Gpu): string {
  const d = gpu.describe();
  return `${d.vendor}|${d.architecture}|${d.device}|${d.description}`;
}

function readCache(file: string, adapter: string, hash: string): TuneResult | undefined {
  try {
    const all = JSON.parse(Deno.readTextFileSync(file)) as Record<string, TuneResult>;
    const r = all[adapter];
    if (r && r.kernelsHash === hash && Array.isArray(r.entries)) return r;
  } catch { /* no file, or unreadable: tune again */ }
  return undefined;
}

/** Stores `r` for its adapter, keeping the combinations of the same tune (`kept`) it did not redo. */
function writeCache(file: string, r: TuneResult, kept: TuneResult | undefined): void {
  try {
    let all: Record<string, TuneResult> = {};
    try {
      all = JSON.parse(Deno.readTextFileSync(file));
    } catch { /* first entry */ }
    const old = (kept ?? readCache(file, r.adapter, r.kernelsHash))?.entries ?? [];
    all[r.adapter] = {
      ...r,
      entries: [...old.filter((e) => !r.entries.some((x) => x.key === e.key)), ...r.entries],
    };
    const dir = file.slice(0, file.lastIndexOf("/"));
    if (dir) Deno.mkdirSync(dir, { recursive: true });
    // Written beside and renamed, so a parallel process never reads half a file.
    const tmp = `${file}.${Deno.pid}.tmp`;
    Deno.writeTextFileSync(tmp, JSON.stringify(all, null, 2) + "\n");
    Deno.renameSync(tmp, file);
  } catch { /* a read-only cache folder only costs a tune per process */ }
}

/** The shortest of three empty flushes (ms): the completion wait every timed flush includes. */
async function flushFloor(gpu: Gpu): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await gpu.flush();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

function fill(n: number, s: number): Float32Array {
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = Math.sin(i * s + 0.3) * 0.5;
  return d;
}

/**
 * Times and checks every variant for each transpose combination on `gpu` and installs the fastest
 * correct one (see the module comment). Returns what was measured (or read from the cache).
 */
export async function autotuneMatmul(gpu: Gpu, opts: TuneOptions = {}): Promise<TuneResult> {
  const adapter = adapterKey(gpu);
  const hash = kernelsHash();
  const file = opts.cacheFile === undefined ? defaultTuneFile() : opts.cacheFile;
  const mode = tuneMode();
  const keys = opts.keys ?? ["nn", "nt", "tn", "tt"];
  const cached = file && mode !== "fresh" ? readCache(file, adapter, hash) : undefined;
  const entries: TuneEntry[] = [];
  for (const key of keys) {
    const e = cached?.entries.find((x) => x.key === key);
    if (e && MATMUL_VARIANTS.some((v) => v.name === e.chosen)) {
      setMatmulVariant(gpu, key, e.chosen);
      entries.push(e);
    }
  }
  const todo = keys.filter((k) => !entries.some((e) => e.key === k));
  if (todo.length === 0) return { ...cached!, entries };
  const [M, N, K] = opts.shape ?? [128, 256, 192];
  const rounds = opts.rounds ?? 2;
  const tol = opts.tolerance ?? 1e-4;
  const a = fill(M * K, 0.7368), b = fill(K * N, 1.3137);
  const ta = createTensor(gpu, [M * K], { name: "tune.a", data: a });
  const tb = createTensor(gpu, [K * N], { name: "tune.b", data: b });
  const out = createTensor(gpu, [M * N], { name: "tune.out" });
  // The tune times the dense kernels at the device's own binding limit: a limit lowered by a caller (the
  // split tests) would time hundreds of tiny split blocks instead (seconds per product) and choose by that.
  const device = gpu.device.limits.maxStorageBufferBindingSize;
  const lowered = gpu.bindingLimit < device ? gpu.bindingLimit : undefined;
  gpu.setBindingLimit(undefined);
  try {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        if (!todo.includes(transKey(transA, transB))) continue;
        const want = matmulRef(a, b, { M, N, K, transA, transB });
        const timings: VariantTiming[] = [];
        for (const v of MATMUL_VARIANTS) {
          poison(out);
          await matmul(gpu, ta, tb, out, { M, N, K, transA, transB, variant: v.name });
          const got = await readTensor(out);
          let error = 0;
          for (let i = 0; i < got.length; i++) {
            const e = Math.abs(got[i] - want[i]) / (1 + Math.abs(want[i]));
            error = Math.max(error, Number.isNaN(e) ? Infinity : e);
          }
          timings.push({ variant: v.name, ms: Infinity, gflops: 0, error, ok: error <= tol });
        }
        // A flush costs a fixed completion wait (about 11 ms on Deno, several times one tuning product on
        // a CPU adapter): each round runs enough products to outweigh it, and the empty flush is subtracted,
        // so the variants are told apart by their kernels, not by the wait.
        const run = async (variant: string, reps: number) => {
          const t0 = performance.now();
          for (let j = 0; j < reps; j++) await matmul(gpu, ta, tb, out, { M, N, K, transA, transB, variant });
          await gpu.flush();
          return performance.now() - t0;
        };
        const floor = await flushFloor(gpu);
        const first = timings.find((t) => t.ok);
        const per = first ? Math.max((await run(first.variant, 2) - floor) / 2, 0.05) : 1;
        const reps = Math.min(64, Math.max(2, Math.ceil((4 * floor) / per)));
        // Rounds interleave the variants, so a load change on a shared machine hits them alike.
        for (let r = 0; r < rounds; r++) {
          for (const t of timings) {
            if (!t.ok) continue;
            t.ms = Math.min(t.ms, Math.max((await run(t.variant, reps)) - floor, 1e-3) / reps);
          }
        }
        for (const t of timings) if (t.ok) t.gflops = (2 * M * N * K) / (t.ms * 1e6);
        const best = timings.filter((t) => t.ok).sort((x, y) => x.ms - y.ms)[0];
        const key = transKey(transA, transB);
        const chosen = best?.variant ?? MATMUL_VARIANTS[0].name;
        setMatmulVariant(gpu, key, chosen);
        entries.push({ key, shape: [M, N, K], chosen, timings });
      }
    }
  } finally {
    gpu.setBindingLimit(lowered);
    ta.destroy();
    tb.destroy();
    out.destroy();
  }
  const result: TuneResult = {
    adapter,
    kernelsHash: hash,
    date: new Date().toISOString(),
    loadavg: Deno.loadavg(),
    entries,
  };
  if (file) writeCache(file, result, cached);
  return result;
}

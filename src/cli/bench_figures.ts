/**
 * The figures of `engram bench --json` (schema "engram-bench/3"; "engram-bench/2" records are still read): each a name, a value, its unit and,
 * where one exists, a baseline measured in the same run with the ratio value / baseline. Same-run ratios
 * are what survive a shared or throttled machine; the load average is recorded with the figures.
 */
import type { Gpu } from "../gpu/device.ts";
import { chosenVariants, matmul, matmulFlops, setMatmulVariant } from "../gpu/matmul.ts";
import { createTensor } from "../gpu/tensor.ts";
import { loadModel } from "../model/load.ts";
import { hookSiteNames } from "../model/hooks.ts";

/** Version of the record layout (snake_case keys); `engram bench compare` reads it and the camelCase /2. */
export const BENCH_SCHEMA = "engram-bench/3";

/** The previous layout (the same fields, camelCase), still read by `engram bench compare`. */
export const BENCH_SCHEMA_2 = "engram-bench/2";

/** One measured figure. */
export interface Figure {
  /** Stable name, e.g. "matmul 512x3072x768 tuned". */
  name: string;
  value: number;
  /** "GFLOP/s", "ms", "tokens/s", "bytes", "x". */
  unit: string;
  /** True when larger is better. */
  higherIsBetter: boolean;
  /** The same-run baseline this figure is compared with. */
  baseline?: { name: string; value: number; ratio: number };
  /** The 1-minute load average when the figure was taken. */
  load1: number;
  /** What the figure ran, when the name does not say (e.g. the tuned matmul variant). */
  detail?: string;
}

/** A figure, with its ratio to `baseline` (value / baseline value) when one is given. */
export function figure(
  name: string,
  value: number,
  unit: string,
  higherIsBetter: boolean,
  baseline?: { name: string; value: number },
): Figure {
  const f: Figure = { name, value, unit, higherIsBetter, load1: Deno.loadavg()[0] };
  if (baseline && Number.isFinite(baseline.value) && baseline.value > 0) {
    f.baseline = { ...baseline, ratio: value / baseline.value };
  }
  return f;
}

/** numpy's matmul throughput on the same shapes, or why there is none. */
export interface NumpyBaseline {
  numpy?: string;
  blas?: string;
  matmul?: Array<{ shape: [number, number, number]; ms: number; gflops: number }>;
  skipped?: string;
}

/**
 * Runs benchmarks/reference/matmul_numpy.py with python3 when both exist (never a dependency: a
 * missing python3, numpy or script gives `skipped` with the reason).
 */
export async function numpyBaseline(shapes: Array<[number, number, number]>): Promise<NumpyBaseline> {
  const script = new URL("../../benchmarks/reference/matmul_numpy.py", import.meta.url);
  if (script.protocol !== "file:") return { skipped: "the numpy script is not a local file" };
  try {
    Deno.statSync(script);
  } catch {
    return { skipped: `no ${script.pathname}` };
  }
  try {
    const r = await new Deno.Command("python3", {
      args: [script.pathname, JSON.stringify(shapes)],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!r.success) {
      const err = new TextDecoder().decode(r.stderr).trim().split("\n").pop() ?? "";
      return { skipped: `python3 failed (numpy missing?): ${err.slice(0, 200)}` };
    }
    return JSON.parse(new TextDecoder().decode(r.stdout)) as NumpyBaseline;
  } catch (e) {
    return { skipped: `python3 not runnable: ${(e as Error).message}` };
  }
}

/** One shape's throughput per variant, rounds interleaved across the variants. */
export interface VariantRow {
  shape: [number, number, number];
  /** Best mean ms per call per variant name. */
  ms: Record<string, number>;
  gflops: Record<string, number>;
}

/**
 * Times [M, N, K] products (A [M,K] @ B [K,N]) with each named variant, `rounds` rounds that each run
 * every variant once (about 64 MFLOP of calls per flush, at least one), keeping each variant's best.
 */
export async function measureVariants(
  gpu: Gpu,
  shapes: Array<[number, number, number]>,
  variants: string[],
  rounds = 3,
): Promise<VariantRow[]> {
  const rows: VariantRow[] = [];
  const fill = (n: number, s: number) => {
    const d = new Float32Array(n);
    for (let i = 0; i < n; i++) d[i] = Math.sin(i * s) * 0.5;
    return d;
  };
  for (const [M, N, K] of shapes) {
    const a = createTensor(gpu, [M, K], { name: "bench.a", data: fill(M * K, 0.7368) });
    const b = createTensor(gpu, [K, N], { name: "bench.b", data: fill(K * N, 1.3137) });
    const out = createTensor(gpu, [M, N], { name: "bench.out" });
    const calls = Math.max(1, Math.min(16, Math.ceil(64e6 / matmulFlops(M, N, K))));
    const ms: Record<string, number> = {};
    for (const v of variants) {
      await matmul(gpu, a, b, out, { M, N, K, variant: v });
      await gpu.flush();
      ms[v] = Infinity;
    }
    for (let r = 0; r < rounds; r++) {
      for (const v of variants) {
        const t0 = performance.now();
        for (let j = 0; j < calls; j++) await matmul(gpu, a, b, out, { M, N, K, variant: v });
        await gpu.flush();
        ms[v] = Math.min(ms[v], (performance.now() - t0) / calls);
      }
    }
    for (const t of [a, b, out]) t.destroy();
    const gflops: Record<string, number> = {};
    for (const v of variants) gflops[v] = matmulFlops(M, N, K) / (ms[v] * 1e6);
    rows.push({ shape: [M, N, K], ms, gflops });
  }
  return rows;
}

/** Forward-pass times of the bundled world model with the tuned matmul and with the 4x4 kernel. */
export interface WorldForward {
  /** Prompts x tokens per forward. */
  batch: [number, number];
  /** Hook sites captured (every one, as a trace's clean run does), or 0. */
  captured: number;
  tunedMs: number;
  blockedMs: number;
}

/**
 * Times forward passes of `fixtures/world/model` (1x8 tokens, 16x8 tokens, 1x8 with every site
 * captured), alternating the autotuned variants and the 4x4 kernel per iteration. Returns [] when the
 * model folder is not beside the code (a compiled binary without fixtures).
 */
export async function measureWorldForward(gpu: Gpu, iters = 8): Promise<WorldForward[]> {
  const dir = new URL("../../fixtures/world/model", import.meta.url);
  if (dir.protocol !== "file:") return [];
  const lm = await loadModel(dir.pathname);
  const m = lm.model;
  const ids = [1, 5, 9, 13, 17, 21, 25, 29];
  const sites = hookSiteNames(m.config.nLayer);
  const cases: Array<{ batch: number[][]; capture: string[] }> = [
    { batch: [ids], capture: [] },
    {
      batch: Array.from({ length: 16 }, (_, i) => ids.map((x) => (x + 3 * i) % m.config.vocabSize)),
      capture: [],
    },
    { batch: [ids], capture: sites },
  ];
  // The tuned choices, to restore after each 4x4 run.
  const keys = ["nn", "nt", "tn", "tt"];
  // The model's load ran products, so the tune has run and its choices are in place.
  await m.forward([ids]);
  const tuned = chosenVariants(gpu);
  const use = (names: Record<string, string | undefined>) => {
    for (const k of keys) setMatmulVariant(gpu, k, names[k]);
  };
  const out: WorldForward[] = [];
  try {
    for (const c of cases) {
      const hooks = c.capture.length ? { capture: c.capture } : undefined;
      const run = () => m.forward(c.batch, hooks ? { hooks } : {});
      let t = 0, bl = 0;
      use({});
      await run();
      use(tuned);
      await run();
      for (let i = 0; i < iters; i++) {
        use({});
        let t0 = performance.now();
        await run();
        bl += performance.now() - t0;
        use(tuned);
        t0 = performance.now();
        await run();
        t += performance.now() - t0;
      }
      out.push({
        batch: [c.batch.length, ids.length],
        captured: c.capture.length,
        tunedMs: t / iters,
        blockedMs: bl / iters,
      });
    }
  } finally {
    use(tuned);
    m.destroy();
  }
  return out;
}

/**
 * Resident memory at real sizes, for `engram bench` and benchmarks/memory_bench.ts: host RSS and the
 * GPU's counted tensor buffers (`Gpu.allocatedBytes`, its peak) against the weights' own float32 size,
 * for inference on GPT-2 small / medium and a Llama-shaped 1B model, and for one ROME edit and one causal
 * trace on the world model's shape. Random weights of the real shapes are made in memory at run time.
 *
 * A case whose weights the adapter cannot hold (today: llvmpipe's 128 MiB storage binding, below GPT-2's
 * wte) is reported as skipped with the adapter's error instead of failing the run.
 */
import { EngramError } from "../errors.ts";
import type { Gpu } from "../gpu/device.ts";
import { createTensor, numel } from "../gpu/tensor.ts";
import { loadTokenizer } from "../io/tokenizer.ts";
import { type ModelConfig, resolveConfig, type WeightMap } from "../model/config.ts";
import { familySpec, familyWeightShapes } from "../model/families/mod.ts";
import { mulberry32 } from "../model/generate.ts";
import { f32BitsToBf16, type WeightDtype } from "../io/safetensors.ts";
import { loadHFModel, saveHFModel } from "../io/hf_model.ts";
import { estimateMemory } from "../model/memory.ts";
import { randomWeights } from "../model/random.ts";
import { TransformerModel } from "../model/transformer.ts";
import { applyEdit } from "../edit/editors.ts";
import { readRequests } from "../edit/requests.ts";
import { layerStats } from "../edit/stats.ts";
import { causalTrace, TRACE_KINDS } from "../locate/trace.ts";
import { embeddingStd } from "../locate/patching.ts";
import { encodeFact } from "../prompt/encode.ts";

/** One measured (or skipped) case. Bytes; ratios are to the weights' float32 size. */
export interface MemoryCase {
  name: string;
  analysis: string;
  parameters: number;
  weightBytes: number;
  /** The estimate's peak (src/model/memory.ts) for an inference case. */
  estimatedPeakBytes?: number;
  skipped?: string;
  /** GPU tensor buffers held once the model is loaded. */
  gpuLoadedBytes?: number;
  /** Most GPU tensor bytes alive during the analysis. */
  gpuPeakBytes?: number;
  gpuPeakRatio?: number;
  /** Host RSS after the analysis (on a CPU adapter it includes the GPU buffers). */
  rssBytes?: number;
  rssRatio?: number;
  /** RSS growth over the case (host weights, plus the GPU buffers on a CPU adapter). */
  rssGrowthBytes?: number;
  /**
   * Bytes the host tensors of the weights hold after the analysis (16-bit ones still undecoded: their
   * file bytes), for the case loaded from a file.
   */
  hostWeightBytes?: number;
  /** The process's peak RSS so far (VmHWM; cases run smallest first), when readable. */
  peakRssBytes?: number;
  seconds?: number;
}

/** The real shapes (random weights): GPT-2 small and medium, and TinyLlama-1.1B's Llama shape. */
export const REAL_SHAPES: Record<string, ModelConfig> = {
  "gpt2-small": {
    nLayer: 12,
    nHead: 12,
    nEmbd: 768,
    vocabSize: 50257,
    nPositions: 1024,
    nInner: 3072,
    layerNormEpsilon: 1e-5,
  },
  "gpt2-medium": {
    nLayer: 24,
    nHead: 16,
    nEmbd: 1024,
    vocabSize: 50257,
    nPositions: 1024,
    nInner: 4096,
    layerNormEpsilon: 1e-5,
  },
  "llama-1.1b": {
    family: "llama",
    nLayer: 22,
    nHead: 32,
    nKvHead: 4,
    nEmbd: 2048,
    vocabSize: 32000,
    nPositions: 2048,
    nInner: 5632,
    layerNormEpsilon: 1e-5,
    norm: "rmsnorm",
    activation: "silu",
    rope: { dim: 64, style: "half", theta: 10000, maxPositionEmbeddings: 2048 },
    qkvBias: false,
    attnOutBias: false,
    mlpBias: false,
  },
};

/**
 * A Llama-shaped model of about 60M parameters (TinyLlama's proportions, 8 layers of width 512 over a
 * 32,000-token vocabulary) for the 16-bit file case of {@link measureMemory}.
 */
export const BF16_FILE_SHAPE: ModelConfig = {
  ...REAL_SHAPES["llama-1.1b"],
  nLayer: 8,
  nHead: 8,
  nKvHead: 4,
  nEmbd: 512,
  nInner: 1408,
  nPositions: 256,
  rope: { dim: 64, style: "half", theta: 10000, maxPositionEmbeddings: 256 },
};

/**
 * Writes a BF16 checkpoint of `cfg` with random weights (N(0, 0.02), norms 1) to `dir`, tensor by tensor
 * as 16-bit patterns: the writer takes undecoded 16-bit tensors as they are, so no float32 copy of the
 * model is ever made here either.
 */
async function writeRandomBf16(dir: string, cfg: ModelConfig): Promise<number> {
  const c = resolveConfig(cfg);
  const spec = familySpec(c);
  const r = mulberry32(7);
  const bf16 = (x: number) => f32BitsToBf16(new Uint32Array(new Float32Array([x]).buffer)[0]);
  const weights: WeightMap = new Map();
  const dtypes = new Map<string, WeightDtype>();
  for (const [name, shape] of familyWeightShapes(spec, c, true)) {
    const n = numel(shape);
    const norm = shape.length === 1;
    const bits = new Uint16Array(n);
    // 512 values drawn as sums of three uniforms (std 0.02, close enough to a normal for a benchmark's
    // forward), then picked at random: fast to make.
    const table = Uint16Array.from({ length: 512 }, () => bf16(norm ? 1 : 0.04 * (r() + r() + r() - 1.5)));
    for (let i = 0; i < n; i++) bits[i] = table[(r() * 512) | 0];
    const undecoded16 = { dtype: "BF16" as const, bits };
    weights.set(name, {
      shape,
      undecoded16,
      get data(): Float32Array {
        throw new Error("the benchmark's BF16 writer decoded a weight");
      },
    });
    dtypes.set(name, "BF16");
  }
  await saveHFModel(dir, { config: cfg, weights, dtypes }, { overwrite: true });
  return (await Deno.stat(`${dir}/model.safetensors`)).size;
}

function peakRss(): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/self/status"));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Fills the after-analysis figures of `c`: GPU peak over `base` bytes, RSS and its growth over `rss0`,
 * ratios to `c.weightBytes`, the process's peak RSS.
 */
function recordAfter(gpu: Gpu, c: MemoryCase, base: number, rss0: number): void {
  c.gpuPeakBytes = gpu.peakAllocatedBytes - base;
  c.gpuPeakRatio = c.gpuPeakBytes / c.weightBytes;
  c.rssBytes = Deno.memoryUsage().rss;
  c.rssRatio = c.rssBytes / c.weightBytes;
  c.rssGrowthBytes = c.rssBytes - rss0;
  c.peakRssBytes = peakRss();
}

/** Whether the adapter can allocate a tensor of `numel` floats; the adapter's error otherwise. */
function probeAllocation(gpu: Gpu, shape: number[], name: string): string | undefined {
  try {
    createTensor(gpu, shape, { name }).destroy();
    return undefined;
  } catch (e) {
    if (e instanceof EngramError) return e.message;
    throw e;
  }
}

async function measure(
  gpu: Gpu,
  name: string,
  cfg: ModelConfig,
  analysis: string,
  estimate: number | undefined,
  run: (m: TransformerModel) => Promise<void>,
): Promise<MemoryCase> {
  const est = estimateMemory(cfg);
  const c: MemoryCase = {
    name,
    analysis,
    parameters: est.parameters,
    weightBytes: est.parameters * 4,
    estimatedPeakBytes: estimate,
  };
  const why = probeAllocation(gpu, est.largest.shape, est.largest.name);
  if (why) return { ...c, skipped: why };
  const base = gpu.allocatedBytes;
  const rss0 = Deno.memoryUsage().rss;
  const t0 = performance.now();
  let model: TransformerModel;
  try {
    model = TransformerModel.create(gpu, cfg, randomWeights(cfg, 1, { std: 0.02 }));
  } catch (e) {
    if (e instanceof EngramError) return { ...c, skipped: e.message };
    throw e;
  }
  try {
    c.gpuLoadedBytes = gpu.allocatedBytes - base;
    gpu.resetPeak();
    await run(model);
    c.seconds = (performance.now() - t0) / 1000;
    recordAfter(gpu, c, base, rss0);
  } finally {
    model.destroy();
    await gpu.flush();
  }
  return c;
}

/** Options of {@link measureMemory}. */
export interface MeasureMemoryOptions {
  /** Small shapes only: the real shapes are reported as skipped (estimates still given). */
  quick?: boolean;
  /** Tokens of the inference batch (default 32; 8 with quick). */
  tokens?: number;
  log?: (s: string) => void;
}

/** Runs every case, smallest first (so that the process's peak RSS is that of the case just run). */
export async function measureMemory(gpu: Gpu, opts: MeasureMemoryOptions = {}): Promise<MemoryCase[]> {
  const log = opts.log ?? (() => {});
  const T = opts.tokens ?? (opts.quick ? 8 : 32);
  const out: MemoryCase[] = [];
  const world = new URL("../../fixtures/world/", import.meta.url).pathname;
  const tokenizer = await loadTokenizer(world);
  const small: ModelConfig = {
    nLayer: 2,
    nHead: 4,
    nEmbd: 96,
    vocabSize: tokenizer.vocabSize,
    nPositions: 24,
    nInner: 384,
    layerNormEpsilon: 1e-5,
  };
  const requests = await readRequests(`${world}counterfact.json`);
  const statsDir = await Deno.makeTempDir({ prefix: "engram_memory_bench_" });
  try {
    log("memory: ROME edit (world shape) ...");
    const statsCorpus = `${world}train.jsonl`;
    out.push(
      await measure(gpu, "world-shape", small, "one ROME edit (layer 0)", undefined, async (m) => {
        // Key statistics first (cached), so the peak measured is the edit's own.
        await layerStats(m, tokenizer, [0], { cacheDir: statsDir, corpus: statsCorpus });
        gpu.resetPeak();
        const h = await applyEdit(m, tokenizer, "rome", requests.slice(0, 1), {
          statsDir,
          statsCorpus,
          layers: [0],
        });
        h.restore();
      }),
    );
    log("memory: causal trace (world shape) ...");
    out.push(
      await measure(
        gpu,
        "world-shape",
        small,
        "one causal trace (3 kinds, 10 samples)",
        undefined,
        async (m) => {
          const input = encodeFact(tokenizer, {
            prompt: "Narnux Zava was born in the city of",
            subject: "Narnux Zava",
            target: "Frostwick",
          });
          await causalTrace(m, input.ids, input.subjectRange, {
            kinds: [...TRACE_KINDS],
            samples: 10,
            noiseStd: 3 * embeddingStd(m.weights, m.config.nEmbd),
            answer: input.target,
          });
        },
      ),
    );
  } finally {
    await Deno.remove(statsDir, { recursive: true });
  }
  const shapes: Array<[string, ModelConfig]> = [
    ["gpt2-4x256", {
      ...small,
      nLayer: 4,
      nHead: 8,
      nEmbd: 256,
      nInner: 1024,
      vocabSize: 8192,
      nPositions: 256,
    }],
    ...Object.entries(REAL_SHAPES),
  ];
  out.push(await measureBf16File(gpu, T, log, opts.quick ?? false));
  for (const [name, cfg] of shapes) {
    const est = estimateMemory(cfg, { batch: 1, seqLen: T });
    const analysis = `inference, 1×${T} tokens`;
    if (opts.quick && name in REAL_SHAPES) {
      out.push({
        name,
        analysis,
        parameters: est.parameters,
        weightBytes: est.parameters * 4,
        estimatedPeakBytes: est.peak,
        skipped: "--quick: real shapes are estimated only",
      });
      continue;
    }
    log(`memory: ${name} inference ...`);
    const ids = [Array.from({ length: T }, (_, t) => (t * 7919) % cfg.vocabSize)];
    out.push(await measure(gpu, name, cfg, analysis, est.peak, async (m) => void (await m.forward(ids))));
  }
  return out;
}

/**
 * Inference on {@link BF16_FILE_SHAPE} loaded from a BF16 safetensors file written at run time, kept in
 * 16 bits on the GPU: host bytes are the file's (its undecoded tensors), never a float32 copy.
 * `weightBytes` is the file's size here; RSS growth is counted from after the write, so pages the
 * writer freed and the loader reused are not seen (a lower bound; a fresh process shows the whole cost).
 */
async function measureBf16File(
  gpu: Gpu,
  T: number,
  log: (s: string) => void,
  quick: boolean,
): Promise<MemoryCase> {
  // --quick: the same proportions at a sixteenth of the width and vocabulary, 2 layers.
  const cfg: ModelConfig = quick
    ? {
      ...BF16_FILE_SHAPE,
      nLayer: 2,
      nEmbd: 64,
      nInner: 176,
      vocabSize: 2000,
      rope: { ...BF16_FILE_SHAPE.rope!, dim: 8 },
    }
    : BF16_FILE_SHAPE;
  const est = estimateMemory(cfg, { untiedHead: true });
  const analysis = `inference from a BF16 file, 1×${T} tokens, 16-bit storage`;
  const dir = await Deno.makeTempDir({ prefix: "engram_memory_bf16_" });
  try {
    log(`memory: BF16 file (Llama shape, ${(est.parameters / 1e6).toFixed(1)}M parameters) ...`);
    const fileBytes = await writeRandomBf16(dir, cfg);
    const c: MemoryCase = {
      name: quick ? "llama-bf16-file-quick" : "llama-60m-bf16-file",
      analysis,
      parameters: est.parameters,
      weightBytes: fileBytes,
    };
    const base = gpu.allocatedBytes;
    const rss0 = Deno.memoryUsage().rss;
    const t0 = performance.now();
    const hf = await loadHFModel(dir);
    const model = TransformerModel.create(gpu, hf.config, hf.weights, { weightDtypes: hf.dtypes });
    try {
      c.gpuLoadedBytes = gpu.allocatedBytes - base;
      gpu.resetPeak();
      await model.forward([Array.from({ length: T }, (_, t) => (t * 7919) % cfg.vocabSize)]);
      c.seconds = (performance.now() - t0) / 1000;
      c.hostWeightBytes = [...hf.weights.values()].reduce(
        (a, t) => a + (t.undecoded16 ? t.undecoded16.bits.byteLength : t.data.byteLength),
        0,
      );
      recordAfter(gpu, c, base, rss0);
    } finally {
      model.destroy();
      await gpu.flush();
    }
    return c;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

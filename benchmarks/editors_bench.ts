/**
 * Every editor's cost per call at batch 1, 10 and 100 requests (divide by the batch for seconds per
 * edit), in groups with a baseline so that `deno bench` prints ratios from the same run: ROME at batch
 * 1, MEMIT at 10 and 100. ROME and KN edit one request after another (as their references do), so they
 * run at 1 and 10 only. The model is a world-sized random GPT-2 (2 layers, width 96, MLP 384, context
 * 24) with the world tokenizer and fixtures/world/counterfact.json requests, edited at layer 0 with each
 * method's defaults; key statistics and AlphaEdit's projection are computed (and cached in a temporary
 * folder) beforehand, so the figures are of the edits. Each bench applies one call and restores.
 *
 * First (registered first, so it runs first) C's symmetric eigendecomposition for AlphaEdit: the GPU's float32 parallel Jacobi against the
 * float64 host (Householder + QL, the baseline) on random SPD matrices with a spread spectrum, at 128 and
 * 256 on a CPU adapter (llvmpipe; 768 takes minutes there) and at 256 and 768 on a hardware GPU.
 */
import { getGpu } from "../src/gpu/device.ts";
import { jacobiEigenGpu } from "../src/gpu/jacobi_eigen.ts";
import { loadTokenizer } from "../src/io/tokenizer.ts";
import { isCpuAdapter } from "../src/model/memory.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { applyEdit } from "../src/edit/editors.ts";
import { symmetricEigen } from "../src/edit/eigen.ts";
import { readRequests } from "../src/edit/requests.ts";
import { layerStats } from "../src/edit/stats.ts";
import { mulberry32 } from "../src/model/generate.ts";

const WORLD = new URL("../fixtures/world/", import.meta.url).pathname;
const tokenizer = await loadTokenizer(WORLD);
const cfg = {
  nLayer: 2,
  nHead: 4,
  nEmbd: 96,
  vocabSize: tokenizer.vocabSize,
  nPositions: 24,
  nInner: 384,
  layerNormEpsilon: 1e-5,
};
const gpu = await getGpu();
const model = TransformerModel.create(gpu, cfg, randomGPT2(cfg, 1, { std: 0.02 }));
const requests = await readRequests(`${WORLD}/counterfact.json`);
const statsDir = await Deno.makeTempDir({ prefix: "engram_editors_bench_" });
const statsCorpus = `${WORLD}/train.jsonl`;
await layerStats(model, tokenizer, [0], { cacheDir: statsDir, corpus: statsCorpus });
const opts = { statsDir, statsCorpus, layers: [0] };
// AlphaEdit's null space once, into the cache beside the statistics (then every call reads it).
(await applyEdit(model, tokenizer, "alphaedit", requests.slice(0, 1), opts)).restore();

/** A random SPD [n, n] with eigenvalues log-uniform in [1e-5, 1e2], float32 entries. */
function spd(n: number, seed: number): Float64Array {
  const r = mulberry32(seed);
  const S = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) S[i * n + j] = S[j * n + i] = r() - 0.5;
  const Q = symmetricEigen(S, n).vectors;
  const lambda = Array.from({ length: n }, () => 10 ** (-5 + 7 * r()));
  const C = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += Q[k * n + i] * lambda[k] * Q[k * n + j];
      C[i * n + j] = C[j * n + i] = Math.fround(s);
    }
  }
  return C;
}

for (const n of isCpuAdapter(gpu) ? [128, 256] : [256, 768]) {
  const C = spd(n, n);
  Deno.bench(`eigendecomposition ${n}×${n}: host float64 (Householder + QL)`, {
    group: `eigen ${n}`,
    baseline: true,
    n: 2,
    warmup: 0,
  }, () => {
    symmetricEigen(C, n);
  });
  Deno.bench(`eigendecomposition ${n}×${n}: GPU float32 parallel Jacobi`, {
    group: `eigen ${n}`,
    n: 2,
    warmup: 1,
  }, async () => {
    const r = await jacobiEigenGpu(gpu, C, n);
    if (!r.converged) throw new Error(`Jacobi did not converge at ${n} (residual ${r.residual})`);
  });
}

const EDITORS = ["rome", "memit", "alphaedit", "emmet", "ft", "ft-l", "kn"];
const SEQUENTIAL = new Set(["rome", "kn"]);
for (const batch of [1, 10, 100]) {
  const baseline = batch === 1 ? "rome" : "memit";
  for (const method of EDITORS) {
    if (batch === 100 && SEQUENTIAL.has(method)) continue;
    Deno.bench(`${method}, batch ${batch} (seconds per call; / ${batch} per edit)`, {
      group: `batch ${batch}`,
      baseline: method === baseline,
      n: batch === 1 ? 2 : 1,
      warmup: batch === 1 ? 1 : 0,
    }, async () => {
      const h = await applyEdit(
        model,
        tokenizer,
        method,
        requests.slice(0, batch),
        method === "kn" ? {} : opts,
      );
      h.restore();
    });
  }
}

/**
 * ROME pieces: the custom-logit-loss backward (KL + NLL, as ROME's v* objective) against float64 finite
 * differences, the rank-one update mapping k₀ to v*, statistics, and bad input.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { logitLossAndGradients } from "../src/model/backward.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { gpt2ForwardRef } from "../src/reference/gpt2.ts";
import { choleskyRegularized, choleskySolve } from "../src/edit/linalg.ts";
import { freshSeed, randn, rng } from "./_util.ts";

const cfg: ModelConfig = {
  nLayer: 2,
  nHead: 2,
  nEmbd: 6,
  vocabSize: 19,
  nPositions: 8,
  nInner: 24,
  layerNormEpsilon: 1e-5,
};

function logSoftmax(x: ArrayLike<number>, off: number, V: number): Float64Array {
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, x[off + v]);
  let s = 0;
  for (let v = 0; v < V; v++) s += Math.exp(x[off + v] - m);
  return Float64Array.from({ length: V }, (_, v) => x[off + v] - m - Math.log(s));
}

Deno.test("custom logit loss (NLL + KL) gradient at a patched site matches float64 finite differences", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const weights = randomGPT2(cfg, seed);
  const model = TransformerModel.create(gpu, cfg, weights);
  const V = cfg.vocabSize, C = cfg.nEmbd, T = 6;
  const ids = Array.from({ length: T }, () => Math.floor(r() * V));
  const lookup = 2, target = Math.floor(r() * V);
  const p0 = logSoftmax(randn(r, V), 0, V); // a fixed "initial" distribution for the KL
  const kl = 0.7;
  const clean =
    gpt2ForwardRef(cfg, weights, ids, { hooks: { capture: new Set(["mlp_out.0"]) } }).cache["mlp_out.0"];
  const base = Float64Array.from({ length: C }, (_, j) => clean[lookup * C + j]);
  const delta = Float64Array.from(randn(r, C, 0.5));
  // Loss: -log p(target | last position) + kl * KL(P(lookup) || p0), δ added to mlp_out.0 at `lookup`.
  const refLoss = (d: Float64Array) => {
    const { logits } = gpt2ForwardRef(cfg, weights, ids, {
      hooks: {
        patch: {
          "mlp_out.0": (v) => {
            for (let j = 0; j < C; j++) v[lookup * C + j] = base[j] + d[j];
          },
        },
      },
    });
    const last = logSoftmax(logits, (T - 1) * V, V);
    const q = logSoftmax(logits, lookup * V, V);
    let k = 0;
    for (let v = 0; v < V; v++) k += Math.exp(q[v]) * (q[v] - p0[v]);
    return -last[target] + kl * k;
  };
  const values = Float32Array.from(base, (x, j) => x + delta[j]);
  const rows = [T - 1, lookup];
  const res = await logitLossAndGradients(model, [ids], rows, (logits) => {
    const dl = new Float32Array(2 * V);
    const a = logSoftmax(logits, 0, V), q = logSoftmax(logits, V, V);
    let k = 0;
    for (let v = 0; v < V; v++) k += Math.exp(q[v]) * (q[v] - p0[v]);
    for (let v = 0; v < V; v++) {
      dl[v] = Math.exp(a[v]) - (v === target ? 1 : 0);
      dl[V + v] = kl * Math.exp(q[v]) * (q[v] - p0[v] - k);
    }
    return { loss: -a[target] + kl * k, dlogits: dl };
  }, { hooks: { patch: [{ site: "mlp_out.0", rows: [[0, lookup]], values }] }, siteGrads: ["mlp_out.0"] });
  const ref = refLoss(delta);
  assert.ok(
    Math.abs(res.loss - ref) < 1e-4 * Math.max(1, Math.abs(ref)),
    `loss ${res.loss} vs ${ref} (seed ${seed})`,
  );
  const g = res.siteGrads.get("mlp_out.0")!;
  const h = 1e-4;
  for (let j = 0; j < C; j++) {
    const dp = Float64Array.from(delta), dm = Float64Array.from(delta);
    dp[j] += h;
    dm[j] -= h;
    const fd = (refLoss(dp) - refLoss(dm)) / (2 * h);
    const got = g[lookup * C + j];
    assert.ok(
      Math.abs(got - fd) <= 2e-3 * Math.max(1, Math.abs(fd)),
      `dL/dδ[${j}] ${got} vs FD ${fd} (seed ${seed})`,
    );
  }
  model.destroy();
});

Deno.test("Cholesky solve is exact on SPD systems and regularises singular ones", () => {
  const seed = freshSeed();
  const r = rng(seed);
  const n = 7;
  const B = randn(r, n * n);
  const A = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = i === j ? 0.1 : 0;
      for (let k = 0; k < n; k++) s += B[i * n + k] * B[j * n + k];
      A[i * n + j] = s;
    }
  }
  const x = Float64Array.from(randn(r, n * 2));
  const b = new Float64Array(n * 2);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 2; c++) for (let k = 0; k < n; k++) b[i * 2 + c] += A[i * n + k] * x[k * 2 + c];
  }
  const ch = choleskyRegularized(A, n);
  assert.equal(ch.lambda, 0);
  const got = choleskySolve(ch, b, 2);
  for (let i = 0; i < x.length; i++) assert.ok(Math.abs(got[i] - x[i]) < 1e-8, `x[${i}] (seed ${seed})`);
  // Rank-one (singular) matrix: regularised with a reported λ > 0.
  const u = randn(r, n);
  const S = Float64Array.from({ length: n * n }, (_, k) => u[Math.floor(k / n)] * u[k % n]);
  const chs = choleskyRegularized(S, n);
  assert.ok(chs.lambda > 0, "singular matrix must be regularised");
});

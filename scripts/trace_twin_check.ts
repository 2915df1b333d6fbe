/**
 * Measures `causalTrace` (GPU) against its float64 twin on the world model for every corruption and
 * metric: `deno run -A scripts/trace_twin_check.ts` (about a minute on llvmpipe).
 */
import { loadModel } from "../src/model/load.ts";
import { encodeFact } from "../src/prompt/encode.ts";
import { embeddingStd } from "../src/locate/patching.ts";
import { corruptionNoise, embeddingGaussian, subjectReplacement } from "../src/locate/corruption.ts";
import { causalTrace, TRACE_KINDS, type TraceCorruption, type TraceMetric } from "../src/locate/trace.ts";
import { causalTraceRef } from "../src/locate/trace_ref.ts";
const lm = await loadModel(new URL("../fixtures/world/model", import.meta.url).pathname);
const tok = lm.tokenizer!, m = lm.model, cfg = m.config, C = cfg.nEmbd;
const fact = { prompt: "Narnux Zava was born in", subject: "Narnux Zava", target: "Frostwick" };
const e = encodeFact(tok, fact);
const ids = e.ids.slice(0, e.promptLength), range = e.subjectRange, answer = e.target!;
const cf = tok.encode(" Sunmere")[0];
const std = 3 * embeddingStd(m.weights, C);
const fit = embeddingGaussian(m.weights, C);
const rep = subjectReplacement(tok, fact, "Gurnur Rulex", {});
const samples = 3, n = range[1] - range[0];
const cases: Array<[string, TraceCorruption, number]> = [
  ["gaussian", { kind: "noise" }, std],
  ["gaussian replace", { kind: "noise", replace: true }, std],
  ["uniform", { kind: "noise", dist: "uniform" }, std],
  ["mvn", { kind: "noise", dist: "mvn", fit }, 1],
  ["t3", { kind: "noise", dist: "t", df: 3, fit }, 1],
  ["tokens", { kind: "tokens", ids: rep }, 0],
];
for (const [name, corruption, scale] of cases) {
  for (const metric of ["prob", "logprob", "logit-diff"] as TraceMetric[]) {
    const r = await causalTrace(m, ids, range, {
      kinds: [...TRACE_KINDS],
      samples,
      noiseStd: scale,
      answer,
      corruption,
      metric,
      counterfactual: cf,
      window: 2,
    });
    const noise = corruption.kind === "noise"
      ? corruptionNoise(samples, n, C, { ...corruption, scale, seed: 1 })
      : new Float64Array(0);
    const ref = causalTraceRef(cfg, m.weights, ids, range, answer, noise, {
      kinds: [...TRACE_KINDS],
      window: 2,
      metric,
      counterfactual: cf,
      replace: corruption.kind === "noise" && corruption.replace,
      corruptIds: corruption.kind === "tokens"
        ? ids.map((id, t) => (t >= range[0] && t < range[1] ? rep[t - range[0]] : id))
        : undefined,
    });
    let err = 0, sc = 0;
    for (const t of r.traces) {
      ref.scores[t.kind].flat().forEach((v, i) => {
        err = Math.max(err, Math.abs(v - t.scores.flat()[i]));
        sc = Math.max(sc, Math.abs(v));
      });
    }
    console.log(
      `${name.padEnd(16)} ${metric.padEnd(10)} clean ${r.metricClean.toFixed(4)} corrupt ${
        r.metricCorrupt.toFixed(4)
      }  max|GPU-twin| ${err.toExponential(2)} (max |score| ${sc.toFixed(3)})`,
    );
  }
}
m.destroy();

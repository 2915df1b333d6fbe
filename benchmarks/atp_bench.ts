/**
 * Attribution patching vs full activation patching over all sites of one world fact (fixtures/world/model;
 * a random model of the same shape when it is absent): AtP (2 forwards + 1 backward for every node) is
 * the baseline of full patching (one patched sequence per node, batched per site and layer). Before the
 * benchmarks, prints the time ratio measured in the same process and the node count.
 */
import { getGpu } from "../src/gpu/device.ts";
import { loadTokenizer } from "../src/io/tokenizer.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { loadModel } from "../src/model/load.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { encodeFact } from "../src/prompt/encode.ts";
import {
  activationPatchingSweep,
  type AtpMetric,
  type AtpSiteKind,
  attributionPatching,
} from "../src/locate/atp.ts";

const WORLD = new URL("../fixtures/world/", import.meta.url).pathname;
let model: TransformerModel;
let source: string;
try {
  model = (await loadModel(WORLD + "model")).model;
  source = "fixtures/world/model";
} catch {
  const tok = await loadTokenizer(WORLD);
  const cfg = {
    nLayer: 2,
    nHead: 4,
    nEmbd: 96,
    vocabSize: tok.vocabSize,
    nPositions: 24,
    nInner: 384,
    layerNormEpsilon: 1e-5,
  };
  model = TransformerModel.create(await getGpu(), cfg, randomGPT2(cfg, 1, { std: 0.1 }));
  source = "random weights of the world model's shape (fixtures/world/model absent)";
}
const tok = await loadTokenizer(WORLD + (source.startsWith("fixtures") ? "model" : ""));
const clean = encodeFact(tok, {
  prompt: "Gurnur Rulex was born in",
  subject: "Gurnur Rulex",
  target: "Sunmere",
});
const corrupt = encodeFact(tok, {
  prompt: "Rastis Pirnas was born in",
  subject: "Rastis Pirnas",
  target: "Belmira",
});
const ids = clean.ids.slice(0, clean.promptLength), cids = corrupt.ids.slice(0, corrupt.promptLength);
const metric: AtpMetric = {
  kind: "logit-diff",
  answer: clean.target![0],
  counterfactual: corrupt.target![0],
};
// Every hook-site kind full patching can patch; mlp_post one node per neuron.
const sites: AtpSiteKind[] = [
  "embed",
  "resid_pre",
  "attn_out",
  "mlp_post",
  "mlp_out",
  "resid_post",
  "head_out",
  "ln_f",
];
const opts = { sites, perNeuron: true };
const atp = () => attributionPatching(model, ids, { ids: cids }, metric, opts);
const full = () => activationPatchingSweep(model, ids, { ids: cids }, metric, opts);

async function time(f: () => Promise<unknown>, n: number): Promise<number> {
  await f();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await f();
  return (performance.now() - t0) / n;
}
const nodes = (await atp()).sites.reduce((a, s) => a + s.values.length, 0);
const ta = await time(atp, 3), tf = await time(full, 1);
console.log(
  `atp_bench (${source}): ${nodes} nodes; AtP ${ta.toFixed(1)} ms, full activation patching ${
    tf.toFixed(1)
  } ms, ` +
    `ratio full / AtP = ${(tf / ta).toFixed(1)}x`,
);

Deno.bench(
  { name: "AtP, all sites of one fact", group: "atp", baseline: true },
  async () => void (await atp()),
);
Deno.bench(
  { name: "full activation patching, all sites of one fact", group: "atp" },
  async () => void (await full()),
);

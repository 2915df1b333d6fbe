/**
 * Editors compute; one place applies (src/edit/apply.ts). Every editor of the explicit map leaves the
 * model bit-identical — host and GPU copies — when it only computes, also when it fails half-way; the
 * deltas applied give orig + delta on both copies and restore() gives back the original bits; a write
 * that fails during apply restores what was already written; bad deltas are refused before any write;
 * ROME's sequential requests are computed on the model with the earlier updates in place.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { readTensor } from "../src/gpu/tensor.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { applyComputed, applyDeltas, modelWeights, type WeightTarget } from "../src/edit/apply.ts";
import { editorNames, EDITORS } from "../src/edit/editors.ts";
import type { HostTensor } from "../src/model/config.ts";
import { InputError, ShapeError } from "../src/errors.ts";
import { freshSeed, randn, rng } from "./_util.ts";
import { TINY_EDIT_CONFIG, wordTokenizer } from "./_edit_util.ts";

const cfg = TINY_EDIT_CONFIG;
const words = wordTokenizer(cfg.vocabSize);
/** The word tokenizer, also reading ROME's KL prompt "{} is a" ("is" = w10, "a" = w11). */
const tok = {
  ...words,
  encode: (t: string) =>
    words.encode(t.replace(/(^|\s)is(?=\s|$)/g, "$1w10").replace(/(^|\s)a(?=\s|$)/g, "$1w11")),
};
const requests = [
  { prompt: "w1 {} w3", subject: "w2", target_new: "w4 w5", ground_truth: "w6" },
  { prompt: "{} w7", subject: "w6", target_new: "w8", ground_truth: "w9" },
];

async function corpusDir(seed: number): Promise<{ dir: string; corpus: string }> {
  const dir = await Deno.makeTempDir({ prefix: "engram_apply_" });
  const r = rng(seed);
  const lines = Array.from({ length: 40 }, () =>
    JSON.stringify({
      text: Array.from({ length: 3 + Math.floor(r() * 6) }, () => `w${Math.floor(r() * 12)}`).join(" "),
    }));
  await Deno.writeTextFile(`${dir}/c.jsonl`, lines.join("\n") + "\n");
  return { dir, corpus: `${dir}/c.jsonl` };
}

/** Host and GPU bits of every weight. */
async function snapshot(
  model: TransformerModel,
): Promise<Map<string, { host: Float32Array; gpu: Float32Array }>> {
  const out = new Map();
  for (const n of model.weightNames()) {
    out.set(n, { host: model.weights.get(n)!.data.slice(), gpu: await readTensor(model.weight(n)) });
  }
  return out;
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length),
    y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

async function assertUnchanged(
  model: TransformerModel,
  snap: Awaited<ReturnType<typeof snapshot>>,
  what: string,
) {
  for (const [n, s] of snap) {
    assert.ok(sameBits(model.weights.get(n)!.data, s.host), `${what}: host copy of ${n} changed`);
    assert.ok(sameBits(await readTensor(model.weight(n)), s.gpu), `${what}: GPU copy of ${n} changed`);
  }
}

/** Small, fast options per method; ROME and KN get two requests (sequential), MEMIT two layers. */
function optionsFor(method: string, statsCorpus: string, statsDir: string) {
  const romeLike = { v_num_grad_steps: 3, context_template_length_params: [] as number[][] };
  switch (method) {
    case "rome":
      return { layers: [0], statsCorpus, statsDir, hparams: romeLike };
    case "memit":
    case "alphaedit":
      // At the prompt's last token: a z at the last layer's subject token could not move the answer.
      return { layers: [0, 1], statsCorpus, statsDir, hparams: { ...romeLike, fact_token: "last" } };
    case "emmet":
      return { layers: [0], statsCorpus, statsDir, hparams: { ...romeLike, fact_token: "last" } };
    case "kn":
      return { hparams: { steps: 4 } };
    default:
      return { hparams: { num_steps: 3, lr: 0.05, early_stop_loss: 0 } };
  }
}

Deno.test("every editor only computes: the model is bit-identical after it; apply + restore are exact", async () => {
  assert.deepEqual(editorNames(), ["alphaedit", "emmet", "ft", "ft-l", "kn", "memit", "rome"]);
  const seed = freshSeed();
  const { dir, corpus } = await corpusDir(seed);
  const model = TransformerModel.create(await getGpu(), cfg, randomGPT2(cfg, seed));
  try {
    const snap = await snapshot(model);
    for (const [method, editor] of EDITORS) {
      const computed = await editor(model, tok, requests, optionsFor(method, corpus, dir));
      await assertUnchanged(model, snap, `${method} compute (seed ${seed})`);
      assert.ok(computed.deltas.size > 0, `${method}: no deltas`);
      if (method === "memit" || method === "alphaedit") {
        assert.equal(computed.deltas.size, 2, `one delta per ${method} layer`);
      }
      let moved = 0;
      for (const d of computed.deltas.values()) moved += d.data.filter((x) => x !== 0).length;
      assert.ok(moved > 0, `${method}: all deltas are zero (seed ${seed})`);
      const h = applyComputed(model, computed);
      assert.deepEqual(h.result.weights, [...computed.deltas.keys()]);
      for (const [n, s] of snap) {
        const host = model.weights.get(n)!.data;
        assert.ok(sameBits(host, await readTensor(model.weight(n))), `${method}: GPU copy of ${n} = host`);
        const d = computed.deltas.get(n);
        if (!d) assert.ok(sameBits(host, s.host), `${method}: ${n} must not change`);
        else {
          assert.ok(
            sameBits(h.result.originals.get(n)!.data, s.host),
            `${method}: original of ${n} recorded`,
          );
          const want = Float32Array.from(s.host, (x, i) => x + d.data[i]);
          assert.ok(sameBits(host, want), `${method}: ${n} = orig + delta`);
        }
      }
      h.restore();
      await assertUnchanged(model, snap, `${method} restore (seed ${seed})`);
    }
  } finally {
    model.destroy();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an editor that fails after changing weights temporarily leaves the model bit-identical", async () => {
  const seed = freshSeed();
  const { dir, corpus } = await corpusDir(seed);
  const model = TransformerModel.create(await getGpu(), cfg, randomGPT2(cfg, seed));
  try {
    const snap = await snapshot(model);
    // The second request does not fit the context: ROME and KN fail on it after the first request's
    // update was put in place for it.
    const tooLong = {
      prompt: "w1 w1 w1 w1 w1 w1 w1 w1 w1 w1 w1 {}",
      subject: "w2",
      target_new: "w4",
      ground_truth: "w6",
    };
    for (const method of ["rome", "kn"]) {
      await assert.rejects(
        EDITORS.get(method)!(model, tok, [requests[0], tooLong], optionsFor(method, corpus, dir)),
        InputError,
      );
      await assertUnchanged(model, snap, `${method} failure (seed ${seed})`);
    }
  } finally {
    model.destroy();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("applyDeltas: a failed write restores the weights already written; bad deltas are refused first", async () => {
  const seed = freshSeed();
  const r = rng(seed);
  const model = TransformerModel.create(await getGpu(), cfg, randomGPT2(cfg, seed));
  try {
    const snap = await snapshot(model);
    const names = ["h.0.mlp.c_proj.weight", "h.1.mlp.c_proj.weight", "h.1.mlp.c_proj.bias"];
    const deltas = new Map<string, HostTensor>(names.map((n) => {
      const w = model.weights.get(n)!;
      return [n, { shape: [...w.shape], data: randn(r, w.data.length, 0.1) }];
    }));
    // A target whose third write fails (e.g. a lost device): the first two must be put back.
    const inner = modelWeights(model);
    let writes = 0;
    const failing: WeightTarget = {
      get: inner.get,
      set: (n, d) => {
        if (++writes === 3) throw new Error("write failed");
        inner.set(n, d);
      },
    };
    assert.throws(() => applyDeltas(failing, deltas), /write failed/);
    assert.ok(writes > 3, "the restore writes went through the same setter");
    await assertUnchanged(model, snap, `failed apply (seed ${seed})`);
    // Refused before any write: non-finite values, a wrong shape, an unknown weight.
    const bad = (n: string, t: HostTensor) => new Map([[names[0], deltas.get(names[0])!], [n, t]]);
    const nan = Float32Array.from(deltas.get(names[1])!.data);
    nan[7] = NaN;
    assert.throws(
      () => applyDeltas(inner, bad(names[1], { shape: deltas.get(names[1])!.shape, data: nan })),
      InputError,
    );
    assert.throws(
      () => applyDeltas(inner, bad(names[2], { shape: [3], data: new Float32Array(3) })),
      ShapeError,
    );
    assert.throws(
      () => applyDeltas(inner, bad("h.9.nope", { shape: [1], data: new Float32Array(1) })),
      InputError,
    );
    await assertUnchanged(model, snap, `refused apply (seed ${seed})`);
    // A zero delta is applied (nothing moves) with a warning.
    const w0 = model.weights.get(names[2])!;
    const ok = applyDeltas(
      inner,
      new Map([[names[2], { shape: [...w0.shape], data: new Float32Array(w0.data.length) }]]),
    );
    assert.equal(ok.warnings.length, 1);
    await assertUnchanged(model, snap, `zero delta (seed ${seed})`);
  } finally {
    model.destroy();
  }
});

Deno.test("ROME's second request is computed on the model with the first update in place", async () => {
  const seed = freshSeed();
  const { dir, corpus } = await corpusDir(seed);
  const model = TransformerModel.create(await getGpu(), cfg, randomGPT2(cfg, seed));
  const rome = EDITORS.get("rome")!;
  const opts = optionsFor("rome", corpus, dir);
  try {
    const both = await rome(model, tok, requests, opts);
    const first = await rome(model, tok, [requests[0]], opts);
    const h = applyComputed(model, first);
    const second = await rome(model, tok, [requests[1]], opts);
    h.restore();
    const W = "h.0.mlp.c_proj.weight";
    const got = both.deltas.get(W)!.data, d1 = first.deltas.get(W)!.data, d2 = second.deltas.get(W)!.data;
    let err = 0, scale = 0, d2Size = 0;
    for (let i = 0; i < got.length; i++) {
      err = Math.max(err, Math.abs(got[i] - d1[i] - d2[i]));
      scale = Math.max(scale, Math.abs(got[i]));
      d2Size = Math.max(d2Size, Math.abs(d2[i]));
    }
    assert.ok(d2Size > 1e-3 * scale, `the second update is not negligible (seed ${seed})`);
    assert.ok(
      err <= 1e-4 * Math.max(1, scale),
      `Δ(both) − Δ(first) − Δ(second | first) = ${err} (seed ${seed})`,
    );
  } finally {
    model.destroy();
    await Deno.remove(dir, { recursive: true });
  }
});

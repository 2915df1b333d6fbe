/**
 * The read-only commands (trace, eval, atp, recommend-layers, demo) upload a 16-bit model with its 16-bit
 * GPU storage (src/cli/upload.ts), as `loadModel` does: a causal trace of a BF16 Llama with 16-bit storage
 * equals the trace with f32 storage of the same (BF16-rounded) weights within 1e-5 relative, on about half
 * the GPU weight bytes; `engram trace` on the BF16 folder stores its weights in 16 bits (f32 with
 * `--weights f32`) and gives the trace of an F32 folder holding the same values.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { loadHFModel, saveHFModel } from "../src/io/hf_model.ts";
import { causalTrace, TRACE_KINDS } from "../src/locate/trace.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { uploadModel } from "../src/cli/upload.ts";
import { writeTinyCheckpoint } from "./_hf_fixtures.ts";
import { engram, freshSeed, rng } from "./_util.ts";

const WORLD = new URL("../fixtures/world/", import.meta.url).pathname;

/** Largest |a - b| / max(|b|, floor) over two equally long lists. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>, floor: number): number {
  assert.equal(a.length, b.length);
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i] - b[i]) / Math.max(Math.abs(b[i]), floor));
  return e;
}

Deno.test("causal trace of a BF16 Llama: 16-bit storage = f32 storage of the same weights, half the bytes", async () => {
  const seed = freshSeed();
  const tmp = await Deno.makeTempDir({ prefix: "engram_trace16_" });
  try {
    // Odd widths: odd element counts of the embedding and MLP weights (words split across rows).
    await writeTinyCheckpoint(tmp, {
      family: "llama",
      dtype: "BF16",
      seed,
      overrides: {
        hidden_size: 15,
        head_dim: 6,
        intermediate_size: 29,
        vocab_size: 47,
        num_hidden_layers: 3,
      },
    });
    const hf = await loadHFModel(tmp);
    const gpu = await getGpu();
    const m16 = uploadModel(gpu, hf);
    // The same values (hf.weights holds the decoded BF16 values) stored as f32.
    const m32 = TransformerModel.create(gpu, hf.config, hf.weights);
    try {
      assert.equal(m16.weightStorage("embed_tokens.weight"), "bf16");
      assert.equal(m16.weightStorage("layers.1.mlp.down_proj.weight"), "bf16");
      assert.equal(m32.weightStorage("layers.1.mlp.down_proj.weight"), "f32");
      const ratio = m16.weightBytes() / m32.weightBytes();
      console.log(
        `GPU weight bytes: 16-bit ${m16.weightBytes()}, f32 ${m32.weightBytes()} (ratio ${ratio.toFixed(3)})`,
      );
      assert.ok(ratio > 0.5 && ratio < 0.56, `ratio ${ratio}`);
      const r = rng(seed + 1);
      const ids = Array.from({ length: 7 }, () => Math.floor(r() * 47));
      const opts = { kinds: [...TRACE_KINDS], samples: 3, noiseStd: 0.3, window: 2, seed: seed + 2 };
      const a = await causalTrace(m16, ids, [1, 3], opts);
      const b = await causalTrace(m32, ids, [1, 3], opts);
      assert.deepEqual(a.answer, b.answer);
      const tol = 1e-5;
      const floor = 1e-3 * Math.max(b.pClean, b.pCorrupt);
      assert.ok(
        relErr([a.pClean, a.pCorrupt], [b.pClean, b.pCorrupt], floor) <= tol,
        `p ${a.pClean} ${b.pClean}`,
      );
      let worst = 0;
      for (let k = 0; k < TRACE_KINDS.length; k++) {
        const e = relErr(a.traces[k].scores.flat(), b.traces[k].scores.flat(), floor);
        assert.ok(e <= tol, `${TRACE_KINDS[k]}: relative difference ${e} (seed ${seed})`);
        worst = Math.max(worst, e);
      }
      // Not a vacuous comparison: the corruption moves the scores.
      assert.ok(Math.abs(b.pClean - b.pCorrupt) > 1e-6, `p_clean ${b.pClean} = p_corrupt ${b.pCorrupt}`);
      console.log(
        `trace 16-bit vs f32 storage: worst relative difference ${worst.toExponential(2)} (seed ${seed})`,
      );
    } finally {
      m16.destroy();
      m32.destroy();
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("engram trace on a BF16 folder: 16-bit storage, the trace of an F32 folder of the same values", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "engram_trace16_cli_" });
  try {
    const bf = `${tmp}/bf16`, f32 = `${tmp}/f32`;
    await writeTinyCheckpoint(bf, {
      family: "llama",
      dtype: "BF16",
      seed: freshSeed(),
      overrides: { vocab_size: 1284, hidden_size: 15, head_dim: 6, intermediate_size: 29 },
    });
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) await Deno.copyFile(WORLD + f, `${bf}/${f}`);
    const hf = await loadHFModel(bf);
    await saveHFModel(f32, {
      config: hf.config,
      weights: hf.weights,
      baseConfig: hf.hfConfig,
      activationFunction: hf.activationFunction,
      tokenizerFrom: bf,
      forceF32: true,
    });
    const run = async (dir: string, ...extra: string[]) => {
      const r = await engram(
        "--log-level",
        "debug",
        "trace",
        ...extra,
        "--model",
        dir,
        "--prompt",
        "We know that Gurnur Rulex was born in",
        "--subject",
        "Gurnur Rulex",
        "--kind",
        "all",
        "--samples",
        "2",
        "--window",
        "2",
        "--seed",
        "5",
        "--json",
      );
      assert.equal(r.code, 0, r.stderr);
      const m = /model weights on the GPU: (\d+) bytes; (\d+) of (\d+) weights stored in 16 bits/.exec(
        r.stderr,
      );
      assert.ok(m, r.stderr);
      return { json: JSON.parse(r.stdout), bytes: Number(m[1]), n16: Number(m[2]) };
    };
    const a = await run(bf), b = await run(f32), c = await run(bf, "--weights", "f32");
    assert.ok(a.n16 > 0 && b.n16 === 0, `16-bit tensors: ${a.n16} (BF16 folder), ${b.n16} (F32 folder)`);
    // --weights f32 decodes the BF16 folder's weights: the F32 folder's storage, its trace exactly.
    assert.equal(c.n16, 0);
    assert.equal(c.bytes, b.bytes);
    const timeless = (ts: Record<string, unknown>[]) => ts.map(({ seconds: _, ...t }) => t);
    assert.deepEqual(timeless(c.json.traces), timeless(b.json.traces));
    const ratio = a.bytes / b.bytes;
    console.log(
      `engram trace GPU weight bytes: BF16 folder ${a.bytes}, F32 folder ${b.bytes} (${ratio.toFixed(3)})`,
    );
    assert.ok(ratio < 0.56, `ratio ${ratio}`);
    assert.equal(a.json.traces.length, 3);
    for (let k = 0; k < 3; k++) {
      const ta = a.json.traces[k], tb = b.json.traces[k];
      assert.equal(ta.kind, tb.kind);
      const floor = 1e-3 * Math.max(tb.p_clean, tb.p_corrupt);
      const e = relErr(
        [ta.p_clean, ta.p_corrupt, ...ta.scores.flat()],
        [tb.p_clean, tb.p_corrupt, ...tb.scores.flat()],
        floor,
      );
      assert.ok(e <= 1e-5, `${ta.kind}: relative difference ${e}`);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

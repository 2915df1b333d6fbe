/**
 * Tiny random Hugging Face checkpoints of every family, written by an independent writer
 * (tests/_hf_fixtures.ts) in F32, F16 and BF16 (one sharded), loaded by the model loader and run on the
 * GPU: log-probabilities and logits at every position against the float64 reference forward on the
 * writer's own weights.
 */
import assert from "node:assert/strict";
import { relErr } from "./_util.ts";
import { loadModel } from "../src/model/load.ts";
import { transformerForwardRef } from "../src/reference/transformer.ts";
import { type TinyFamily, writeTinyCheckpoint } from "./_hf_fixtures.ts";

const CASES: Array<
  { family: TinyFamily; dtype: "F32" | "F16" | "BF16"; shards?: number; overrides?: Record<string, unknown> }
> = [
  { family: "llama", dtype: "BF16", shards: 2 },
  {
    family: "llama",
    dtype: "F16",
    overrides: {
      rope_scaling: {
        rope_type: "llama3",
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 8,
      },
    },
  },
  { family: "mistral", dtype: "F32", overrides: { sliding_window: 3 } },
  { family: "qwen2", dtype: "BF16" },
  { family: "qwen3", dtype: "F16" },
  { family: "gpt_neox", dtype: "F16" },
  { family: "gpt_neox", dtype: "BF16", overrides: { use_parallel_residual: false } },
  { family: "gptj", dtype: "BF16", shards: 3 },
  { family: "gpt2", dtype: "F16" },
];

for (const c of CASES) {
  const label = `${c.family} ${c.dtype}${c.shards ? `, ${c.shards} shards` : ""}${
    c.overrides ? `, ${Object.keys(c.overrides).join(", ")}` : ""
  }`;
  Deno.test(`checkpoint forward matches the float64 reference: ${label}`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "engram-ckpt-" });
    try {
      const ck = await writeTinyCheckpoint(dir, {
        family: c.family,
        dtype: c.dtype,
        shards: c.shards,
        seed: 5,
        overrides: c.overrides,
      });
      const lm = await loadModel(dir);
      try {
        const V = lm.model.config.vocabSize;
        const ids = Array.from({ length: 7 }, (_, t) => (t * 5 + 2) % V);
        const got = await lm.model.forward([ids], { allLogits: true });
        const ref = transformerForwardRef(lm.model.config, ck.weights, ids);
        const e = relErr(got.logits!, ref.logits);
        assert.ok(ref.logits.some((x) => x !== 0) && e < 2e-5, `logits rel err ${e}`);
      } finally {
        lm.model.destroy();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

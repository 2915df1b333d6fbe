import assert from "node:assert/strict";
import { ShapeError } from "../src/errors.ts";
import { attention, type AttentionShape } from "../src/gpu/attention.ts";
import { getGpu } from "../src/gpu/device.ts";
import { createTensor, poison, readTensor } from "../src/gpu/tensor.ts";
import { attentionRef } from "../src/reference/attention.ts";
import { assertClose, freshSeed, randn, relErr, rng } from "./_util.ts";

const CONFIGS: AttentionShape[] = [
  { B: 1, T: 1, C: 2, nHead: 1 },
  { B: 2, T: 7, C: 12, nHead: 3 }, // D = 4
  { B: 1, T: 5, C: 6, nHead: 2 }, // D = 3
  { B: 3, T: 33, C: 48, nHead: 4 }, // D = 12
  { B: 1, T: 128, C: 64, nHead: 4 }, // D = 16
  { B: 1, T: 70, C: 8, nHead: 4 }, // D = 2, more than one workgroup of rows per head
  { B: 1, T: 9, C: 128, nHead: 2 }, // D = 64 (GPT-2's head size)
  { B: 2, T: 5, C: 128, nHead: 1 }, // D = 128 (the maximum)
];

const tag = (c: AttentionShape, scale: number) =>
  `B=${c.B} T=${c.T} C=${c.C} nHead=${c.nHead} scale=${scale}`;

for (const scale of [1, 5]) {
  Deno.test(`attention matches float64 twin (out and probs), input scale ${scale}`, async () => {
    const gpu = await getGpu();
    const seed = freshSeed();
    const r = rng(seed);
    // Peaky softmax (scale 5) amplifies f32 rounding in the scores: |δp| ≈ p·|δz|, |δz| ~ 1e-7·Σ|q_d k_d|.
    const tol = scale === 1 ? 1e-5 : 1e-4;
    const worst = { out: 0, probs: 0 };
    for (const c of CONFIGS) {
      const { B, T, C, nHead } = c;
      const x = randn(r, B * T * 3 * C, scale);
      const ref = attentionRef(x, c);
      const qkv = createTensor(gpu, [B, T, 3 * C], { name: "qkv", data: x });
      const out = createTensor(gpu, [B, T, C], { name: "out" });
      const probs = createTensor(gpu, [B, nHead, T, T], { name: "probs" });

      // Without probs (entry attention_fwd).
      poison(out);
      await attention(gpu, qkv, out, c);
      const o1 = await readTensor(out);
      worst.out = Math.max(worst.out, assertClose(o1, ref.out, tol, `out (no probs) ${tag(c, scale)}`, seed));

      // With probs (entry attention_probs): both outputs.
      poison(out);
      poison(probs);
      await attention(gpu, qkv, out, { ...c, probs });
      const o2 = await readTensor(out);
      const p2 = await readTensor(probs);
      worst.out = Math.max(
        worst.out,
        assertClose(o2, ref.out, tol, `out (with probs) ${tag(c, scale)}`, seed),
      );
      worst.probs = Math.max(worst.probs, assertClose(p2, ref.probs, tol, `probs ${tag(c, scale)}`, seed));

      // Above the diagonal exactly 0; each row sums to 1.
      for (let row = 0; row < B * nHead * T; row++) {
        const t = row % T;
        let sum = 0;
        for (let s = 0; s < T; s++) {
          const v = p2[row * T + s];
          if (s > t) assert.equal(v, 0, `probs[${row}, ${s}] above the diagonal (seed ${seed})`);
          else sum += v;
        }
        assert.ok(
          Math.abs(sum - 1) < 1e-5,
          `probs row ${row} sums to ${sum} (${tag(c, scale)}, seed ${seed})`,
        );
      }

      // Causality sanity check independent of the twin: position 0 attends only to itself, so its
      // output is v of position 0, per sequence and head.
      const D = C / nHead;
      const v0 = new Float64Array(B * C), o0 = new Float64Array(B * C);
      for (let b = 0; b < B; b++) {
        for (let j = 0; j < C; j++) {
          v0[b * C + j] = x[b * T * 3 * C + 2 * C + j];
          o0[b * C + j] = o2[b * T * C + j];
        }
      }
      assertClose(o0, v0, 1e-6, `out[:, 0] == v[:, 0] ${tag(c, scale)} D=${D}`, seed);

      qkv.destroy();
      out.destroy();
      probs.destroy();
    }
    console.log(
      `attention scale ${scale}: worst rel. error out ${worst.out.toExponential(2)}, probs ${
        worst.probs.toExponential(2)
      }`,
    );
  });
}

Deno.test("attention output at t does not depend on later positions", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const c = { B: 2, T: 11, C: 12, nHead: 3 };
  const x = randn(r, c.B * c.T * 3 * c.C);
  const qkv = createTensor(gpu, [c.B, c.T, 3 * c.C], { name: "qkv", data: x });
  const out = createTensor(gpu, [c.B, c.T, c.C], { name: "out" });
  await attention(gpu, qkv, out, c);
  const before = await readTensor(out);
  // Scramble the last position of every sequence (q, k and v).
  const y = x.slice();
  for (let b = 0; b < c.B; b++) {
    const o = (b * c.T + c.T - 1) * 3 * c.C;
    for (let j = 0; j < 3 * c.C; j++) y[o + j] = 100 * (r() - 0.5);
  }
  const qkv2 = createTensor(gpu, [c.B, c.T, 3 * c.C], { name: "qkv2", data: y });
  await attention(gpu, qkv2, out, c);
  const after = await readTensor(out);
  for (let b = 0; b < c.B; b++) {
    const lo = b * c.T * c.C, hi = lo + (c.T - 1) * c.C;
    assert.equal(
      relErr(after.subarray(lo, hi), before.subarray(lo, hi), 1),
      0,
      `earlier positions changed (seed ${seed})`,
    );
    assert.ok(
      relErr(after.subarray(hi, hi + c.C), before.subarray(hi, hi + c.C), 1) > 0,
      "last position unchanged",
    );
  }
  qkv.destroy();
  qkv2.destroy();
  out.destroy();
});

Deno.test("attention rejects wrong shapes with ShapeError naming the tensor", async () => {
  const gpu = await getGpu();
  const c = { B: 2, T: 4, C: 8, nHead: 2 };
  const qkv = createTensor(gpu, [2, 4, 24], { name: "qkv" });
  const out = createTensor(gpu, [2, 4, 8], { name: "att" });
  const bad = async (f: () => Promise<void>, field: string) => {
    let err: unknown;
    try {
      await f();
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof ShapeError, `expected ShapeError for ${field}, got ${err}`);
    assert.equal(err.field, field, err.message);
  };
  await bad(() => attention(gpu, createTensor(gpu, [2, 4, 23], { name: "qkv_bad" }), out, c), "qkv_bad");
  await bad(() => attention(gpu, qkv, createTensor(gpu, [2, 4, 7], { name: "out_bad" }), c), "out_bad");
  await bad(
    () => attention(gpu, qkv, out, { ...c, probs: createTensor(gpu, [2, 2, 4, 3], { name: "probs_bad" }) }),
    "probs_bad",
  );
  await bad(() => attention(gpu, qkv, out, { ...c, nHead: 3 }), "nHead");
  await bad(() => attention(gpu, qkv, out, { ...c, T: 0 }), "T");
  await bad(() => attention(gpu, qkv, out, { ...c, B: 1.5 }), "B");
  await bad(
    () =>
      attention(
        gpu,
        createTensor(gpu, [1, 1, 3 * 258], { name: "q" }),
        createTensor(gpu, [1, 258], { name: "o" }),
        {
          B: 1,
          T: 1,
          C: 258,
          nHead: 1,
        },
      ),
    "nHead",
  );
  // [B*T, 3C] as the model workspace allocates it is accepted.
  await attention(
    gpu,
    createTensor(gpu, [8, 24], { name: "qkv2d" }),
    createTensor(gpu, [8, 8], { name: "o2d" }),
    c,
  );
  await gpu.flush();
});

import assert from "node:assert/strict";
import { InputError, ShapeError } from "../src/errors.ts";
import { getGpu } from "../src/gpu/device.ts";
import { checkIds, embedding } from "../src/gpu/embedding.ts";
import { createTensor, poison, readTensor } from "../src/gpu/tensor.ts";
import { embeddingRef } from "../src/reference/embedding.ts";
import { assertClose, freshSeed, randn, rng } from "./_util.ts";

function randIds(r: () => number, n: number, bound: number): Uint32Array {
  const a = new Uint32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.floor(r() * bound);
  return a;
}

// [T, C, V, P]: odd widths, T*C around and across multiples of the workgroup size (256).
const SHAPES: Array<[number, number, number, number]> = [
  [1, 1, 1, 1],
  [3, 5, 7, 4],
  [7, 37, 50, 9],
  [17, 64, 97, 32],
  [5, 257, 11, 6],
];

Deno.test("embedding matches float64 twin (offset, explicit positions, host ids) on odd sizes", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  let worst = 0;
  for (const [T, C, V, P] of SHAPES) {
    const wte = randn(r, V * C), wpe = randn(r, P * C);
    const ids = randIds(r, T, V);
    const tw = createTensor(gpu, [V, C], { name: "wte", data: wte });
    const tp = createTensor(gpu, [P, C], { name: "wpe", data: wpe });
    const tid = createTensor(gpu, [T], { name: "ids", dtype: "u32", data: ids });
    const out = createTensor(gpu, [T, C], { name: "out" });
    const what = `T=${T} C=${C} V=${V} P=${P}`;
    const check = async (ref: Float64Array, label: string) => {
      worst = Math.max(worst, assertClose(await readTensor(out), ref, 1e-6, `${label} ${what}`, seed));
    };

    // Position offset (largest that fits), GPU ids.
    const offset = P - T >= 0 ? Math.floor(r() * (P - T + 1)) : 0;
    if (T <= P) {
      poison(out);
      await embedding(gpu, tid, tw, tp, out, { T, C, positionOffset: offset });
      await check(embeddingRef(ids, wte, wpe, C, { positionOffset: offset }), `offset ${offset}`);
    }

    // Explicit positions (as a batch would use), GPU tensor; T may exceed P here.
    const positions = randIds(r, T, P);
    const tpos = createTensor(gpu, [T], { name: "positions", dtype: "u32", data: positions });
    poison(out);
    await embedding(gpu, tid, tw, tp, out, { T, C, positions: tpos });
    await check(embeddingRef(ids, wte, wpe, C, { positions }), "positions tensor");

    // Host ids and host positions (checked, uploaded, freed).
    poison(out);
    await embedding(gpu, Array.from(ids), tw, tp, out, { T, C, positions: Array.from(positions) });
    await check(embeddingRef(ids, wte, wpe, C, { positions }), "host ids and positions");
    for (const t of [tw, tp, tid, out, tpos]) t.destroy();
  }
  console.log(`embedding worst relative error ${worst.toExponential(2)}`);
});

Deno.test("checkIds and host-data embedding reject out-of-range ids with InputError", async () => {
  checkIds([0, 1, 49], 50);
  assert.throws(() => checkIds([0, 50], 50, "ids"), (e: unknown) => {
    return e instanceof InputError && e.field === "ids" && e.message.includes("50") &&
      e.message.includes("index 1");
  });
  assert.throws(() => checkIds([-1], 50), InputError);
  assert.throws(() => checkIds([1.5], 50), InputError);
  assert.throws(() => checkIds([NaN], 50), InputError);

  const gpu = await getGpu();
  const C = 4, V = 5, P = 3;
  const tw = createTensor(gpu, [V, C], { name: "wte" }), tp = createTensor(gpu, [P, C], { name: "wpe" });
  const out = createTensor(gpu, [2, C], { name: "out" });
  await assert.rejects(() => embedding(gpu, [1, 5], tw, tp, out, { T: 2, C }), InputError);
  await assert.rejects(
    () => embedding(gpu, [1, 2], tw, tp, out, { T: 2, C, positions: [0, 3] }),
    (e: unknown) => e instanceof InputError && e.field === "positions",
  );
  await assert.rejects(
    () => embedding(gpu, [1, 2], tw, tp, out, { T: 2, C, positionOffset: 2 }),
    (e: unknown) => e instanceof InputError && e.field === "positionOffset",
  );
  for (const t of [tw, tp, out]) t.destroy();
  await gpu.flush();
});

Deno.test("embedding clamps out-of-range ids and positions already on the GPU (no out-of-bounds read)", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const T = 3, C = 6, V = 4, P = 3;
  const wte = randn(r, V * C), wpe = randn(r, P * C);
  const tw = createTensor(gpu, [V, C], { data: wte }), tp = createTensor(gpu, [P, C], { data: wpe });
  const tid = createTensor(gpu, [T], { dtype: "u32", data: new Uint32Array([2, 4, 0xffffffff]) });
  const tpos = createTensor(gpu, [T], { dtype: "u32", data: new Uint32Array([0, 7, 0xffffffff]) });
  const out = createTensor(gpu, [T, C]);
  poison(out);
  await embedding(gpu, tid, tw, tp, out, { T, C, positions: tpos });
  const ref = embeddingRef([2, V - 1, V - 1], wte, wpe, C, { positions: [0, P - 1, P - 1] });
  assertClose(await readTensor(out), ref, 1e-6, "clamped", seed);
  for (const t of [tw, tp, tid, tpos, out]) t.destroy();
});

Deno.test("embedding shape mismatches throw ShapeError naming the tensor", async () => {
  const gpu = await getGpu();
  const C = 4;
  const tw = createTensor(gpu, [5, C], { name: "wte.weight" }),
    tp = createTensor(gpu, [3, C], { name: "wpe.weight" });
  const badW = createTensor(gpu, [5, C + 1], { name: "wte.bad" });
  const out = createTensor(gpu, [2, C], { name: "embed.out" });
  const fids = createTensor(gpu, [2], { name: "float.ids" });
  const ids = createTensor(gpu, [2], { name: "ids", dtype: "u32", data: new Uint32Array([0, 1]) });
  const is = (name: string) => (e: unknown) => e instanceof ShapeError && e.message.includes(name);
  await assert.rejects(() => embedding(gpu, ids, badW, tp, out, { T: 2, C }), is("wte.bad"));
  await assert.rejects(() => embedding(gpu, ids, tw, tp, out, { T: 3, C }), is("embed.out"));
  await assert.rejects(() => embedding(gpu, fids, tw, tp, out, { T: 2, C }), is("float.ids"));
  await assert.rejects(() => embedding(gpu, [0, 1, 2], tw, tp, out, { T: 2, C }), ShapeError);
  for (const t of [tw, tp, badW, out, fids, ids]) t.destroy();
  await gpu.flush();
});

Deno.test("embedding without a position table gathers the token rows only (positions ignored)", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  let worst = 0;
  for (const [T, C, V] of [[1, 1, 1], [3, 5, 7], [7, 37, 50], [17, 64, 97], [5, 257, 11]]) {
    const wte = randn(r, V * C);
    const ids = randIds(r, T, V);
    const tw = createTensor(gpu, [V, C], { name: "embed_tokens.weight", data: wte });
    const tid = createTensor(gpu, [T], { name: "ids", dtype: "u32", data: ids });
    const out = createTensor(gpu, [T, C], { name: "out" });
    const ref = embeddingRef(ids, wte, null, C);
    // Independently of the twin: row t is wte row ids[t], bit for bit.
    const rows = Float32Array.from({ length: T * C }, (_, i) => wte[ids[Math.floor(i / C)] * C + (i % C)]);
    assert.deepEqual(Float32Array.from(ref), rows);
    const what = `T=${T} C=${C} V=${V}`;
    for (
      const [label, run] of [
        ["gpu ids, wpe null", () => embedding(gpu, tid, tw, null, out, { T, C })],
        ["host ids, wpe undefined", () => embedding(gpu, Array.from(ids), tw, undefined, out, { T, C })],
        // Position options mean nothing without a table: not checked, not used.
        ["positions ignored", () => embedding(gpu, tid, tw, null, out, { T, C, positionOffset: 1e6 })],
        [
          "host positions ignored",
          () => embedding(gpu, tid, tw, null, out, { T, C, positions: new Array(T).fill(-1) }),
        ],
      ] as Array<[string, () => Promise<void>]>
    ) {
      poison(out);
      await run();
      const got = await readTensor(out);
      worst = Math.max(worst, assertClose(got, ref, 0, `${label} ${what}`, seed));
    }
    for (const t of [tw, tid, out]) t.destroy();
  }
  console.log(`embedding (tokens only) worst relative error ${worst.toExponential(2)}`);
});

Deno.test("embedding without a position table still checks ids, wte and out", async () => {
  const gpu = await getGpu();
  const C = 4;
  const tw = createTensor(gpu, [5, C], { name: "wte.weight" });
  const out = createTensor(gpu, [2, C], { name: "embed.out" });
  const is = (name: string) => (e: unknown) => e instanceof ShapeError && e.message.includes(name);
  await assert.rejects(() => embedding(gpu, [1, 5], tw, null, out, { T: 2, C }), InputError);
  await assert.rejects(() => embedding(gpu, [1, 2], tw, null, out, { T: 3, C }), ShapeError);
  await assert.rejects(() => embedding(gpu, [1, 2], tw, null, tw, { T: 2, C: 4 }), is("wte.weight"));
  for (const t of [tw, out]) t.destroy();
  await gpu.flush();
});

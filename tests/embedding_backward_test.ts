import assert from "node:assert/strict";
import { InputError, ShapeError } from "../src/errors.ts";
import { getGpu } from "../src/gpu/device.ts";
import { embeddingBackward, groupRows } from "../src/gpu/embedding_backward.ts";
import { createTensor, poison, readTensor } from "../src/gpu/tensor.ts";
import { embeddingRef } from "../src/reference/embedding.ts";
import { embeddingBackwardRef } from "../src/reference/embedding_backward.ts";
import { assertClose, freshSeed, randn, relErr, rng } from "./_util.ts";

/** T ids drawn from the first `used` of V rows, so ids repeat and some rows are never used. */
function drawIds(r: () => number, T: number, used: number): number[] {
  return Array.from({ length: T }, () => Math.floor(r() * used));
}

Deno.test("groupRows builds sorted CSR groups", () => {
  const g = groupRows([3, 0, 3, 2, 0, 3], 5);
  assert.deepEqual([...g.uniq], [0, 2, 3]);
  assert.deepEqual([...g.offsets], [0, 2, 3, 6]);
  assert.deepEqual([...g.rows], [1, 4, 3, 0, 2, 5]);
});

Deno.test("embeddingBackwardRef matches central finite differences of embeddingRef (float64)", () => {
  const seed = freshSeed();
  const r = rng(seed);
  const V = 6, P = 5, C = 3, T = 9;
  const ids = drawIds(r, T, 4); // repeats, rows 4 and 5 unused
  const positions = Array.from({ length: T }, (_, t) => t % 3); // batch of 3 sequences of length 3
  const wte = Float64Array.from(randn(r, V * C)), wpe = Float64Array.from(randn(r, P * C));
  const dout = randn(r, T * C);
  const ref = embeddingBackwardRef(dout, ids, positions, V, P, C);
  const loss = () => {
    const y = embeddingRef(ids, wte, wpe, C, { positions });
    let s = 0;
    for (let i = 0; i < y.length; i++) s += dout[i] * y[i];
    return s;
  };
  const fd = (p: Float64Array) => {
    const g = new Float64Array(p.length), h = 1e-5;
    for (let i = 0; i < p.length; i++) {
      const v = p[i];
      p[i] = v + h;
      const lp = loss();
      p[i] = v - h;
      const lm = loss();
      p[i] = v;
      g[i] = (lp - lm) / (2 * h);
    }
    return g;
  };
  const ete = relErr(ref.dwte, fd(wte)), epe = relErr(ref.dwpe, fd(wpe));
  console.log(
    `embeddingBackwardRef vs central FD, relative error: dwte ${ete.toExponential(2)}, dwpe ${
      epe.toExponential(2)
    } (seed ${seed})`,
  );
  assert.ok(ete <= 1e-6 && epe <= 1e-6, `FD mismatch dwte ${ete} dwpe ${epe} (seed ${seed})`);
});

Deno.test("embeddingBackward matches float64 twin with repeated ids, overwrite and accumulate", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  let worst = 0;
  for (const T of [1, 7, 33]) {
    for (const C of [1, 5, 64, 97]) {
      const V = 13, L = Math.ceil(T / 2), P = L + 2;
      const ids = drawIds(r, T, 9);
      const positions = Array.from({ length: T }, (_, t) => t % L);
      const dout = randn(r, T * C);
      const ref = embeddingBackwardRef(dout, ids, positions, V, P, C);
      const td = createTensor(gpu, [T, C], { name: "dout", data: dout });
      const dwte = createTensor(gpu, [V, C], { name: "dwte" });
      const dwpe = createTensor(gpu, [P, C], { name: "dwpe" });
      const what = `T=${T} C=${C}`;

      // Overwrite: poisoned tables must come back fully written (0 for unused rows).
      poison(dwte);
      poison(dwpe);
      await embeddingBackward(gpu, td, ids, positions, dwte, dwpe, { T, C });
      worst = Math.max(worst, assertClose(await readTensor(dwte), ref.dwte, 1e-5, `dwte ${what}`, seed));
      worst = Math.max(worst, assertClose(await readTensor(dwpe), ref.dwpe, 1e-5, `dwpe ${what}`, seed));

      // Accumulate: known pre-fills are added to; rows no token uses keep them exactly.
      const pte = randn(r, V * C), ppe = randn(r, P * C);
      const ate = createTensor(gpu, [V, C], { name: "dwte", data: pte });
      const ape = createTensor(gpu, [P, C], { name: "dwpe", data: ppe });
      await embeddingBackward(gpu, td, ids, positions, ate, ape, { T, C, accumulate: true });
      const gte = await readTensor(ate), gpe = await readTensor(ape);
      const plus = (a: ArrayLike<number>, d: ArrayLike<number>) => Float64Array.from(d, (v, i) => v + a[i]);
      worst = Math.max(worst, assertClose(gte, plus(pte, ref.dwte), 1e-5, `dwte += ${what}`, seed));
      worst = Math.max(worst, assertClose(gpe, plus(ppe, ref.dwpe), 1e-5, `dwpe += ${what}`, seed));
      for (let v = 0; v < V; v++) {
        if (ids.includes(v)) continue;
        for (let c = 0; c < C; c++) assert.equal(gte[v * C + c], pte[v * C + c], `unused row ${v} changed`);
      }
      for (const t of [td, dwte, dwpe, ate, ape]) t.destroy();
    }
  }
  console.log(`embeddingBackward GPU vs float64 twin, worst relative error ${worst.toExponential(2)}`);
});

Deno.test("embeddingBackward skips a null table and does not check its indices", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const T = 6, C = 4, V = 5;
  const ids = [4, 4, 1, 0, 4, 1];
  const dout = randn(r, T * C);
  const ref = embeddingBackwardRef(dout, ids, new Array(T).fill(0), V, 1, C);
  const td = createTensor(gpu, [T, C], { name: "dout", data: dout });
  const dwte = createTensor(gpu, [V, C], { name: "dwte" });
  poison(dwte);
  await embeddingBackward(gpu, td, ids, [99, -1, 0.5, 0, 0, 0], dwte, null, { T, C });
  assertClose(await readTensor(dwte), ref.dwte, 1e-5, "dwte only", seed);
  const dwpe = createTensor(gpu, [T, C], { name: "dwpe" });
  poison(dwpe);
  await embeddingBackward(gpu, td, [-5, 1e9, 0, 0, 0, 0], [5, 4, 3, 2, 1, 0], undefined, dwpe, { T, C });
  const want = Float64Array.from(
    { length: T * C },
    (_, i) => dout[(T - 1 - Math.floor(i / C)) * C + (i % C)],
  );
  assertClose(await readTensor(dwpe), want, 1e-6, "dwpe only", seed);
  for (const t of [td, dwte, dwpe]) t.destroy();
});

Deno.test("embeddingBackward rejects bad shapes (ShapeError) and out-of-range indices (InputError)", async () => {
  const gpu = await getGpu();
  const d = createTensor(gpu, [3, 4], { name: "emb.dout" });
  const dwte = createTensor(gpu, [5, 4], { name: "wte.grad" });
  const dwpe = createTensor(gpu, [3, 4], { name: "wpe.grad" });
  const bad = createTensor(gpu, [5, 3], { name: "narrow.grad" });
  const ids = [0, 1, 4], pos = [0, 1, 2], opts = { T: 3, C: 4 };
  const names = (s: string) => (e: unknown) => e instanceof ShapeError && e.message.includes(s);
  await assert.rejects(() => embeddingBackward(gpu, d, ids, pos, bad, dwpe, opts), names("narrow.grad"));
  await assert.rejects(() => embeddingBackward(gpu, d, ids, pos, dwte, bad, opts), names("narrow.grad"));
  await assert.rejects(
    () => embeddingBackward(gpu, d, ids, pos, dwte, dwpe, { T: 2, C: 4 }),
    names("emb.dout"),
  );
  await assert.rejects(() => embeddingBackward(gpu, d, [0, 1], pos, dwte, dwpe, opts), names("ids"));
  await assert.rejects(() => embeddingBackward(gpu, d, ids, pos, dwte, dwte, opts), names("wte.grad"));
  await assert.rejects(
    () => embeddingBackward(gpu, d, [0, 5, 1], pos, dwte, dwpe, opts),
    (e: unknown) => e instanceof InputError && e.message.includes("ids"),
  );
  await assert.rejects(
    () => embeddingBackward(gpu, d, ids, [0, 1, 3], dwte, dwpe, opts),
    (e: unknown) => e instanceof InputError && e.message.includes("positions"),
  );
  for (const t of [d, dwte, dwpe, bad]) t.destroy();
  await gpu.flush();
});

Deno.test("embeddingBackward accumulatePositions overrides accumulate for dwpe only", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const T = 8, C = 5, V = 7, P = 4;
  const ids = drawIds(r, T, 5), positions = Array.from({ length: T }, (_, t) => t % P);
  const dout = randn(r, T * C);
  const ref = embeddingBackwardRef(dout, ids, positions, V, P, C);
  const td = createTensor(gpu, [T, C], { name: "dout", data: dout });
  const plus = (a: ArrayLike<number>, d: ArrayLike<number>) => Float64Array.from(d, (v, i) => v + a[i]);
  for (const [acc, accPos] of [[true, false], [false, true]]) {
    const pte = randn(r, V * C), ppe = randn(r, P * C);
    const dwte = createTensor(gpu, [V, C], { name: "dwte", data: pte });
    const dwpe = createTensor(gpu, [P, C], { name: "dwpe", data: ppe });
    if (!acc) poison(dwte);
    if (!accPos) poison(dwpe);
    await embeddingBackward(gpu, td, ids, positions, dwte, dwpe, {
      T,
      C,
      accumulate: acc,
      accumulatePositions: accPos,
    });
    const what = `accumulate=${acc} accumulatePositions=${accPos}`;
    assertClose(await readTensor(dwte), acc ? plus(pte, ref.dwte) : ref.dwte, 1e-5, `dwte ${what}`, seed);
    assertClose(await readTensor(dwpe), accPos ? plus(ppe, ref.dwpe) : ref.dwpe, 1e-5, `dwpe ${what}`, seed);
    for (const t of [dwte, dwpe]) t.destroy();
  }
  td.destroy();
});

Deno.test("embeddingBackward without positions (no learned positions) writes dwte only", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  // Twin vs central finite differences of the token-only forward.
  {
    const V = 6, C = 3, T = 9;
    const ids = drawIds(r, T, 4);
    const wte = Float64Array.from(randn(r, V * C)), dout = randn(r, T * C);
    const ref = embeddingBackwardRef(dout, ids, null, V, 0, C);
    assert.equal(ref.dwpe.length, 0);
    const fd = new Float64Array(V * C), h = 1e-5;
    const loss = () => embeddingRef(ids, wte, null, C).reduce((s, y, i) => s + dout[i] * y, 0);
    for (let i = 0; i < fd.length; i++) {
      const v = wte[i];
      wte[i] = v + h;
      const lp = loss();
      wte[i] = v - h;
      const lm = loss();
      wte[i] = v;
      fd[i] = (lp - lm) / (2 * h);
    }
    const e = relErr(ref.dwte, fd);
    assert.ok(e <= 1e-6, `token-only dwte vs FD: ${e} (seed ${seed})`);
  }
  let worst = 0;
  for (const [T, C] of [[1, 1], [7, 5], [33, 97]]) {
    const V = 13, ids = drawIds(r, T, 9), dout = randn(r, T * C);
    const ref = embeddingBackwardRef(dout, ids, undefined, V, 0, C);
    const td = createTensor(gpu, [T, C], { name: "dout", data: dout });
    const dwte = createTensor(gpu, [V, C], { name: "dwte" });
    poison(dwte);
    await embeddingBackward(gpu, td, ids, null, dwte, null, { T, C });
    worst = Math.max(worst, assertClose(await readTensor(dwte), ref.dwte, 1e-5, `dwte T=${T} C=${C}`, seed));
    const pre = randn(r, V * C);
    const acc = createTensor(gpu, [V, C], { name: "dwte", data: pre });
    await embeddingBackward(gpu, td, ids, undefined, acc, undefined, { T, C, accumulate: true });
    const want = Float64Array.from(ref.dwte, (v, i) => v + pre[i]);
    worst = Math.max(worst, assertClose(await readTensor(acc), want, 1e-5, `dwte += T=${T} C=${C}`, seed));
    for (const t of [td, dwte, acc]) t.destroy();
  }
  // A position gradient needs positions.
  const td = createTensor(gpu, [2, 3], { name: "dout" }), dwpe = createTensor(gpu, [4, 3], { name: "dwpe" });
  await assert.rejects(
    () => embeddingBackward(gpu, td, [0, 1], null, null, dwpe, { T: 2, C: 3 }),
    (e: unknown) => e instanceof ShapeError && e.field === "positions",
  );
  for (const t of [td, dwpe]) t.destroy();
  await gpu.flush();
  console.log(`embeddingBackward (tokens only) worst relative error ${worst.toExponential(2)}`);
});

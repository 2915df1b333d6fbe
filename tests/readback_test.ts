import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { createTensor, poison, readRange, readTensor, readTensors, writeTensor } from "../src/gpu/tensor.ts";
import { readWithNonFiniteCheck } from "../src/gpu/nonfinite.ts";
import { scaleInPlace } from "../src/gpu/reduce.ts";
import { ShapeError } from "../src/errors.ts";
import { freshSeed, randn, rng } from "./_util.ts";

Deno.test("readTensors: one map returns every tensor and range, after the work recorded before it", async () => {
  const gpu = await getGpu();
  const r = rng(freshSeed());
  const a = randn(r, 37), b = randn(r, 5), c = randn(r, 1024);
  const ta = createTensor(gpu, [37], { data: a });
  const tb = createTensor(gpu, [5], { data: b });
  const tc = createTensor(gpu, [1024], { data: c });
  const tu = createTensor(gpu, [3], { dtype: "u32", data: Uint32Array.of(7, 0xffffffff, 2) });
  const empty = createTensor(gpu, [0]);
  // Work recorded (not flushed) before the read must be visible to it.
  await scaleInPlace(gpu, tc, -2);
  const [ga, gb, gc, gr, gu, ge, ga2] = await readTensors([
    ta,
    tb,
    tc,
    { tensor: ta, offset: 3, count: 11 },
    tu,
    empty,
    ta,
  ]);
  assert.deepEqual(ga, a);
  assert.deepEqual(gb, b);
  assert.deepEqual(gc, c.map((x) => -2 * x));
  assert.deepEqual(gr, a.slice(3, 14));
  assert.deepEqual([...new Uint32Array(gu.buffer, gu.byteOffset, gu.length)], [7, 0xffffffff, 2]);
  assert.equal(ge.length, 0);
  assert.deepEqual(ga2, a);
  // Each result owns its buffer: writing one leaves the others alone.
  ga.fill(NaN);
  assert.deepEqual(ga2, a);
  assert.equal(gb.buffer.byteLength, 5 * 4);
  // The single-tensor reads agree and see later writes.
  writeTensor(tb, Float32Array.of(1, 2, 3, 4, 5));
  assert.deepEqual([...(await readTensor(tb))], [1, 2, 3, 4, 5]);
  assert.deepEqual([...(await readRange(tb, 1, 3))], [2, 3, 4]);
  assert.deepEqual(await readTensors([]), []);
  await assert.rejects(() => readTensors([{ tensor: tb, offset: 3, count: 3 }]), ShapeError);
  for (const t of [ta, tb, tc, tu, empty]) t.destroy();
});

Deno.test("readWithNonFiniteCheck: extra tensors come back with the scanned one", async () => {
  const gpu = await getGpu();
  const x = createTensor(gpu, [9], { data: Float32Array.of(1, 2, 3, 4, Infinity, 6, 7, 8, NaN) });
  const y = createTensor(gpu, [4], { data: Float32Array.of(-1, -2, -3, -4) });
  const p = createTensor(gpu, [6]);
  poison(p);
  const r = await readWithNonFiniteCheck(gpu, x, [y, p]);
  assert.equal(r.first, 4);
  assert.equal(r.data[8], NaN);
  assert.deepEqual([...r.extra[0]], [-1, -2, -3, -4]);
  assert.ok(r.extra[1].every(Number.isNaN));
  const clean = await readWithNonFiniteCheck(gpu, y);
  assert.equal(clean.first, -1);
  assert.deepEqual(clean.extra, []);
  for (const t of [x, y, p]) t.destroy();
});

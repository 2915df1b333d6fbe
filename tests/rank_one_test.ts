import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { rankOneUpdate } from "../src/gpu/rank_one.ts";
import { createTensor, readTensor } from "../src/gpu/tensor.ts";
import { ShapeError } from "../src/errors.ts";
import { rankOneRef } from "../src/reference/rank_one.ts";
import { assertClose, freshSeed, randn, rng } from "./_util.ts";

Deno.test("rank-one update matches the float64 twin on odd sizes", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  for (const [M, N] of [[1, 1], [3, 7], [17, 5], [97, 33], [385, 97], [1, 300]]) {
    const w = randn(r, M * N), u = randn(r, M), v = randn(r, N);
    const alpha = r() * 4 - 2;
    const tw = createTensor(gpu, [M, N], { data: w });
    const tu = createTensor(gpu, [M], { data: u }), tv = createTensor(gpu, [N], { data: v });
    await rankOneUpdate(gpu, tw, tu, tv, { M, N, alpha });
    assertClose(await readTensor(tw), rankOneRef(w, u, v, alpha), 1e-5, `rank_one ${M}x${N}`, seed);
    // Indexing: a NaN in u[k] (and v[c]) must poison exactly row k (and column c) of W.
    const k = Math.floor(r() * M), c = Math.floor(r() * N);
    const un = u.slice(), vn = v.slice();
    un[k] = NaN;
    vn[c] = NaN;
    const tw2 = createTensor(gpu, [M, N], { data: w });
    const tun = createTensor(gpu, [M], { data: un }), tvn = createTensor(gpu, [N], { data: vn });
    await rankOneUpdate(gpu, tw2, tun, tvn, { M, N, alpha: alpha || 1 });
    const got = await readTensor(tw2);
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        assert.equal(
          Number.isNaN(got[i * N + j]),
          i === k || j === c,
          `NaN pattern at ${i},${j} (${M}x${N}, seed ${seed})`,
        );
      }
    }
    for (const t of [tw2, tun, tvn]) t.destroy();
    for (const t of [tw, tu, tv]) t.destroy();
  }
});

Deno.test("rank-one update rejects mismatched sizes", async () => {
  const gpu = await getGpu();
  const w = createTensor(gpu, [3, 4], { name: "W" }), u = createTensor(gpu, [3], { name: "u" });
  const v = createTensor(gpu, [5], { name: "v" });
  await assert.rejects(
    () => rankOneUpdate(gpu, w, u, v, { M: 3, N: 4 }),
    (e) => e instanceof ShapeError && /v has 5/.test(e.message),
  );
  await assert.rejects(() => rankOneUpdate(gpu, w, u, v, { M: 3, N: 5 }), ShapeError);
});

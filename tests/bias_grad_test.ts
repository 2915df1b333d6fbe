import assert from "node:assert/strict";
import { ShapeError } from "../src/errors.ts";
import { biasGrad } from "../src/gpu/bias_grad.ts";
import { getGpu } from "../src/gpu/device.ts";
import { createTensor, poison, readTensor } from "../src/gpu/tensor.ts";
import { biasGradRef } from "../src/reference/bias_grad.ts";
import { matmulRef } from "../src/reference/matmul.ts";
import { freshSeed, randn, relErr, rng } from "./_util.ts";

Deno.test("biasGradRef matches central finite differences of matmulRef's bias (float64)", () => {
  const seed = freshSeed();
  const r = rng(seed);
  let worst = 0;
  for (const [M, N, K] of [[1, 1, 1], [7, 5, 3], [33, 4, 2]]) {
    const a = Float64Array.from(randn(r, M * K)), b = Float64Array.from(randn(r, K * N));
    const bias = Float64Array.from(randn(r, N));
    const dout = randn(r, M * N);
    const ref = biasGradRef(dout, M, N);
    // FD of sum(dout * (a @ b + bias)) with respect to each bias entry.
    const loss = () => {
      const y = matmulRef(a, b, { M, N, K, bias });
      let s = 0;
      for (let i = 0; i < y.length; i++) s += dout[i] * y[i];
      return s;
    };
    const fd = new Float64Array(N);
    const h = 1e-5;
    for (let c = 0; c < N; c++) {
      const v = bias[c];
      bias[c] = v + h;
      const lp = loss();
      bias[c] = v - h;
      const lm = loss();
      bias[c] = v;
      fd[c] = (lp - lm) / (2 * h);
    }
    const e = relErr(ref, fd);
    assert.ok(e <= 1e-6, `dbias vs FD M=${M} N=${N}: relative error ${e.toExponential(3)} (seed ${seed})`);
    worst = Math.max(worst, e);
  }
  console.log(`biasGradRef vs central FD, worst relative error ${worst.toExponential(2)}`);
});

/** Σ_r |dout[r, c]| per column: the scale a float32 column sum's rounding error is bounded by. */
function absSums(dout: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const s = new Float64Array(cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) s[c] += Math.abs(dout[r * cols + c]);
  return s;
}

/**
 * ‖got − want‖ / ‖scale‖ ≤ 1e-5 with scale = Σ|terms| per column. A plain relative error divides by the
 * sums themselves, which cancel (a column of 33 N(0, 1) values can sum to ~0.01 and fail on rounding alone);
 * a missing or doubled row still moves the sum by about one |term|, far over the bound.
 */
function assertSumClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  scale: ArrayLike<number>,
  what: string,
  seed: number,
): number {
  let num = 0, den = 0;
  for (let i = 0; i < want.length; i++) {
    num += (got[i] - want[i]) ** 2;
    den += scale[i] ** 2;
  }
  const e = Math.sqrt(num / den);
  assert.ok(e <= 1e-5, `${what}: error ${e.toExponential(3)} of the Σ|terms| scale > 1e-5 (seed ${seed})`);
  return e;
}

Deno.test("biasGrad matches float64 twin on odd and large sizes, overwrite and accumulate", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  let worst = 0;
  const shapes: Array<[number, number]> = [];
  for (const rows of [1, 7, 33]) for (const cols of [1, 5, 64, 97]) shapes.push([rows, cols]);
  shapes.push([1000, 3001], [3, 50257]);
  for (const [rows, cols] of shapes) {
    const dout = randn(r, rows * cols);
    const ref = biasGradRef(dout, rows, cols);
    const td = createTensor(gpu, [rows, cols], { name: "dout", data: dout });
    const db = createTensor(gpu, [cols], { name: "dbias" });
    const what = `rows=${rows} cols=${cols}`;
    poison(db);
    await biasGrad(gpu, td, db, { rows, cols });
    const first = await readTensor(db);
    worst = Math.max(worst, assertSumClose(first, ref, absSums(dout, rows, cols), `dbias ${what}`, seed));
    // Deterministic: a second run is bit-identical.
    poison(db);
    await biasGrad(gpu, td, db, { rows, cols });
    assert.deepEqual(await readTensor(db), first, `dbias not deterministic ${what} (seed ${seed})`);

    const pre = randn(r, cols);
    const db2 = createTensor(gpu, [cols], { name: "dbias", data: pre });
    await biasGrad(gpu, td, db2, { rows, cols, accumulate: true });
    const want = Float64Array.from(ref, (v, i) => v + pre[i]);
    const scale = Float64Array.from(absSums(dout, rows, cols), (v, i) => v + Math.abs(pre[i]));
    worst = Math.max(worst, assertSumClose(await readTensor(db2), want, scale, `dbias += ${what}`, seed));
    for (const t of [td, db, db2]) t.destroy();
  }
  console.log(`biasGrad GPU vs float64 twin, worst error on the Σ|terms| scale ${worst.toExponential(2)}`);
});

Deno.test("biasGrad size mismatches and aliasing throw ShapeError naming the tensor", async () => {
  const gpu = await getGpu();
  const d = createTensor(gpu, [3, 4], { name: "attn.dout" });
  const db = createTensor(gpu, [4], { name: "attn.c_proj.bias.grad" });
  const names = (s: string) => (e: unknown) => e instanceof ShapeError && e.message.includes(s);
  await assert.rejects(() => biasGrad(gpu, d, db, { rows: 3, cols: 5 }), names("attn.dout"));
  await assert.rejects(() => biasGrad(gpu, d, db, { rows: 2, cols: 6 }), names("attn.c_proj.bias.grad"));
  await assert.rejects(() => biasGrad(gpu, d, d, { rows: 1, cols: 12 }), names("attn.dout"));
  await assert.rejects(() => biasGrad(gpu, d, db, { rows: 0, cols: 4 }), ShapeError);
  for (const t of [d, db]) t.destroy();
  await gpu.flush();
});

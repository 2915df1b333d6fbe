import assert from "node:assert/strict";
import { ShapeError } from "../src/errors.ts";
import { getGpu } from "../src/gpu/device.ts";
import { rotary, type RotaryOptions, type RotaryQkvLayout } from "../src/gpu/rotary.ts";
import { createTensor, GpuTensor, readTensor } from "../src/gpu/tensor.ts";
import { ropeTables } from "../src/model/rope.ts";
import { rotaryRef } from "../src/reference/rotary.ts";
import { assertClose, freshSeed, randn, rng } from "./_util.ts";

/** Row = all q heads, then all k heads, then all v heads (GPT-2 c_attn, Llama fused q/k/v). */
function blocked(H: number, KV: number, D: number): RotaryQkvLayout {
  return {
    nHead: H,
    nKvHead: KV,
    headDim: D,
    rowStride: (H + 2 * KV) * D,
    qOffset: 0,
    kOffset: H * D,
    vOffset: (H + KV) * D,
    qHeadStride: D,
    kvHeadStride: D,
  };
}

/** Row = per head [q k v] (GPT-NeoX query_key_value). */
function neox(H: number, D: number): RotaryQkvLayout {
  return {
    nHead: H,
    nKvHead: H,
    headDim: D,
    rowStride: 3 * H * D,
    qOffset: 0,
    kOffset: D,
    vOffset: 2 * D,
    qHeadStride: 3 * D,
    kvHeadStride: 3 * D,
  };
}

/** Indices of the elements the rotation may change (rotated dims of q and k heads). */
function rotatedSet({ rows, layout: l, dim }: RotaryOptions): Set<number> {
  const s = new Set<number>();
  for (let r = 0; r < rows; r++) {
    for (let h = 0; h < l.nHead + l.nKvHead; h++) {
      const base = r * l.rowStride +
        (h < l.nHead ? l.qOffset + h * l.qHeadStride : l.kOffset + (h - l.nHead) * l.kvHeadStride);
      for (let d = 0; d < dim; d++) s.add(base + d);
    }
  }
  return s;
}

/** Independent float64 HF apply_rotary_pos_emb on one head vector x [D] with rotary dim `rot`. */
function hfApply(
  x: number[],
  cosHalf: number[],
  sinHalf: number[],
  rot: number,
  style: "half" | "interleaved",
) {
  const xr = x.slice(0, rot), pass = x.slice(rot);
  let cosF: number[], sinF: number[], rotated: number[];
  if (style === "half") {
    // cos = cat(freqs, freqs).cos(); rotate_half(x) = cat(-x2, x1).
    cosF = [...cosHalf, ...cosHalf];
    sinF = [...sinHalf, ...sinHalf];
    rotated = [...xr.slice(rot / 2).map((v) => -v), ...xr.slice(0, rot / 2)];
  } else {
    // GPT-J: repeat_interleave(sin/cos, 2); rotate_every_two(x) = stack(-x[1::2], x[::2]).flatten().
    cosF = cosHalf.flatMap((c) => [c, c]);
    sinF = sinHalf.flatMap((s) => [s, s]);
    rotated = [];
    for (let i = 0; i < rot / 2; i++) rotated.push(-xr[2 * i + 1], xr[2 * i]);
  }
  return [...xr.map((v, d) => v * cosF[d] + rotated[d] * sinF[d]), ...pass];
}

const CASES: {
  name: string;
  layout: RotaryQkvLayout;
  dim: number;
  style: "half" | "interleaved";
  rows: number;
}[] = [
  { name: "blocked H=5 KV=1 D=12 dim=8 half", layout: blocked(5, 1, 12), dim: 8, style: "half", rows: 7 },
  {
    name: "blocked H=5 KV=1 D=10 dim=10 interleaved",
    layout: blocked(5, 1, 10),
    dim: 10,
    style: "interleaved",
    rows: 5,
  },
  {
    name: "blocked H=KV=3 D=6 dim=4 interleaved",
    layout: blocked(3, 3, 6),
    dim: 4,
    style: "interleaved",
    rows: 9,
  },
  { name: "neox H=3 D=14 dim=6 half (partial)", layout: neox(3, 14), dim: 6, style: "half", rows: 9 },
  { name: "neox H=5 D=8 dim=8 half", layout: neox(5, 8), dim: 8, style: "half", rows: 3 },
  { name: "neox H=5 D=10 dim=4 interleaved", layout: neox(5, 10), dim: 4, style: "interleaved", rows: 11 },
];

function setup(seed: number, c: (typeof CASES)[number]) {
  const r = rng(seed);
  const P = 13 + Math.floor(r() * 20);
  const theta = [10000, 500000, 37][Math.floor(r() * 3)];
  const { cos, sin } = ropeTables({ dim: c.dim, style: c.style, theta, maxPositionEmbeddings: 2048 }, P);
  const positions = Uint32Array.from({ length: c.rows }, () => 1 + Math.floor(r() * (P - 1)));
  const x = randn(r, c.rows * c.layout.rowStride, 2);
  return { P, cos, sin, positions, x, r };
}

Deno.test("rotary GPU matches float64 twin; v and non-rotated dims bit-exact; inverse undoes forward", async () => {
  const gpu = await getGpu();
  let worstFwd = 0, worstInv = 0;
  for (const c of CASES) {
    const seed = freshSeed();
    const { P, cos, sin, positions, x } = setup(seed, c);
    const opts: RotaryOptions = { rows: c.rows, layout: c.layout, dim: c.dim, style: c.style };
    const tq = createTensor(gpu, [x.length], { data: x, name: "qkv" });
    const tc = createTensor(gpu, [P, c.dim / 2], { data: cos, name: "cos" });
    const ts = createTensor(gpu, [P, c.dim / 2], { data: sin, name: "sin" });
    const tp = createTensor(gpu, [c.rows], { data: positions, dtype: "u32", name: "pos" });
    await rotary(gpu, tq, tc, ts, tp, opts);
    const y = await readTensor(tq);
    const ref = rotaryRef(x, cos, sin, positions, opts);
    worstFwd = Math.max(worstFwd, assertClose(y, ref, 2e-6, `rotary ${c.name}`, seed));
    const rotated = rotatedSet(opts);
    const xb = new Uint32Array(x.buffer), yb = new Uint32Array(y.buffer);
    let changed = 0;
    for (let i = 0; i < x.length; i++) {
      if (!rotated.has(i)) {
        assert.equal(yb[i], xb[i], `${c.name}: untouched element ${i} changed (seed ${seed})`);
      } else if (yb[i] !== xb[i]) changed++;
    }
    // The test can fail: positions >= 1 move (nearly) every rotated element.
    assert.ok(
      changed > rotated.size * 0.9,
      `${c.name}: only ${changed}/${rotated.size} rotated elements moved`,
    );
    await rotary(gpu, tq, tc, ts, tp, { ...opts, inverse: true });
    const back = await readTensor(tq);
    worstInv = Math.max(worstInv, assertClose(back, x, 4e-6, `rotary inverse ${c.name}`, seed));
    const bb = new Uint32Array(back.buffer);
    for (let i = 0; i < x.length; i++) {
      if (!rotated.has(i)) {
        assert.equal(bb[i], xb[i], `${c.name}: inverse changed untouched ${i} (seed ${seed})`);
      }
    }
    for (const t of [tq, tc, ts, tp]) t.destroy();
  }
  console.log(
    `rotary worst relative error: forward vs twin ${worstFwd.toExponential(2)}, ` +
      `inverse(forward(x)) vs x ${worstInv.toExponential(2)}`,
  );
});

Deno.test("rotary host positions give the same result as a device tensor", async () => {
  const gpu = await getGpu();
  const c = CASES[3];
  const seed = freshSeed();
  const { P, cos, sin, positions, x } = setup(seed, c);
  const opts: RotaryOptions = { rows: c.rows, layout: c.layout, dim: c.dim, style: c.style };
  const tq = createTensor(gpu, [x.length], { data: x });
  const tc = createTensor(gpu, [P, c.dim / 2], { data: cos }),
    ts = createTensor(gpu, [P, c.dim / 2], { data: sin });
  await rotary(gpu, tq, tc, ts, positions, opts);
  assertClose(await readTensor(tq), rotaryRef(x, cos, sin, positions, opts), 2e-6, "host positions", seed);
  for (const t of [tq, tc, ts]) t.destroy();
});

Deno.test("rotary inverse is the backward: <g, R x> = <R^-1 g, x> (GPU inverse vs twin forward)", async () => {
  const gpu = await getGpu();
  for (const c of [CASES[0], CASES[5]]) {
    const seed = freshSeed();
    const { P, cos, sin, positions, x, r } = setup(seed, c);
    const g = randn(r, x.length);
    const opts: RotaryOptions = { rows: c.rows, layout: c.layout, dim: c.dim, style: c.style };
    const tg = createTensor(gpu, [g.length], { data: g });
    const tc = createTensor(gpu, [P, c.dim / 2], { data: cos }),
      ts = createTensor(gpu, [P, c.dim / 2], { data: sin });
    await rotary(gpu, tg, tc, ts, positions, { ...opts, inverse: true });
    const gx = await readTensor(tg);
    const rx = rotaryRef(x, cos, sin, positions, opts);
    let lhs = 0, rhs = 0, scale = 0;
    for (let i = 0; i < x.length; i++) {
      lhs += g[i] * rx[i];
      rhs += gx[i] * x[i];
      scale += Math.abs(g[i] * x[i]);
    }
    assert.ok(Math.abs(lhs - rhs) <= 1e-6 * scale, `${c.name}: ${lhs} vs ${rhs} (seed ${seed})`);
    for (const t of [tg, tc, ts]) t.destroy();
  }
});

Deno.test("rotary pair formulation (twin) equals HF apply_rotary_pos_emb (rotate_half / rotate_every_two)", () => {
  let worst = 0;
  for (const c of CASES) {
    const seed = freshSeed();
    const { cos, sin, positions, x } = setup(seed, c);
    const opts: RotaryOptions = { rows: c.rows, layout: c.layout, dim: c.dim, style: c.style };
    const twin = rotaryRef(x, cos, sin, positions, opts);
    const want = Float64Array.from(x);
    const l = c.layout, half = c.dim / 2;
    for (let row = 0; row < c.rows; row++) {
      const p = positions[row];
      const ch = Array.from(cos.subarray(p * half, (p + 1) * half)),
        sh = Array.from(sin.subarray(p * half, (p + 1) * half));
      for (let h = 0; h < l.nHead + l.nKvHead; h++) {
        const base = row * l.rowStride +
          (h < l.nHead ? l.qOffset + h * l.qHeadStride : l.kOffset + (h - l.nHead) * l.kvHeadStride);
        const head = Array.from(x.subarray(base, base + l.headDim));
        want.set(hfApply(head, ch, sh, c.dim, c.style), base);
      }
    }
    let m = 0;
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(twin[i] - want[i]));
    assert.ok(m <= 1e-12, `${c.name}: twin vs HF formulation ${m} (seed ${seed})`);
    worst = Math.max(worst, m);
  }
  console.log(`twin vs HF apply_rotary_pos_emb (float64) max abs diff: ${worst.toExponential(2)}`);
});

Deno.test("rotary: device position outside the tables poisons only that row's q/k pairs", async () => {
  const gpu = await getGpu();
  const c = CASES[0];
  const seed = freshSeed();
  const { P, cos, sin, positions, x } = setup(seed, c);
  positions[2] = P; // one past the table
  const opts: RotaryOptions = { rows: c.rows, layout: c.layout, dim: c.dim, style: c.style };
  const tq = createTensor(gpu, [x.length], { data: x });
  const tc = createTensor(gpu, [P, c.dim / 2], { data: cos }),
    ts = createTensor(gpu, [P, c.dim / 2], { data: sin });
  const tp = createTensor(gpu, [c.rows], { data: positions, dtype: "u32" });
  await rotary(gpu, tq, tc, ts, tp, opts);
  const y = await readTensor(tq);
  const bad = rotatedSet({ ...opts, rows: 3 });
  const before = rotatedSet({ ...opts, rows: 2 });
  for (let i = 0; i < y.length; i++) {
    const inRow2 = bad.has(i) && !before.has(i);
    assert.equal(Number.isNaN(y[i]), inRow2, `element ${i} (seed ${seed})`);
  }
  for (const t of [tq, tc, ts, tp]) t.destroy();
});

Deno.test("rotary bad sizes throw ShapeError naming the field", async () => {
  const gpu = await getGpu();
  const layout = blocked(4, 2, 8);
  const rows = 3, P = 5;
  const q = createTensor(gpu, [rows * layout.rowStride], { name: "qkv" });
  const cos = createTensor(gpu, [P, 3], { name: "cos" }), sin = createTensor(gpu, [P, 3], { name: "sin" });
  const sin4 = createTensor(gpu, [P, 4], { name: "sin4" });
  const pos = createTensor(gpu, [rows], { dtype: "u32", name: "pos" });
  const posF = createTensor(gpu, [rows], { name: "posF" });
  const small = createTensor(gpu, [rows * layout.rowStride - 1], { name: "small" });
  const base: RotaryOptions = { rows, layout, dim: 6, style: "half" };
  const cases: [() => Promise<void>, string][] = [
    [() => rotary(gpu, q, cos, sin, pos, { ...base, dim: 5 }), "dim"],
    [() => rotary(gpu, q, cos, sin, pos, { ...base, dim: 10 }), "dim"],
    [() => rotary(gpu, q, cos, sin, pos, { ...base, dim: 0 }), "dim"],
    [() => rotary(gpu, small, cos, sin, pos, base), "small"],
    [() => rotary(gpu, q, cos, sin4, pos, base), "sin4"],
    [() => rotary(gpu, q, cos, sin, posF, base), "posF"],
    [() => rotary(gpu, q, cos, sin, pos, { ...base, rows: 2 }), "pos"],
    [() => rotary(gpu, q, cos, sin, new Uint32Array([0, 5, 1]), base), "positions[1]"],
    [() => rotary(gpu, q, cos, sin, new Uint32Array([0, 1]), base), "positions"],
    [() => rotary(gpu, q, cos, sin, pos, { ...base, layout: { ...layout, nKvHead: 3 } }), "layout.nKvHead"],
    [() => rotary(gpu, q, cos, sin, pos, { ...base, layout: { ...layout, kOffset: 28 } }), "layout"],
    [
      () => rotary(gpu, q, cos, sin, pos, { ...base, layout: { ...layout, rowStride: 63 } }),
      "layout.rowStride",
    ],
    [() => rotary(gpu, q, cos, sin, pos, { ...base, layout: { ...layout, headDim: 8.5 } }), "layout.headDim"],
    [() => rotary(gpu, q, cos, sin, pos, { ...base, style: "x" as "half" }), "style"],
    [() => rotary(gpu, q, new GpuTensor(gpu, q.buffer, [P, 3], "f32", "alias"), sin, pos, base), "alias"],
  ];
  for (const [run, field] of cases) {
    await assert.rejects(
      run,
      (e: unknown) => e instanceof ShapeError && e.field === field,
      `expected ${field}`,
    );
  }
  for (const t of [q, cos, sin, sin4, pos, posF, small]) t.destroy();
  await gpu.flush();
});

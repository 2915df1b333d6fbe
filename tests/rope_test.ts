import assert from "node:assert/strict";
import { ConfigError } from "../src/errors.ts";
import { type RopeConfig, ropeInvFreq, ropeTables } from "../src/model/rope.ts";

/** max_i |a_i - b_i| / |b_i|: frequencies span six decades, so each is compared with itself. */
function elemRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i] - b[i]) / Math.abs(b[i]);
    m = Number.isNaN(e) ? Infinity : Math.max(m, e);
  }
  return m;
}

// Independent float64 definitions (the formulas of HF modeling_rope_utils, written from the math).
function defaultRef(theta: number, dim: number): number[] {
  return Array.from({ length: dim / 2 }, (_, i) => Math.pow(theta, -(2 * i) / dim));
}

function llama3Ref(
  inv: number[],
  factor: number,
  low: number,
  high: number,
  old: number,
): { inv: number[]; bands: [number, number, number] } {
  const bands: [number, number, number] = [0, 0, 0];
  const out = inv.map((w) => {
    const wavelen = (2 * Math.PI) / w;
    if (wavelen < old / high) {
      bands[0]++;
      return w;
    }
    if (wavelen > old / low) {
      bands[2]++;
      return w / factor;
    }
    bands[1]++;
    const smooth = (old / wavelen - low) / (high - low);
    return (1 - smooth) * w / factor + smooth * w;
  });
  return { inv: out, bands };
}

// f32 exponents 2i/dim cost up to ln(theta) * 2^-24 relative: 500000 -> ~8e-7.
const TOL = 2e-6;

Deno.test("rope default inverse frequencies match theta^(-2i/dim) (Llama-2, NeoX, GPT-J bases)", () => {
  for (
    const [theta, dim] of [[10000, 128], [10000, 64], [500000, 128], [1000000, 128], [10000, 16], [10000, 2]]
  ) {
    const rope: RopeConfig = { dim, style: "half", theta, maxPositionEmbeddings: 2048 };
    const got = ropeInvFreq(rope, 7);
    assert.equal(got.length, dim / 2);
    const e = elemRel(got, defaultRef(theta, dim));
    assert.ok(e <= TOL, `theta ${theta} dim ${dim}: ${e}`);
    assert.equal(got[0], 1);
  }
});

Deno.test("rope linear scaling divides the default frequencies by factor", () => {
  for (const factor of [2, 4, 3.5]) {
    const rope: RopeConfig = {
      dim: 96,
      style: "half",
      theta: 10000,
      maxPositionEmbeddings: 4096,
      scaling: { type: "linear", factor },
    };
    const e = elemRel(ropeInvFreq(rope, 13), defaultRef(10000, 96).map((w) => w / factor));
    assert.ok(e <= TOL, `factor ${factor}: ${e}`);
  }
});

Deno.test("rope dynamic NTK: default frequencies up to max_position_embeddings, a larger base beyond", () => {
  const dim = 64, theta = 10000, max = 2048, factor = 2;
  const rope: RopeConfig = {
    dim,
    style: "half",
    theta,
    maxPositionEmbeddings: max,
    scaling: { type: "dynamic", factor, originalMaxPositionEmbeddings: max },
  };
  for (const seqLen of [1, 100, 2047, 2048]) {
    assert.ok(elemRel(ropeInvFreq(rope, seqLen), defaultRef(theta, dim)) <= TOL, `seqLen ${seqLen}`);
  }
  let worst = 0;
  for (const seqLen of [2049, 3000, 8191, 100000]) {
    const base = theta * Math.pow(factor * seqLen / max - (factor - 1), dim / (dim - 2));
    const want = defaultRef(base, dim);
    for (const dynamicBase of ["f32", "f64"] as const) {
      const e = elemRel(ropeInvFreq(rope, seqLen, { dynamicBase }), want);
      worst = Math.max(worst, e);
      assert.ok(e <= TOL, `seqLen ${seqLen} ${dynamicBase}: ${e}`);
    }
    // The scaled base really lowers the frequencies: the last one by more than the tolerance.
    const last = dim / 2 - 1;
    const drop = 1 - ropeInvFreq(rope, seqLen)[last] / defaultRef(theta, dim)[last];
    assert.ok(drop > 100 * TOL, `seqLen ${seqLen}: last frequency lowered by only ${drop}`);
  }
  console.log(`dynamic NTK worst relative error vs float64 formula: ${worst.toExponential(2)}`);
});

Deno.test("rope llama3 (Llama-3.1: factor 8, low 1, high 4, original 8192, theta 500000) and a variant", () => {
  for (
    const [factor, low, high, old, theta, dim] of [
      [8, 1, 4, 8192, 500000, 128],
      [32, 1, 4, 8192, 500000, 64],
      [
        4,
        2,
        7,
        1000,
        10000,
        50,
      ],
    ]
  ) {
    const rope: RopeConfig = {
      dim,
      style: "half",
      theta,
      maxPositionEmbeddings: 131072,
      scaling: {
        type: "llama3",
        factor,
        lowFreqFactor: low,
        highFreqFactor: high,
        originalMaxPositionEmbeddings: old,
      },
    };
    const ref = llama3Ref(defaultRef(theta, dim), factor, low, high, old);
    // Every band is exercised: kept, smoothed, divided.
    assert.ok(ref.bands.every((n) => n > 0), `bands ${ref.bands}`);
    const got = ropeInvFreq(rope, 5);
    const e = elemRel(got, ref.inv);
    assert.ok(e <= TOL, `llama3 ${factor}/${low}/${high}/${old}: ${e}`);
    console.log(
      `llama3 factor ${factor}: bands kept/smoothed/divided ${ref.bands}, rel err ${e.toExponential(2)}`,
    );
  }
});

Deno.test("rope tables are cos/sin of position * inv_freq, rows = positions", () => {
  const dim = 20, theta = 10000, P = 37;
  const rope: RopeConfig = { dim, style: "interleaved", theta, maxPositionEmbeddings: 2048 };
  const { cos, sin } = ropeTables(rope, P);
  assert.equal(cos.length, P * dim / 2);
  assert.equal(sin.length, P * dim / 2);
  const inv = defaultRef(theta, dim);
  let worst = 0;
  for (let p = 0; p < P; p++) {
    for (let i = 0; i < dim / 2; i++) {
      worst = Math.max(
        worst,
        Math.abs(cos[p * dim / 2 + i] - Math.cos(p * inv[i])),
        Math.abs(sin[p * dim / 2 + i] - Math.sin(p * inv[i])),
      );
    }
  }
  // f32 angle: |p * inv| * 2^-24 plus the f32 rounding of cos/sin.
  assert.ok(worst <= 1e-5, `tables: ${worst}`);
  assert.equal(cos[0], 1);
  assert.equal(sin[0], 0);
  assert.equal(sin[dim / 2], Math.fround(Math.sin(1)));
  console.log(`rope tables (P=${P}, dim=${dim}) max abs error vs float64: ${worst.toExponential(2)}`);
});

Deno.test("rope config errors name the field", () => {
  const ok: RopeConfig = { dim: 8, style: "half", theta: 10000, maxPositionEmbeddings: 16 };
  const bad: [Partial<RopeConfig>, string][] = [
    [{ dim: 7 }, "rope.dim"],
    [{ dim: 0 }, "rope.dim"],
    [{ theta: -1 }, "rope.theta"],
    [{ theta: NaN }, "rope.theta"],
    [{ maxPositionEmbeddings: 0 }, "rope.maxPositionEmbeddings"],
    [{ style: "x" as "half" }, "rope.style"],
    [{ scaling: { type: "linear", factor: 0 } }, "rope.scaling.factor"],
    [{ dim: 2, scaling: { type: "dynamic", factor: 2, originalMaxPositionEmbeddings: 8 } }, "rope.dim"],
    [{
      scaling: {
        type: "llama3",
        factor: 8,
        lowFreqFactor: 4,
        highFreqFactor: 1,
        originalMaxPositionEmbeddings: 8,
      },
    }, "rope.scaling.highFreqFactor"],
    [{ scaling: { type: "yarn", factor: 2 } as unknown as RopeConfig["scaling"] }, "rope.scaling.type"],
  ];
  for (const [patch, field] of bad) {
    assert.throws(
      () => ropeInvFreq({ ...ok, ...patch }, 4),
      (e: unknown) => e instanceof ConfigError && e.field === field,
      `${JSON.stringify(patch)} should name ${field}`,
    );
  }
  assert.throws(() => ropeTables(ok, -1), RangeError);
});

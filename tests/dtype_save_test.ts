/**
 * The writer keeps each tensor's dtype. The F16/BF16 encoders of src/io/safetensors.ts are checked
 * against an independent nearest-value search over every finite 16-bit value (and the test fixture's
 * own encoders), on ties, subnormals, infinities, NaN and the F16 overflow to infinity; then an F16/BF16
 * checkpoint written by tests/_hf_fixtures.ts (independent of engram's writer) is edited and reverted
 * through the CLI: the edited folder is BF16/F16 with only the edited tensor's bytes changed and the
 * folder's other files kept, and the revert is byte-identical to the source.
 */
import { contentBytes } from "../src/io/atomic.ts";
import assert from "node:assert/strict";
import {
  encodeFloats,
  f16ToF32,
  f16ToF32Bits,
  f32BitsToBf16,
  f32BitsToF16,
  parseSafetensors,
  readSafetensors,
  roundToDtype,
  serializeSafetensors,
  type WeightDtype,
} from "../src/io/safetensors.ts";
import { hfModelFiles, loadHFModel, readCheckpointTensors } from "../src/io/hf_model.ts";
import { SafetensorsError } from "../src/errors.ts";
import { f16BitsToF32, f32ToBF16Bits, f32ToF16Bits, writeTinyCheckpoint } from "./_hf_fixtures.ts";
import { engram, freshSeed, rng } from "./_util.ts";

const F32 = new Float32Array(1), U32 = new Uint32Array(F32.buffer);
const bitsOf = (x: number) => (F32[0] = x, U32[0]);
const floatOf = (u: number) => (U32[0] = u >>> 0, F32[0]);

/** Value of a 16-bit pattern by arithmetic (no bit tricks): sign, exponent and mantissa fields. */
function value16(h: number, dtype: "F16" | "BF16"): number {
  const mBits = dtype === "F16" ? 10 : 7,
    eMax = dtype === "F16" ? 31 : 255,
    bias = dtype === "F16" ? 15 : 127;
  const s = h & 0x8000 ? -1 : 1, e = (h >> mBits) & eMax, m = h & ((1 << mBits) - 1);
  if (e === eMax) return m ? NaN : s * Infinity;
  if (e === 0) return s * m * Math.pow(2, 1 - bias - mBits);
  return s * (1 + m / Math.pow(2, mBits)) * Math.pow(2, e - bias);
}

/** Reference encoder: the nearest finite 16-bit value by search, ties to the even pattern, IEEE overflow. */
function makeReference(dtype: "F16" | "BF16"): (x: number) => number {
  const maxFinite = dtype === "F16" ? 0x7bff : 0x7f7f;
  const vals: number[] = [];
  for (let h = 0; h <= maxFinite; h++) vals.push(value16(h, dtype));
  const top = vals[maxFinite], ulp = top - vals[maxFinite - 1];
  return (x: number) => {
    const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
    const a = Math.abs(x);
    if (Number.isNaN(x)) throw new Error("NaN has no nearest value");
    if (a >= top + ulp / 2) return sign | (maxFinite + 1); // infinity (the tie goes to the even pattern)
    let lo = 0, hi = maxFinite;
    while (lo < hi) { // largest h with vals[h] <= a
      const mid = (lo + hi + 1) >> 1;
      if (vals[mid] <= a) lo = mid;
      else hi = mid - 1;
    }
    if (lo === maxFinite) return sign | lo;
    const dLo = a - vals[lo], dHi = vals[lo + 1] - a;
    return sign | (dLo < dHi ? lo : dHi < dLo ? lo + 1 : (lo & 1 ? lo + 1 : lo));
  };
}

/** Float32 test values: random bit patterns over all exponents, exact ties and their neighbours. */
function probes(dtype: "F16" | "BF16", seed: number): number[] {
  const r = rng(seed);
  const out = [
    0,
    -0,
    Infinity,
    -Infinity,
    65504,
    65519.996,
    65520,
    -65520,
    65536,
    1e5,
    3.4028234663852886e38,
  ];
  out.push(
    2 ** -24,
    2 ** -25,
    2 ** -25 * 1.0000001,
    3 * 2 ** -26,
    2 ** -14,
    2 ** -14 * (1 - 2 ** -11),
    1e-45,
  );
  for (let i = 0; i < 100000; i++) out.push(floatOf(Math.floor(r() * 2 ** 32)));
  // Midpoints between neighbouring 16-bit values (exact ties in float32) and one float32 ulp around.
  const maxFinite = dtype === "F16" ? 0x7bff : 0x7f7f;
  for (let i = 0; i < 20000; i++) {
    const h = Math.floor(r() * maxFinite);
    const mid = (value16(h, dtype) + value16(h + 1, dtype)) / 2;
    const u = bitsOf(mid);
    if (floatOf(u) !== mid) continue; // not representable in float32 (never for these formats)
    for (const v of [floatOf(u - 1), mid, floatOf(u + 1)]) out.push(v, -v);
  }
  return out.map((x) => floatOf(bitsOf(x))); // every probe is a float32
}

for (const dtype of ["F16", "BF16"] as const) {
  Deno.test(`${dtype} encoder: round to nearest even as an independent search, fixture encoder agrees`, () => {
    const seed = freshSeed();
    const ref = makeReference(dtype);
    const enc = dtype === "F16" ? f32BitsToF16 : f32BitsToBf16;
    const fixture = dtype === "F16" ? f32ToF16Bits : f32ToBF16Bits;
    let n = 0;
    for (const x of probes(dtype, seed)) {
      if (Number.isNaN(x)) continue;
      const want = ref(x), got = enc(bitsOf(x));
      assert.equal(
        got,
        want,
        `${dtype}(${x}) = 0x${got.toString(16)}, want 0x${want.toString(16)} (seed ${seed})`,
      );
      assert.equal(fixture(x), want, `fixture ${dtype}(${x})`);
      n++;
    }
    assert.ok(n > 100000);
    if (dtype === "F16") {
      // The overflow boundary: 65504 + half an ulp goes to infinity, just below stays 65504.
      assert.equal(enc(bitsOf(65520)), 0x7c00);
      assert.equal(enc(bitsOf(65519.996)), 0x7bff);
      assert.equal(enc(bitsOf(-1e6)), 0xfc00);
      assert.equal(enc(bitsOf(2 ** -25)), 0); // a tie between 0 and the smallest subnormal
      assert.equal(enc(bitsOf(3 * 2 ** -25)), 2); // a tie between subnormals 1 and 2
    } else {
      assert.equal(enc(bitsOf(3.4028234663852886e38)), 0x7f80); // FLT_MAX rounds past the bf16 max
    }
  });

  Deno.test(`${dtype}: every 16-bit pattern decodes and re-encodes to itself (NaN payloads included)`, () => {
    const enc = dtype === "F16" ? f32BitsToF16 : f32BitsToBf16;
    for (let h = 0; h < 0x10000; h++) {
      const u = dtype === "F16" ? f16ToF32Bits(h) : (h << 16) >>> 0;
      assert.equal(enc(u), h, `0x${h.toString(16)}`);
      const v = floatOf(u), want = value16(h, dtype);
      if (Number.isNaN(want)) assert.ok(Number.isNaN(v));
      else assert.ok(Object.is(v, want), `0x${h.toString(16)} decodes to ${v}, want ${want}`);
      if (dtype === "F16" && !Number.isNaN(want)) {
        assert.ok(Object.is(f16ToF32(h), want) && Object.is(f16BitsToF32(h), want));
      }
    }
    // A float32 NaN whose payload lies below the kept bits stays a NaN (quiet), sign kept.
    const nan = enc(0xff800001);
    assert.ok(Number.isNaN(value16(nan, dtype)) && (nan & 0x8000) !== 0);
  });
}

Deno.test("serializeSafetensors writes the dtypes asked for; roundToDtype is what reads back", () => {
  const r = rng(freshSeed());
  const data = new Float32Array(37).map(() => (r() - 0.5) * 2 ** Math.floor(r() * 40 - 20));
  data[0] = 70000; // F16 overflow
  data[1] = 1e-8; // F16 subnormal
  data[2] = NaN;
  const t = { shape: [37], data };
  const dtypes = new Map<string, WeightDtype>([["a", "BF16"], ["b", "F16"]]);
  const file = parseSafetensors(serializeSafetensors({ a: t, b: t, c: t }, undefined, { dtypes }), "x");
  for (const [name, dt] of [["a", "BF16"], ["b", "F16"], ["c", "F32"]] as const) {
    const got = file.tensors.get(name)!;
    assert.equal(got.dtype, dt);
    assert.deepEqual(got.bytes, encodeFloats(data, dt));
    const want = roundToDtype(data, dt);
    assert.deepEqual(new Uint32Array(got.data.buffer, got.data.byteOffset, 37), new Uint32Array(want.buffer));
  }
  // Independent of engram's encoders: the fixture's.
  const b = file.tensors.get("b")!.bytes, a = file.tensors.get("a")!.bytes;
  const dv = new DataView(b.buffer, b.byteOffset), da = new DataView(a.buffer, a.byteOffset);
  for (let i = 3; i < 37; i++) {
    assert.equal(dv.getUint16(2 * i, true), f32ToF16Bits(data[i]));
    assert.equal(da.getUint16(2 * i, true), f32ToBF16Bits(data[i]));
  }
  assert.equal(file.tensors.get("b")!.data[0], Infinity);
  assert.throws(
    () => serializeSafetensors({ a: t }, undefined, { dtypes: new Map([["a", "I8" as WeightDtype]]) }),
    (e) => e instanceof SafetensorsError && e.field === "a",
  );
});

const WORLD = new URL("../fixtures/world/", import.meta.url).pathname;

/** A tiny HF checkpoint with the world tokenizer, a generation_config.json and an unknown config field. */
async function source(dir: string, family: "llama" | "gpt_neox", dtype: "F16" | "BF16", shards: number) {
  await writeTinyCheckpoint(dir, {
    family,
    dtype,
    shards,
    seed: freshSeed(),
    overrides: { vocab_size: 1284 },
    configOnly: { engram_test_unknown: { kept: [1, 2] } },
  });
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) await Deno.copyFile(WORLD + f, `${dir}/${f}`);
  await Deno.writeTextFile(`${dir}/generation_config.json`, '{"do_sample": false, "max_new_tokens": 7}\n');
}

/** Every tensor's dtype and bytes, from one file or all shards. */
async function tensorBytes(dir: string): Promise<Map<string, { dtype: string; bytes: Uint8Array }>> {
  const ck = await readCheckpointTensors(dir);
  return new Map([...ck.tensors].map(([n, t]) => [n, { dtype: t.dtype, bytes: t.bytes }]));
}

for (
  const [family, dtype, shards, layer] of [
    ["llama", "BF16", 1, "model.layers.1.mlp.down_proj.weight"],
    ["gpt_neox", "F16", 2, "gpt_neox.layers.1.mlp.dense_4h_to_h.weight"],
  ] as const
) {
  Deno.test(`edit of a ${dtype} ${family} saves ${dtype}, keeps the folder's files; revert is byte-identical`, async () => {
    const tmp = await Deno.makeTempDir({ prefix: "engram_dtype_" });
    try {
      const src = `${tmp}/src`, out = `${tmp}/edited`, back = `${tmp}/reverted`;
      await source(src, family, dtype, shards);
      // A larger L∞ box than FT-L's default 5e-4, so that the edit survives the 16-bit rounding.
      await Deno.writeTextFile(`${tmp}/hp.json`, JSON.stringify({ num_steps: 4, norm_constraint: 0.02 }));
      const e = await engram(
        "edit",
        "--method",
        "ft-l",
        "--model",
        src,
        "--hparams",
        `${tmp}/hp.json`,
        "--layers",
        "1",
        "--prompt",
        "The birthplace of {} is",
        "--subject",
        "Pilvun",
        "--target",
        "Sunmere",
        "--out",
        out,
        "--json",
      );
      assert.equal(e.code, 0, e.stderr);
      const srcT = await tensorBytes(src), editT = await tensorBytes(out);
      // A sharded source is written as one model.safetensors.
      assert.ok((await Deno.stat(`${out}/model.safetensors`)).isFile);
      assert.deepEqual([...editT.keys()].sort(), [...srcT.keys()].sort());
      const changed = [];
      for (const [name, s] of srcT) {
        const t = editT.get(name)!;
        assert.equal(t.dtype, dtype, name);
        if (!s.bytes.every((b, i) => b === t.bytes[i])) changed.push(name);
      }
      // FT-L edits the layer's down projection (NeoX: its bias too), and nothing else changed bytes.
      const edited: string[] = JSON.parse(e.stdout).weights;
      assert.ok(edited.length > 0 && `${layer.slice(0, layer.indexOf("layers."))}${edited[0]}` === layer);
      assert.deepEqual(
        changed.sort(),
        edited.map((n) => layer.slice(0, layer.indexOf("layers.")) + n).sort(),
      );
      // The folder's other files and the config's unknown fields are kept; torch_dtype says the dtype.
      assert.equal(
        await Deno.readTextFile(`${out}/generation_config.json`),
        await Deno.readTextFile(`${src}/generation_config.json`),
      );
      assert.deepEqual(
        await Deno.readFile(`${out}/tokenizer.json`),
        await Deno.readFile(`${src}/tokenizer.json`),
      );
      const cfg = JSON.parse(await Deno.readTextFile(`${out}/config.json`));
      assert.deepEqual(cfg.engram_test_unknown, { kept: [1, 2] });
      assert.equal(cfg.torch_dtype, dtype === "BF16" ? "bfloat16" : "float16");
      // The model's weights as reloaded are the ones the edit log names.
      const check = await engram("revert", "--check", "--model", out);
      assert.equal(check.code, 0, check.stderr + check.stdout);
      const r = await engram("revert", "--model", out, "--log", `${out}.editlog`, "--out", back);
      assert.equal(r.code, 0, r.stderr);
      const backT = await tensorBytes(back);
      assert.deepEqual([...backT.keys()].sort(), [...srcT.keys()].sort());
      for (const [name, s] of srcT) {
        assert.equal(backT.get(name)!.dtype, dtype, name);
        assert.deepEqual(backT.get(name)!.bytes, s.bytes, `${name} not restored byte for byte`);
      }
      assert.equal(
        await Deno.readTextFile(`${back}/generation_config.json`),
        await Deno.readTextFile(`${src}/generation_config.json`),
      );
      if (family === "llama") {
        // --save-f32: every tensor F32, the unedited ones the source's values exactly; its log checks.
        const f32 = `${tmp}/f32`;
        const e2 = await engram(
          "edit",
          "--method",
          "ft-l",
          "--model",
          src,
          "--hparams",
          `${tmp}/hp.json`,
          "--layers",
          "1",
          "--prompt",
          "The birthplace of {} is",
          "--subject",
          "Pilvun",
          "--target",
          "Sunmere",
          "--out",
          f32,
          "--save-f32",
        );
        assert.equal(e2.code, 0, e2.stderr);
        const ck = await readCheckpointTensors(f32), orig = await readCheckpointTensors(src);
        for (const [name, t] of ck.tensors) {
          assert.equal(t.dtype, "F32", name);
          if (name !== layer) assert.deepEqual(t.data, orig.tensors.get(name)!.data, name);
        }
        assert.equal(JSON.parse(await Deno.readTextFile(`${f32}/config.json`)).torch_dtype, "float32");
        const c2 = await engram("revert", "--check", "--model", f32);
        assert.equal(c2.code, 0, c2.stderr + c2.stdout);
      }
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  });
}

Deno.test("a 16-bit model saved untouched: nothing decoded to float32, every tensor byte-identical", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "engram_dtype_" });
  try {
    for (const [family, dtype] of [["llama", "BF16"], ["gpt_neox", "F16"]] as const) {
      const src = `${tmp}/${family}`, out = `${tmp}/${family}.out`;
      await source(src, family, dtype, 1);
      const hf = await loadHFModel(src);
      const files = await hfModelFiles(out, hf);
      assert.ok(Object.keys(files).includes("model.safetensors"));
      await Deno.mkdir(out);
      for (const [name, content] of Object.entries(files)) {
        await Deno.writeFile(`${out}/${name}`, await contentBytes(content));
      }
      for (const [name, t] of hf.weights) {
        assert.equal(t.undecoded16?.dtype, dtype, `${family} ${name} decoded`);
      }
      const a = await tensorBytes(src), b = await tensorBytes(out);
      assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
      for (const [name, x] of a) assert.deepEqual(b.get(name), x, `${family} ${name}`);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("forceF32 writes F32 (torch_dtype float32); no recorded dtypes writes F32 as before", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "engram_dtype_" });
  try {
    await source(`${tmp}/src`, "llama", "BF16", 2);
    const hf = await loadHFModel(`${tmp}/src`);
    assert.ok([...hf.dtypes.values()].every((d) => d === "BF16") && hf.dtypes.size === hf.weights.size);
    const input = { config: hf.config, weights: hf.weights, baseConfig: hf.hfConfig };
    for (const opts of [{ dtypes: hf.dtypes, forceF32: true }, {}]) {
      const files = await hfModelFiles(`${tmp}/out`, { ...input, ...opts });
      const st = parseSafetensors(contentBytes(files["model.safetensors"]), "out");
      for (const [name, t] of st.tensors) {
        assert.equal(t.dtype, "F32", name);
        const w = hf.weights.get(name.replace(/^model\./, ""))!;
        assert.deepEqual(t.data, w.data, name);
      }
      assert.equal(JSON.parse(files["config.json"] as string).torch_dtype, "float32");
    }
    // And the recorded dtypes write the source's bytes back.
    const files = await hfModelFiles(`${tmp}/out`, { ...input, dtypes: hf.dtypes });
    await Deno.writeFile(`${tmp}/one.safetensors`, contentBytes(files["model.safetensors"]));
    const one = await readSafetensors(`${tmp}/one.safetensors`);
    for (const [name, s] of await tensorBytes(`${tmp}/src`)) {
      assert.deepEqual(one.tensors.get(name)!.bytes, s.bytes);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("an edit past the F16 range is refused naming the weight; nothing is written", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "engram_dtype_" });
  try {
    await source(`${tmp}/src`, "gpt_neox", "F16", 1);
    // An absurd learning rate without the L∞ box drives the weights far past 65504.
    await Deno.writeTextFile(
      `${tmp}/hp.json`,
      JSON.stringify({ num_steps: 3, norm_constraint: false, lr: 1e5 }),
    );
    const e = await engram(
      "edit",
      "--method",
      "ft-l",
      "--model",
      `${tmp}/src`,
      "--hparams",
      `${tmp}/hp.json`,
      "--layers",
      "1",
      "--prompt",
      "The birthplace of {} is",
      "--subject",
      "Pilvun",
      "--target",
      "Sunmere",
      "--out",
      `${tmp}/out`,
    );
    assert.equal(e.code, 1, e.stderr);
    assert.match(e.stderr, /field 'layers\.1\.mlp\.dense_4h_to_h\.weight'.*beyond the F16 range.*--save-f32/);
    assert.ok(!e.stderr.includes("at "), e.stderr); // one line, no stack trace
    await assert.rejects(Deno.stat(`${tmp}/out`), Deno.errors.NotFound);
    await assert.rejects(Deno.stat(`${tmp}/out.editlog`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

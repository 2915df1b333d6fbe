/**
 * The .npy / .npz reader (src/io/npz.ts) and the import of ROME's prebuilt key statistics
 * (src/edit/stats.ts `readStatsFile`, `findStatsFiles`). Arrays are written byte by byte here (the
 * .npy header and little-endian data), zipped with fflate's zipSync as numpy.savez stores them; when
 * python3 with numpy is present, files numpy itself wrote are read too.
 */
import assert from "node:assert/strict";
import { zipSync } from "fflate";
import { openNpz, parseNpy, readNpz } from "../src/io/npz.ts";
import { findStatsFiles, readStatsFile } from "../src/edit/stats.ts";
import { InputError } from "../src/errors.ts";

/** A version-1 .npy file: header dict padded to a multiple of 64 bytes, then `data`. */
function npy(descr: string, shape: number[], data: Uint8Array, fortran = false, version = 1): Uint8Array {
  const dict = `{'descr': '${descr}', 'fortran_order': ${fortran ? "True" : "False"}, 'shape': (${
    shape.join(", ")
  }${shape.length === 1 ? "," : ""}), }`;
  const pre = version === 1 ? 10 : 12;
  let header = dict;
  while ((pre + header.length + 1) % 64 !== 0) header += " ";
  header += "\n";
  const out = new Uint8Array(pre + header.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const dv = new DataView(out.buffer);
  if (version === 1) dv.setUint16(8, header.length, true);
  else dv.setUint32(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[pre + i] = header.charCodeAt(i);
  out.set(data, pre + header.length);
  return out;
}
const f4 = (xs: number[]) => new Uint8Array(Float32Array.from(xs).buffer);
const f8 = (xs: number[]) => new Uint8Array(Float64Array.from(xs).buffer);
function i8(xs: number[]): Uint8Array {
  const b = new Uint8Array(8 * xs.length);
  xs.forEach((x, i) => new DataView(b.buffer).setBigInt64(8 * i, BigInt(x), true));
  return b;
}
function u(s: string, n: number): Uint8Array {
  const b = new Uint8Array(4 * n);
  [...s].forEach((c, i) => new DataView(b.buffer).setUint32(4 * i, c.codePointAt(0)!, true));
  return b;
}

Deno.test("npy: <f4 C order, <f8 Fortran order (returned row-major), <i8 scalar, <U string, version 2", () => {
  const a = parseNpy(npy("<f4", [2, 3], f4([1, 2, 3, 4, 5, 6])));
  assert.deepEqual(a.shape, [2, 3]);
  assert.ok(a.data instanceof Float32Array);
  assert.deepEqual([...a.data], [1, 2, 3, 4, 5, 6]);
  // Column-major storage of [[1, 2, 3], [4, 5, 6]].
  const b = parseNpy(npy("<f8", [2, 3], f8([1, 4, 2, 5, 3, 6]), true));
  assert.ok(b.data instanceof Float64Array);
  assert.deepEqual([...b.data], [1, 2, 3, 4, 5, 6]);
  const c = parseNpy(npy("<i8", [], i8([100000])));
  assert.deepEqual(c.shape, []);
  assert.deepEqual([...c.data], [100000]);
  const s = parseNpy(npy("<U12", [], u("SecondMoment", 12)));
  assert.deepEqual(s.strings, ["SecondMoment"]);
  const v2 = parseNpy(npy("<f4", [3], f4([0.5, -1, 7]), false, 2));
  assert.deepEqual([...v2.data], [0.5, -1, 7]);
  // Fortran order in 3-D: element (i, j, k) at i + 2j + 6k.
  const shape = [2, 3, 4];
  const fdata: number[] = new Array(24);
  for (let i = 0; i < 2; i++) {
    for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) fdata[i + 2 * j + 6 * k] = 100 * i + 10 * j + k;
  }
  const t = parseNpy(npy("<f8", shape, f8(fdata), true));
  assert.equal(t.data[1 * 12 + 2 * 4 + 3], 123);
  assert.equal(t.data[0 * 12 + 1 * 4 + 2], 12);
});

Deno.test("npy: unsupported or broken arrays are InputErrors naming the file and entry", () => {
  const where = { file: "x.npz", field: "mom2.mom2" };
  const cases: [Uint8Array, RegExp][] = [
    [npy(">f4", [2], f4([1, 2])), /dtype '>f4'/],
    [npy("|O", [1], new Uint8Array(8)), /dtype '\|O'/],
    [npy("<f4", [4], f4([1, 2])), /data has 8 bytes, <f4\[4\] needs 16/],
    [new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]), /magic/],
  ];
  const v9 = npy("<f4", [1], f4([1]));
  v9[6] = 9;
  cases.push([v9, /format version 9/]);
  for (const [bytes, re] of cases) {
    assert.throws(() => parseNpy(bytes, where), (e: Error) => {
      assert.ok(e instanceof InputError, String(e));
      assert.match(e.message, re);
      assert.match(e.message, /^x\.npz, field 'mom2\.mom2': /);
      return true;
    });
  }
});

Deno.test("npz: entries by name, parsed on demand; a missing entry lists the ones there", () => {
  const zip = zipSync({
    "a.npy": npy("<f4", [2], f4([3, 4])),
    "bad.npy": npy(">f8", [1], f8([1])),
  }, { level: 0 });
  const z = openNpz(zip, "t.npz");
  assert.deepEqual(z.names.sort(), ["a", "bad"]);
  assert.deepEqual([...z.get("a").data], [3, 4]);
  assert.throws(() => z.get("bad"), /t\.npz, field 'bad': .*dtype '>f8'/);
  assert.throws(() => z.get("zzz"), /archive has no entry 'zzz' \(entries: a, bad\)/);
  assert.throws(() => openNpz(new Uint8Array([1, 2, 3]), "junk.npz"), InputError);
});

/** A ROME statistics file: `CombinedStat(mom2=SecondMoment())` saved by tally() (sum, count, constructor). */
function romeNpz(sum: number[], n: number, count: number, precision: "<f4" | "<f8" = "<f4"): Uint8Array {
  const ctor = "util.runningstats.SecondMoment()";
  return zipSync({
    "mom2.constructor.npy": npy(`<U${ctor.length}`, [], u(ctor, ctor.length)),
    "mom2.count.npy": npy("<i8", [], i8([count])),
    "mom2.mom2.npy": npy(precision, [n, n], precision === "<f4" ? f4(sum) : f8(sum)),
    "sample_size.npy": npy("<i8", [], i8([100000])),
  }, { level: 0 });
}

Deno.test("ROME statistics .npz: C = mom2.mom2 / mom2.count, layer from the file name; wrong shape names file and field", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "engram_npz_" });
  try {
    const n = 3, count = 7;
    const sum = [4, 1, 2, 1, 5, 3, 2, 3, 6].map((x) => x * 1.25);
    const good = `${tmp}/transformer.h.4.mlp.c_proj_float32_mom2_100000.npz`;
    await Deno.writeFile(good, romeNpz(sum, n, count));
    const st = await readStatsFile(good, n);
    assert.equal(st.count, 7);
    assert.equal(st.layer, 4);
    for (let i = 0; i < 9; i++) assert.equal(st.mom2[i], sum[i] / count);

    await assert.rejects(() => readStatsFile(good, 5), (e: Error) => {
      assert.ok(e instanceof InputError);
      assert.ok(
        e.message.startsWith(`${good}, field 'mom2.mom2': statistics of shape [3,3] do not fit`),
        e.message,
      );
      assert.match(e.message, /\[5, 5\]/);
      return true;
    });
    const zeroCount = `${tmp}/transformer.h.1.mlp.c_proj_float32_mom2_100000.npz`;
    await Deno.writeFile(zeroCount, romeNpz(sum, n, 0));
    await assert.rejects(
      () => readStatsFile(zeroCount, n),
      /field 'mom2\.count': must be a positive token count/,
    );
    const noMom2 = `${tmp}/other.npz`;
    await Deno.writeFile(noMom2, zipSync({ "mean.npy": npy("<f4", [3], f4([1, 2, 3])) }));
    await assert.rejects(
      () => readStatsFile(noMom2, n),
      /other\.npz, field 'mom2\.mom2': archive has no entry/,
    );

    // A folder of ROME files: each layer finds its own; layers not asked for are not even opened.
    const f64 = `${tmp}/transformer.h.9.mlp.c_proj_float64_mom2_100000.npz`;
    await Deno.writeFile(f64, romeNpz(sum.map((x) => 2 * x), n, count, "<f8"));
    const found = await findStatsFiles([tmp], [4, 9], n);
    assert.equal(found.get(4)!.file, good);
    assert.equal(found.get(9)!.stats.mom2[4], (2 * sum[4]) / count);
    await assert.rejects(() => findStatsFiles([tmp], [4, 2], n), /no statistics for layer\(s\) 2/);
    // One file without a layer in its name serves the one requested layer.
    const plain = `${tmp}/sub/stats.npz`;
    await Deno.mkdir(`${tmp}/sub`);
    await Deno.writeFile(plain, romeNpz(sum, n, count));
    assert.equal((await findStatsFiles([plain], [6], n)).get(6)!.file, plain);
    await assert.rejects(() => findStatsFiles([plain, good], [4, 6], n), /cannot tell which layer/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

const haveNumpy = await (async () => {
  try {
    const p = await new Deno.Command("python3", { args: ["-c", "import numpy"], stderr: "null" }).output();
    return p.success;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "npz: files numpy.savez wrote (float32 C, float64 Fortran, int64, str), when numpy is installed",
  ignore: !haveNumpy,
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "engram_npz_np_" });
    try {
      const file = `${tmp}/transformer.h.2.mlp.c_proj_float32_mom2_100000.npz`;
      const py = `
import numpy as np
m = np.arange(20, dtype=np.float32).reshape(4, 5) * np.float32(0.5) - 3
f = np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3) / 7)
s = np.arange(16, dtype=np.float32).reshape(4, 4); s = s + s.T
np.savez(${
        JSON.stringify(file)
      }, **{"m": m, "f": f, "n": 123456789012, "c": "util.runningstats.SecondMoment()",
  "mom2.mom2": s, "mom2.count": 4, "sample_size": 100000})
`;
      const p = await new Deno.Command("python3", { args: ["-c", py] }).output();
      assert.ok(p.success, new TextDecoder().decode(p.stderr));
      const z = await readNpz(file);
      const m = z.get("m");
      assert.deepEqual(m.shape, [4, 5]);
      for (let i = 0; i < 20; i++) assert.equal(m.data[i], i * 0.5 - 3);
      const f = z.get("f");
      for (let i = 0; i < 6; i++) assert.equal(f.data[i], i / 7);
      assert.deepEqual([...z.get("n").data], [123456789012]);
      assert.deepEqual(z.get("c").strings, ["util.runningstats.SecondMoment()"]);
      const st = await readStatsFile(file, 4);
      assert.equal(st.layer, 2);
      for (let a = 0; a < 4; a++) {
        for (let b = 0; b < 4; b++) assert.equal(st.mom2[a * 4 + b], (a * 4 + b + b * 4 + a) / 4);
      }
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

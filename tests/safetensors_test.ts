/** safetensors reader/writer: round trips, dtype decoding, every corrupt-file case, and the atomic writers. */
import assert from "node:assert/strict";
import { EngramError, SafetensorsError } from "../src/errors.ts";
import {
  f16ToF32,
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
  writeSafetensors,
} from "../src/io/safetensors.ts";
import { writeDirAtomic, writeFileAtomic } from "../src/io/atomic.ts";
import type { HostTensor } from "../src/model/config.ts";
import { SHARED } from "./_util.ts";
import { bf16BitsToF32, f16BitsToF32, f32ToBF16Bits, f32ToF16Bits } from "./_hf_fixtures.ts";

const FILE = "bad.safetensors";

/** A safetensors file from a header object (or raw header string) and a data section. */
function build(header: unknown, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const h = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

/** Asserts parsing throws a SafetensorsError whose message names the file, the field, and matches `re`. */
function assertBad(bytes: Uint8Array, field: string | undefined, re: RegExp): void {
  assert.throws(() => parseSafetensors(bytes, FILE), (e: unknown) => {
    assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${e}`);
    assert.equal(e.code, "safetensors");
    assert.equal(e.file, FILE);
    assert.ok(e.message.includes(FILE), e.message);
    if (field !== undefined) {
      assert.equal(e.field, field);
      assert.ok(e.message.includes(field), e.message);
    }
    assert.match(e.message, re);
    return true;
  });
}

const ok = { dtype: "F32", shape: [2], data_offsets: [0, 8] };

Deno.test("F32 round trip: serialize -> parse gives the same tensors, metadata, sorted layout, aligned header", () => {
  const tensors = new Map<string, HostTensor>([
    ["b", { shape: [2, 3], data: new Float32Array([1, -2, 3.5, Infinity, -0, 1e-30]) }],
    ["a", { shape: [], data: new Float32Array([42]) }],
    ["10", { shape: [0, 4], data: new Float32Array(0) }],
  ]);
  const bytes = serializeSafetensors(tensors, { format: "pt" });
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(n % 8, 0);
  const header = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  assert.ok(header.startsWith(`{"__metadata__":{"format":"pt"},"10":`), header);
  const f = parseSafetensors(bytes, "mem");
  assert.deepEqual(f.metadata, { format: "pt" });
  assert.deepEqual([...f.tensors.keys()], ["10", "a", "b"]);
  for (const [name, t] of tensors) {
    const got = f.tensors.get(name)!;
    assert.equal(got.dtype, "F32");
    assert.deepEqual(got.shape, t.shape);
    assert.deepEqual(Array.from(got.data), Array.from(t.data));
    assert.ok(Object.is(f.tensors.get("b")!.data[4], -0));
  }
  // Records work too, and the byte layout is deterministic.
  assert.deepEqual(serializeSafetensors(Object.fromEntries(tensors), { format: "pt" }), bytes);
});

Deno.test("serializer reproduces Hugging Face's files byte for byte", async () => {
  for (const sub of ["fake_gpt2", "tiny_gpt2_toyvocab"]) {
    const path = `${SHARED}gpt2-tiny-random-lmbuddy/${sub}/model.safetensors`;
    const f = await readSafetensors(path);
    const again = serializeSafetensors(new Map([...f.tensors].map(([k, t]) => [k, t.toHost()])), f.metadata);
    assert.deepEqual(again, await Deno.readFile(path), sub);
  }
});

Deno.test("serializer rejects data that does not match the shape", () => {
  assert.throws(
    () => serializeSafetensors({ w: { shape: [2, 2], data: new Float32Array(3) } }),
    (e: unknown) => e instanceof SafetensorsError && e.field === "w" && /needs 4/.test(e.message),
  );
});

Deno.test("every F16 and BF16 bit pattern decodes as an independent bit-level decoder says (subnormals, inf, NaN)", () => {
  // All 65536 patterns of each type in one tensor; the test fixture's decoders build float32 bits
  // directly, src/io/safetensors.ts decodes F16 arithmetically and BF16 by a shift.
  const n = 65536;
  const raw = new Uint8Array(4 * n);
  const dv = new DataView(raw.buffer);
  for (let i = 0; i < n; i++) (dv.setUint16(2 * i, i, true), dv.setUint16(2 * n + 2 * i, i, true));
  const f = parseSafetensors(
    build({
      h: { dtype: "F16", shape: [256, 256], data_offsets: [0, 2 * n] },
      b: { dtype: "BF16", shape: [n], data_offsets: [2 * n, 4 * n] },
    }, raw),
    "mem",
  );
  const h = f.tensors.get("h")!.data, b = f.tensors.get("b")!.data;
  // BF16 bits read through a Uint32 view: reading a signaling NaN into a JS number may quiet it.
  const bBits = new Uint32Array(b.buffer, b.byteOffset, b.length);
  const bitsOf = (x: number) => new Uint32Array(new Float32Array([x]).buffer)[0];
  let nan16 = 0, sub16 = 0;
  for (let i = 0; i < n; i++) {
    const want16 = f16BitsToF32(i), want16b = bitsOf(want16);
    if (Number.isNaN(want16)) (assert.ok(Number.isNaN(h[i]), `F16 ${i.toString(16)}`), nan16++);
    else assert.equal(bitsOf(h[i]), want16b, `F16 0x${i.toString(16)}`);
    if ((i & 0x7c00) === 0 && (i & 0x3ff) !== 0) sub16++;
    // BF16 keeps every bit, NaN payloads included.
    const wantB = bf16BitsToF32(i);
    if (Number.isNaN(wantB)) assert.ok(Number.isNaN(b[i]));
    else assert.equal(bBits[i], bitsOf(wantB), `BF16 0x${i.toString(16)}`);
    assert.equal(bBits[i], i << 16 >>> 0, `BF16 0x${i.toString(16)}`);
  }
  assert.equal(nan16, 2 * 1023);
  assert.equal(sub16, 2 * 1023);
  assert.equal(h[1], 2 ** -24);
  assert.equal(h[0x3ff], 1023 * 2 ** -24);
  // The fixture's encoders round to nearest even and invert the decoders on every finite pattern.
  for (let i = 0; i < n; i++) {
    const x = f16BitsToF32(i);
    if (!Number.isNaN(x)) assert.equal(f32ToF16Bits(x), i, `F16 0x${i.toString(16)}`);
    const y = bf16BitsToF32(i);
    if (!Number.isNaN(y)) assert.equal(f32ToBF16Bits(y), i, `BF16 0x${i.toString(16)}`);
  }
  assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00); // a tie rounds to even
  assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02);
  assert.equal(f32ToF16Bits(65520), 0x7c00); // overflow to inf
  assert.equal(f32ToF16Bits(2 ** -25), 0); // half the smallest subnormal: a tie to even zero
  assert.equal(f32ToBF16Bits(1 + 2 ** -8), 0x3f80);
  assert.equal(f32ToBF16Bits(1 + 3 * 2 ** -8), 0x3f82);
});

Deno.test("F16, BF16 and F64 decode to hand-computed float32 values", () => {
  // F16 bits: 1.0, -2.0, 0.5, 65504 (max), 2^-24 (smallest subnormal), +inf, -0, 1/3 ~ 0x3555
  const f16 = [0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x7c00, 0x8000, 0x3555];
  const f16want = [1, -2, 0.5, 65504, 2 ** -24, Infinity, -0, 0.333251953125];
  // BF16 bits: 1.0, -1.5, pi ~ 0x4049 (3.140625), 1e38-ish 0x7e96 , smallest normal 0x0080
  const bf16 = [0x3f80, 0xbfc0, 0x4049, 0x7e96, 0x0080];
  const bf16want = [1, -1.5, 3.140625, Math.fround(2 ** 126 * (1 + 0x16 / 128)), 2 ** -126];
  const u16 = (xs: number[]) => {
    const b = new Uint8Array(2 * xs.length);
    xs.forEach((x, i) => new DataView(b.buffer).setUint16(2 * i, x, true));
    return b;
  };
  const f64 = new Uint8Array(16);
  new DataView(f64.buffer).setFloat64(0, 0.1, true);
  new DataView(f64.buffer).setFloat64(8, -3, true);
  const data = new Uint8Array(16 + 10 + 16);
  data.set(u16(f16), 0);
  data.set(u16(bf16), 16);
  data.set(f64, 26); // unaligned on purpose
  const bytes = build({
    h: { dtype: "F16", shape: [8], data_offsets: [0, 16] },
    b: { dtype: "BF16", shape: [5], data_offsets: [16, 26] },
    d: { dtype: "F64", shape: [2], data_offsets: [26, 42] },
  }, data);
  const f = parseSafetensors(bytes, "mem");
  const h = Array.from(f.tensors.get("h")!.data);
  assert.deepEqual(h, f16want);
  assert.ok(Object.is(h[6], -0));
  assert.deepEqual(Array.from(f.tensors.get("b")!.data), bf16want);
  assert.deepEqual(Array.from(f.tensors.get("d")!.data), [Math.fround(0.1), -3]);
  assert.ok(Number.isNaN(f16ToF32(0x7e00)));
});

Deno.test("unaligned F32 data is decoded correctly", () => {
  const data = new Uint8Array(2 + 8);
  new DataView(data.buffer).setFloat32(2, 1.25, true);
  new DataView(data.buffer).setFloat32(6, -7, true);
  const f = parseSafetensors(
    build({
      pad: { dtype: "U8", shape: [2], data_offsets: [0, 2] },
      x: { dtype: "F32", shape: [2], data_offsets: [2, 10] },
    }, data),
    "mem",
  );
  assert.deepEqual(Array.from(f.tensors.get("x")!.data), [1.25, -7]);
});

Deno.test("non-float tensors parse; only asking for their data fails, naming the tensor", () => {
  const f = parseSafetensors(
    build(
      { "h.0.attn.bias": { dtype: "BOOL", shape: [1, 1, 2, 2], data_offsets: [0, 4] } },
      new Uint8Array([1, 0, 1, 1]),
    ),
    FILE,
  );
  const t = f.tensors.get("h.0.attn.bias")!;
  assert.equal(t.dtype, "BOOL");
  assert.throws(
    () => t.data,
    (e: unknown) => e instanceof SafetensorsError && e.field === "h.0.attn.bias" && /BOOL/.test(e.message),
  );
});

Deno.test("corrupt: file shorter than 8 bytes", () => {
  assertBad(new Uint8Array(5), undefined, /5 bytes, too short/);
  assertBad(new Uint8Array(0), undefined, /too short/);
});

Deno.test("corrupt: header length past end of file", () => {
  const b = build({ x: ok }, new Uint8Array(8));
  new DataView(b.buffer).setBigUint64(0, BigInt(b.length), true);
  assertBad(b, undefined, /runs past the end of the file/);
});

Deno.test("corrupt: absurd header length", () => {
  const b = new Uint8Array(16);
  new DataView(b.buffer).setBigUint64(0, 2n ** 62n, true);
  assertBad(b, undefined, /absurd/);
});

Deno.test("corrupt: header not UTF-8, not JSON, not an object", () => {
  const bytes = build("{}");
  bytes[9] = 0xff;
  assertBad(bytes, "header", /not valid UTF-8/);
  assertBad(build('{"x": '), "header", /not valid JSON/);
  assertBad(build("[1,2]"), "header", /must be a JSON object, got an array/);
  assertBad(build("null"), "header", /got null/);
});

Deno.test("corrupt: entry missing or mistyped dtype / shape / data_offsets", () => {
  const d = new Uint8Array(8);
  assertBad(build({ w: 3 }, d), "w", /must be an object/);
  assertBad(build({ w: { shape: [2], data_offsets: [0, 8] } }, d), "w", /missing 'dtype'/);
  assertBad(build({ w: { dtype: 4, shape: [2], data_offsets: [0, 8] } }, d), "w", /'dtype' must be a string/);
  assertBad(build({ w: { dtype: "F32", data_offsets: [0, 8] } }, d), "w", /missing 'shape'/);
  assertBad(
    build({ w: { dtype: "F32", shape: "2", data_offsets: [0, 8] } }, d),
    "w",
    /'shape' must be an array/,
  );
  assertBad(build({ w: { dtype: "F32", shape: [2] } }, d), "w", /missing 'data_offsets'/);
  assertBad(
    build({ w: { dtype: "F32", shape: [2], data_offsets: [0] } }, d),
    "w",
    /'data_offsets' must be \[begin, end\]/,
  );
  assertBad(
    build({ w: { dtype: "F32", shape: [2], data_offsets: ["0", "8"] } }, d),
    "w",
    /'data_offsets' must be/,
  );
  assertBad(
    build({ w: { dtype: "F32", shape: [2], data_offsets: [-8, 0] } }, d),
    "w",
    /'data_offsets' must be/,
  );
});

Deno.test("corrupt: unknown dtype", () => {
  assertBad(
    build({ w: { dtype: "F12", shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)),
    "w",
    /unknown dtype 'F12'/,
  );
});

Deno.test("corrupt: negative or non-integer shape dims", () => {
  const d = new Uint8Array(8);
  assertBad(
    build({ w: { dtype: "F32", shape: [-2], data_offsets: [0, 8] } }, d),
    "w",
    /not a non-negative integer/,
  );
  assertBad(
    build({ w: { dtype: "F32", shape: [2.5], data_offsets: [0, 8] } }, d),
    "w",
    /not a non-negative integer/,
  );
});

Deno.test("corrupt: data_offsets past the data section (truncated file)", () => {
  assertBad(
    build({ w: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, new Uint8Array(8)),
    "w",
    /past the end of the data section \(8 bytes\)/,
  );
  // A real file with its tail cut off.
  const real = Deno.readFileSync(`${SHARED}gpt2-tiny-random-lmbuddy/tiny_gpt2_toyvocab/model.safetensors`);
  assert.throws(
    () => parseSafetensors(real.subarray(0, real.length - 100), FILE),
    (e: unknown) => e instanceof SafetensorsError && /truncated/.test(e.message),
  );
});

Deno.test("corrupt: data_offsets end before begin", () => {
  assertBad(
    build({ w: { dtype: "F32", shape: [0], data_offsets: [8, 0] } }, new Uint8Array(8)),
    "w",
    /end is before begin/,
  );
});

Deno.test("corrupt: byte length != numel * dtype size", () => {
  assertBad(
    build({ w: { dtype: "F16", shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)),
    "w",
    /span 8 bytes but shape \[2\] of F16 needs 4/,
  );
});

Deno.test("corrupt: overlapping tensors", () => {
  assertBad(
    build({
      a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
    }, new Uint8Array(12)),
    "b",
    /overlap tensor 'a'/,
  );
});

Deno.test("strict: a hole between tensors, or before the first, is refused naming the tensor", () => {
  assertBad(
    build({
      a: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
      b: { dtype: "F32", shape: [1], data_offsets: [8, 12] },
    }, new Uint8Array(12)),
    "b",
    /hole of 4 bytes after tensor 'a' \[0, 4\]/,
  );
  assertBad(
    build({ a: { dtype: "F32", shape: [1], data_offsets: [4, 8] } }, new Uint8Array(8)),
    "a",
    /hole of 4 bytes at the start/,
  );
});

Deno.test("strict: trailing bytes after the last tensor are refused", () => {
  assertBad(
    build({ w: ok }, new Uint8Array(9)),
    "w",
    /holds 9 bytes but the tensors end at byte 8: 1 trailing/,
  );
  assertBad(build({}, new Uint8Array(3)), "header", /3 trailing bytes/);
  // Zero-size tensors may share an offset; the empty file (only "{}") is valid.
  const zero = build({
    a: { dtype: "F32", shape: [0], data_offsets: [0, 0] },
    b: { dtype: "F32", shape: [0, 3], data_offsets: [0, 0] },
    c: ok,
  }, new Uint8Array(8));
  assert.deepEqual([...parseSafetensors(zero, FILE).tensors.keys()], ["a", "b", "c"]);
  assert.equal(parseSafetensors(build("{}"), FILE).tensors.size, 0);
});

Deno.test("strict: a declared header length one byte short or long is refused, not read one byte off", () => {
  const good = serializeSafetensors({ w: { shape: [3], data: new Float32Array([1, 2, 3]) } });
  const n = Number(new DataView(good.buffer).getBigUint64(0, true));
  assert.ok(good[8 + n - 1] === 0x20, "the writer pads the header with spaces");
  assert.deepEqual([...parseSafetensors(good, FILE).tensors.get("w")!.data], [1, 2, 3]);
  for (const delta of [-1, 1, -2]) {
    const b = good.slice();
    new DataView(b.buffer).setBigUint64(0, BigInt(n + delta), true);
    assert.throws(() => parseSafetensors(b, FILE), (e: unknown) => {
      assert.ok(e instanceof SafetensorsError, String(e));
      assert.ok(e.message.includes(FILE), e.message);
      return true;
    });
  }
  // One byte short: the header still parses (one space less), the data section has one byte too many.
  const short = good.slice();
  new DataView(short.buffer).setBigUint64(0, BigInt(n - 1), true);
  assertBad(short, "w", /13 bytes but the tensors end at byte 12: 1 trailing/);
});

Deno.test("strict: duplicate keys are refused at every level", () => {
  const entry = '{"dtype":"F32","shape":[2],"data_offsets":[0,8]}';
  assertBad(build(`{"w":${entry},"w":${entry}}`, new Uint8Array(8)), "header", /duplicate key "w"/);
  assertBad(
    build('{"w":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}}', new Uint8Array(8)),
    "header",
    /duplicate key "dtype" \(at w.dtype\)/,
  );
  assertBad(
    build(`{"__metadata__":{"a":"1","a":"2"},"w":${entry}}`, new Uint8Array(8)),
    "header",
    /duplicate key "a"/,
  );
});

Deno.test("strict: offsets and dims must be integer literals", () => {
  for (const bad of ["4.0", "4e0", "-0", "4.5", "1e400"]) {
    assertBad(
      build(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,${bad}]}}`, new Uint8Array(4)),
      "w",
      new RegExp(
        `'data_offsets' must be \\[begin, end\\] with non-negative integers, got \\[0, ${
          bad.replace(".", "\\.")
        }\\]`,
      ),
    );
  }
  assertBad(
    build('{"w":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}', new Uint8Array(4)),
    "w",
    /dimension that is not a non-negative integer: 1\.0/,
  );
  assertBad(
    build('{"w":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,4]}}', new Uint8Array(4)),
    "w",
    /not a non-negative integer/,
  );
});

Deno.test("strict: tensor and metadata names like Object.prototype members are plain names", () => {
  const names = ["__proto__", "constructor", "toString", "valueOf", "hasOwnProperty"];
  const tensors = new Map<string, HostTensor>(
    names.map((n, i) => [n, { shape: [1], data: new Float32Array([i + 0.5]) }]),
  );
  const bytes = serializeSafetensors(tensors, { __proto__: "x", constructor: "y" } as Record<string, string>);
  const f = parseSafetensors(bytes, FILE);
  assert.deepEqual([...f.tensors.keys()].sort(), [...names].sort());
  for (const [i, n] of names.entries()) assert.deepEqual([...f.tensors.get(n)!.data], [i + 0.5]);
  assert.ok(Object.hasOwn(f.metadata, "constructor"));
  assert.equal(f.metadata.constructor, "y");
  assert.equal(Object.getPrototypeOf(f.metadata), Object.prototype, "metadata's prototype untouched");
  // A dtype named like a prototype member is an unknown dtype, not a function-sized one.
  for (const dtype of ["constructor", "toString", "__proto__"]) {
    assertBad(
      build({ w: { dtype, shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)),
      "w",
      /unknown dtype/,
    );
  }
  // An entry missing 'shape' does not find an inherited member.
  assertBad(build('{"w":{"dtype":"F32","data_offsets":[0,4]}}', new Uint8Array(4)), "w", /missing 'shape'/);
});

Deno.test("strict: deep nesting and huge values give a short typed error", () => {
  const deep = "[".repeat(10000) + "]".repeat(10000);
  assertBad(build(`{"__metadata__":{"a":${deep}}}`), "header", /nested deeper than 64/);
  const msg = (() => {
    try {
      parseSafetensors(
        build({ w: { dtype: "F32", shape: [1], data_offsets: ["x".repeat(100000), 4] } }),
        FILE,
      );
    } catch (e) {
      return (e as Error).message;
    }
    return "";
  })();
  assert.ok(msg.length < 300, `message is ${msg.length} characters`);
});

Deno.test("corrupt: __metadata__ must map strings to strings", () => {
  assertBad(
    build({ __metadata__: { format: 1 }, w: ok }, new Uint8Array(8)),
    "__metadata__",
    /must be a string/,
  );
  assertBad(build({ __metadata__: ["pt"], w: ok }, new Uint8Array(8)), "__metadata__", /must be an object/);
});

Deno.test("readSafetensors: missing file and folder give clear errors", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await assert.rejects(readSafetensors(`${tmp}/nope.safetensors`), (e: unknown) => {
      return e instanceof SafetensorsError && e.message.includes("nope.safetensors") &&
        /not found/.test(e.message);
    });
    await assert.rejects(
      readSafetensors(tmp),
      (e: unknown) => e instanceof SafetensorsError && e.message.includes(tmp),
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("writeSafetensors / writeFileAtomic leave no temporary files and replace atomically", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const p = `${tmp}/w.safetensors`;
    await writeSafetensors(p, { x: { shape: [3], data: new Float32Array([1, 2, 3]) } });
    await writeSafetensors(p, { x: { shape: [2], data: new Float32Array([4, 5]) } });
    assert.deepEqual(Array.from((await readSafetensors(p)).tensors.get("x")!.data), [4, 5]);
    await writeFileAtomic(`${tmp}/t.txt`, "hello");
    assert.equal(await Deno.readTextFile(`${tmp}/t.txt`), "hello");
    const names = [];
    for await (const e of Deno.readDir(tmp)) names.push(e.name);
    assert.deepEqual(names.sort(), ["t.txt", "w.safetensors"]);
    // A failed write (missing folder) throws an EngramError and leaves nothing behind.
    await assert.rejects(
      writeFileAtomic(`${tmp}/no/such/dir/f`, "x"),
      (e: unknown) => e instanceof EngramError && e.message.includes("no/such/dir"),
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("writeDirAtomic: writes a folder, refuses to overwrite unless asked, leaves no temp folders", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const dir = `${tmp}/out`;
    await writeDirAtomic(dir, { "a.txt": "one", "b.bin": new Uint8Array([1, 2, 3]) });
    assert.equal(await Deno.readTextFile(`${dir}/a.txt`), "one");
    assert.deepEqual(await Deno.readFile(`${dir}/b.bin`), new Uint8Array([1, 2, 3]));
    await assert.rejects(
      writeDirAtomic(dir, { "c.txt": "two" }),
      (e: unknown) => e instanceof EngramError && e.code === "exists" && e.message.includes(dir),
    );
    assert.equal(
      await Deno.readTextFile(`${dir}/a.txt`),
      "one",
      "refused write must not touch the old folder",
    );
    await writeDirAtomic(dir, { "c.txt": "two" }, { overwrite: true });
    const inDir = [];
    for await (const e of Deno.readDir(dir)) inDir.push(e.name);
    assert.deepEqual(inDir.sort(), [".engram-output", "c.txt"]);
    await assert.rejects(
      writeDirAtomic(`${tmp}/bad`, { "../escape": "x" }),
      (e: unknown) => e instanceof EngramError,
    );
    const inTmp = [];
    for await (const e of Deno.readDir(tmp)) inTmp.push(e.name);
    assert.deepEqual(inTmp, ["out"], `stray entries: ${inTmp}`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

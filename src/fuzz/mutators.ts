/**
 * Seeded mutators for fuzzing file parsers: byte-level (bit flips, interesting bytes and integers,
 * deletions, insertions, duplication, truncation, splicing two seeds) and JSON-aware (a random value
 * replaced by a prototype-named object, a huge or non-integer number, deep nesting, a wrong type or
 * null; a key renamed to a prototype member, deleted or duplicated). All randomness comes from one
 * mulberry32 stream, so a mutant is reproduced from (format, seed, index) alone.
 */
import { mulberry32 } from "../model/generate.ts";

/** A seeded source of floats in [0, 1). */
export type Rng = () => number;

/** The PRNG of a mutant: one stream per (seed, format, index). */
export function mutantRng(seed: number, format: string, index: number): Rng {
  let h = seed >>> 0;
  for (let i = 0; i < format.length; i++) h = Math.imul(h ^ format.charCodeAt(i), 0x01000193) >>> 0;
  return mulberry32((h ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
}

/** Integer in [0, n). */
export function int(r: Rng, n: number): number {
  return Math.floor(r() * n);
}

/** A random element of `xs`. */
export function pick<T>(r: Rng, xs: readonly T[]): T {
  return xs[int(r, xs.length)];
}

const INTERESTING_BYTES = [
  0,
  1,
  0x7f,
  0x80,
  0xff,
  0x20,
  0x22,
  0x2c,
  0x30,
  0x39,
  0x5b,
  0x5d,
  0x7b,
  0x7d,
  0x5c,
  0x0a,
];
const INTERESTING_U64 = [
  0n,
  1n,
  7n,
  8n,
  255n,
  2n ** 31n - 1n,
  2n ** 32n,
  2n ** 53n + 1n,
  2n ** 63n,
  2n ** 64n - 1n,
];

/** One byte-level mutation of `b` (a new array); `others` are seeds for splicing. */
export function mutateBytes(b: Uint8Array, r: Rng, others: readonly Uint8Array[]): Uint8Array {
  const n = b.length;
  const at = n ? int(r, n) : 0;
  switch (int(r, 10)) {
    case 0: { // flip a bit
      const o = b.slice();
      if (n) o[at] ^= 1 << int(r, 8);
      return o;
    }
    case 1: { // an interesting byte
      const o = b.slice();
      if (n) o[at] = pick(r, INTERESTING_BYTES);
      return o;
    }
    case 2: { // a random byte, a few times
      const o = b.slice();
      for (let k = 1 + int(r, 4); k > 0 && n; k--) o[int(r, n)] = int(r, 256);
      return o;
    }
    case 3: { // delete a range
      const len = 1 + int(r, Math.max(1, Math.min(64, n - at)));
      return concat(b.subarray(0, at), b.subarray(Math.min(n, at + len)));
    }
    case 4: { // insert random bytes
      const ins = new Uint8Array(1 + int(r, 16)).map(
        () => (r() < 0.5 ? pick(r, INTERESTING_BYTES) : int(r, 256)),
      );
      return concat(b.subarray(0, at), ins, b.subarray(at));
    }
    case 5: { // duplicate a range
      const len = 1 + int(r, Math.max(1, Math.min(256, n - at)));
      return concat(b.subarray(0, at + len), b.subarray(at, at + len), b.subarray(at + len));
    }
    case 6: // truncate
      return b.slice(0, at);
    case 7: { // splice: a prefix of this seed, a suffix of another
      const o = pick(r, others.length ? others : [b]);
      return concat(b.subarray(0, at), o.subarray(o.length ? int(r, o.length) : 0));
    }
    case 8: { // an interesting little-endian u64, often at 0 (a safetensors header length)
      const o = b.slice();
      const p = r() < 0.5 ? 0 : at;
      if (p + 8 <= n) {
        let v = pick(r, INTERESTING_U64);
        if (r() < 0.5 && n >= 8) {
          v = new DataView(b.buffer, b.byteOffset, n).getBigUint64(0, true) + BigInt(int(r, 5) - 2);
        }
        new DataView(o.buffer).setBigUint64(p, BigInt.asUintN(64, v), true);
      }
      return o;
    }
    default: { // append junk
      return concat(b, new Uint8Array(1 + int(r, 16)).map(() => int(r, 256)));
    }
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** JSON text emitted verbatim by {@link serialize} (numbers JSON.stringify cannot write, deep nesting). */
export class Raw {
  constructor(readonly text: string) {}
}

/** Key/value pairs written after an object's own entries: how a duplicate key gets into the text. */
const EXTRA = Symbol("extra entries");

type Obj = Record<string, unknown> & { [EXTRA]?: [string, unknown][] };

/** JSON text of a mutated tree: {@link Raw} verbatim, extra entries after the object's own. */
export function serialize(v: unknown): string {
  if (v instanceof Raw) return v.text;
  if (Array.isArray(v)) return `[${v.map(serialize).join(",")}]`;
  if (typeof v === "object" && v !== null) {
    const o = v as Obj;
    const parts = Object.keys(o).map((k) => `${JSON.stringify(k)}:${serialize(o[k])}`);
    for (const [k, x] of o[EXTRA] ?? []) parts.push(`${JSON.stringify(k)}:${serialize(x)}`);
    return `{${parts.join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

const PROTO_KEYS = [
  "__proto__",
  "constructor",
  "toString",
  "valueOf",
  "hasOwnProperty",
  "isPrototypeOf",
  "__defineGetter__",
];

/** A hostile replacement value. */
function evilValue(r: Rng, old: unknown): unknown {
  switch (int(r, 16)) {
    case 0:
      return { toString: 1 };
    case 1:
      return { [pick(r, PROTO_KEYS)]: pick(r, [1, "x", {}, null, [1]]) };
    case 2:
      return new Raw(pick(r, ["1e400", "-1e400", "1e308", "18446744073709551616", "9007199254740993", "-0"]));
    case 3:
      return pick(r, [
        -1,
        0,
        1.5,
        2 ** 31,
        2 ** 53,
        3000000,
        1e6,
        20000,
        -(2 ** 31),
        Number.MAX_SAFE_INTEGER,
      ]);
    case 4: {
      const d = pick(r, [100, 1000, 10000]);
      return new Raw("[".repeat(d) + "]".repeat(d));
    }
    case 5: {
      const d = pick(r, [100, 10000]);
      return new Raw('{"a":'.repeat(d) + "1" + "}".repeat(d));
    }
    case 6:
      return null;
    case 7:
      return pick(r, [true, false]);
    case 8:
      return pick(r, [
        "",
        "x",
        "constructor",
        "__proto__",
        "$&$'$$",
        "\u0000",
        "\ud800",
        "x".repeat(1 << 16),
      ]);
    case 9:
      return [];
    case 10:
      return {};
    case 11:
      return typeof old === "number" ? new Raw(`${old}.0`) : [old, old];
    case 12:
      return typeof old === "string" ? old.repeat(1 + int(r, 1000)) : JSON.stringify(old) ?? "x";
    case 13:
      return typeof old === "number" ? old * pick(r, [-1, 10, 1000, 1e6, 0.5]) : pick(r, [0, 1]);
    case 14:
      return Array.isArray(old) ? [...old, ...old] : [old];
    default:
      return pick(r, [[null], [1, "a"], { x: [] }, "1", "true", "null"]);
  }
}

interface Slot {
  parent: Obj | unknown[];
  key: string | number;
}

/** All (parent, key) slots of a tree, breadth first, at most `limit`. */
function slots(root: unknown, limit = 4000): Slot[] {
  const out: Slot[] = [];
  const queue: unknown[] = [root];
  while (queue.length && out.length < limit) {
    const v = queue.shift();
    if (Array.isArray(v)) {
      v.forEach((x, i) => {
        out.push({ parent: v, key: i });
        queue.push(x);
      });
    } else if (typeof v === "object" && v !== null && !(v instanceof Raw)) {
      for (const k of Object.keys(v)) {
        out.push({ parent: v as Obj, key: k });
        queue.push((v as Obj)[k]);
      }
    }
  }
  return out;
}

/** One JSON-aware mutation of the parsed `tree` (in place; returns the new root). */
export function mutateTree(tree: unknown, r: Rng): unknown {
  const all = slots(tree);
  if (all.length === 0 || r() < 0.05) return evilValue(r, tree);
  const s = pick(r, all);
  const old = (s.parent as Record<string | number, unknown>)[s.key];
  const op = int(r, 10);
  if (typeof s.key === "string" && !Array.isArray(s.parent)) {
    const o = s.parent as Obj;
    if (op === 0) { // rename to a prototype member
      delete o[s.key];
      Object.defineProperty(o, pick(r, PROTO_KEYS), {
        value: old,
        enumerable: true,
        writable: true,
        configurable: true,
      });
      return tree;
    }
    if (op === 1) { // delete
      delete o[s.key];
      return tree;
    }
    if (op === 2) { // duplicate the key, with the same or a hostile value
      (o[EXTRA] ??= []).push([s.key, r() < 0.5 ? old : evilValue(r, old)]);
      return tree;
    }
    if (op === 3) { // add a prototype-named key
      (o[EXTRA] ??= []).push([pick(r, PROTO_KEYS), evilValue(r, old)]);
      return tree;
    }
  } else if (op <= 1 && Array.isArray(s.parent)) {
    s.parent.splice(s.key as number, 1);
    return tree;
  }
  (s.parent as Record<string | number, unknown>)[s.key] = evilValue(r, old);
  return tree;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Nesting depth of a parsed tree, without recursion. */
function depth(root: unknown): number {
  let max = 0;
  const stack: [unknown, number][] = [[root, 0]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (typeof v !== "object" || v === null) continue;
    max = Math.max(max, d + 1);
    if (max > 200) return max;
    for (const x of Array.isArray(v) ? v : Object.values(v)) stack.push([x, d + 1]);
  }
  return max;
}

/** One JSON-aware mutation of JSON text `text`; undefined when the text does not parse. */
export function mutateJsonText(text: string, r: Rng): string | undefined {
  let tree: unknown;
  try {
    tree = JSON.parse(text);
  } catch {
    return undefined;
  }
  // A tree made deep by an earlier mutation is left to the byte mutators (serialize recurses).
  if (depth(tree) > 200) return undefined;
  return serialize(mutateTree(tree, r));
}

/** Input kinds: raw bytes, one JSON document, or JSON lines. */
export type InputKind = "bytes" | "json" | "jsonl";

/**
 * A mutant of `seed`: 1 to 3 stacked mutations, JSON-aware (for json / jsonl, on the document or one
 * line) or byte-level with equal odds.
 */
export function mutate(seed: Uint8Array, kind: InputKind, r: Rng, others: readonly Uint8Array[]): Uint8Array {
  let b = seed;
  for (let k = 1 + int(r, 3); k > 0; k--) {
    if (kind !== "bytes" && r() < 0.6) {
      const text = dec.decode(b);
      if (kind === "json") {
        const m = mutateJsonText(text, r);
        if (m !== undefined) {
          b = enc.encode(m);
          continue;
        }
      } else {
        const lines = text.split("\n");
        const i = int(r, lines.length);
        const m = mutateJsonText(lines[i], r);
        if (m !== undefined) {
          lines[i] = m;
          b = enc.encode(lines.join("\n"));
          continue;
        }
      }
    }
    if (kind === "bytes" && r() < 0.3) {
      const m = mutateSafetensorsHeader(b, r);
      if (m) {
        b = m;
        continue;
      }
    }
    b = mutateBytes(b, r, others);
  }
  return b;
}

/**
 * For a safetensors-shaped input: a JSON-aware mutation of its header, keeping the declared length
 * right (so the mutation reaches the header checks rather than the length check). Undefined when the
 * input does not hold a parseable header.
 */
export function mutateSafetensorsHeader(b: Uint8Array, r: Rng): Uint8Array | undefined {
  if (b.length < 8) return undefined;
  const n = new DataView(b.buffer, b.byteOffset, b.length).getBigUint64(0, true);
  if (n > BigInt(b.length - 8)) return undefined;
  const m = mutateJsonText(dec.decode(b.subarray(8, 8 + Number(n))), r);
  if (m === undefined) return undefined;
  let h: Uint8Array = enc.encode(m);
  if (r() < 0.5) h = concat(h, new Uint8Array((8 - (h.length % 8)) % 8).fill(0x20));
  const out = concat(new Uint8Array(8), h, b.subarray(8 + Number(n)));
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  return out;
}

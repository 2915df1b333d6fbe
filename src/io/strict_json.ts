/**
 * A strict JSON parser for untrusted files (RFC 8259), for the places where `JSON.parse` is too lenient:
 *
 * - a key repeated in one object is an error (`JSON.parse` silently keeps the last one);
 * - objects are created without a prototype and own only their keys, so `__proto__`, `constructor` or
 *   `valueOf` in a file are plain names: they never reach `Object.prototype` and a lookup of a missing
 *   key never finds an inherited member;
 * - nesting deeper than `maxDepth` is an error, not a stack overflow later;
 * - a caller may see each number's text (`number` hook), e.g. to refuse `4.0` where an integer literal
 *   is required, as serde does for the Rust safetensors reader.
 *
 * Every error is built by the caller's `error` factory (so it is the caller's typed error class, naming
 * its file) and says where: line, column and the key path.
 */
import { type EngramError, InputError } from "../errors.ts";

/** Options of {@link parseStrictJson}. */
export interface StrictJsonOptions {
  /** File named in errors. */
  file?: string;
  /** Builds the error thrown for bad JSON (default: {@link InputError}). `field` is the key path, if any. */
  error?: (message: string, field?: string) => EngramError;
  /** Deepest nesting of arrays and objects allowed (default 100). */
  maxDepth?: number;
  /** Maps a number's source text and value to the parsed value (default: the value). */
  number?: (text: string, value: number) => unknown;
}

const WS = new Uint8Array(128);
for (const c of [0x20, 0x09, 0x0a, 0x0d]) WS[c] = 1;

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

class Parser {
  pos = 0;
  depth = 0;
  readonly path: (string | number)[] = [];

  constructor(
    readonly text: string,
    readonly maxDepth: number,
    readonly error: (message: string, field?: string) => EngramError,
    readonly number: ((text: string, value: number) => unknown) | undefined,
  ) {}

  where(at = this.pos): string {
    let line = 1, col = 1;
    for (let i = 0; i < at && i < this.text.length; i++) {
      if (this.text.charCodeAt(i) === 0x0a) {
        line++;
        col = 1;
      } else col++;
    }
    return `line ${line} column ${col}`;
  }

  /** The key path, each key and the whole path cut short (a path may be 100 levels of long keys). */
  field(): string | undefined {
    if (this.path.length === 0) return undefined;
    const cut = (s: string, n: number) => (s.length > n ? s.slice(0, n) + "…" : s);
    const parts = this.path.map((
      p,
      i,
    ) => (typeof p === "number" ? `[${p}]` : `${i === 0 ? "" : "."}${cut(p, 40)}`));
    return cut(parts.join(""), 120);
  }

  fail(message: string, at = this.pos): never {
    throw this.error(`not valid JSON at ${this.where(at)}: ${message}`, this.field());
  }

  skipWs(): void {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos);
      if (c < 128 && WS[c]) this.pos++;
      else break;
    }
  }

  describeHere(): string {
    if (this.pos >= this.text.length) return "the end of the text";
    const c = this.text.codePointAt(this.pos)!;
    return c < 0x20 || c > 0x7e
      ? `character U+${c.toString(16).padStart(4, "0")}`
      : `'${String.fromCodePoint(c)}'`;
  }

  value(): unknown {
    this.skipWs();
    const t = this.text;
    if (this.pos >= t.length) this.fail("unexpected end of the text, expected a value");
    const c = t.charCodeAt(this.pos);
    if (c === 0x7b /* { */) return this.object();
    if (c === 0x5b /* [ */) return this.array();
    if (c === 0x22 /* " */) return this.string();
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.num();
    if (t.startsWith("true", this.pos)) {
      this.pos += 4;
      return true;
    }
    if (t.startsWith("false", this.pos)) {
      this.pos += 5;
      return false;
    }
    if (t.startsWith("null", this.pos)) {
      this.pos += 4;
      return null;
    }
    this.fail(`unexpected ${this.describeHere()}, expected a value`);
  }

  enter(): void {
    if (++this.depth > this.maxDepth) this.fail(`nested deeper than ${this.maxDepth} levels`);
  }

  object(): Record<string, unknown> {
    this.enter();
    this.pos++;
    const out: Record<string, unknown> = Object.create(null);
    this.skipWs();
    if (this.text.charCodeAt(this.pos) === 0x7d /* } */) {
      this.pos++;
      this.depth--;
      return out;
    }
    for (;;) {
      this.skipWs();
      if (this.text.charCodeAt(this.pos) !== 0x22) {
        this.fail(`unexpected ${this.describeHere()}, expected a key`);
      }
      const keyAt = this.pos;
      const key = this.string();
      if (Object.hasOwn(out, key)) {
        this.path.push(key);
        this.fail(`duplicate key ${JSON.stringify(key.length > 60 ? key.slice(0, 60) + "…" : key)}`, keyAt);
      }
      this.skipWs();
      if (this.text.charCodeAt(this.pos) !== 0x3a /* : */) {
        this.fail(`unexpected ${this.describeHere()}, expected ':'`);
      }
      this.pos++;
      this.path.push(key);
      const v = this.value();
      this.path.pop();
      Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true });
      this.skipWs();
      const c = this.text.charCodeAt(this.pos);
      if (c === 0x2c /* , */) {
        this.pos++;
        continue;
      }
      if (c === 0x7d) {
        this.pos++;
        this.depth--;
        return out;
      }
      this.fail(`unexpected ${this.describeHere()}, expected ',' or '}'`);
    }
  }

  array(): unknown[] {
    this.enter();
    this.pos++;
    const out: unknown[] = [];
    this.skipWs();
    if (this.text.charCodeAt(this.pos) === 0x5d /* ] */) {
      this.pos++;
      this.depth--;
      return out;
    }
    for (;;) {
      this.path.push(out.length);
      out.push(this.value());
      this.path.pop();
      this.skipWs();
      const c = this.text.charCodeAt(this.pos);
      if (c === 0x2c) {
        this.pos++;
        continue;
      }
      if (c === 0x5d) {
        this.pos++;
        this.depth--;
        return out;
      }
      this.fail(`unexpected ${this.describeHere()}, expected ',' or ']'`);
    }
  }

  string(): string {
    const t = this.text;
    const start = ++this.pos;
    let out = "";
    let chunk = start;
    for (;;) {
      if (this.pos >= t.length) this.fail("unterminated string", start - 1);
      const c = t.charCodeAt(this.pos);
      if (c === 0x22) {
        out += t.slice(chunk, this.pos);
        this.pos++;
        return out;
      }
      if (c < 0x20) this.fail("control character in a string (escape it)");
      if (c !== 0x5c /* \ */) {
        this.pos++;
        continue;
      }
      out += t.slice(chunk, this.pos);
      const e = t.charCodeAt(this.pos + 1);
      switch (e) {
        case 0x22:
          out += '"';
          break;
        case 0x5c:
          out += "\\";
          break;
        case 0x2f:
          out += "/";
          break;
        case 0x62:
          out += "\b";
          break;
        case 0x66:
          out += "\f";
          break;
        case 0x6e:
          out += "\n";
          break;
        case 0x72:
          out += "\r";
          break;
        case 0x74:
          out += "\t";
          break;
        case 0x75: {
          const hex = t.slice(this.pos + 2, this.pos + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail("bad \\u escape");
          out += String.fromCharCode(parseInt(hex, 16));
          this.pos += 4;
          break;
        }
        default:
          this.fail("bad escape in a string");
      }
      this.pos += 2;
      chunk = this.pos;
    }
  }

  num(): unknown {
    NUMBER.lastIndex = this.pos;
    const m = NUMBER.exec(this.text);
    if (!m) this.fail("bad number");
    const s = m[0];
    this.pos += s.length;
    const v = Number(s);
    return this.number ? this.number(s, v) : v;
  }
}

/**
 * Parses `text` as one JSON value (surrounding whitespace allowed); see the module comment for what it
 * refuses. Objects have no prototype.
 */
export function parseStrictJson(text: string, opts: StrictJsonOptions = {}): unknown {
  const file = opts.file;
  const error = opts.error ?? ((message: string, field?: string) => new InputError(message, { file, field }));
  const p = new Parser(text, opts.maxDepth ?? 100, error, opts.number);
  const v = p.value();
  p.skipWs();
  if (p.pos < text.length) p.fail(`unexpected ${p.describeHere()} after the value`);
  return v;
}

/** True for a parsed JSON object (a plain or prototype-less object, not an array or null). */
export function isJsonObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === null || proto === Object.prototype;
}

/** `o[key]` only when `o` owns `key` (never an inherited member such as `valueOf`). */
export function own(o: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(o, key) ? o[key] : undefined;
}

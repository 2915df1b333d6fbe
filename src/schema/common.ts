/**
 * What every output schema shares: the `schema` tag (`"engram-<name>/<major>"`, the pattern
 * `engram-bench/2` set) and the snake_case key rule every output follows, nested keys too.
 *
 * @module
 */
import { z } from "./zod.ts";

/** The `schema` value of an output document: `engram-<name>/<major>`. */
export function schemaTag<N extends string, V extends number>(name: N, major: V): `engram-${N}/${V}` {
  return `engram-${name}/${major}`;
}

/** A zod literal of {@link schemaTag}, the first field of every output schema. */
export function schemaField<N extends string, V extends number>(
  name: N,
  major: V,
): z.ZodLiteral<`engram-${N}/${V}`> {
  return z.literal(schemaTag(name, major)).describe("the schema this document follows, name/major version");
}

/** A key engram writes: lower-case letters, digits and underscores, starting with a letter. */
export const SNAKE_KEY = /^[a-z][a-z0-9_]*$/;

/** Whether `path` is one of `patterns` (`.a.*.b`: `*` stands for any one key). */
function isDataPath(path: string, patterns: readonly string[]): boolean {
  return patterns.some((p) =>
    p === path ||
    (p.includes("*") &&
      new RegExp(`^${p.split("*").map((x) => x.replace(/[.[\]\\^$+?(){}|]/g, "\\$&")).join("[^.]+")}$`)
        .test(path))
  );
}

/**
 * The paths (`a.b[].c`) of keys in `value` that are not snake_case. Keys under a path listed in `dataKeys`
 * are data (token strings, relation names), not field names, and are not checked (their values still are);
 * a `*` in a path stands for any one key.
 */
export function nonSnakeKeys(value: unknown, dataKeys: readonly string[] = [], path = ""): string[] {
  const bad: string[] = [];
  if (Array.isArray(value)) {
    for (const v of value) bad.push(...nonSnakeKeys(v, dataKeys, `${path}[]`));
  } else if (value !== null && typeof value === "object") {
    const data = isDataPath(path, dataKeys);
    for (const [k, v] of Object.entries(value)) {
      const p = data ? `${path}.*` : `${path}.${k}`;
      if (!data && !SNAKE_KEY.test(k)) bad.push(`${path}.${k}`);
      bad.push(...nonSnakeKeys(v, dataKeys, p));
    }
  }
  return [...new Set(bad)];
}

/** A camelCase name in snake_case (`retainedRatio` -> `retained_ratio`), as a type. */
export type SnakeName<S extends string> = S extends `${infer H}${infer T}`
  ? `${H extends Lowercase<H> ? H : `_${Lowercase<H>}`}${SnakeName<T>}`
  : S;

/** `T` with every object key in snake_case, nested through objects and arrays (typed-array free). */
export type SnakeKeys<T> = T extends readonly unknown[] ? { -readonly [K in keyof T]: SnakeKeys<T[K]> }
  : T extends object ? { [K in keyof T as K extends string ? SnakeName<K> : K]: SnakeKeys<T[K]> }
  : T;

/** A camelCase name in snake_case (`retainedRatio` -> `retained_ratio`; digits stay where they are). */
export function snakeName(k: string): string {
  return k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/**
 * A plain-JSON value (objects, arrays, primitives) with every key in snake_case, for library results whose
 * fields are camelCase; keys of objects at paths in `dataKeys` (as in {@link nonSnakeKeys}) are kept.
 */
export function snakeKeys<T>(value: T, dataKeys: readonly string[] = [], path = ""): SnakeKeys<T> {
  if (Array.isArray(value)) return value.map((v) => snakeKeys(v, dataKeys, `${path}[]`)) as SnakeKeys<T>;
  if (value !== null && typeof value === "object" && !ArrayBuffer.isView(value)) {
    const data = isDataPath(path, dataKeys);
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const key = data ? k : snakeName(k);
      out[key] = snakeKeys(v, dataKeys, data ? `${path}.*` : `${path}.${key}`);
    }
    return out as SnakeKeys<T>;
  }
  return value as SnakeKeys<T>;
}

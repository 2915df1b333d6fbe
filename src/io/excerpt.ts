/**
 * Short, safe descriptions of untrusted values for error messages. A value read from a file may be
 * megabytes long, 10,000 levels deep, or an object whose `toString` is not a function: `excerpt` never
 * calls `String()` or `JSON.stringify` on the whole value, walks at most a few levels and a few entries,
 * and cuts the result to `max` characters.
 */

const DEPTH = 3;
const ENTRIES = 6;

function describe(v: unknown, depth: number, budget: { left: number }): string {
  if (budget.left <= 0) return "…";
  if (v === null) return "null";
  switch (typeof v) {
    case "string": {
      const s = v.length > budget.left + 2 ? v.slice(0, budget.left + 2) : v;
      return JSON.stringify(s);
    }
    case "number":
    case "boolean":
      return String(v);
    case "bigint":
      return `${v}n`;
    case "undefined":
      return "undefined";
    case "function":
    case "symbol":
      return typeof v;
  }
  if (depth >= DEPTH) return Array.isArray(v) ? "[…]" : "{…}";
  const parts: string[] = [];
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length && i < ENTRIES && budget.left > 0; i++) {
      const p = describe(v[i], depth + 1, budget);
      budget.left -= p.length + 1;
      parts.push(p);
    }
    if (v.length > parts.length) parts.push("…");
    return `[${parts.join(",")}]`;
  }
  if (v instanceof Map) return `Map(${v.size})`;
  // Own enumerable keys only: a prototype member is never part of the description.
  const keys = Object.keys(v as object);
  for (let i = 0; i < keys.length && i < ENTRIES && budget.left > 0; i++) {
    const k = JSON.stringify(keys[i].length > 40 ? keys[i].slice(0, 40) + "…" : keys[i]);
    const p = `${k}:${describe((v as Record<string, unknown>)[keys[i]], depth + 1, budget)}`;
    budget.left -= p.length + 1;
    parts.push(p);
  }
  if (keys.length > parts.length) parts.push("…");
  return `{${parts.join(",")}}`;
}

/**
 * A description of `value` of at most `max` characters (default 60), in JSON-like notation, ending in
 * "…" when cut. Safe on any value: deep, huge, cyclic or with a non-callable `toString`.
 */
export function excerpt(value: unknown, max = 60): string {
  let s: string;
  try {
    s = describe(value, 0, { left: max });
  } catch {
    // Getters or proxies that throw: describe the kind only.
    s = Array.isArray(value) ? "an array" : typeof value;
  }
  return s.length > max ? s.slice(0, Math.max(1, max - 1)) + "…" : s;
}

/** "a string", "an array", "null", "an object", ...: the JSON kind of `v`, for messages. */
export function kindOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  const t = typeof v;
  return t === "object" ? "an object" : t === "undefined" ? "nothing" : `a ${t}`;
}

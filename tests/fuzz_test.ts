/**
 * Fuzzing in CI: seeded mutants of each format whose parser was hardened for issue 12 (every target
 * marked `owned`); every outcome must be a typed error or a correct acceptance, with a short message.
 * Counts are per format, sized so that the whole file runs in about 30 s (the loaders that write a
 * folder per case get fewer). Longer runs: `deno task fuzz --count N` (counts in docs/notes/issue-12-parsers-fuzz.md and
 * docs/notes/issue-12-parsers2.md). Also checks that the harness itself classifies crashes, wrong acceptances and
 * hangs, and is reproducible.
 */
import assert from "node:assert/strict";
import { InputError } from "../src/errors.ts";
import { parseStrictJson } from "../src/io/strict_json.ts";
import { mutantInput, runFormat } from "../src/fuzz/runner.ts";
import { type FuzzTarget, target, TARGETS } from "../src/fuzz/targets.ts";

/** Mutants per format: 1,500, fewer where each case loads a folder. */
const COUNTS: Record<string, number> = { "hf-model": 400, "tokenizer-json": 150, "vocab-merges": 300 };

Deno.test("fuzz: every format is asserted on in CI", () => {
  assert.deepEqual(TARGETS.filter((t) => !t.owned).map((t) => t.name), []);
});

for (const t of TARGETS.filter((x) => x.owned)) {
  const name = t.name, COUNT = COUNTS[name] ?? 1500;
  Deno.test(`fuzz ${name}: ${COUNT} mutants give only typed errors or correct acceptances`, async () => {
    const s = await runFormat(t, { count: COUNT, seed: 12, start: -3, hangMs: 3000 });
    const bad = s.findings.map((f) => `#${f.index} ${f.outcome}: ${f.message} | input ${f.input}`).join("\n");
    assert.equal(s.tried, COUNT);
    assert.equal(s.crash + s.wrong + s.hang + s.memory, 0, bad);
    assert.equal(s.typed + s.accepted, COUNT);
    assert.equal(s.long, 0, "every error message is short");
    assert.ok(s.accepted >= 3, `the seeds (indices -3..-1) are accepted: ${s.accepted}`);
    assert.ok(s.typed > COUNT / 2, `most mutants are refused: ${s.typed}`);
  });
}

Deno.test("fuzz harness: mutants are reproducible and it classifies crash, wrong acceptance and hang", async () => {
  const t = target("train-config");
  const p = await t.setup();
  assert.deepEqual(mutantInput(t, p, 5, 17), mutantInput(t, p, 5, 17));
  assert.notDeepEqual(mutantInput(t, p, 5, 17), mutantInput(t, p, 5, 18));
  let n = 0;
  const fake: FuzzTarget = {
    name: "fake",
    kind: "json",
    owned: false,
    setup: () =>
      Promise.resolve({
        seeds: [new TextEncoder().encode('{"a":1}')],
        run: () => {
          const k = n++ % 4;
          if (k === 0) throw new TypeError("boom");
          if (k === 1) throw new InputError("typed", { file: "f" });
          if (k === 2) {
            const end = performance.now() + 30;
            while (performance.now() < end) { /* slow case */ }
          }
          return k;
        },
        check: (res: unknown) => (res === 3 ? "accepted something wrong" : undefined),
      }),
  };
  const s = await runFormat(fake, { count: 8, hangMs: 20 });
  assert.deepEqual([s.crash, s.typed, s.hang, s.wrong, s.accepted], [2, 2, 2, 2, 0]);
  assert.match(s.findings[0].message, /TypeError: "?boom/);
});

/** A parsed tree with every object given Object.prototype and keys sorted, for comparing parsers. */
function normal(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(normal);
  if (typeof v === "object" && v !== null) {
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      Object.defineProperty(o, k, { value: normal((v as Record<string, unknown>)[k]), enumerable: true });
    }
    return o;
  }
  return v;
}

Deno.test("strict JSON parser agrees with JSON.parse on 3,000 mutants, except duplicates and depth", async () => {
  const dec = new TextDecoder();
  let agreed = 0, refusedMore = 0;
  for (const name of ["train-config", "hparams", "requests"]) {
    const t = target(name);
    const p = await t.setup();
    for (let i = 0; i < 1000; i++) {
      const text = dec.decode(mutantInput(t, p, 3, i));
      let want: unknown, wantOk = true;
      try {
        want = JSON.parse(text);
      } catch {
        wantOk = false;
      }
      let got: unknown, err: unknown;
      try {
        got = parseStrictJson(text, { file: "f.json", maxDepth: 1000 });
      } catch (e) {
        err = e;
      }
      if (err !== undefined) {
        assert.ok(err instanceof InputError, `#${i}: ${err}`);
        assert.ok(err.message.length < 400, `#${i}: a message of ${err.message.length} characters`);
        if (wantOk) {
          assert.match(
            err.message,
            /duplicate key|nested deeper than 1000/,
            `#${i}: JSON.parse accepts, strict refuses: ${err.message}`,
          );
          refusedMore++;
        }
        continue;
      }
      assert.ok(wantOk, `#${i}: strict accepts what JSON.parse refuses: ${text.slice(0, 200)}`);
      assert.deepEqual(normal(got), normal(want), `#${i}`);
      agreed++;
    }
  }
  assert.ok(agreed > 1000 && refusedMore > 10, `agreed ${agreed}, refused more ${refusedMore}`);
});

/**
 * The command line's contract with its specs (src/cli/spec.ts): every command's --help lists each flag
 * of its spec with its default, and the command's parser accepts exactly those flags (they cannot drift);
 * global flags, --version, did-you-mean suggestions, typed flag errors, the logger and the adapter choice.
 * Commands run in-process through main() with console captured; subprocesses only where the environment
 * or a real stderr matters.
 */
import assert from "node:assert/strict";
import { commands, errorLine, main, usage } from "../src/cli.ts";
import { editDistance, type FlagSpec, probeParse, suggest } from "../src/cli/spec.ts";
import { configureLog, log, progressEnabled, resetLog } from "../src/cli/log.ts";
import { InputError } from "../src/errors.ts";
import { adapterBackend } from "../src/gpu/device.ts";
import denoConfig from "../deno.json" with { type: "json" };

const ROOT = new URL("../", import.meta.url).pathname;
const WORLD = ROOT + "fixtures/world/model";

/** Runs main(args) with console.log / console.error captured. */
async function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [], err: string[] = [];
  const { log: l, error: e } = console;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  try {
    const code = await main(args);
    return { code, stdout: out.join("\n"), stderr: err.join("\n") };
  } finally {
    console.log = l;
    console.error = e;
  }
}

/** A syntactically valid value for a flag (what parseArgs and the type check accept). */
function sampleArgs(name: string, f: FlagSpec): string[] {
  if (f.type === "boolean") return [`--${name}`];
  const v = f.type === "int" ? "3" : f.type === "number" ? "0.5" : f.choices?.[0] ?? "x";
  return f.multiple ? [`--${name}`, v, `--${name}`, v] : [`--${name}`, v];
}

function assertUserError(r: { code: number; stderr: string }, pattern: RegExp): void {
  assert.equal(r.code, 1, `expected exit 1, got ${r.code}: ${r.stderr}`);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /^\s+at /m, `stack trace printed:\n${r.stderr}`);
}

Deno.test("every command's --help lists each flag of its spec with its default, and an example", async () => {
  for (const [name, c] of Object.entries(commands)) {
    assert.equal(c.spec.name, name);
    for (const args of [[name, "--help"], ["--help", name], ["help", name], [name, "-h"]]) {
      const r = await run(...args);
      assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
      assert.ok(r.stdout.startsWith(`engram ${name} — ${c.spec.summary}`), r.stdout.slice(0, 200));
      const flat = r.stdout.replace(/\s+/g, " ");
      for (const [flag, f] of Object.entries(c.spec.flags)) {
        assert.match(r.stdout, new RegExp(`^  --${flag}\\b`, "m"), `${name} --help lacks --${flag}`);
        if (f.default !== undefined) {
          assert.ok(flat.includes(`default ${f.default}`), `${name} --${flag}`);
        }
      }
      for (const g of ["quiet", "log-level", "log-file", "adapter"]) {
        assert.match(r.stdout, new RegExp(`--${g}\\b`));
      }
      assert.ok(c.spec.examples.length > 0, `${name} has no example`);
      for (const ex of c.spec.examples) assert.ok(r.stdout.includes(`engram ${ex}`));
    }
  }
  // Not the global usage: per-command help is not the same text for two commands.
  assert.notEqual((await run("trace", "--help")).stdout, (await run("predict", "--help")).stdout);
});

Deno.test("the global usage lists every command with its spec's summary and keeps the notes", async () => {
  const r = await run("--help");
  assert.equal(r.code, 0);
  assert.equal(r.stdout, usage());
  for (const [name, c] of Object.entries(commands)) {
    assert.match(
      r.stdout,
      new RegExp(`^  ${name} +${c.spec.summary.replace(/[()*+?.[\]\\^$|{}]/g, "\\$&")}$`, "m"),
    );
  }
  assert.match(r.stdout, /--overwrite replaces only folders engram wrote/);
  assert.match(r.stdout, /--bos auto\|on\|off/);
  assert.match(r.stdout, /DENO_WEBGPU_BACKEND=vulkan\|gl/);
  assert.equal((await run()).code, 2); // no command at all: usage, exit 2
});

Deno.test("each command parses with exactly its registered spec's flags", async () => {
  for (const [name, c] of Object.entries(commands)) {
    const pre = name === "study" ? ["attribution"] : [];
    const argv = [...pre, ...Object.entries(c.spec.flags).flatMap(([n, f]) => sampleArgs(n, f))];
    const p = await probeParse(() => c.run(argv));
    assert.ok(p, `${name} did not parse its flags`);
    assert.equal(p.spec, c.spec, `${name} parses with another spec than the one its --help shows`);
    assert.deepEqual(Object.keys(p.values).sort(), Object.keys(c.spec.flags).sort(), name);
    const multiple = Object.entries(c.spec.flags).filter(([, f]) => f.multiple).map(([n]) => n);
    for (const m of multiple) {
      assert.deepEqual(p.values[m], [sampleArgs(m, c.spec.flags[m])[1], sampleArgs(m, c.spec.flags[m])[1]]);
    }
    // A flag outside the spec is refused by the same parser, before any work.
    const bad = await run(name, ...pre, "--zz-not-a-flag");
    assertUserError(
      bad,
      new RegExp(`^engram ${name}: error: unknown flag --zz-not-a-flag \\(engram ${name} --help`),
    );
  }
});

Deno.test("mistyped flags and commands get suggestions; messages do not repeat the command", async () => {
  const r = await run("predict", "--txt", "hi");
  assertUserError(r, /^engram predict: error: unknown flag --txt; did you mean --text\? /);
  assert.doesNotMatch(r.stderr, /predict: .*predict:/);
  assertUserError(await run("trace", "--windw", "3"), /did you mean --window\?/);
  assertUserError(await run("eval", "--fluency-topk", "3"), /did you mean --fluency-top-k\?/);
  // A near miss of a choice gets a suggestion; anything else is the command's own check.
  assertUserError(
    await run("trace", "--kind", "mpl"),
    /--kind must be one of hidden, mlp, attn, all, got 'mpl'; did you mean mlp\?/,
  );
  const far = await run("trace", "--model", WORLD, "--kind", "zzz");
  assertUserError(far, /--kind must be one of hidden, mlp, attn, all, got 'zzz'$/);
  const cmd = await run("predcit", "--text", "hi");
  assert.equal(cmd.code, 2);
  assert.match(cmd.stderr, /unknown command 'predcit'; did you mean predict\?/);
  assert.equal((await run("frobnicate")).code, 2);
  assert.doesNotMatch((await run("frobnicate")).stderr, /did you mean/);
  assertUserError(
    await run("--adapter", "gpu", "info"),
    /--adapter must be one of .*got 'gpu'; did you mean cpu\?/,
  );
  assertUserError(
    await run("info", "--log-level", "verbose"),
    /--log-level must be one of debug, info, warn, error/,
  );
  assertUserError(await run("predict", "--text", "hi"), /^engram predict: error: --model is required$/);
  assert.deepEqual(suggest("txt", ["text", "top", "ids"]), ["text"]);
  assert.deepEqual(suggest("windw", ["window", "windows", "seed"]), ["window"]);
  assert.deepEqual(suggest("sta", ["stats", "stats-dir", "seed"]), ["stats", "stats-dir"]); // prefixes
  assert.equal(editDistance("windw", "window"), 1);
  assert.equal(editDistance("mdoel", "model"), 1); // a swap of neighbours
  assert.deepEqual(suggest("zzzzzz", ["text", "model"]), []);
});

Deno.test("flag values of the wrong type are typed errors naming the flag, exit 1, no stack", async () => {
  assertUserError(
    await run("predict", "--model", WORLD, "--top", "abc"),
    /^engram predict: error: --top must be an integer, got 'abc'$/,
  );
  assertUserError(
    await run("generate", "--model", WORLD, "--temperature", "hot"),
    /--temperature must be a number, got 'hot'/,
  );
  assertUserError(await run("trace", "--model", WORLD, "--samples", "2.5"), /--samples must be an integer/);
  assertUserError(await run("predict", "--model", WORLD, "--text"), /--text needs a value/);
  assertUserError(await run("predict", "--json=yes"), /--json takes no value/);
  assertUserError(
    await run("generate", "--max-tokens", "-3"),
    /--max-tokens needs a value; .*--max-tokens=VALUE/,
  );
  assertUserError(await run("predict", "stray"), /^engram predict: error: unexpected argument 'stray'/);
  // A range error still comes from the command, with its range.
  assertUserError(
    await run("predict", "--model", WORLD, "--text", "hi", "--top", "0"),
    /--top must be an integer in \[1,/,
  );
  // The field prefix is dropped only when the message names the flag itself.
  assert.equal(errorLine(new InputError("--x must be set", { field: "--x" }), "predict"), "--x must be set");
  assert.equal(
    errorLine(new InputError("predict: give --a or --b", { field: "--b" }), "predict"),
    "field '--b': give --a or --b",
  );
  assert.equal(
    errorLine(new InputError("predict: --a or --b", { field: "--a" }), "predict"),
    "--a or --b",
  );
  assert.equal(errorLine(new InputError("predict: give --a"), "predict"), "give --a");
  assert.equal(
    errorLine(new InputError("bad", { file: "f.json", field: "k" }), "predict"),
    "f.json, field 'k': bad",
  );
});

Deno.test("--version and engram version print engram's and Deno's versions", async () => {
  for (const args of [["--version"], ["version"], ["predict", "--version"]]) {
    const r = await run(...args);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split("\n");
    assert.equal(lines.length, 2);
    assert.equal(lines[0], `engram ${denoConfig.version}`);
    assert.ok(lines[1].startsWith(`deno ${Deno.version.deno} (v8 ${Deno.version.v8}`), lines[1]);
  }
  const j = JSON.parse((await run("version", "--json")).stdout);
  assert.equal(j.engram, denoConfig.version);
  assert.equal(j.typescript, Deno.version.typescript);
});

Deno.test("the logger: levels, --quiet, --log-file, and global flags on either side of the command", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const err: string[] = [];
    const e = console.error;
    console.error = (...a: unknown[]) => err.push(a.join(" "));
    try {
      configureLog({ command: "x", level: "warn", file: `${tmp}/a.log` });
      log.info("not shown");
      log.warn("shown");
      configureLog({ command: "x", quiet: true });
      log.warn("quiet");
      log.error("still shown");
      assert.equal(progressEnabled(), false);
    } finally {
      console.error = e;
      resetLog();
    }
    assert.deepEqual(err, ["engram x: warning: shown", "engram x: error: still shown"]);
    assert.match(await Deno.readTextFile(`${tmp}/a.log`), /^\d{4}-\d\d-\d\dT\S+ WARN {2}engram x: shown\n$/);
    assert.equal(progressEnabled(), true);

    // Before and after the command's name; the error goes to the file too.
    for (
      const args of [["--log-file", `${tmp}/b.log`, "predict", "--txt", "x"], [
        "predict",
        "--txt",
        "x",
        `--log-file=${tmp}/b.log`,
      ]]
    ) {
      assertUserError(await run(...args), /unknown flag --txt/);
    }
    const b = (await Deno.readTextFile(`${tmp}/b.log`)).trim().split("\n");
    assert.equal(b.length, 2);
    for (const l of b) assert.match(l, /ERROR engram predict: unknown flag --txt; did you mean --text\?/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("trace warns about --window only when it was given; the default's clipping is a debug line", async () => {
  const base = [
    "trace",
    "--model",
    WORLD,
    "--prompt",
    "Narnux Zava was born in",
    "--subject",
    "Narnux Zava",
    "--kind",
    "mlp",
    "--samples",
    "1",
  ];
  const quiet = await run(...base);
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.doesNotMatch(quiet.stderr, /window/);
  const given = await run(...base, "--window", "10");
  assert.match(
    given.stderr,
    /^engram trace: warning: --window 10 is larger than the model's 2 layers; clipped to 2$/m,
  );
  const debug = await run("--log-level", "debug", ...base);
  assert.match(debug.stderr, /^engram trace: debug: --window 10 .*\(the default window\)$/m);
  assert.equal(given.stdout.split("\n")[0], quiet.stdout.split("\n")[0]);
});

Deno.test("--quiet silences progress and notes on the real stderr (subprocess)", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ROOT + "src/cli.ts",
      "accuracy",
      "--model",
      WORLD,
      "--world",
      ROOT + "fixtures/world",
      "--limit",
      "3",
      "-q",
    ],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  assert.equal(out.code, 0, dec.decode(out.stderr));
  assert.equal(dec.decode(out.stderr), "");
  assert.match(dec.decode(out.stdout), /^train +top-1/m);
});

Deno.test("info: backend and driver, --adapters, --adapter fallback, DENO_WEBGPU_BACKEND (subprocess)", async () => {
  const r = await run("info");
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.schema, "engram-info/1");
  for (
    const k of ["vendor", "architecture", "device", "description", "backend", "backend_source", "driver"]
  ) {
    assert.equal(typeof j[k], "string", k);
  }
  assert.ok(Array.isArray(j.features));
  if (/llvmpipe/.test(j.description)) {
    assert.match(j.driver, j.backend === "vulkan" ? /^lavapipe/ : /^llvmpipe/);
  }
  const list = JSON.parse((await run("info", "--adapters")).stdout).adapters;
  assert.deepEqual(list.map((x: { choice: string }) => x.choice), [
    "high-performance",
    "low-power",
    "fallback",
  ]);
  const fb = await run("--adapter", "fallback", "info");
  assert.equal(fb.code, 0, fb.stderr);
  if (list[2].adapter) assert.equal(JSON.parse(fb.stdout).description, list[2].adapter.description);

  // wgpu's GL backend reports no bind-group limit (2^32 - 1); Vulkan about a thousand.
  if (Deno.env.get("DENO_WEBGPU_BACKEND") === undefined) {
    const lim = (n: number) => ({ maxBindingsPerBindGroup: n }) as unknown as GPUSupportedLimits;
    assert.deepEqual(adapterBackend(lim(2 ** 32 - 1)), { backend: "gl", source: "inferred" });
    assert.equal(
      adapterBackend(lim(1024)).backend,
      Deno.build.os === "linux" ? "vulkan" : adapterBackend(lim(1024)).backend,
    );
  }
  // The environment chooses the backend: a subprocess with DENO_WEBGPU_BACKEND=gl reports it as such.
  const gl = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ROOT + "src/cli.ts", "info"],
    env: { NO_COLOR: "1", DENO_WEBGPU_BACKEND: "gl" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (gl.code === 0) {
    const g = JSON.parse(new TextDecoder().decode(gl.stdout));
    assert.equal(g.backend, "gl");
    assert.equal(g.backend_source, "DENO_WEBGPU_BACKEND");
    if (/llvmpipe/.test(g.description)) assert.match(g.driver, /^llvmpipe \(Mesa's OpenGL/);
  } else assert.match(new TextDecoder().decode(gl.stderr), /no WebGPU adapter/); // no GL driver here
});

Deno.test("revert's refusal of an existing --out names the flag to pass, --overwrite", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${tmp}/out`);
    await Deno.writeTextFile(`${tmp}/out/keep.txt`, "x");
    const r = await run("revert", "--model", WORLD, "--log", `${tmp}/log`, "--out", `${tmp}/out`);
    assertUserError(r, /already exists \(pass --overwrite to replace it\)/);
    assert.match(r.stderr, /^engram revert: error: [^\n]*field '--out'/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

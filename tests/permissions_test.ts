/**
 * Least privilege: engram runs under deno.json's permission set (`-P`), and a permission a user did not
 * grant ends as one typed line (exit 1, no stack), naming the permission, the variable or path and the
 * flag. The helpers are checked on Deno's own errors, raised by test-scoped permissions.
 */
import assert from "node:assert/strict";
import { defaultStatsDir } from "../src/edit/stats.ts";
import {
  envOverride,
  envRequired,
  grantFlag,
  PermissionError,
  permissionError,
  sysOptional,
  withPermissions,
} from "../src/io/permissions.ts";
import { EngramError } from "../src/errors.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const CLI = `${ROOT}src/cli.ts`;
const WORLD = `${ROOT}fixtures/world`;

/** `deno run FLAGS src/cli.ts ARGS` from the repository root; exit code and output. */
async function cli(flags: string[], args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--config", `${ROOT}deno.json`, ...flags, CLI, ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Exit 1 and exactly one line on stderr, the typed error, with no stack trace. */
function assertOneLine(r: { code: number; stderr: string }, re: RegExp): void {
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], re);
  assert.doesNotMatch(r.stderr, /NotCapable|Uncaught|\bat .*\.ts:\d+/);
}

const ROME = [
  "edit",
  "--method",
  "rome",
  "--model",
  `${WORLD}/model`,
  "--prompt",
  "{} was born in",
  "--subject",
  "Narnux Zava",
  "--target",
  "Sunmere",
  "--ground-truth",
  "Frostwick",
];

Deno.test({
  name: "a denied variable: an override falls back, a needed one is a PermissionError with the flag",
  permissions: { env: ["HOME"] },
  fn() {
    assert.equal(envOverride("ENGRAM_CACHE"), undefined);
    assert.equal(envOverride("HOME"), Deno.env.get("HOME"));
    assert.throws(() => envRequired("XDG_CACHE_HOME", { why: "w", hint: "h" }), (e: unknown) => {
      assert.ok(e instanceof PermissionError && e instanceof EngramError);
      assert.equal(e.code, "permission");
      assert.equal(e.permission, "env");
      assert.equal(e.target, "XDG_CACHE_HOME");
      assert.equal(e.flag, "--allow-env=XDG_CACHE_HOME");
      assert.match(
        e.message,
        /needs env access to "XDG_CACHE_HOME" \(w\); run with --allow-env=XDG_CACHE_HOME, or h/,
      );
      return true;
    });
    // ENGRAM_CACHE and XDG_CACHE_HOME cannot be read: the HOME default, silently.
    const home = Deno.env.get("HOME");
    if (home) assert.equal(defaultStatsDir(), `${home}/.cache/engram/stats`);
  },
});

Deno.test({
  name: "without env access the statistics cache needs HOME: a PermissionError naming HOME",
  permissions: { env: false },
  fn() {
    assert.throws(() => defaultStatsDir(), (e: unknown) => {
      assert.ok(e instanceof PermissionError);
      assert.equal(e.flag, "--allow-env=HOME");
      assert.match(e.message, /--stats-dir DIR/);
      return true;
    });
  },
});

Deno.test({
  name: "permissionError reads Deno's denied read, write and sys; other errors pass through",
  permissions: { read: [ROOT], write: false, sys: false },
  async fn() {
    const read = await Deno.readTextFile("/etc/hostname").then(() => undefined, (e) => e);
    const pr = permissionError(read);
    assert.ok(pr, `not recognised: ${read}`);
    assert.equal(pr.permission, "read");
    assert.equal(pr.target, "/etc/hostname");
    assert.equal(pr.flag, "--allow-read=/etc/hostname");
    await assert.rejects(
      withPermissions(() => Deno.writeTextFile(`${ROOT}never-written.txt`, "x"), { hint: "use --out" }),
      (e: unknown) => {
        assert.ok(e instanceof PermissionError);
        assert.equal(e.permission, "write");
        assert.equal(e.target, `${ROOT}never-written.txt`);
        assert.match(e.message, /or use --out/);
        return true;
      },
    );
    assert.equal(sysOptional(() => Deno.hostname()), undefined);
    assert.throws(() => sysOptional(() => JSON.parse("{")), SyntaxError);
    // An OS permission error (a file mode) is not a Deno permission; neither is a bug or an EngramError.
    assert.equal(
      permissionError(new Deno.errors.PermissionDenied("Permission denied (os error 13)")),
      undefined,
    );
    assert.equal(permissionError(new TypeError("x")), undefined);
    // Deno's message without a permission named: still typed, quoting Deno.
    const odd = permissionError(new Deno.errors.NotCapable("odd denial"));
    assert.ok(odd && odd.permission === undefined && odd.flag === "");
    assert.match(odd.message, /^permission denied: odd denial/);
    assert.equal(permissionError(new EngramError("input", "x")), undefined);
    await assert.rejects(withPermissions(() => Promise.reject(new RangeError("r"))), RangeError);
  },
});

Deno.test("grantFlag scopes the flag to the target when it can be written as one value", () => {
  assert.equal(grantFlag("write", "/tmp/out"), "--allow-write=/tmp/out");
  assert.equal(grantFlag("read", "a,b"), "--allow-read");
  assert.equal(grantFlag("read", "<CWD>"), "--allow-read");
  assert.equal(grantFlag("env", ""), "--allow-env");
});

Deno.test("ROME without --allow-env, and with the cache not writable: one typed line each, exit 1", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "engram_perms_" });
  try {
    const hp = ["--hparams", `${WORLD}/model/hparams/rome.json`];
    const noEnv = await cli(["--allow-read", `--allow-write=${tmp}`], [...ROME, ...hp, "--out", `${tmp}/a`]);
    assertOneLine(
      noEnv,
      /^engram edit: error: permission denied: needs env access to "HOME".*--allow-env=HOME/,
    );
    // The cache folder is outside what may be written: refused before any statistics are computed.
    const noWrite = await cli(
      ["--allow-read", `--allow-write=${tmp}/out`, "--allow-env"],
      [...ROME, ...hp, "--stats-dir", `${tmp}/stats`, "--out", `${tmp}/out/b`],
    );
    assertOneLine(
      noWrite,
      new RegExp(
        `^engram edit: error: permission denied: needs write access to "${tmp}/stats".*--allow-write=${tmp}/stats`,
      ),
    );
    // Nothing of the edit was written: no cache folder, no edited model (only --out's parent exists).
    for (const p of [`${tmp}/a`, `${tmp}/stats`, `${tmp}/out/b`, `${tmp}/out/b.editlog`]) {
      assert.throws(() => Deno.lstatSync(p), Deno.errors.NotFound, p);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("predict: no permissions is one typed line; deno.json's permission set (-P) runs it", async () => {
  const args = [
    "predict",
    "--model",
    `${WORLD}/model`,
    "--text",
    "Narnux Zava was born in",
    "--top",
    "1",
    "--json",
  ];
  assertOneLine(await cli([], args), /^engram predict: error: .*read access to ".*fixtures\/world\/model"/);
  const r = await cli(["-P"], args);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Frostwick/);
});

Deno.test("ROME runs under deno.json's permission set (-P) and writes the edited model and its log", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "engram_perms_" });
  try {
    const hp = JSON.parse(await Deno.readTextFile(`${WORLD}/model/hparams/rome.json`));
    Object.assign(hp, { v_num_grad_steps: 4, context_template_length_params: [[3, 5]] });
    await Deno.writeTextFile(`${tmp}/hp.json`, JSON.stringify(hp));
    const lines = (await Deno.readTextFile(`${WORLD}/train.jsonl`)).split("\n").slice(0, 100).join("\n");
    await Deno.writeTextFile(`${tmp}/corpus.jsonl`, lines);
    const r = await cli(["-P"], [
      ...ROME,
      "--hparams",
      `${tmp}/hp.json`,
      "--stats-corpus",
      `${tmp}/corpus.jsonl`,
      "--stats-dir",
      `${tmp}/stats`,
      "--out",
      `${tmp}/edited`,
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(Deno.statSync(`${tmp}/edited/model.safetensors`).isFile);
    assert.ok(Deno.statSync(`${tmp}/edited.editlog`).isDirectory);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

/** The package as `deno publish` would upload it: it passes the dry run, has its licence, and leaves out tests and training checkpoints. */
import assert from "node:assert/strict";

Deno.test("deno publish --dry-run passes and the package excludes tests, scratch and checkpoints", async () => {
  const root = new URL("..", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["publish", "--dry-run", "--allow-dirty"],
    cwd: root,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, text.slice(-3000));
  const files = [...text.matchAll(/file:\/\/\S+/g)].map((m) => m[0].slice(`file://${root}`.length));
  assert.ok(files.includes("LICENSE"), "LICENSE is in the package");
  assert.ok(files.includes("mod.ts") && files.includes("src/cli.ts"), "both exports are in the package");
  for (const f of files) {
    assert.ok(!/^(tests|scratch|\.ci)\/|\/checkpoints\//.test(f), `${f} should not be published`);
  }
});

Deno.test("deno doc --lint mod.ts is clean: every export documented, no private types in public signatures", async () => {
  const root = new URL("..", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--lint", "mod.ts"],
    cwd: root,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, text.slice(0, 3000));
});

/**
 * `deno task compile` builds a standalone binary with the kernels embedded (as text imports, part of the
 * module graph) and the demo model (`--include fixtures`), and that binary runs the demo. `deno compile` needs Deno's runtime binary (denort); where it cannot be fetched (no access to
 * Deno's release server and no DENORT_BIN) the test is reported as ignored, not passed.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url).pathname;
const dir = await Deno.makeTempDir();
const bin = `${dir}/engram`;
const build = await new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", ROOT + "scripts/compile.ts", "--output", bin],
  cwd: ROOT,
  stdout: "piped",
  stderr: "piped",
}).output();
const stderr = new TextDecoder().decode(build.stderr);
const noRuntime = build.code === 3;

Deno.test({
  name: "compiled engram binary runs the demo with embedded kernels and model",
  ignore: noRuntime,
  fn: async () => {
    try {
      assert.equal(build.code, 0, stderr);
      // Run from an unrelated folder so kernels and the model can only come from the binary itself.
      const out = await new Deno.Command(bin, {
        args: ["demo", "--json"],
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      const j = JSON.parse(new TextDecoder().decode(out.stdout));
      assert.ok(j.max_abs_logprob_error_vs_float64 <= 1e-4);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

if (noRuntime) {
  console.warn(`compile test ignored: ${stderr.trim().split("\n")[0]}`);
  await Deno.remove(dir, { recursive: true });
}

/**
 * `deno task compile`: builds the standalone `engram` binary with the WGSL kernels (and the bundled
 * models) embedded. Usage: deno task compile [--output PATH] [--target TRIPLE].
 *
 * The kernels are text imports (kernels/mod.ts), so they are part of the module graph and embedded
 * without `--include`; `fixtures/` is included because the demo reads its model from there as files.
 *
 * `deno compile` needs Deno's small runtime binary (denort) for the target. It is downloaded once from
 * Deno's release server, or taken from the file named by the DENORT_BIN environment variable on
 * machines without that access.
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: { output: { type: "string", default: "engram" }, target: { type: "string" } },
  strict: true,
});
const root = new URL("../", import.meta.url).pathname;
const args = [
  "compile",
  // The binary runs under deno.json's default permission set (read, write, the variables engram reads, sys).
  "-P",
  "--include",
  "fixtures",
  // Loaded by a computed specifier (src/report/png.ts): included by name so the PNG assets are embedded.
  "--include",
  "src/report/png_assets.ts",
  "--output",
  values.output!,
  ...(values.target ? ["--target", values.target] : []),
  "src/cli.ts",
];
const out = await new Deno.Command(Deno.execPath(), { args, cwd: root, stdout: "inherit", stderr: "piped" })
  .output();
const err = new TextDecoder().decode(out.stderr);
if (!out.success) {
  if (/denort|dl\.deno\.land|dns error|error sending request/.test(err)) {
    console.error(
      "engram compile: error: deno compile could not fetch Deno's runtime binary (denort) for this target.\n" +
        "Set DENORT_BIN to a denort executable of the same Deno version, or run on a machine that reaches Deno's release server.",
    );
    Deno.exit(3);
  }
  console.error(err);
  Deno.exit(1);
}
console.error(err.split("\n").filter((l) => !/^\s*$/.test(l)).slice(-3).join("\n"));
console.log(`built ${values.output}`);

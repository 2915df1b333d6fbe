/**
 * `engram --version` / `engram version`: engram's version (deno.json's "version", the one place it is
 * kept) and, on a second line, the runtime's: nothing here needs a GPU.
 */
import denoConfig from "../../deno.json" with { type: "json" };
import { type CommandSpec, parseCommand } from "./spec.ts";
import type { VersionOutput } from "../schema/misc_output.ts";
import { schemaTag } from "../schema/common.ts";

/** engram's version, from deno.json. */
export const ENGRAM_VERSION: string = denoConfig.version;

/** Flags and help of `engram version`. */
export const versionSpec: CommandSpec = {
  name: "version",
  summary: "engram's version, and Deno's, V8's and TypeScript's (no GPU needed)",
  usage: "version [--json]",
  flags: { json: { type: "boolean", help: 'print {"engram", "deno", "v8", "typescript", "os", "arch"}' } },
  examples: ["version", "--version"],
};

/** The two lines `engram --version` prints. */
export function versionText(): string {
  const v = Deno.version;
  return `engram ${ENGRAM_VERSION}\ndeno ${v.deno} (v8 ${v.v8}, typescript ${v.typescript}, ${Deno.build.os} ${Deno.build.arch})`;
}

/** Runs `version`. */
export function versionCommand(argv: string[]): Promise<void> {
  const f = parseCommand(versionSpec, argv);
  const v = Deno.version;
  if (f.json) {
    const out: VersionOutput = {
      schema: schemaTag("version", 1),
      engram: ENGRAM_VERSION,
      deno: v.deno,
      v8: v.v8,
      typescript: v.typescript,
      os: Deno.build.os,
      arch: Deno.build.arch,
    };
    console.log(JSON.stringify(out));
  } else console.log(versionText());
  return Promise.resolve();
}

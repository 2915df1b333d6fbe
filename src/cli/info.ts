/**
 * `engram info`: the WebGPU adapter engram would run on (chosen with the global --adapter), with its
 * limits, backend and driver; `--adapters` lists what each adapter request Deno offers returns.
 */
import { getGpu, listAdapters } from "../gpu/device.ts";
import { type CommandSpec, parseCommand } from "./spec.ts";
import type { InfoAdaptersOutput, InfoOutput } from "../schema/misc_output.ts";
import { schemaTag, snakeKeys } from "../schema/common.ts";

/** Flags and help of `engram info`. */
export const infoSpec: CommandSpec = {
  name: "info",
  summary: "the WebGPU adapter engram runs on: vendor, device, description, backend, driver and limits",
  usage: "info [--adapters] [--json]",
  description: `Prints JSON ("engram-info/1"; --adapters: "engram-info-adapters/1"): the adapter's info
    fields (vendor, architecture, device, description, is_fallback_adapter, subgroup sizes), its features,
    the limits that bound tensor sizes, and the backend. Deno's adapter info does not name the backend: it
    is DENO_WEBGPU_BACKEND when that is set, else inferred (backend_source says which). Mesa's CPU
    rasterizer describes itself as "llvmpipe (LLVM ...)" both under OpenGL and under Vulkan (lavapipe);
    driver tells them apart.

    Deno chooses the backend itself (on Linux Vulkan when a Vulkan driver is installed, else OpenGL);
    DENO_WEBGPU_BACKEND=vulkan or DENO_WEBGPU_BACKEND=gl in the environment forces one. The global --adapter
    chooses among the adapters of that backend.`,
  flags: {
    adapters: {
      type: "boolean",
      help: "list the adapter each request returns (powerPreference high-performance and low-power, " +
        "forceFallbackAdapter), without creating a device",
    },
    json: { type: "boolean", help: "JSON output (the default; accepted for symmetry)" },
  },
  examples: ["info", "info --adapters", "--adapter fallback info"],
};

/** Prints the adapter description (or the list of adapters) as JSON. */
export async function infoCommand(argv: string[]): Promise<void> {
  const f = parseCommand(infoSpec, argv);
  if (f.adapters) {
    const out: InfoAdaptersOutput = {
      schema: schemaTag("info-adapters", 1),
      adapters: snakeKeys(await listAdapters()),
    };
    console.log(JSON.stringify(out, null, 2));
    return;
  }
  const gpu = await getGpu();
  const out: InfoOutput = { schema: schemaTag("info", 1), ...snakeKeys(gpu.describe()) };
  console.log(JSON.stringify(out, null, 2));
}

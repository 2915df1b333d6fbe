/** `engram info`: the WebGPU adapter engram would run on, with its limits. */
import { getGpu } from "../gpu/device.ts";
import { parseFlags } from "./args.ts";

/** Prints the adapter description as JSON. */
export async function infoCommand(argv: string[]): Promise<void> {
  parseFlags("info", argv, { json: { type: "boolean" } });
  const gpu = await getGpu();
  console.log(JSON.stringify(gpu.describe(), null, 2));
}

/**
 * Browser side of tests/subgroups_browser_test.ts, bundled with `deno bundle --platform browser`: runs
 * softmax, log-softmax and cross-entropy through engram's own launchers on the page's WebGPU device, with
 * the subgroup variant of the row statistics and without it, at several workgroup sizes, and returns every
 * output for the Deno side to compare against the float64 twins.
 */
import { Gpu } from "../../src/gpu/device.ts";
import { crossEntropy } from "../../src/gpu/cross_entropy.ts";
import { rowWorkgroupConstants, setRowWorkgroup, setSubgroups } from "../../src/gpu/row_workgroup.ts";
import { logSoftmax, softmax } from "../../src/gpu/softmax.ts";
import { createTensor, poison, readTensor } from "../../src/gpu/tensor.ts";

/** One input: `rows` rows of `cols` logits and a target per row. */
export interface Case {
  rows: number;
  cols: number;
  x: number[];
  targets: number[];
}

/** What one configuration computed. */
export interface Outputs {
  /** Row workgroup size forced for the run (undefined: the adapter's choice). */
  wg?: number | null;
  subgroups: boolean;
  /** The softmax family's constants as the launchers saw them. */
  constants: Record<string, number>;
  softmax: number[];
  logSoftmax: number[];
  losses: number[];
  dlogits: number[];
}

async function runCase(gpu: Gpu, c: Case): Promise<Omit<Outputs, "wg" | "subgroups" | "constants">> {
  const { rows, cols } = c;
  const x = createTensor(gpu, [rows, cols], { name: "logits", data: Float32Array.from(c.x) });
  const t = createTensor(gpu, [rows], { name: "targets", dtype: "u32", data: Uint32Array.from(c.targets) });
  const [sm, lsm, dl] = ["softmax", "logSoftmax", "dlogits"].map((name) =>
    createTensor(gpu, [rows, cols], { name })
  );
  const losses = createTensor(gpu, [rows], { name: "losses" });
  for (const o of [sm, lsm, dl, losses]) poison(o);
  await softmax(gpu, x, sm, { rows, cols });
  await logSoftmax(gpu, x, lsm, { rows, cols });
  await crossEntropy(gpu, x, t, losses, dl, { rows, cols, scale: 1 / rows });
  const out = {
    softmax: Array.from(await readTensor(sm)),
    logSoftmax: Array.from(await readTensor(lsm)),
    losses: Array.from(await readTensor(losses)),
    dlogits: Array.from(await readTensor(dl)),
  };
  for (const o of [x, t, sm, lsm, dl, losses]) o.destroy();
  return out;
}

/** The adapter, and for each case every configuration's outputs. */
export async function check(cases: Case[], sizes: Array<number | null | undefined>): Promise<{
  adapter: { description: string; features: string[]; subgroupMinSize: number; subgroupMaxSize: number };
  results: Outputs[][];
}> {
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) throw new Error("no WebGPU adapter");
  const requiredFeatures = (["subgroups"] as GPUFeatureName[]).filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredFeatures });
  const gpu = new Gpu(adapter, device);
  const info = adapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
  const results: Outputs[][] = [];
  for (const c of cases) {
    const row: Outputs[] = [];
    for (const wg of sizes) {
      for (const on of [true, false]) {
        setRowWorkgroup(gpu, wg ?? undefined); // JSON has no undefined: null is "the adapter's choice"
        setSubgroups(gpu, on);
        const constants = rowWorkgroupConstants(gpu, "softmax");
        row.push({ wg, subgroups: on, constants, ...(await runCase(gpu, c)) });
      }
    }
    results.push(row);
  }
  return {
    adapter: {
      description: `${info.vendor} ${info.architecture} ${info.description}`.trim(),
      features: [...device.features].sort(),
      subgroupMinSize: info.subgroupMinSize ?? 0,
      subgroupMaxSize: info.subgroupMaxSize ?? 0,
    },
    results,
  };
}

(globalThis as unknown as { engramSubgroupCheck: typeof check }).engramSubgroupCheck = check;

/**
 * The fixed cost of waiting for the GPU ("the floor"): an empty {@link Gpu.flush}, one readback the old
 * way (flush, then map: two completion waits), one {@link readTensor} (submit, then map: one wait), and
 * a step's eight results read one by one against one {@link readTensors}. All are measured in the same
 * run, alternating, so their ratios hold on a loaded machine.
 */
import type { Gpu } from "./device.ts";
import { createTensor, type GpuTensor, readTensor, readTensors } from "./tensor.ts";

/** Mean milliseconds per call of each way of waiting, measured interleaved in one run. */
export interface ReadbackMeasurement {
  /** Calls of each kind timed (after one warm-up each). */
  iters: number;
  /** An awaited flush with nothing recorded. */
  emptyFlushMs: number;
  /** Copy + flush (waits for completion) + map: the readback before this change. */
  flushThenMapMs: number;
  /** {@link readTensor}: copy + checked submit + map. */
  readTensorMs: number;
  /** Eight {@link readTensor} calls in a row. */
  eightReadsMs: number;
  /** One {@link readTensors} of the same eight tensors. */
  readTensorsMs: number;
  /** flushThenMapMs / readTensorMs. */
  readSpeedup: number;
  /** eightReadsMs / readTensorsMs. */
  batchSpeedup: number;
}

/** The readback as it was: flush (waits for the queue), then map (waits again). */
async function flushThenMap(gpu: Gpu, t: GpuTensor): Promise<Float32Array> {
  const staging = gpu.device.createBuffer({
    size: t.numel * 4,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  gpu.commandEncoder().copyBufferToBuffer(t.buffer, 0, staging, 0, t.numel * 4);
  await gpu.flush();
  await staging.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(staging.getMappedRange().slice(0));
  staging.unmap();
  staging.destroy();
  return out;
}

/** Times each way of waiting `iters` times, round-robin, on 256-element tensors. */
export async function measureReadback(gpu: Gpu, iters = 10): Promise<ReadbackMeasurement> {
  const ts = Array.from(
    { length: 8 },
    (_, i) => createTensor(gpu, [256], { name: `floor.${i}`, data: new Float32Array(256).fill(i + 0.5) }),
  );
  const kinds: Record<string, () => Promise<unknown>> = {
    emptyFlush: () => gpu.flush(),
    flushThenMap: () => flushThenMap(gpu, ts[0]),
    readTensor: () => readTensor(ts[0]),
    eightReads: async () => {
      for (const t of ts) await readTensor(t);
    },
    readTensors: () => readTensors(ts),
  };
  const total: Record<string, number> = {};
  for (const [k, f] of Object.entries(kinds)) {
    await f();
    total[k] = 0;
  }
  for (let i = 0; i < iters; i++) {
    for (const [k, f] of Object.entries(kinds)) {
      const t0 = performance.now();
      await f();
      total[k] += performance.now() - t0;
    }
  }
  for (const t of ts) t.destroy();
  const ms = (k: string) => total[k] / iters;
  return {
    iters,
    emptyFlushMs: ms("emptyFlush"),
    flushThenMapMs: ms("flushThenMap"),
    readTensorMs: ms("readTensor"),
    eightReadsMs: ms("eightReads"),
    readTensorsMs: ms("readTensors"),
    readSpeedup: ms("flushThenMap") / ms("readTensor"),
    batchSpeedup: ms("eightReads") / ms("readTensors"),
  };
}

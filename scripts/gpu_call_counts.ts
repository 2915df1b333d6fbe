/**
 * Counts WebGPU calls of this process: queue submits, completion waits (`onSubmittedWorkDone`) and buffer
 * maps (`mapAsync`). Importing this module patches the prototypes once; scripts read {@link gpuCallCounts}
 * before and after a phase (scripts/profile_edit.ts, scripts/profile_units.ts).
 */

/** Running totals since the module was first imported. */
export const gpuCallCounts = { submit: 0, map: 0, flush: 0 };

const q = GPUQueue.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
const sub = q.submit, done = q.onSubmittedWorkDone;
q.submit = function (this: unknown, ...a: unknown[]) {
  gpuCallCounts.submit++;
  return sub.apply(this, a);
};
q.onSubmittedWorkDone = function (this: unknown, ...a: unknown[]) {
  gpuCallCounts.flush++;
  return done.apply(this, a);
};
const b = GPUBuffer.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
const map = b.mapAsync;
b.mapAsync = function (this: unknown, ...a: unknown[]) {
  gpuCallCounts.map++;
  return map.apply(this, a);
};

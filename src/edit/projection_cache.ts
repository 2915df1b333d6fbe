/**
 * AlphaEdit's null-space projection cached beside the key statistics (src/edit/stats.ts): the basis U
 * (P = UᵀU) and C's eigenvalues of one layer, as safetensors in the statistics cache folder, under a key
 * of exactly what they depend on: the statistics C themselves (SHA-256 of their values, so a statistics
 * file read from anywhere, cached or prebuilt, has one identity), τ, and how C was decomposed (backend
 * and, for the GPU, its sweep limit and tolerance). The metadata repeats the full key; a file whose
 * metadata or shapes disagree is recomputed and overwritten, never trusted. Values are float32 on disk,
 * and a fresh computation is rounded the same way before use, so a cached run gives the same edit.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { readSafetensors, type TensorsToWrite, writeSafetensors } from "../io/safetensors.ts";
import { defaultStatsDir } from "./stats.ts";
import type { NullSpace } from "./eigen.ts";

/** What identifies a cached projection. */
export interface ProjectionKey {
  layer: number;
  /** C [n, n]. */
  mom2: Float64Array;
  n: number;
  threshold: number;
  /** Decomposition settings that change the result (backend, sweeps, tolerance). */
  method: Record<string, unknown>;
}

/** The null space as cached (float32 values) and where. */
export interface CachedProjection {
  basis: Float64Array;
  rank: number;
  eigenvalues: Float64Array;
  /** Decomposition facts recorded at computation (method, sweeps, residual, bands). */
  info: Record<string, unknown>;
  file: string;
  /** True when read from the cache. */
  cached: boolean;
}

/** SHA-256 (hex) of C's values and size. */
export function statsIdentity(mom2: Float64Array, n: number): string {
  const h = createHash("sha256");
  h.update(`mom2 ${n}`);
  h.update(new Uint8Array(mom2.buffer, mom2.byteOffset, mom2.byteLength));
  return h.digest("hex");
}

function keyOf(k: ProjectionKey): { stats: string; key: string } {
  const stats = statsIdentity(k.mom2, k.n);
  const key = createHash("sha256").update(
    JSON.stringify({ stats, layer: k.layer, n: k.n, threshold: k.threshold, method: k.method }),
  ).digest("hex");
  return { stats, key };
}

/** The cache file of a projection key in `dir` (default: the statistics cache folder). */
export function projectionCacheFile(k: ProjectionKey, dir = defaultStatsDir()): string {
  const { stats, key } = keyOf(k);
  return join(dir, `nullspace_${stats.slice(0, 16)}_L${k.layer}_${key.slice(0, 16)}.safetensors`);
}

/**
 * The null space for `k`: from the cache when a file with this exact key is there, else `compute()`,
 * rounded to float32, written to the cache and returned.
 */
export async function cachedNullSpace(
  k: ProjectionKey,
  compute: () => Promise<NullSpace>,
  dir = defaultStatsDir(),
): Promise<CachedProjection> {
  const { stats, key } = keyOf(k);
  const file = projectionCacheFile(k, dir);
  try {
    const st = await readSafetensors(file);
    const md = st.metadata;
    const rank = Number(md.rank);
    const ev = st.tensors.get("eigenvalues");
    const basis = st.tensors.get("basis");
    const ok = md.key === key && md.stats_key === stats && md.threshold === String(k.threshold) &&
      md.layer === String(k.layer) && Number.isInteger(rank) && rank >= 0 && rank <= k.n &&
      ev?.shape.length === 1 && ev.shape[0] === k.n &&
      (rank === 0 ? !basis : basis?.shape.length === 2 && basis.shape[0] === rank && basis.shape[1] === k.n);
    if (ok) {
      return {
        basis: rank === 0 ? new Float64Array(0) : Float64Array.from(basis!.data),
        rank,
        eigenvalues: Float64Array.from(ev!.data),
        info: JSON.parse(md.info ?? "{}"),
        file,
        cached: true,
      };
    }
  } catch {
    // Not cached, unreadable or another key's file under this name: recompute.
  }
  const ns = await compute();
  const basis = Float32Array.from(ns.basis), eigenvalues = Float32Array.from(ns.eigenvalues);
  const info = {
    method: ns.method,
    sweeps: ns.sweeps ?? null,
    residual: ns.residual ?? null,
    band: ns.band,
    near_threshold: ns.nearThreshold,
    subspace_error: ns.subspaceError,
  };
  const tensors: TensorsToWrite = { eigenvalues: { shape: [k.n], data: eigenvalues } };
  if (ns.rank > 0) tensors.basis = { shape: [ns.rank, k.n], data: basis };
  await Deno.mkdir(dir, { recursive: true });
  await writeSafetensors(file, tensors, {
    key,
    stats_key: stats,
    layer: String(k.layer),
    threshold: String(k.threshold),
    rank: String(ns.rank),
    method: JSON.stringify(k.method),
    info: JSON.stringify(info),
  });
  return {
    basis: Float64Array.from(basis),
    rank: ns.rank,
    eigenvalues: Float64Array.from(eigenvalues),
    info,
    file,
    cached: false,
  };
}

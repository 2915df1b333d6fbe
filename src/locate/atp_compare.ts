/**
 * AtP (or AtP*) checked against full activation patching on one prompt, the comparison Kramár et al. 2024
 * make (arXiv 2403.00745): both methods over the same nodes, then per node kind the Spearman rank
 * correlation of the estimates with the exact effects, how many of the exact top-k nodes (by |effect|) the
 * estimates' top-k holds, and each method's wall time. GradDrop estimates are magnitudes, so they are
 * ranked against |exact effect|; plain AtP and the QK fix are signed and ranked against the signed effect.
 * q / k / v nodes have no patching counterpart (they are not hook sites) and are reported as not compared.
 */
import { InputError } from "../errors.ts";
import type { TransformerModel } from "../model/transformer.ts";
import {
  activationPatchingSweep,
  type AtpMetric,
  type AtpOptions,
  type AtpResult,
  type AtpSiteKind,
  ATTN_INPUT,
  attributionPatching,
  DEFAULT_ATP_SITES,
  spearman,
} from "./atp.ts";
import type { RunSpec } from "./patching.ts";

/** Options of {@link compareAtpWithPatching}. */
export interface AtpCompareOptions extends AtpOptions {
  /** Nodes per kind whose overlap is reported (default 10, at most the kind's node count). */
  top?: number;
  /** Most patched sequences per forward pass of the sweep (default 64). */
  maxBatch?: number;
}

/** Agreement of the estimates with the exact effects over every node of one kind. */
export interface AtpKindAgreement {
  /** The node kind. */
  kind: AtpSiteKind;
  /** Nodes of the kind (layers × positions × units). */
  nodes: number;
  /** Spearman correlation of estimates and exact effects; null when either is constant. */
  spearman: number | null;
  /** k of the top-k overlap. */
  k: number;
  /** Fraction of the k nodes of largest |exact effect| that are among the k of largest |estimate|. */
  topRecall: number;
}

/** Result of {@link compareAtpWithPatching}. */
export interface AtpComparison {
  /** The estimates. */
  atp: AtpResult;
  /** The exact effects of the patchable kinds. */
  patching: AtpResult;
  /** One agreement per compared kind, in the order of the kinds asked for. */
  kinds: AtpKindAgreement[];
  /** Kinds asked for that were estimated but have no exact counterpart (q, k, v). */
  notCompared: AtpSiteKind[];
  /** Wall time of the estimates (their forward and backward passes), seconds. */
  atpSeconds: number;
  /** Wall time of the full sweep, seconds. */
  patchingSeconds: number;
}

/**
 * Runs {@link attributionPatching} and {@link activationPatchingSweep} on the same nodes and reports their
 * agreement per kind (see the module doc). Throws {@link InputError} (field `sites`) when no asked kind
 * can be patched.
 */
export async function compareAtpWithPatching(
  model: TransformerModel,
  cleanIds: number[],
  corrupt: RunSpec,
  metric: AtpMetric,
  opts: AtpCompareOptions = {},
): Promise<AtpComparison> {
  const asked = [...new Set(opts.sites ?? DEFAULT_ATP_SITES)];
  const patchable = asked.filter((k) => !ATTN_INPUT.has(k));
  if (patchable.length === 0) {
    throw new InputError(
      `none of the kinds ${asked.join(", ")} can be patched (q, k, v are not hook sites)`,
      {
        field: "sites",
      },
    );
  }
  const top = opts.top ?? 10;
  if (!Number.isInteger(top) || top < 1) {
    throw new InputError(`top must be a positive integer, got ${top}`, { field: "top" });
  }
  let t0 = performance.now();
  const atp = await attributionPatching(model, cleanIds, corrupt, metric, { ...opts, sites: asked });
  const atpSeconds = (performance.now() - t0) / 1000;
  t0 = performance.now();
  const patching = await activationPatchingSweep(model, cleanIds, corrupt, metric, {
    sites: patchable,
    perNeuron: opts.perNeuron,
    maxBatch: opts.maxBatch,
  });
  const patchingSeconds = (performance.now() - t0) / 1000;
  const magnitudes = atp.method === "atp-gd";
  const kinds = patchable.map((kind) => {
    const est = nodeValues(atp, kind);
    const exact = nodeValues(patching, kind).map((v) => (magnitudes ? Math.abs(v) : v));
    const rho = est.length >= 2 ? spearman(est, exact) : NaN;
    const k = Math.min(top, est.length);
    return {
      kind,
      nodes: est.length,
      spearman: Number.isFinite(rho) ? rho : null,
      k,
      topRecall: topOverlap(est, exact, k),
    };
  });
  return {
    atp,
    patching,
    kinds,
    notCompared: asked.filter((k) => ATTN_INPUT.has(k)),
    atpSeconds,
    patchingSeconds,
  };
}

/** Every node value of one kind, layer after layer (the same order in both results). */
function nodeValues(r: AtpResult, kind: AtpSiteKind): number[] {
  return r.sites.filter((s) => s.kind === kind).flatMap((s) => [...s.values]);
}

/** |top-k by |a|| ∩ |top-k by |b||, over k (ties broken by index). */
function topOverlap(a: number[], b: number[], k: number): number {
  if (k === 0) return 0;
  const topOf = (x: number[]) =>
    new Set(
      x.map((v, i) => [Math.abs(v), i]).sort((p, q) => q[0] - p[0] || p[1] - q[1]).slice(0, k).map((p) =>
        p[1]
      ),
    );
  const ta = topOf(a);
  let hit = 0;
  for (const i of topOf(b)) if (ta.has(i)) hit++;
  return hit / k;
}

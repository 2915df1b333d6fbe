/**
 * Sequential editing at scale: N requests edited one batch after another on one model (the batch size
 * given, 1 for ROME's usual stream), and every M edits a record of the state so far:
 *
 * - reliability, generalization, locality (and the other EasyEdit / CounterFact metrics, fluency off by
 *   default) on every request edited so far, measured on the current model against the pre-edit state of
 *   the unedited model (src/evaluate/edit_metrics.ts), plus the wild scores with `wild`;
 * - the perplexity of a held-out text (src/evaluate/perplexity.ts);
 * - the Frobenius norm of every weight edited so far, its original norm and ‖W − W₀‖_F (float64).
 *
 * Records are written as they are made to an output folder: `meta.json` (what the run is: method, settings,
 * the model's fingerprint, one short hash per request), `records.jsonl` (one JSON record per line) and a
 * checkpoint of the edited weights (and AlphaEdit's state) at the last record. A rerun with the same folder
 * resumes after the last record; one on another model (another fingerprint), method or request list is an
 * {@link InputError}. AlphaEdit's state (null-space bases, K_p K_pᵀ) is carried explicitly
 * (`alphaEditCompute`), so that it survives a resume.
 */
import { createHash } from "node:crypto";
import { InputError } from "../errors.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import type { HostTensor } from "../model/config.ts";
import type { TransformerModel } from "../model/transformer.ts";
import { type EditOptions, getEditor } from "../edit/editors.ts";
import { applyComputed } from "../edit/apply.ts";
import { alphaEditCompute, alphaEditHparams, type AlphaEditState } from "../edit/alphaedit.ts";
import { emmetHparams } from "../edit/emmet.ts";
import { memitHparams } from "../edit/memit.ts";
import { romeHparams } from "../edit/rome.ts";
import { nasAnchorOf } from "../edit/nas.ts";
import { type EditRequest, normalizeRequest } from "../edit/requests.ts";
import {
  aggregate,
  aggregateWild,
  evaluateRequests,
  type Metrics,
  preEditState,
  type WildScores,
} from "./edit_metrics.ts";
import { perplexity } from "./perplexity.ts";

/** Options of {@link runSequential}. */
export interface SequentialOptions {
  /** Name of the curve (default: the method; e.g. "memit+nas"). */
  label?: string;
  /** Requests per editor call (default 1). */
  batchSize?: number;
  /** Record every this many edits (a multiple of the batch size); the last edit is always recorded. */
  every: number;
  /** Passed to the editor (hparams, layers, statistics). */
  edit?: EditOptions;
  /** Switch NAS on (hparam `nas: true`, its anchor measured once on the unedited model over all requests). */
  nas?: boolean;
  /**
   * NAS without `nas_norm`: the anchor is the trimmed mean ‖v*‖ of the first `nasSamples` requests solved
   * on the unedited model (compute only; ROME one request per call) when it exceeds the batch size;
   * otherwise (default) that of the first batch itself.
   */
  nasSamples?: number;
  /** Held-out texts for perplexity (none: perplexity is null). */
  pplTexts?: string[];
  /** Also measure the wild scores. */
  wild?: boolean;
  /** Fluency's generation length (default 0: off; it dominates the cost of a record). */
  fluencyMaxLen?: number;
  /** Folder the records are written to as they are made (and resumed from). */
  outDir?: string;
  /** Extra fields for meta.json (data file, model folder). */
  meta?: Record<string, unknown>;
  /** Progress: edits done of total, and a short text. */
  onProgress?: (done: number, total: number, text: string) => void;
}

/** The norms of one edited weight at a record. */
export interface WeightNorm {
  /** The weight's name in the model's weight map. */
  name: string;
  /** ‖W‖_F now. */
  norm: number;
  /** ‖W₀‖_F of the unedited model. */
  original_norm: number;
  /** ‖W − W₀‖_F. */
  delta_norm: number;
}

/** One point of the curve. */
export interface SequentialRecord {
  /** Requests edited so far. */
  edits: number;
  /** Means over the edited requests (fractions; see edit_metrics.ts), with the wild ones when measured. */
  metrics: Metrics & Partial<WildScores>;
  /** Held-out perplexity, null without a text. */
  perplexity: number | null;
  /** Norms of every weight edited so far (float64), in the order they were first edited. */
  weights: WeightNorm[];
  /** Cumulative seconds in the editor (this process and the runs it resumed). */
  edit_s: number;
  /** Cumulative seconds in measuring the records (metrics, perplexity, norms), likewise cumulative. */
  eval_s: number;
  /** Warnings of the editor since the previous record. */
  warnings: string[];
  /** NAS: requests whose edit was dropped (‖v*‖ over the skip factor times the anchor) since the last record. */
  nas_skipped?: number;
}

/** The whole run ({@link runSequential}'s result and `curve.json`). */
export interface SequentialCurve {
  /** Name of the curve (default: the method). */
  label: string;
  /** The editor's registered name. */
  method: string;
  /** Number of requests in the stream. */
  n: number;
  /** Requests per editor call. */
  batch_size: number;
  /** Edits between records (a multiple of `batch_size`; the last edit is always recorded). */
  every: number;
  /** Whether NAS was on. */
  nas: boolean;
  /** The NAS anchor norm m (given, or measured on the unedited model), once known; NAS only. */
  nas_norm?: number;
  /** The unedited model's fingerprint ({@link modelFingerprint}). */
  fingerprint: string;
  /** The unedited model's held-out perplexity (null without a text) and the tokens it scored (0 without). */
  baseline: { perplexity: number | null; ppl_tokens: number };
  /** The records, in order of edits. */
  records: SequentialRecord[];
  /** Edits already done when this process started (0: a fresh run). */
  resumed_from: number;
  /** The rest of `meta.json`: hparams, layers, nas_samples, request_hashes and the caller's `meta`. */
  [k: string]: unknown;
}

/**
 * SHA-256 of a model's config and every weight (name, shape, float32 bytes) in name order: the identity a
 * resume is checked against.
 */
export function modelFingerprint(model: { config: unknown; weights: Map<string, HostTensor> }): string {
  const h = createHash("sha256");
  const names = [...model.weights.keys()].sort();
  h.update(JSON.stringify({ config: model.config, names }));
  for (const n of names) {
    const t = model.weights.get(n)!;
    h.update(JSON.stringify(t.shape));
    h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return h.digest("hex");
}

/** A short hash of a request's fields (checks a resumed run edits the same stream). */
function requestHash(r: EditRequest): string {
  return createHash("sha256").update(JSON.stringify(r)).digest("hex").slice(0, 12);
}

/** The site NAS anchors at for `method`: (fact token, BOS override, layer). */
function nasSite(model: TransformerModel, method: string, opts: EditOptions) {
  const hp = method === "rome"
    ? romeHparams(model, opts)
    : method === "memit"
    ? memitHparams(model, opts)
    : method === "alphaedit"
    ? alphaEditHparams(model, opts)
    : method === "emmet"
    ? emmetHparams(model, opts)
    : undefined;
  if (!hp) {
    throw new InputError(`NAS applies to rome, memit, alphaedit and emmet, not '${method}'`, {
      field: "--nas",
    });
  }
  return { hp, layer: hp.layers[hp.layers.length - 1] };
}

function frob(a: Float32Array, b?: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    const x = b ? a[i] - b[i] : a[i];
    s += x * x;
  }
  return Math.sqrt(s);
}

interface Checkpoint {
  /** `engram-eval-sequential-checkpoint/1`. */
  schema?: string;
  edits: number;
  edit_s: number;
  eval_s: number;
  nas_norm?: number;
  file: string;
  weights: { name: string; shape: number[]; offset: number; length: number }[];
  alphaedit?: {
    n_inner: number;
    layers: number[];
    nullspace_threshold: number;
    edits: number;
    per_layer: { layer: number; rank: number; basis: number; eigenvalues: number; kpkp: number }[];
    file: string;
  };
}

async function readJson(path: string): Promise<unknown | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw new InputError(`cannot read ${path}: ${(e as Error).message}`, { file: path, field: "--out" });
  }
}

async function readRecords(path: string): Promise<SequentialRecord[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  const out: SequentialRecord[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      break; // a line cut by a kill: the records before it stand
    }
  }
  return out;
}

function toBytes(parts: (Float32Array | Float64Array)[]): Uint8Array {
  const len = parts.reduce((a, p) => a + p.byteLength, 0);
  const out = new Uint8Array(len);
  let o = 0;
  for (const p of parts) {
    out.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), o);
    o += p.byteLength;
  }
  return out;
}

/**
 * Edits `requests` with `method` in batches on `model` and records the curve (see the module comment).
 * The model is left edited (the caller owns it; reload it to start over).
 */
export async function runSequential(
  model: TransformerModel,
  tokenizer: Tokenizer,
  method: string,
  requestsIn: EditRequest[],
  opts: SequentialOptions,
): Promise<SequentialCurve> {
  getEditor(method);
  const n = requestsIn.length;
  if (n === 0) throw new InputError("no edit requests", { field: "requests" });
  const bs = opts.batchSize ?? 1;
  const every = opts.every;
  if (!Number.isInteger(bs) || bs < 1) {
    throw new InputError(`batch size must be a positive integer, got ${bs}`, { field: "--batch-size" });
  }
  if (!Number.isInteger(every) || every < 1 || every % bs !== 0) {
    throw new InputError(`--every must be a positive multiple of the batch size ${bs}, got ${every}`, {
      field: "--every",
    });
  }
  const requests = requestsIn.map((r, i) => normalizeRequest(r, `request ${i}`));
  const label = opts.label ?? method;
  const fingerprint = modelFingerprint(model);
  let edit: EditOptions = { ...(opts.edit ?? {}) };
  const nas = Boolean(opts.nas || (edit.hparams as Record<string, unknown> | undefined)?.nas);
  let nasNorm: number | undefined;
  if (nas) {
    // The anchor: given, or the first batch's (solved on the unedited model), fixed for later batches.
    const { hp } = nasSite(model, method, {
      ...edit,
      hparams: { ...(edit.hparams ?? {}), nas: true },
    });
    nasNorm = hp.nas_norm;
    edit = { ...edit, hparams: { ...(edit.hparams ?? {}), nas: true } };
  }
  const meta = {
    label,
    method,
    batch_size: bs,
    every,
    nas,
    fingerprint,
    hparams: edit.hparams ?? {},
    layers: edit.layers,
    ...(nas ? { nas_samples: Math.max(bs, Math.min(opts.nasSamples ?? bs, n)) } : {}),
    request_hashes: requests.map(requestHash),
    ...(opts.meta ?? {}),
  };

  // Resume: the folder's run must be this one (model, method, settings, the same request stream).
  const out = opts.outDir;
  let records: SequentialRecord[] = [];
  let ckpt: Checkpoint | undefined;
  if (out) {
    await Deno.mkdir(out, { recursive: true });
    const old = await readJson(`${out}/meta.json`) as Record<string, unknown> | undefined;
    if (old) {
      if (old.fingerprint !== fingerprint) {
        throw new InputError(
          `${out} holds a run on another model (fingerprint ${
            String(old.fingerprint).slice(0, 12)
          }…, this model ${fingerprint.slice(0, 12)}…): give another --out or the model it was made with`,
          { file: `${out}/meta.json`, field: "fingerprint" },
        );
      }
      for (const k of ["label", "method", "batch_size", "every", "nas"] as const) {
        if (old[k] !== meta[k]) {
          throw new InputError(
            `${out} holds a run with ${k} ${JSON.stringify(old[k])}, not ${JSON.stringify(meta[k])}`,
            {
              file: `${out}/meta.json`,
              field: k,
            },
          );
        }
      }
      const oldH = old.request_hashes as string[];
      records = await readRecords(`${out}/records.jsonl`);
      ckpt = await readJson(`${out}/checkpoint.json`) as Checkpoint | undefined;
      if (ckpt?.alphaedit && typeof ckpt.alphaedit.n_inner !== "number") {
        throw new InputError(
          `${out}/checkpoint.json is from an engram before the snake_case checkpoint (alphaedit.nInner): ` +
            "start the run in a fresh --out",
          { file: `${out}/checkpoint.json`, field: "alphaedit.n_inner" },
        );
      }
      const done = ckpt?.edits ?? 0;
      if (
        !Array.isArray(oldH) || done > n || oldH.slice(0, done).some((h, i) => h !== meta.request_hashes[i])
      ) {
        throw new InputError(
          `${out} holds a run over other requests (its first ${done} differ from --data)`,
          {
            file: `${out}/meta.json`,
            field: "request_hashes",
          },
        );
      }
      records = records.filter((r) => r.edits <= done);
    }
    await writeFileAtomic(
      `${out}/meta.json`,
      JSON.stringify({ schema: "engram-eval-sequential-meta/1", ...meta }, null, 2) + "\n",
    );
    // Rewrite the records that stand (drops a line cut by a kill, or records past the checkpoint).
    await writeFileAtomic(`${out}/records.jsonl`, records.map((r) => JSON.stringify(r) + "\n").join(""));
  }

  // The unedited model's state: pre-edit scores (locality) and baseline perplexity.
  const pre = await preEditState(model, tokenizer, requests);
  const base = opts.pplTexts?.length ? await perplexity(model, tokenizer, opts.pplTexts) : undefined;
  const originals = new Map<string, Float32Array>();
  let alphaState: AlphaEditState | undefined;
  let editMs = (ckpt?.edit_s ?? 0) * 1000, evalMs = (ckpt?.eval_s ?? 0) * 1000;
  let done = 0;
  if (ckpt && out) {
    const bytes = await Deno.readFile(`${out}/${ckpt.file}`);
    for (const w of ckpt.weights) {
      const cur = model.weights.get(w.name);
      if (!cur || cur.data.length !== w.length) {
        throw new InputError(`checkpoint weight '${w.name}' does not fit the model`, {
          file: `${out}/checkpoint.json`,
          field: w.name,
        });
      }
      originals.set(w.name, Float32Array.from(cur.data));
      model.setWeight(w.name, new Float32Array(bytes.slice(w.offset, w.offset + w.length * 4).buffer));
    }
    if (ckpt.alphaedit) {
      const a = ckpt.alphaedit;
      const sb = await Deno.readFile(`${out}/${a.file}`);
      const f64 = (off: number, len: number) => new Float64Array(sb.slice(off, off + len * 8).buffer);
      const I = a.n_inner;
      alphaState = {
        nInner: I,
        layers: a.layers,
        nullspaceThreshold: a.nullspace_threshold,
        edits: a.edits,
        perLayer: new Map(a.per_layer.map((l) => [l.layer, {
          rank: l.rank,
          basis: f64(l.basis, l.rank * I),
          eigenvalues: f64(l.eigenvalues, I),
          kpkp: f64(l.kpkp, I * I),
        }])),
      };
    }
    done = ckpt.edits;
    if (nas && nasNorm === undefined && ckpt.nas_norm !== undefined) {
      nasNorm = ckpt.nas_norm;
      edit = { ...edit, hparams: { ...(edit.hparams ?? {}), nas_norm: nasNorm } };
    }
  }

  const curve = (): SequentialCurve => ({
    ...meta,
    ...(nasNorm !== undefined ? { nas_norm: nasNorm } : {}),
    n,
    fingerprint,
    baseline: { perplexity: base?.perplexity ?? null, ppl_tokens: base?.tokens ?? 0 },
    records,
    resumed_from: ckpt?.edits ?? 0,
  });
  const save = async () => {
    if (!out) return;
    // Checkpoint first (new files, then the pointer), then the record: a kill in between re-measures.
    const wNames = [...originals.keys()];
    const ws = wNames.map((nm) => model.weights.get(nm)!);
    let off = 0;
    const weights = wNames.map((nm, i) => {
      const e = { name: nm, shape: [...ws[i].shape], offset: off, length: ws[i].data.length };
      off += ws[i].data.length * 4;
      return e;
    });
    const file = `checkpoint-${done}.f32`;
    await writeFileAtomic(`${out}/${file}`, toBytes(ws.map((w) => w.data)));
    const c: Checkpoint = {
      schema: "engram-eval-sequential-checkpoint/1",
      edits: done,
      edit_s: editMs / 1000,
      eval_s: evalMs / 1000,
      ...(nasNorm !== undefined ? { nas_norm: nasNorm } : {}),
      file,
      weights,
    };
    if (alphaState) {
      const parts: Float64Array[] = [];
      let o = 0;
      const put = (a: Float64Array) => {
        parts.push(a);
        const at = o;
        o += a.byteLength;
        return at;
      };
      const perLayer = [...alphaState.perLayer].map(([layer, l]) => ({
        layer,
        rank: l.rank,
        basis: put(l.basis),
        eigenvalues: put(l.eigenvalues),
        kpkp: put(l.kpkp),
      }));
      const sfile = `checkpoint-${done}.alphaedit.f64`;
      await writeFileAtomic(`${out}/${sfile}`, toBytes(parts));
      c.alphaedit = {
        n_inner: alphaState.nInner,
        layers: alphaState.layers,
        nullspace_threshold: alphaState.nullspaceThreshold,
        edits: alphaState.edits,
        per_layer: perLayer,
        file: sfile,
      };
    }
    const prev = await readJson(`${out}/checkpoint.json`) as Checkpoint | undefined;
    await writeFileAtomic(`${out}/checkpoint.json`, JSON.stringify(c, null, 2) + "\n");
    for (const f of [prev?.file, prev?.alphaedit?.file]) {
      if (f && f !== c.file && f !== c.alphaedit?.file) await Deno.remove(`${out}/${f}`).catch(() => {});
    }
  };

  let warnings: string[] = [];
  let skipped = 0;
  const measure = async () => {
    const t0 = performance.now();
    const idx = requests.slice(0, done);
    const sc = await evaluateRequests(model, tokenizer, idx, {
      pre: pre.slice(0, done),
      fluencyMaxLen: opts.fluencyMaxLen ?? 0,
      wild: opts.wild,
    });
    const ppl = opts.pplTexts?.length ? (await perplexity(model, tokenizer, opts.pplTexts)).perplexity : null;
    const weights: WeightNorm[] = [...originals].map(([name, o]) => {
      const w = model.weights.get(name)!.data;
      return { name, norm: frob(w), original_norm: frob(o), delta_norm: frob(w, o) };
    });
    evalMs += performance.now() - t0;
    const rec: SequentialRecord = {
      edits: done,
      metrics: { ...aggregate(sc), ...(opts.wild ? aggregateWild(sc) : {}) },
      perplexity: ppl,
      weights,
      edit_s: editMs / 1000,
      eval_s: evalMs / 1000,
      warnings,
      ...(nas ? { nas_skipped: skipped } : {}),
    };
    warnings = [];
    skipped = 0;
    await save();
    records.push(rec);
    if (out) await Deno.writeTextFile(`${out}/records.jsonl`, JSON.stringify(rec) + "\n", { append: true });
    if (out) {
      const doc = { schema: "engram-eval-sequential-curve/1", ...curve() };
      await writeFileAtomic(`${out}/curve.json`, JSON.stringify(doc, null, 2) + "\n");
    }
    const m = rec.metrics;
    const f = (x: number | null | undefined) => (typeof x === "number" ? x.toFixed(2) : "–");
    opts.onProgress?.(
      done,
      n,
      `${label} rel ${f(m.reliability)} gen ${f(m.generalization)} loc ${f(m.locality)}${
        ppl !== null ? ` ppl ${ppl.toFixed(2)}` : ""
      }`,
    );
  };

  // NAS anchor from a sample larger than the first batch, solved on the unedited model.
  const K = Math.min(opts.nasSamples ?? bs, n);
  if (nas && nasNorm === undefined && done === 0 && K > bs) {
    const sample = requests.slice(0, K);
    const norms: number[] = [];
    for (const c of method === "rome" ? sample.map((r) => [r]) : [sample]) {
      const comp = method === "alphaedit"
        ? (await alphaEditCompute(model, tokenizer, c, edit)).computed
        : await getEditor(method)(model, tokenizer, c, edit);
      norms.push(...(comp.info.nas as { v_star_norms: number[] }).v_star_norms);
      opts.onProgress?.(0, n, `${label} NAS anchor ${norms.length}/${K}`);
    }
    nasNorm = nasAnchorOf(norms);
    edit = { ...edit, hparams: { ...(edit.hparams ?? {}), nas_norm: nasNorm } };
  }
  // A checkpoint without its record (killed in between): measure it again.
  if (done > 0 && !records.some((r) => r.edits === done)) await measure();
  opts.onProgress?.(done, n, `${label} from ${done}`);
  while (done < n) {
    const batch = requests.slice(done, done + bs);
    const t0 = performance.now();
    let computed;
    if (method === "alphaedit") {
      const r = await alphaEditCompute(model, tokenizer, batch, edit, alphaState);
      computed = r.computed;
      alphaState = r.state;
    } else computed = await getEditor(method)(model, tokenizer, batch, edit);
    for (const name of computed.deltas.keys()) {
      if (!originals.has(name)) originals.set(name, Float32Array.from(model.weights.get(name)!.data));
    }
    const applied = applyComputed(model, computed);
    editMs += performance.now() - t0;
    for (const w of applied.result.warnings) if (!warnings.includes(w)) warnings.push(w);
    const nasInfo = computed.info.nas as { skipped?: number[]; anchor_norm?: number } | undefined;
    if (nas && nasNorm === undefined && nasInfo?.anchor_norm !== undefined) {
      nasNorm = nasInfo.anchor_norm;
      edit = { ...edit, hparams: { ...(edit.hparams ?? {}), nas_norm: nasNorm } };
    }
    skipped += nasInfo?.skipped?.length ?? 0;
    done += batch.length;
    if (done % every === 0 || done === n) await measure();
    else opts.onProgress?.(done, n, `${label} edited ${done}`);
  }
  return curve();
}

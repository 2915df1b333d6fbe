/**
 * Launcher for the token (+ position) embedding gather (`kernels/embedding.wgsl`) and its host-side id
 * check.
 */
import { InputError, ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { type BlockTensor, fitsBinding, forBlocks, type StorageBinding } from "./blocks.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import { createTensor, GpuTensor, isPacked16, rowChunks, w16For } from "./tensor.ts";

/**
 * Throws {@link InputError} (field `name`) unless every entry of `ids` is an integer in
 * [0, vocabSize). Run on host data before it is uploaded: the kernel clamps bad ids instead of
 * failing, which would silently give wrong results.
 */
export function checkIds(ids: ArrayLike<number>, vocabSize: number, name = "ids"): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new InputError(`id ${id} at index ${i} is out of range [0, ${vocabSize})`, { field: name });
    }
  }
}

/** Options of {@link embedding}. */
export interface EmbeddingOptions {
  /** Number of tokens (rows of `out`); for a batch of B sequences of length L, T = B*L. */
  T: number;
  /** Model width (columns of wte, wpe and out). */
  C: number;
  /**
   * Position of token 0 when `positions` is absent: pos(t) = positionOffset + t. Default 0. Ignored
   * (not checked) without a position table.
   */
  positionOffset?: number;
  /**
   * Explicit position of each token, [T] u32 (e.g. t within its own sequence for a batch). A
   * {@link GpuTensor} is used as is (out-of-range entries are clamped to P - 1 by the kernel);
   * host data is checked with {@link checkIds} against P first. Ignored (not checked) without a
   * position table.
   */
  positions?: GpuTensor | ArrayLike<number>;
}

function checkF32(
  t: GpuTensor,
  rows: number | undefined,
  C: number,
  what: string,
  dims: string,
  allow16 = false,
): void {
  if (t.dtype !== "f32" && !(allow16 && isPacked16(t.dtype))) {
    throw new ShapeError(`${what} must be f32${allow16 ? ", bf16 or f16" : ""}, got ${t.dtype}`, {
      field: t.name,
    });
  }
  const ok = rows === undefined
    ? t.shape.length === 2 && t.shape[1] === C && t.shape[0] >= 1
    : t.numel === rows * C;
  if (!ok) {
    throw new ShapeError(`${what} has shape [${t.shape}], expected ${dims} with C = ${C}`, { field: t.name });
  }
}

function checkIndexTensor(t: GpuTensor, T: number, what: string): void {
  if (t.dtype !== "u32") {
    throw new ShapeError(`${what} must be a u32 tensor, got ${t.dtype}`, { field: t.name });
  }
  if (t.numel !== T) {
    throw new ShapeError(`${what} has shape [${t.shape}] (${t.numel} elements), expected T = ${T}`, {
      field: t.name,
    });
  }
}

/** Uploads checked host indices as a temporary u32 tensor (freed after the next submit). */
function upload(gpu: Gpu, data: ArrayLike<number>, T: number, bound: number, name: string): GpuTensor {
  if (data.length !== T) {
    throw new ShapeError(`${name} has ${data.length} entries, expected T = ${T}`, { field: name });
  }
  checkIds(data, bound, name);
  return createTensor(gpu, [T], { name, dtype: "u32", data: Uint32Array.from(data) });
}

/**
 * Token + position embeddings: `out[t, c] = wte[ids[t], c] + wpe[pos(t), c]` in f32, with
 * pos(t) = `positions[t]` when given, else `positionOffset + t`. Without a position table (`wpe`
 * null/undefined: Llama, GPT-NeoX, GPT-J, whose positions are rotary) the token rows alone,
 * `out[t, c] = wte[ids[t], c]`, and the position options are ignored.
 *
 * - `ids` [T]: u32 {@link GpuTensor} (any shape with T elements), or host data, which is first checked
 *   with {@link checkIds} against V and uploaded. Ids already on the GPU cannot be checked without a
 *   read-back: the kernel clamps them to V - 1 so it never reads out of bounds.
 * - `wte` [V, C], `wpe` [P, C] or null/undefined: token and position tables; wte may be a packed 16-bit
 *   tensor (bf16 / f16, decoded to f32 in the kernel), wpe is f32.
 * - `out` [T, C] (any shape with T*C elements), f32.
 *
 * A `wte` larger than one storage binding ({@link Gpu.bindingLimit}) is gathered in row chunks: one
 * dispatch per window of rows, each writing the tokens whose id falls in it.
 *
 * Records the dispatch; nothing runs until the next {@link Gpu.flush} (or a read). Throws
 * {@link ShapeError} naming the offending tensor on a size or dtype mismatch and {@link InputError}
 * for host ids or positions out of range, or `positionOffset + T > P`.
 */
export async function embedding(
  gpu: Gpu,
  ids: GpuTensor | ArrayLike<number>,
  wte: GpuTensor,
  wpe: GpuTensor | null | undefined,
  out: GpuTensor,
  opts: EmbeddingOptions,
): Promise<void> {
  const { T, C } = opts;
  const offset = opts.positionOffset ?? 0;
  for (const [k, v] of Object.entries({ T, C })) {
    if (!Number.isInteger(v) || v < 1) {
      throw new ShapeError(`embedding: ${k} = ${v} must be a positive integer`, { field: k });
    }
  }
  checkF32(wte, undefined, C, "embedding token table wte", "[V, C]", true);
  if (wpe) checkF32(wpe, undefined, C, "embedding position table wpe", "[P, C]");
  checkF32(out, T, C, "embedding output", "T*C elements");
  const V = wte.shape[0], P = wpe ? wpe.shape[0] : 0;
  if (out.buffer === wte.buffer || (wpe && out.buffer === wpe.buffer)) {
    throw new ShapeError("embedding output must not alias wte or wpe", { field: out.name });
  }
  if (wpe && opts.positions === undefined && (!Number.isInteger(offset) || offset < 0 || offset + T > P)) {
    throw new InputError(
      `positions ${offset}..${
        offset + T - 1
      } do not fit the position table of ${P} rows (the model's context)`,
      { field: "positionOffset" },
    );
  }
  const temps: GpuTensor[] = [];
  let idT: GpuTensor;
  if (ids instanceof GpuTensor) {
    idT = ids;
    checkIndexTensor(idT, T, "embedding ids");
  } else {
    idT = upload(gpu, ids, T, V, "ids");
    temps.push(idT);
  }
  const offsetU = !wpe || opts.positions !== undefined ? 0 : offset;
  try {
    let posT: GpuTensor | undefined;
    if (wpe && opts.positions !== undefined) {
      const pos = opts.positions;
      if (pos instanceof GpuTensor) {
        posT = pos;
        checkIndexTensor(posT, T, "embedding positions");
      } else {
        posT = upload(gpu, pos, T, P, "positions");
        temps.push(posT);
      }
    }
    const constants = { W16: w16For(gpu, wte.dtype) };
    // Tokens [t0, t0 + n) of out (and of ids, positions) against every row chunk of wte.
    const gather = async ([ib, ob, pb]: StorageBinding[], t0: number, n: number) => {
      const wg = grid(gpu, Math.ceil((n * C) / 256));
      for (const ch of rowChunks(wte, C)) {
        const params = {
          uniform: uniforms(n, C, V, P, offsetU + (posT ? 0 : t0), ch.first, ch.end, ch.base),
        };
        if (!wpe) {
          await launch(gpu, "embedding", "embedding_tokens", [params, ib, ch.binding, ob], wg, constants);
        } else if (pb) {
          await launch(
            gpu,
            "embedding",
            "embedding_pos",
            [params, ib, ch.binding, wpe, ob, pb],
            wg,
            constants,
          );
        } else {
          await launch(gpu, "embedding", "embedding", [params, ib, ch.binding, wpe, ob], wg, constants);
        }
      }
    };
    const rowed = posT ? [idT, out, posT] : [idT, out];
    if (fitsBinding(gpu, ...rowed)) await gather(rowed, 0, T);
    else {
      // An output past the binding limit (many tokens): blocks of tokens, each a smaller gather at its
      // position offset.
      const parts: BlockTensor[] = [
        { t: idT, cols: 1, role: "in" },
        { t: out, cols: C, role: "out" },
        ...(posT ? [{ t: posT, cols: 1, role: "in" as const }] : []),
      ];
      await forBlocks(gpu, "embedding", T, parts, gather);
    }
  } finally {
    // Destroyed after the next submit, which includes the dispatch just recorded.
    for (const t of temps) t.destroy();
  }
}

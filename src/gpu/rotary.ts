/** Launcher for the rotary position embedding kernel (`kernels/rotary.wgsl`). */
import { ShapeError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { type BlockTensor, fitsBinding, forBlocks, type StorageBinding } from "./blocks.ts";
import { grid, launch, uniforms } from "./pipeline.ts";
import { createTensor, type GpuTensor } from "./tensor.ts";

/**
 * Where q, k and v live in a fused qkv buffer (elements); structurally identical to `QkvLayout` of
 * `src/gpu/attention.ts`. Element d of query head h in row r is at
 * `r*rowStride + qOffset + h*qHeadStride + d`; of kv head g at `r*rowStride + kOffset + g*kvHeadStride + d`
 * (v likewise with vOffset).
 */
export interface RotaryQkvLayout {
  nHead: number;
  nKvHead: number;
  headDim: number;
  rowStride: number;
  qOffset: number;
  kOffset: number;
  vOffset: number;
  qHeadStride: number;
  kvHeadStride: number;
}

/** Options of {@link rotary}. */
export interface RotaryOptions {
  /** Rows of the qkv buffer to rotate (R = B*T). */
  rows: number;
  layout: RotaryQkvLayout;
  /** Rotated dims per head (even, <= headDim); dims dim..headDim-1 pass through. */
  dim: number;
  /** `half`: pairs (x[i], x[i + dim/2]) (Llama, NeoX); `interleaved`: (x[2i], x[2i+1]) (GPT-J). */
  style: "half" | "interleaved";
  /**
   * Rotate by -angle. A rotation's transpose is its inverse, so this is also the backward: applied to
   * the gradient w.r.t. the rotated q/k it gives the gradient w.r.t. the unrotated q/k.
   */
  inverse?: boolean;
}

const U32_MAX = 0xffffffff;

function nonNegInt(v: number, field: string, min = 0): void {
  if (!Number.isInteger(v) || v < min || v > U32_MAX) {
    throw new ShapeError(`must be an integer >= ${min} (u32), got ${v}`, { field });
  }
}

/**
 * Checks a layout for rotary: sizes are integers, nKvHead divides nHead, and every q, k and v slot of a
 * row lies inside the row and overlaps no other (an overlap would rotate an element twice or touch v).
 * Returns the end of the last slot in a row. Throws {@link ShapeError} naming the field.
 */
export function checkRotaryLayout(layout: RotaryQkvLayout, dim: number): number {
  const { nHead, nKvHead, headDim, rowStride } = layout;
  for (const k of Object.keys(layout) as (keyof RotaryQkvLayout)[]) {
    nonNegInt(layout[k], `layout.${k}`, k === "nHead" || k === "nKvHead" || k === "headDim" ? 1 : 0);
  }
  if (nHead % nKvHead !== 0) {
    throw new ShapeError(`nKvHead ${nKvHead} does not divide nHead ${nHead}`, { field: "layout.nKvHead" });
  }
  if (!Number.isInteger(dim) || dim < 2 || dim % 2 !== 0 || dim > headDim) {
    throw new ShapeError(`rotary dim must be even, >= 2 and <= headDim ${headDim}, got ${dim}`, {
      field: "dim",
    });
  }
  const slots: [number, string][] = [];
  for (let h = 0; h < nHead; h++) slots.push([layout.qOffset + h * layout.qHeadStride, `q head ${h}`]);
  for (let g = 0; g < nKvHead; g++) slots.push([layout.kOffset + g * layout.kvHeadStride, `k head ${g}`]);
  for (let g = 0; g < nKvHead; g++) slots.push([layout.vOffset + g * layout.kvHeadStride, `v head ${g}`]);
  slots.sort((a, b) => a[0] - b[0]);
  for (let j = 1; j < slots.length; j++) {
    if (slots[j][0] < slots[j - 1][0] + headDim) {
      throw new ShapeError(`${slots[j - 1][1]} and ${slots[j][1]} overlap (headDim ${headDim})`, {
        field: "layout",
      });
    }
  }
  const end = slots[slots.length - 1][0] + headDim;
  if (end > rowStride) {
    throw new ShapeError(`${slots[slots.length - 1][1]} ends at ${end}, past rowStride ${rowStride}`, {
      field: "layout.rowStride",
    });
  }
  return end;
}

/**
 * Rotary position embedding in place on the q and k slots of `qkv` (v and dims >= `dim` untouched):
 * for every row r < rows, q head (nHead), k head (nKvHead) and pair i < dim/2, the pair
 * (a, b) = (x[i], x[i + dim/2]) (`half`) or (x[2i], x[2i+1]) (`interleaved`) becomes
 * (a cos - b sin, b cos + a sin) with cos/sin at [positions[r], i] (sin negated for `inverse`).
 *
 * - `qkv`: f32, at least (rows-1)*rowStride + the end of the row's last slot elements.
 * - `cos`, `sin`: f32 [P, dim/2] tables (e.g. `ropeTables` of `src/model/rope.ts`).
 * - `positions`: the position of each row, a u32 tensor [rows] or host `Uint32Array` [rows]. Host
 *   positions are range-checked (and uploaded to a temporary tensor); a device tensor cannot be checked
 *   without a read-back, so the kernel writes NaN into the q/k pairs of a row whose position is >= P.
 *
 * Records the dispatch; nothing runs until the next {@link Gpu.flush} (or a read). Throws
 * {@link ShapeError} naming the offending tensor or field on a bad size, dtype, layout or position.
 */
export async function rotary(
  gpu: Gpu,
  qkv: GpuTensor,
  cos: GpuTensor,
  sin: GpuTensor,
  positions: GpuTensor | Uint32Array,
  opts: RotaryOptions,
): Promise<void> {
  const { rows, layout, dim, style } = opts;
  if (style !== "half" && style !== "interleaved") {
    throw new ShapeError(`rotary style must be "half" or "interleaved", got ${style}`, { field: "style" });
  }
  nonNegInt(rows, "rows");
  const rowEnd = checkRotaryLayout(layout, dim);
  const half = dim / 2;
  for (const t of [qkv, cos, sin]) {
    if (t.dtype !== "f32") {
      throw new ShapeError(`rotary tensors must be f32, got ${t.dtype}`, { field: t.name });
    }
  }
  const need = rows === 0 ? 0 : (rows - 1) * layout.rowStride + rowEnd;
  if (qkv.numel < need) {
    throw new ShapeError(`qkv has ${qkv.numel} elements, ${rows} rows of this layout need ${need}`, {
      field: qkv.name,
    });
  }
  for (const t of [cos, sin]) {
    if (t.shape.length !== 2 || t.shape[1] !== half || t.shape[0] < 1) {
      throw new ShapeError(`rotary table has shape [${t.shape}], expected [positions >= 1, ${half}]`, {
        field: t.name,
      });
    }
  }
  if (sin.shape[0] !== cos.shape[0]) {
    throw new ShapeError(`sin table has ${sin.shape[0]} positions, cos ${cos.shape[0]}`, { field: sin.name });
  }
  const nPos = cos.shape[0];
  const slots = layout.nHead + layout.nKvHead;
  if (rows * slots * half > U32_MAX || need > U32_MAX) {
    throw new ShapeError(`${rows} rows of this layout exceed u32 indexing`, { field: qkv.name });
  }
  let pos: GpuTensor;
  let temp = false;
  if (positions instanceof Uint32Array) {
    if (positions.length !== rows) {
      throw new ShapeError(`positions has ${positions.length} entries, expected rows = ${rows}`, {
        field: "positions",
      });
    }
    for (let r = 0; r < rows; r++) {
      if (positions[r] >= nPos) {
        throw new ShapeError(`row ${r} has position ${positions[r]}, the tables hold ${nPos} positions`, {
          field: `positions[${r}]`,
        });
      }
    }
    pos = createTensor(gpu, [Math.max(rows, 1)], {
      dtype: "u32",
      name: "rotary positions",
      data: rows === 0 ? new Uint32Array(1) : positions,
    });
    temp = true;
  } else {
    pos = positions;
    if (pos.dtype !== "u32") {
      throw new ShapeError(`positions must be u32, got ${pos.dtype}`, { field: pos.name });
    }
    if (pos.numel !== rows) {
      throw new ShapeError(`positions has ${pos.numel} entries, expected rows = ${rows}`, {
        field: pos.name,
      });
    }
  }
  for (const t of [cos, sin, pos]) {
    if (t.buffer === qkv.buffer) {
      throw new ShapeError("rotary qkv must not alias its tables or positions", { field: t.name });
    }
  }
  const dispatch = async ([xb, pb]: StorageBinding[], n: number) => {
    const total = n * slots * half;
    if (total === 0) return;
    await launch(
      gpu,
      "rotary",
      "rotary",
      [
        {
          uniform: uniforms(
            n,
            layout.nHead,
            layout.nKvHead,
            half,
            layout.rowStride,
            layout.qOffset,
            layout.kOffset,
            layout.qHeadStride,
            layout.kvHeadStride,
            style === "interleaved" ? 1 : 0,
            opts.inverse ? 1 : 0,
            nPos,
          ),
        },
        xb,
        cos,
        sin,
        pb,
      ],
      grid(gpu, Math.ceil(total / 256)),
    );
  };
  // Past the binding limit (many tokens) whole rows go in blocks, rotated in place; a qkv whose last row
  // is cut short is bound whole (and fails loudly at launch if it is over the limit).
  if (fitsBinding(gpu, qkv, pos) || qkv.numel < rows * layout.rowStride) await dispatch([qkv, pos], rows);
  else {
    const parts: BlockTensor[] = [
      { t: qkv, cols: layout.rowStride, role: "inout" },
      { t: pos, cols: 1, role: "in" },
    ];
    await forBlocks(gpu, "rotary", rows, parts, (b, _first, n) => dispatch(b, n));
  }
  if (temp) pos.destroy();
}

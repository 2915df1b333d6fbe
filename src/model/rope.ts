/** Rotary position embedding configuration (placeholder types; the rotary helper's file replaces this). */
export type RopeScaling =
  | { type: "linear"; factor: number }
  | { type: "dynamic"; factor: number; originalMaxPositionEmbeddings: number }
  | {
    type: "llama3";
    factor: number;
    lowFreqFactor: number;
    highFreqFactor: number;
    originalMaxPositionEmbeddings: number;
  };

/** Rotary embedding of one model. */
export interface RopeConfig {
  /** Rotated dimensions per head (even). */
  dim: number;
  style: "half" | "interleaved";
  theta: number;
  scaling?: RopeScaling;
  maxPositionEmbeddings: number;
}

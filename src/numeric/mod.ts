/**
 * Small numeric helpers shared by every layer: argmax, top-k, log-sum-exp and log-softmax of host rows,
 * and the float64 symmetric eigendecomposition.
 *
 * @example
 * ```ts
 * import { argmax, logSumExp, topK } from "./mod.ts";
 * const logits = [0.5, 2, -1, 2];
 * argmax(logits); // 1 (the first of the tied maxima)
 * topK(logits, 2); // [1, 3]
 * Math.exp(logits[1] - logSumExp(logits)); // p of token 1
 * ```
 *
 * @module
 */
export { argmax, logSoftmaxInto, logSumExp, topK } from "./rows.ts";
export { EigenError, symmetricEigen } from "./eigen.ts";
export type { SymmetricEigen } from "./eigen.ts";

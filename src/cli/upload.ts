/**
 * The model upload the read-only commands share (trace, eval, atp, recommend-layers, demo): the file's F16
 * / BF16 weights stay 16-bit on the GPU, as `loadModel`'s default `weightDtype: "auto"` keeps them
 * (computed in f32: the results equal an f32 upload of the same values), so a 16-bit model takes about half
 * the GPU memory.
 */
import type { Gpu } from "../gpu/device.ts";
import type { HFModel } from "../io/hf_model.ts";
import { TransformerModel } from "../model/transformer.ts";
import { choiceFlag } from "./args.ts";
import { log } from "./log.ts";

/** GPU storage of the weights (`--weights`): "auto" keeps a file's 16-bit weights in 16 bits, "f32" decodes them. */
export type WeightStorage = "auto" | "f32";

/** The `--weights` flag's value (default "auto"; anything else is an InputError naming the flag). */
export function weightsFlag(f: Record<string, unknown>): WeightStorage {
  return choiceFlag(f, "weights", ["auto", "f32"] as const, "auto");
}

/**
 * Uploads `hf`'s weights, with the file's 16-bit storage (`CreateModelOptions.weightDtypes` = `hf.dtypes`)
 * unless `storage` is "f32", and says at debug level how many weight bytes the GPU holds and how many
 * tensors are 16-bit.
 */
export function uploadModel(
  gpu: Gpu,
  hf: Pick<HFModel, "config" | "weights" | "dtypes">,
  storage: WeightStorage = "auto",
): TransformerModel {
  const model = TransformerModel.create(gpu, hf.config, hf.weights, {
    weightDtypes: storage === "auto" ? hf.dtypes : undefined,
  });
  let n16 = 0, n = 0;
  for (const name of hf.weights.keys()) {
    n++;
    if (model.weightStorage(name) !== "f32") n16++;
  }
  log.debug(
    `model weights on the GPU: ${model.weightBytes()} bytes; ${n16} of ${n} weights stored in 16 bits`,
  );
  return model;
}

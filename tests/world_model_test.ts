/**
 * The shipped world model (fixtures/world/model) meets the bar of the gradients/training issue:
 * >= 95% top-1 recall of the facts it was trained on and >= 80% on held-out paraphrases it never saw,
 * measured on every prompt with the same command users run (`engram accuracy --world`).
 */
import assert from "node:assert/strict";
import { engram } from "./_util.ts";

const ROOT = new URL("../", import.meta.url).pathname;

Deno.test("world model: >= 95% on training facts, >= 80% on held-out paraphrases", async () => {
  const r = await engram(
    "accuracy",
    "--model",
    ROOT + "fixtures/world/model",
    "--world",
    ROOT + "fixtures/world",
    "--json",
  );
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  console.log(
    `train ${(100 * j.train.accuracy).toFixed(2)}% of ${j.train.n}, held-out ${
      (100 * j.heldout.accuracy).toFixed(2)
    }% of ${j.heldout.n}, ` +
      `two-hop ${(100 * j.twohop.accuracy).toFixed(2)}% of ${j.twohop.n}`,
  );
  const lines = async (f: string) =>
    (await Deno.readTextFile(ROOT + "fixtures/world/" + f)).trim().split("\n").length;
  assert.equal(j.train.n, await lines("train_prompts.jsonl"), "scored on every training prompt");
  assert.equal(j.heldout.n, await lines("heldout.jsonl"), "scored on every held-out prompt");
  assert.ok(j.train.accuracy >= 0.95, `training-fact accuracy ${j.train.accuracy}`);
  assert.ok(j.heldout.accuracy >= 0.8, `held-out accuracy ${j.heldout.accuracy}`);
});

Deno.test("world model is at most 8 MB and carries its checkpoints and training log", async () => {
  const dir = ROOT + "fixtures/world/model";
  const size = (await Deno.stat(dir + "/model.safetensors")).size;
  assert.ok(size <= 8 * 1024 * 1024, `model.safetensors is ${size} bytes`);
  const cks = [...Deno.readDirSync(dir + "/checkpoints")].map((e) => e.name).sort();
  assert.ok(cks.length >= 3, `checkpoints: ${cks}`);
  const log = (await Deno.readTextFile(dir + "/train_log.jsonl")).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  assert.ok(log.at(-1).loss < log[0].loss / 5, "training log shows the loss falling");
});

Deno.test("world model's config.json matches the training config shipped beside it", async () => {
  const { readTrainConfig } = await import("../src/train/config.ts");
  const p1 = await readTrainConfig(ROOT + "fixtures/world/train_config.json");
  assert.equal(p1.corpus, ROOT + "fixtures/world/train.jsonl");
  assert.equal(p1.out, ROOT + "fixtures/world/model");
  assert.equal(p1.init, undefined, "trained from random weights");
  const hf = JSON.parse(await Deno.readTextFile(ROOT + "fixtures/world/model/config.json"));
  assert.deepEqual(
    [hf.n_layer, hf.n_head, hf.n_embd, hf.n_positions],
    [p1.model.nLayer, p1.model.nHead, p1.model.nEmbd, p1.model.nPositions],
  );
});

/**
 * A model folder replaced while it is being read (an `--overwrite` renaming a new output into place)
 * never yields a mix of the two folders' files: the loader notices the swap and reads again.
 */
import assert from "node:assert/strict";
import { loadHFModel } from "../src/io/hf_model.ts";
import { markerText, OUTPUT_MARKER } from "../src/io/atomic.ts";
import { writeTinyCheckpoint } from "./_hf_fixtures.ts";

Deno.test("loadHFModel across concurrent folder swaps: every load is one folder's config and weights", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "engram-swap-" });
  try {
    const a = await writeTinyCheckpoint(`${tmp}/a`, {
      family: "llama",
      seed: 1,
      overrides: { rms_norm_eps: 1e-5 },
    });
    const b = await writeTinyCheckpoint(`${tmp}/b`, {
      family: "llama",
      seed: 2,
      overrides: { rms_norm_eps: 1e-6 },
    });
    const path = `${tmp}/model`;
    await Deno.mkdir(path);
    for await (const e of Deno.readDir(`${tmp}/a`)) {
      await Deno.copyFile(`${tmp}/a/${e.name}`, `${path}/${e.name}`);
    }
    let stop = false, swaps = 0;
    // Replaces the folder at path by a fresh copy of a or b on every turn of the event loop, as
    // `--overwrite` does: a new folder with its own output marker is renamed in, the old one deleted.
    const swapper = (async () => {
      while (!stop) {
        const src = swaps % 2 === 0 ? `${tmp}/b` : `${tmp}/a`;
        const stage = `${tmp}/stage-${swaps}`, old = `${tmp}/old-${swaps}`;
        await Deno.mkdir(stage);
        for await (const e of Deno.readDir(src)) {
          await Deno.copyFile(`${src}/${e.name}`, `${stage}/${e.name}`);
        }
        await Deno.writeTextFile(`${stage}/${OUTPUT_MARKER}`, markerText("test"));
        await Deno.rename(path, old);
        await Deno.rename(stage, path);
        await Deno.remove(old, { recursive: true });
        swaps++;
        await new Promise((r) => setTimeout(r, 0));
      }
    })();
    let loads = 0, failures = 0;
    try {
      while (swaps < 60) {
        let m;
        try {
          m = await loadHFModel(path);
        } catch {
          failures++; // the folder was missing for an instant, or swapped three times: a typed error
          await new Promise((r) => setTimeout(r, 0));
          continue;
        }
        loads++;
        const want = m.config.layerNormEpsilon === 1e-5 ? a : b;
        for (const [n, t] of want.weights) {
          assert.deepEqual(
            m.weights.get(n)!.data,
            t.data,
            `${n} comes from the other folder than config.json`,
          );
        }
      }
    } finally {
      stop = true;
      await swapper;
    }
    assert.ok(loads >= 10, `swaps ${swaps}, loads ${loads}, failures ${failures}`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

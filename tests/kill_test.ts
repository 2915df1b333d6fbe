/**
 * kill -9 at random moments (issue 12 §3): an edit, a trace and a training run are started as
 * subprocesses of the CLI (src/cli.ts) on tiny inputs and killed with SIGKILL after a random delay; after
 * each kill every final path is either absent or complete (it loads; an edited model has its log), and
 * the next run proceeds past the stale lock. One kill lands exactly between an edit's two renames (the
 * ENGRAM_TEST_COMMIT_PAUSE_MS hook of src/io/atomic.ts): the log is there, the model is not.
 * The seed of the delays is printed on failure.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadHFModel, saveHFModel } from "../src/io/hf_model.ts";
import { loadTokenizer } from "../src/io/tokenizer.ts";
import { readEditLog } from "../src/edit/log.ts";
import { checkEditedModel } from "../src/edit/edit_link.ts";
import { trainingLeftovers } from "../src/train/trainer.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { engram, freshSeed, rng } from "./_util.ts";

const WORLD = new URL("../fixtures/world/", import.meta.url).pathname;
const CLI = new URL("../src/cli.ts", import.meta.url).pathname;
/** Kills per command (ENGRAM_KILLS=N for a longer run). */
const KILLS = Math.max(1, Number(Deno.env.get("ENGRAM_KILLS") ?? 3) || 3);

async function exists(p: string): Promise<boolean> {
  return await Deno.lstat(p).then(() => true, () => false);
}

/** Starts the CLI and SIGKILLs it after `ms` (if still running); returns whether it was killed. */
async function runAndKill(args: string[], ms: number, env: Record<string, string> = {}): Promise<boolean> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "null",
    stderr: "null",
  }).spawn();
  let done = false;
  const status = child.status.then((s) => (done = true, s));
  await Promise.race([status, new Promise((r) => setTimeout(r, ms))]);
  if (!done) child.kill("SIGKILL");
  const s = await status;
  return s.signal === "SIGKILL";
}

/** Starts the CLI and SIGKILLs it as soon as `path` exists. */
async function killWhenExists(args: string[], path: string, env: Record<string, string>): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const t0 = Date.now();
  while (!(await exists(path))) {
    if (Date.now() - t0 > 30_000) {
      child.kill("SIGKILL");
      throw new Error(`${path} never appeared`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill("SIGKILL");
  await child.status;
  await child.stderr.cancel();
}

const cfg: ModelConfig = {
  nLayer: 2,
  nHead: 2,
  nEmbd: 16,
  vocabSize: (await loadTokenizer(WORLD)).vocabSize,
  nPositions: 24,
  nInner: 64,
  layerNormEpsilon: 1e-5,
};

/** An edited model is complete when it loads and its log is there and is this edit's. */
async function assertEditComplete(out: string, log: string, what: string) {
  if (await exists(out)) {
    const m = await loadHFModel(out);
    await checkEditedModel(out, m.weights, log).catch((e) => {
      throw new Error(`${what}: edited model without its log: ${e.message}`);
    });
  }
  if (await exists(log)) await readEditLog(log);
}

Deno.test("kill -9 at random moments: edit, trace and train leave every output absent or complete", async () => {
  const seed = freshSeed();
  const rand = rng(seed);
  const tmp = await Deno.makeTempDir({ prefix: "engram_kill_" });
  try {
    const model = join(tmp, "model");
    await saveHFModel(model, { config: cfg, weights: randomGPT2(cfg, seed), tokenizerFrom: WORLD });
    const edit = (out: string) => [
      "edit",
      "--method",
      "ft",
      "--model",
      model,
      "--prompt",
      "The birthplace of {} is",
      "--subject",
      "Pilvun",
      "--target",
      "Sunmere",
      "--out",
      out,
      "--overwrite",
    ];
    // Edit: random kills, each followed by the check; the same output is reused (so later kills also hit
    // --overwrite of a complete earlier output).
    const out = join(tmp, "e"), log = `${out}.editlog`;
    let killed = 0;
    for (let i = 0; i < KILLS; i++) {
      const ms = 300 + rand() * 2700;
      killed += Number(await runAndKill(edit(out), ms));
      await assertEditComplete(out, log, `edit killed after ${ms.toFixed(0)} ms (seed ${seed})`);
    }
    // Exactly between the renames: the log is in place, the model is not.
    const out2 = join(tmp, "between"), log2 = `${out2}.editlog`;
    await killWhenExists(edit(out2), log2, { ENGRAM_TEST_COMMIT_PAUSE_MS: "5000" });
    assert.ok(await exists(log2), "log committed first");
    assert.ok(!(await exists(out2)), "the model must not be in place yet");
    await readEditLog(log2);
    // The next run proceeds past the dead run's lock and leaves a complete pair, and no leftovers.
    const again = await engram(...edit(out2));
    assert.equal(again.code, 0, again.stderr);
    await assertEditComplete(out2, log2, "rerun");
    assert.ok(await exists(out2));
    // Between the renames of an --overwrite: the new log is in, and the old model is set aside (kept),
    // never left in place beside the new log.
    const oldModel = await Deno.readFile(join(out2, "model.safetensors"));
    const oldLog = await Deno.readTextFile(join(log2, "log.json"));
    // The log folder is renamed aside and the new one renamed in while this polls: a read between the
    // two renames finds no file, which is "not changed yet", not an error.
    const logChanged = async () => {
      try {
        return (await Deno.readTextFile(join(log2, "log.json"))) !== oldLog;
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return false;
        throw e;
      }
    };
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, ...edit(out2), "--target", "Frostwick"],
      env: { NO_COLOR: "1", ENGRAM_TEST_COMMIT_PAUSE_MS: "5000" },
      stdout: "null",
      stderr: "null",
    }).spawn();
    for (let t = 0; !(await logChanged()); t++) {
      assert.ok(t < 1500, "the new log never appeared");
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill("SIGKILL");
    await child.status;
    assert.ok(!(await exists(out2)), "old model left beside the new log");
    const aside = [...Deno.readDirSync(tmp)].filter((e) => /^\.between(\.editlog)?\.old-/.test(e.name));
    assert.equal(aside.length, 2, "both old folders are kept aside");
    const keptModel = aside.map((e) => join(tmp, e.name, "model.safetensors"));
    assert.ok((await Promise.all(keptModel.map(exists))).some((x) => x));
    for (const p of keptModel) if (await exists(p)) assert.deepEqual(await Deno.readFile(p), oldModel);

    // Trace.
    const tout = join(tmp, "t");
    const trace = [
      "trace",
      "--model",
      model,
      "--prompt",
      "{} is",
      "--subject",
      "Pilvun",
      "--samples",
      "2",
      "--out",
      tout,
    ];
    for (let i = 0; i < KILLS; i++) {
      const ms = 300 + rand() * 2500;
      killed += Number(await runAndKill(trace, ms));
      if (await exists(tout)) {
        JSON.parse(await Deno.readTextFile(join(tout, "trace.json")));
        for (const k of ["hidden", "mlp", "attn"]) {
          assert.match(await Deno.readTextFile(join(tout, `trace_${k}.svg`)), /<\/svg>\s*$/, `seed ${seed}`);
        }
      }
    }

    // Training (a few steps with checkpoints).
    const lines = (await Deno.readTextFile(join(WORLD, "train.jsonl"))).split("\n").slice(0, 32).join("\n");
    await Deno.writeTextFile(join(tmp, "c.jsonl"), lines + "\n");
    const trainCfg = join(tmp, "train.json");
    await Deno.writeTextFile(
      trainCfg,
      JSON.stringify({
        corpus: "c.jsonl",
        tokenizer: WORLD,
        out: "trained",
        model: { n_layer: 1, n_head: 2, n_embd: 16, n_positions: 24 },
        epochs: 2,
        batch_size: 8,
        checkpoint_every: 2,
        seed: 5,
      }),
    );
    const tr = join(tmp, "trained");
    for (let i = 0; i < KILLS; i++) {
      const ms = 300 + rand() * 3000;
      killed += Number(await runAndKill(["train", "--config", trainCfg, "--overwrite"], ms));
      if (await exists(tr)) {
        await loadHFModel(tr);
        const steps = (await Deno.readTextFile(join(tr, "train_log.jsonl"))).trim().split("\n");
        assert.equal(steps.length, 8, `seed ${seed}`);
      }
      for (const w of await trainingLeftovers(tr)) {
        // A work folder may be partial, but every checkpoint in it is complete (each is written atomically).
        const dir = join(w, "checkpoints");
        const cks = await exists(dir)
          ? [...Deno.readDirSync(dir)].filter((c) => !c.name.startsWith("."))
          : [];
        for (const c of cks) await loadHFModel(join(dir, c.name));
      }
    }
    const clean = await engram("train", "--config", trainCfg, "--clean");
    assert.equal(clean.code, 0, clean.stderr);
    assert.deepEqual(await trainingLeftovers(tr), []);
    console.log(`kill test: ${killed} of ${3 * KILLS} runs killed mid-way (seed ${seed})`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

/**
 * Nothing is lost (issue 12 §2): outputs never touch inputs, `--overwrite` replaces only engram outputs,
 * an edited model is never without its log (`revert --check` finds one that is), a log without weights
 * is refused, malformed logs are typed errors, `trace --out` is staged, training leftovers are named and
 * cleaned, a second writer of one output refuses, and saving keeps the rest of the model folder. Each case
 * runs in its own temporary folder on a tiny random model with the world tokenizer.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { EngramError, InputError } from "../src/errors.ts";
import { loadHFModel, saveHFModel } from "../src/io/hf_model.ts";
import { loadTokenizer } from "../src/io/tokenizer.ts";
import { OUTPUT_MARKER, writeDirAtomic } from "../src/io/atomic.ts";
import { acquireLock } from "../src/io/lock.ts";
import { checkOutputs } from "../src/io/output_paths.ts";
import { readEditLog } from "../src/edit/log.ts";
import { cleanTrainingLeftovers, train, trainingLeftovers } from "../src/train/trainer.ts";
import { getGpu } from "../src/gpu/device.ts";
import { parseTrainConfig } from "../src/train/config.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { engram, freshSeed } from "./_util.ts";

const WORLD = new URL("../fixtures/world/", import.meta.url).pathname;
const cfg: ModelConfig = {
  nLayer: 2,
  nHead: 2,
  nEmbd: 16,
  vocabSize: (await loadTokenizer(WORLD)).vocabSize,
  nPositions: 24,
  nInner: 64,
  layerNormEpsilon: 1e-5,
};

/** Unknown config.json fields a Hugging Face GPT-2 folder may carry (8, as the issue counted). */
const UNKNOWN_CONFIG = {
  n_special: 0,
  summary_type: "cls_index",
  summary_use_proj: true,
  summary_activation: null,
  summary_proj_to_labels: true,
  summary_first_dropout: 0.1,
  task_specific_params: { "text-generation": { do_sample: true, max_length: 50 } },
  transformers_version: "4.40.0",
};

/** A tiny model folder with the extra files a real HF folder has, and an edit command line for it. */
async function setup() {
  const tmp = await Deno.makeTempDir({ prefix: "engram_noloss_" });
  const model = join(tmp, "in", "model");
  await saveHFModel(model, {
    config: cfg,
    weights: randomGPT2(cfg, freshSeed()),
    tokenizerFrom: WORLD,
    extraConfig: { eos_token_id: 0, ...UNKNOWN_CONFIG },
  });
  await Deno.writeTextFile(join(model, "generation_config.json"), '{"max_new_tokens": 7}\n');
  await Deno.writeTextFile(join(model, "special_tokens_map.json"), '{"eos_token": "<|endoftext|>"}\n');
  await Deno.writeTextFile(join(tmp, "in", "corpus.jsonl"), '{"text":"Pilvun"}\n');
  await Deno.writeTextFile(
    join(model, "engram_stats.json"),
    JSON.stringify({ corpus: "../corpus.jsonl", eos_delimit: true, comment: "kept" }),
  );
  await Deno.mkdir(join(model, "checkpoints"));
  await Deno.writeTextFile(join(model, "checkpoints", "keep.txt"), "a training artefact");
  const edit = (...more: string[]) =>
    engram(
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
      ...more,
    );
  return { tmp, model, edit };
}

/** Every file under `dir` with its bytes (to prove an input folder did not change). */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = join(d, e.name);
      if (e.isDirectory) await walk(p);
      else out.set(p, Array.from(await Deno.readFile(p)).join(","));
    }
  };
  await walk(dir);
  return out;
}

function assertOneLineError(r: { code: number; stderr: string }, re: RegExp) {
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, re);
  assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/, "no stack trace");
}

Deno.test("--out / --log never replace, contain or lie inside an input, with --overwrite too", async () => {
  const { tmp, model, edit } = await setup();
  try {
    const before = await snapshot(join(tmp, "in"));
    await Deno.symlink(model, join(tmp, "link"));
    await Deno.writeTextFile(
      join(tmp, "req.json"),
      JSON.stringify([{ prompt: "{} is", subject: "A", target_new: "B" }]),
    );
    const cases: Array<[string[], RegExp]> = [
      [["--out", model, "--overwrite"], /--out .* is the input --model/],
      [["--out", join(tmp, "in"), "--overwrite"], /--out .* is a folder that contains the input --model/],
      [["--out", join(model, "sub"), "--overwrite"], /--out .* is inside the input --model/],
      [["--out", join(tmp, "o"), "--log", model, "--overwrite"], /--log .* is the input --model/],
      [["--out", join(tmp, "link"), "--overwrite"], /--out .* is the input --model/],
      [["--out", join(tmp, "link", "x")], /--out .* is inside the input --model/],
      [["--out", join(tmp, "o"), "--log", join(tmp, "o", "log")], /--log .* overlaps --out/],
    ];
    for (const [args, re] of cases) assertOneLineError(await edit(...args), re);
    // The requests file and the statistics corpus the model declares are inputs too.
    const base = await engram(
      "edit",
      "--method",
      "ft",
      "--model",
      model,
      "--requests",
      join(tmp, "req.json"),
      "--out",
      join(tmp, "o2"),
      "--log",
      join(tmp, "req.json"),
      "--overwrite",
    );
    assertOneLineError(base, /--log .* is the input --requests/);
    assertOneLineError(
      await edit("--out", join(tmp, "in", "corpus.jsonl"), "--overwrite"),
      /is the input the corpus of engram_stats.json/,
    );
    assert.deepEqual(await snapshot(join(tmp, "in")), before, "an input changed");
    // Library level: realpaths, and outputs that overlap each other.
    await assert.rejects(
      checkOutputs([{ path: join(tmp, "link"), flag: "--out" }], [{
        path: model,
        flag: "--model",
      }]),
      (e: unknown) => e instanceof InputError && e.field === "--out",
    );
    await checkOutputs([{ path: join(tmp, "model2"), flag: "--out" }], [{ path: model, flag: "--model" }]);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("--overwrite replaces only engram outputs, after the new one is complete", async () => {
  const { tmp, edit } = await setup();
  try {
    const out = join(tmp, "e");
    assert.equal((await edit("--out", out)).code, 0);
    const first = await Deno.readFile(join(out, "model.safetensors"));
    assertOneLineError(await edit("--out", out), /already exists \(pass --overwrite/);
    const again = await edit("--out", out, "--overwrite", "--target", "Frostwick");
    assert.equal(again.code, 0, again.stderr);
    assert.notDeepEqual(await Deno.readFile(join(out, "model.safetensors")), first);
    const names = [...Deno.readDirSync(tmp)].map((e) => e.name).sort();
    assert.deepEqual(names, ["e", "e.editlog", "in"], "no temporary, set-aside or lock files left");
    // A folder engram did not write is never replaced, even with --overwrite.
    const mine = join(tmp, "mine");
    await Deno.mkdir(mine);
    await Deno.writeTextFile(join(mine, "thesis.tex"), "years of work");
    assertOneLineError(await edit("--out", mine, "--overwrite"), /was not written by engram/);
    assertOneLineError(
      await edit("--out", join(tmp, "o"), "--log", mine, "--overwrite"),
      /was not written by engram/,
    );
    assert.equal(await Deno.readTextFile(join(mine, "thesis.tex")), "years of work");
    assert.ok(!(await exists(join(tmp, "o"))), "no model written when its log cannot be");
    // A file is not a folder engram wrote either; an empty folder holds nothing to lose.
    await Deno.writeTextFile(join(tmp, "file"), "x");
    assertOneLineError(await edit("--out", join(tmp, "file"), "--overwrite"), /is a file/);
    await Deno.mkdir(join(tmp, "empty"));
    assert.equal((await edit("--out", join(tmp, "empty"), "--overwrite")).code, 0);
    // writeDirAtomic (library) applies the same rule.
    await assert.rejects(
      writeDirAtomic(mine, { "a.txt": "x" }, { overwrite: true }),
      (e: unknown) => e instanceof EngramError && e.code === "not-engram",
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

async function exists(p: string): Promise<boolean> {
  return await Deno.lstat(p).then(() => true, () => false);
}

Deno.test("an edit whose log cannot be written writes no model; revert --check finds a model without its log", async () => {
  const { tmp, edit } = await setup();
  try {
    // The log's folder cannot be created (its parent is a file): as on a read-only or full filesystem,
    // the staging of the log fails before anything is renamed into place.
    await Deno.writeTextFile(join(tmp, "ro"), "not a folder");
    const r = await edit("--out", join(tmp, "e"), "--log", join(tmp, "ro", "log"));
    assertOneLineError(r, /--log|ro/);
    assert.ok(!(await exists(join(tmp, "e"))), "edited model written without its log");
    assert.deepEqual([...Deno.readDirSync(tmp)].map((e) => e.name).sort(), ["in", "ro"]);
    // A good edit passes the check; a missing or replaced log is reported.
    assert.equal((await edit("--out", join(tmp, "a"))).code, 0);
    assert.equal((await edit("--out", join(tmp, "b"), "--target", "Frostwick")).code, 0);
    const ok = await engram("revert", "--check", "--model", join(tmp, "a"));
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /ok: .* has its ft edit log/);
    assertOneLineError(
      await engram("revert", "--check", "--model", join(tmp, "a"), "--log", join(tmp, "b.editlog")),
      /is not the log of this edited model/,
    );
    await Deno.rename(join(tmp, "a.editlog"), join(tmp, "moved"));
    assertOneLineError(await engram("revert", "--check", "--model", join(tmp, "a")), /has no edit log/);
    await Deno.rename(join(tmp, "b.editlog"), join(tmp, "a.editlog"));
    assertOneLineError(
      await engram("revert", "--check", "--model", join(tmp, "a")),
      /is not the log of this edited model/,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("revert refuses a log without weights; malformed logs are typed errors naming file and field", async () => {
  const { tmp, edit } = await setup();
  try {
    assert.equal((await edit("--out", join(tmp, "e"))).code, 0);
    const logDir = join(tmp, "e.editlog");
    const good = JSON.parse(await Deno.readTextFile(join(logDir, "log.json")));
    const empty = join(tmp, "empty.editlog");
    await Deno.mkdir(empty);
    await Deno.copyFile(join(logDir, "original.safetensors"), join(empty, "original.safetensors"));
    await Deno.writeTextFile(join(empty, "log.json"), JSON.stringify({ ...good, weights: [] }));
    const r = await engram("revert", "--model", join(tmp, "e"), "--log", empty, "--out", join(tmp, "r"));
    assertOneLineError(r, /holds no weights/);
    assert.ok(!(await exists(join(tmp, "r"))), "a still-edited model was written as reverted");
    let deep = "0";
    for (let i = 0; i < 10000; i++) deep = `[${deep}]`;
    const w0 = good.weights[0];
    const cases: Array<[string, string]> = [
      [JSON.stringify({ ...good, weights: [null] }), "weights[0]"],
      [JSON.stringify({ ...good, version: "1" }), "version"],
      [JSON.stringify({ ...good, version: null }), "version"],
      [JSON.stringify({ ...good, weights: [{ ...w0, name: { toString: 1 } }] }), "weights[0].name"],
      [JSON.stringify({ ...good, weights: [{ ...w0, shape: [-1] }] }), "weights[0].shape"],
      [JSON.stringify({ ...good, weights: [{ ...w0, edited_sha256: "00" }] }), "weights[0].edited_sha256"],
      [JSON.stringify({ ...good, weights: [w0, w0] }), "weights[1].name"],
      [JSON.stringify({ ...good, method: 7 }), "method"],
      [JSON.stringify({ ...good, requests: {} }), "requests"],
      [`{"version": 1, "method": "ft", "weights": ${deep}}`, ""],
      [`{"version": 1, "__proto__": {"x": 1}, "method": "ft", "weights": {"length": 1}}`, "weights"],
      [`[${deep}]`, ""],
    ];
    const bad = join(tmp, "bad.editlog");
    await Deno.mkdir(bad);
    await Deno.copyFile(join(logDir, "original.safetensors"), join(bad, "original.safetensors"));
    for (const [text, field] of cases) {
      await Deno.writeTextFile(join(bad, "log.json"), text);
      await assert.rejects(readEditLog(bad), (e: unknown) => {
        assert.ok(e instanceof InputError, `${field}: ${e}`);
        assert.ok(e.message.includes(join(bad, "log.json")), e.message);
        if (field) assert.equal(e.field, field, e.message);
        assert.ok(e.message.length < 400, `long message: ${e.message.length}`);
        return true;
      });
    }
    // Through the CLI: one line, no stack.
    await Deno.writeTextFile(join(bad, "log.json"), JSON.stringify({ ...good, weights: [null] }));
    assertOneLineError(
      await engram("revert", "--model", join(tmp, "e"), "--log", bad, "--out", join(tmp, "r")),
      /weights\[0\]/,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("edit then revert keeps the rest of the model folder and its unknown config fields", async () => {
  const { tmp, model, edit } = await setup();
  try {
    const out = join(tmp, "deeper", "e");
    assert.equal((await edit("--out", out)).code, 0);
    const rev = join(tmp, "r");
    const r = await engram("revert", "--model", out, "--log", `${out}.editlog`, "--out", rev);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      await Deno.readFile(join(rev, "model.safetensors")),
      await Deno.readFile(join(model, "model.safetensors")),
    );
    const src = JSON.parse(await Deno.readTextFile(join(model, "config.json")));
    for (const dir of [out, rev]) {
      const c = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
      assert.deepEqual(c, src, `${dir}: config.json fields differ`);
      for (
        const f of [
          "generation_config.json",
          "special_tokens_map.json",
          "tokenizer.json",
          "tokenizer_config.json",
        ]
      ) {
        assert.deepEqual(
          await Deno.readFile(join(dir, f)),
          await Deno.readFile(join(model, f)),
          `${dir}/${f}`,
        );
      }
      // The statistics corpus still resolves to the same file from the new folder.
      const st = JSON.parse(await Deno.readTextFile(join(dir, "engram_stats.json")));
      assert.equal(
        await Deno.realPath(join(dir, st.corpus)),
        await Deno.realPath(join(tmp, "in", "corpus.jsonl")),
      );
      assert.equal(st.comment, "kept");
      assert.ok(await exists(join(dir, OUTPUT_MARKER)));
      assert.ok(!(await exists(join(dir, "checkpoints"))), "training checkpoints are not the edited model's");
    }
    assert.ok(await exists(join(out, "engram_edit.json")));
    assert.ok(!(await exists(join(rev, "engram_edit.json"))), "the reverted model is not an edited one");
    assert.equal((await loadHFModel(rev)).config.nLayer, 2);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("trace --out: a folder that cannot be created is a typed error; refuses folders engram did not write", async () => {
  const { tmp, model } = await setup();
  try {
    await Deno.writeTextFile(join(tmp, "f"), "x");
    const trace = (out: string) =>
      engram(
        "trace",
        "--model",
        model,
        "--prompt",
        "{} is",
        "--subject",
        "Pilvun",
        "--samples",
        "1",
        "--kind",
        "hidden",
        "--out",
        out,
      );
    assertOneLineError(await trace(join(tmp, "f", "out")), /--out/);
    await Deno.mkdir(join(tmp, "mine"));
    await Deno.writeTextFile(join(tmp, "mine", "notes.txt"), "mine");
    assertOneLineError(await trace(join(tmp, "mine")), /was not written by engram/);
    assertOneLineError(await trace(model), /is the input --model/);
    const ok = await trace(join(tmp, "t"));
    assert.equal(ok.code, 0, ok.stderr);
    const again = await trace(join(tmp, "t")); // replaces its own earlier output
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual([...Deno.readDirSync(join(tmp, "t"))].map((e) => e.name).sort(), [
      OUTPUT_MARKER,
      "report.html",
      "trace.json",
      "trace_hidden.npz",
      "trace_hidden.png",
      "trace_hidden.svg",
    ]);
    assert.equal(await Deno.readTextFile(join(tmp, "mine", "notes.txt")), "mine");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("locks: a second writer of one output refuses; a stale lock of a dead process is broken", async () => {
  const { tmp, edit } = await setup();
  const sleeper = new Deno.Command("sleep", { args: ["30"] }).spawn();
  try {
    const out = join(tmp, "e");
    // A live process holds the lock (as a concurrent edit would): the second writer refuses.
    await Deno.writeTextFile(
      `${out}.lock`,
      JSON.stringify({ pid: sleeper.pid, host: Deno.hostname(), token: "x", started: "then" }),
    );
    assertOneLineError(await edit("--out", out), new RegExp(`another engram run \\(pid ${sleeper.pid}`));
    assert.ok(!(await exists(out)));
    // Same with the log's lock.
    await Deno.rename(`${out}.lock`, `${out}.editlog.lock`);
    assertOneLineError(await edit("--out", out), /another engram run/);
    // The holder dies: its lock is stale and the next run proceeds (and removes its own lock).
    sleeper.kill("SIGKILL");
    await sleeper.status;
    const r = await edit("--out", out);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!(await exists(`${out}.lock`)) && !(await exists(`${out}.editlog.lock`)));
    // Library: within one process the lock is exclusive too; released, it can be taken again.
    const l = await acquireLock(join(tmp, "x"));
    await assert.rejects(
      acquireLock(join(tmp, "x")),
      (e: unknown) => e instanceof EngramError && e.code === "locked",
    );
    await l.release();
    await (await acquireLock(join(tmp, "x"))).release();
  } finally {
    try {
      sleeper.kill("SIGKILL");
    } catch { /* already dead */ }
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("training: work folders of killed runs are named by the next run and removed by --clean", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "engram_noloss_train_" });
  try {
    const lines = (await Deno.readTextFile(join(WORLD, "train.jsonl"))).split("\n").slice(0, 8).join("\n");
    await Deno.writeTextFile(join(tmp, "c.jsonl"), lines + "\n");
    const raw = {
      corpus: join(tmp, "c.jsonl"),
      tokenizer: WORLD,
      out: join(tmp, "out"),
      model: { n_layer: 1, n_head: 2, n_embd: 8, n_positions: 24 },
      epochs: 1,
      batch_size: 8,
      seed: 3,
    };
    await Deno.writeTextFile(join(tmp, "train.json"), JSON.stringify(raw));
    // What a run killed with -9 leaves: its work folder with a checkpoint, and its lock.
    const work = join(tmp, ".out.training-dead0001");
    await Deno.mkdir(join(work, "checkpoints", "step-000001"), { recursive: true });
    const notes: string[] = [];
    const res = await train(await getGpu(), parseTrainConfig(raw, join(tmp, "train.json")), {
      onNote: (m) => notes.push(m),
    });
    assert.equal(res.steps, 1);
    assert.ok(notes.some((n) => n.includes(work) && n.includes("--clean")), notes.join("\n"));
    assert.deepEqual(await trainingLeftovers(join(tmp, "out")), [work]);
    const clean = await engram("train", "--config", join(tmp, "train.json"), "--clean");
    assert.equal(clean.code, 0, clean.stderr);
    assert.match(clean.stdout, /removed .*\.out\.training-dead0001/);
    assert.deepEqual(await trainingLeftovers(join(tmp, "out")), []);
    assert.ok(await exists(join(tmp, "out", "model.safetensors")), "--clean keeps the finished model");
    // out must not be an input of the run.
    await assert.rejects(
      train(await getGpu(), parseTrainConfig({ ...raw, out: tmp }, join(tmp, "train.json"))),
      (e: unknown) => e instanceof InputError && /contains the input corpus/.test(e.message),
    );
    assert.deepEqual(await trainingLeftovers(join(tmp, "out")), []);
    assert.equal(await cleanTrainingLeftovers(join(tmp, "out")).then((x) => x.length), 0);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("two concurrent edits into one --out: one writes, the other refuses; model and log stay a pair", async () => {
  const { tmp, edit } = await setup();
  try {
    const out = join(tmp, "e");
    const [a, b] = await Promise.all([edit("--out", out), edit("--out", out, "--target", "Frostwick")]);
    const codes = [a.code, b.code].sort();
    assert.deepEqual(codes, [0, 1], `${a.stderr}\n${b.stderr}`);
    const loser = a.code === 1 ? a : b;
    assert.match(loser.stderr, /another engram run \(pid \d+|already exists/);
    const m = await loadHFModel(out);
    const { checkEditedModel } = await import("../src/edit/edit_link.ts");
    await checkEditedModel(out, m.weights); // the model's own log, not the other run's
    assert.deepEqual([...Deno.readDirSync(tmp)].map((e) => e.name).sort(), ["e", "e.editlog", "in"]);
    // eval's output files are checked against its inputs as well.
    const ev = await engram(
      "eval",
      "--method",
      "ft",
      "--model",
      join(tmp, "in", "model"),
      "--data",
      join(WORLD, "counterfact.json"),
      "--limit",
      "1",
      "--out",
      join(tmp, "in", "model", "results.json"),
    );
    assertOneLineError(ev, /--out .* is inside the input --model/);
    const ev2 = await engram(
      "eval",
      "--method",
      "ft",
      "--model",
      join(tmp, "in", "model"),
      "--data",
      join(WORLD, "counterfact.json"),
      "--limit",
      "1",
      "--table",
      join(WORLD, "counterfact.json"),
    );
    assertOneLineError(ev2, /--table .* is the input --data/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

/**
 * `engram edit` / `engram revert` end to end on a small random model with the world tokenizer: the
 * edited model differs only in the logged weights, revert restores model.safetensors byte for byte,
 * and bad input fails with one line naming the field.
 */
import assert from "node:assert/strict";
import { loadHFModel, saveHFModel } from "../src/io/hf_model.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { loadTokenizer } from "../src/io/tokenizer.ts";
import { gpt2ForwardRef } from "../src/reference/gpt2.ts";
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

async function setup() {
  const tmp = await Deno.makeTempDir({ prefix: "engram_edit_" });
  await saveHFModel(`${tmp}/model`, {
    config: cfg,
    weights: randomGPT2(cfg, freshSeed()),
    tokenizerFrom: WORLD,
    extraConfig: { eos_token_id: 0 },
  });
  // A small statistics corpus keeps the test fast.
  const lines = (await Deno.readTextFile(`${WORLD}/train.jsonl`)).split("\n").slice(0, 200).join("\n");
  await Deno.writeTextFile(`${tmp}/corpus.jsonl`, lines);
  await Deno.writeTextFile(
    `${tmp}/hp.json`,
    JSON.stringify({ v_num_grad_steps: 4, context_template_length_params: [[3, 5]] }),
  );
  return tmp;
}

Deno.test("edit (rome, memit) then revert restores model.safetensors byte for byte", async () => {
  const tmp = await setup();
  const common = [
    "--model",
    `${tmp}/model`,
    "--hparams",
    `${tmp}/hp.json`,
    "--stats-corpus",
    `${tmp}/corpus.jsonl`,
    "--stats-dir",
    `${tmp}/stats`,
  ];
  const rome = await engram(
    "edit",
    "--method",
    "rome",
    ...common,
    "--prompt",
    "The birthplace of {} is",
    "--subject",
    "Pilvun",
    "--target",
    "Sunmere",
    "--ground-truth",
    "Frostwick",
    "--layers",
    "0",
    "--out",
    `${tmp}/rome`,
    "--json",
  );
  assert.equal(rome.code, 0, rome.stderr);
  const summary = JSON.parse(rome.stdout);
  assert.deepEqual(summary.weights, ["h.0.mlp.c_proj.weight"]);
  // p(target_new), p(ground truth) and the rank, before and after, against the float64 forward of the
  // saved models (the editor's end-of-text prefix included).
  const tok = await loadTokenizer(WORLD);
  const [st] = summary.standing;
  for (const [when, dir] of [["before", "model"], ["after", "rome"]] as const) {
    const m = await loadHFModel(`${tmp}/${dir}`);
    const prompt = [tok.eosId!, ...tok.encode("The birthplace of Pilvun is")];
    for (const [key, word] of [["target_new", "Sunmere"], ["ground_truth", "Frostwick"]] as const) {
      const ans = tok.encode(" " + word);
      const { logits } = gpt2ForwardRef(m.config, m.weights, [...prompt, ...ans.slice(0, -1)]);
      const V = m.config.vocabSize;
      let logp = 0, rank = 1;
      ans.forEach((a, j) => {
        const row = Array.from(logits.slice((prompt.length - 1 + j) * V, (prompt.length + j) * V));
        const mx = Math.max(...row);
        logp += row[a] - mx - Math.log(row.reduce((s, x) => s + Math.exp(x - mx), 0));
        if (j === 0) rank += row.filter((x) => x > row[a]).length;
      });
      const got = st[when][key];
      assert.ok(
        Math.abs(got.p - Math.exp(logp)) <= 1e-3 * Math.exp(logp) + 1e-7,
        `${when} ${key} p ${got.p} vs ${Math.exp(logp)}`,
      );
      if (key === "target_new") assert.equal(got.rank, rank, `${when} rank`);
    }
  }
  // The warning is there exactly when target_new is not the top prediction after the edit.
  assert.equal(
    /did not make 'Sunmere' the top prediction/.test(rome.stderr),
    !st.after.target_new.top,
    rome.stderr,
  );
  const memit = await engram(
    "edit",
    "--method",
    "memit",
    ...common,
    "--requests",
    `${WORLD}/counterfact.json`,
    "--limit",
    "6",
    "--layers",
    "0",
    "--out",
    `${tmp}/memit`,
  );
  assert.equal(memit.code, 0, memit.stderr);
  const orig = await Deno.readFile(`${tmp}/model/model.safetensors`);
  for (const name of ["rome", "memit"]) {
    const edited = await loadHFModel(`${tmp}/${name}`);
    const base = await loadHFModel(`${tmp}/model`);
    const log = JSON.parse(await Deno.readTextFile(`${tmp}/${name}.editlog/log.json`));
    const changed = log.weights.map((w: { name: string }) => w.name);
    let changedLogged = 0;
    for (const [w, t] of base.weights) {
      const same = t.data.every((x, i) => Object.is(x, edited.weights.get(w)!.data[i]));
      if (!changed.includes(w)) assert.ok(same, `${name}: weight ${w} changed but is not in the log`);
      else if (!same) changedLogged++;
    }
    assert.ok(changedLogged >= 1, `${name}: no logged weight changed`);
    const rev = await engram(
      "revert",
      "--model",
      `${tmp}/${name}`,
      "--log",
      `${tmp}/${name}.editlog`,
      "--out",
      `${tmp}/${name}.reverted`,
    );
    assert.equal(rev.code, 0, rev.stderr);
    assert.deepEqual(
      await Deno.readFile(`${tmp}/${name}.reverted/model.safetensors`),
      orig,
      `${name}: reverted bytes differ`,
    );
  }
  // The wrong log is refused.
  const wrong = await engram(
    "revert",
    "--model",
    `${tmp}/rome`,
    "--log",
    `${tmp}/memit.editlog`,
    "--out",
    `${tmp}/x`,
  );
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /is not the one this log's edit produced/);
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("edit rejects bad input with one line naming the field", async () => {
  const tmp = await setup();
  const base = [
    "edit",
    "--method",
    "rome",
    "--model",
    `${tmp}/model`,
    "--hparams",
    `${tmp}/hp.json`,
    "--stats-corpus",
    `${tmp}/corpus.jsonl`,
    "--stats-dir",
    `${tmp}/stats`,
    "--out",
    `${tmp}/o`,
  ];
  const cases: Array<[string[], RegExp]> = [
    [
      ["--prompt", "The birthplace of Tarvo is", "--subject", "Pilvun", "--target", "Sunmere"],
      /subject 'Pilvun' does not occur in the prompt/,
    ],
    [["--prompt", "{} is in", "--subject", "Pilvun", "--target", " "], /--target.*must not be empty/],
    [
      ["--prompt", "{} is in", "--subject", "Pilvun", "--target", "Sunmere", "--layers", "2"],
      /layer 2 out of range: the model has layers 0..1/,
    ],
    [
      ["--prompt", "{} is in", "--subject", "Pilvun", "--target", "Sunmere", "--method", "nope"],
      /unknown --method 'nope'/,
    ],
  ];
  await Deno.writeTextFile(
    `${tmp}/bad.json`,
    JSON.stringify([{ prompt: "{} is in", subject: "A", target_new: "B" }, {
      prompt: "X is in",
      subject: "X",
    }]),
  );
  cases.push([["--requests", `${tmp}/bad.json`], /record 1: \$\.target_new: missing, expected a string/]);
  await Deno.writeTextFile(`${tmp}/hp_bad.json`, JSON.stringify({ v_lr: "fast" }));
  for (const [args, re] of cases) {
    const r = await engram(...base, ...args);
    assert.equal(r.code, 1, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split("\n").filter((l) => l.startsWith("engram")).length, 1);
    assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/);
  }
  const hpBad = await engram(
    "edit",
    "--method",
    "rome",
    "--model",
    `${tmp}/model`,
    "--hparams",
    `${tmp}/hp_bad.json`,
    "--prompt",
    "{} is in",
    "--subject",
    "A",
    "--target",
    "B",
    "--out",
    `${tmp}/o`,
  );
  assert.equal(hpBad.code, 1);
  assert.match(hpBad.stderr, /hparam 'v_lr' must be a non-negative number/);
  // Singular statistics: a one-record corpus gives a rank-deficient C, regularised with a warning.
  await Deno.writeTextFile(`${tmp}/one.jsonl`, '{"text":"Pilvun"}\n');
  const sing = await engram(
    "edit",
    "--method",
    "rome",
    "--model",
    `${tmp}/model`,
    "--hparams",
    `${tmp}/hp.json`,
    "--stats-corpus",
    `${tmp}/one.jsonl`,
    "--stats-dir",
    `${tmp}/stats`,
    "--prompt",
    "{} is in",
    "--subject",
    "Pilvun",
    "--target",
    "Sunmere",
    "--out",
    `${tmp}/sing`,
  );
  assert.equal(sing.code, 0, sing.stderr);
  assert.match(sing.stderr, /warning: layer \d+: key second moment is singular.*added .*·I/);
  const log = JSON.parse(await Deno.readTextFile(`${tmp}/sing.editlog/log.json`));
  assert.ok(log.info.statistics.regularization_lambda > 0);
  assert.equal(log.warnings.length, 1);
  await Deno.remove(tmp, { recursive: true });
});

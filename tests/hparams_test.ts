/**
 * Every editor's hparams go through one schema parser (src/edit/hparams.ts `mergeBySchema`): the same
 * checks, the same messages, reference keys that name modules ignored, unknown keys refused.
 */
import assert from "node:assert/strict";
import type { ModelConfig } from "../src/model/config.ts";
import {
  checkMemitTemplates,
  memitDefaults,
  mergeHparams,
  parseHparamsText,
  publishedModel,
  romeDefaults,
} from "../src/edit/hparams.ts";
import { ftDefaults, ftlDefaults, mergeFtHparams } from "../src/edit/ft.ts";
import { knDefaults, mergeKnHparams } from "../src/edit/kn.ts";
import { ConfigError, InputError } from "../src/errors.ts";

const cfg: ModelConfig = {
  nLayer: 3,
  nHead: 2,
  nEmbd: 8,
  vocabSize: 13,
  nPositions: 12,
  nInner: 32,
  layerNormEpsilon: 1e-5,
};

type Merge = (over: unknown, file?: string) => { layers: number[] };
const editors: [string, Merge, Record<string, unknown>][] = [
  ["rome", (o, f) => mergeHparams(romeDefaults(cfg), o, cfg, f), { v_lr: 0.1, fact_token: "last" }],
  ["memit", (o, f) => mergeHparams(memitDefaults(cfg), o, cfg, f), { mom2_update_weight: 10 }],
  ["ft", (o, f) => mergeFtHparams(ftlDefaults(cfg), o, cfg, f), { num_steps: 3, norm_constraint: false }],
  ["kn", (o, f) => mergeKnHparams(knDefaults(cfg), o, cfg, f), { p: 0.3, refine: true }],
];

for (const [name, merge, good] of editors) {
  Deno.test(`hparams (${name}): overrides, ignored reference keys, and refusals that name the field`, () => {
    const out = merge({ ...good, alg_name: "X", model_name: "gpt2", layers: [1] }) as unknown as Record<
      string,
      unknown
    >;
    for (const [k, v] of Object.entries(good)) assert.equal(out[k], k === "norm_constraint" ? 0 : v, k);
    assert.deepEqual(out.layers, [1]);
    assert.equal(out.alg_name, undefined, "ignored keys are not stored");

    assert.throws(() => merge({ bogus: 1 }, "hp.json"), (e: Error) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /unknown hparam 'bogus' \(closest: [a-z_0-9]+(, [a-z_0-9]+){2}; \d+ known\)/);
      assert.match(e.message, /hp\.json/);
      return true;
    });
    assert.throws(() => merge([1]), /must be a JSON object/);
    assert.throws(() => merge({ layers: [] }), /hparam 'layers' must be a non-empty list of layer indices/);
    assert.throws(() => merge({ layers: [3] }), InputError, "layer out of range");
    assert.throws(() => merge({ layers: [1, 0] }), /strictly increasing/);
    const [key] = Object.keys(good);
    assert.throws(() => merge({ [key]: "x" }), new RegExp(`hparam '${key}' must be`));
  });
}

Deno.test("hparams: the world model's shipped ROME / MEMIT files parse and point at the traced site", async () => {
  const { readHparamsFile } = await import("../src/edit/hparams.ts");
  const dir = new URL("../fixtures/world/model/hparams/", import.meta.url).pathname;
  const world = { ...cfg, nLayer: 2, nInner: 384 };
  const rome = mergeHparams(romeDefaults(world), await readHparamsFile(dir + "rome.json"), world);
  const memit = mergeHparams(memitDefaults(world), await readHparamsFile(dir + "memit.json"), world);
  for (const hp of [rome, memit]) {
    assert.equal(hp.fact_token, "last");
    assert.deepEqual(hp.layers, [0]);
  }
});

Deno.test("hparams: MEMIT's λ is gpt2-xl's 20000 scaled by the MLP width (nInner / 6400)", () => {
  assert.equal(memitDefaults(cfg).mom2_update_weight, (20000 * 32) / 6400);
  assert.equal(memitDefaults({ ...cfg, nInner: 6400 }).mom2_update_weight, 20000);
});

Deno.test("hparams: editor-specific rules", () => {
  const ft = (o: unknown) => mergeFtHparams(ftlDefaults(cfg), o, cfg);
  assert.equal(
    ft({ objective_optimization: "target_new" }).objective,
    "target_new",
    "EasyEdit's key is an alias",
  );
  assert.throws(() => ft({ objective: "all" }), /"prompt_last" or "target_new"/);
  assert.throws(() => ft({ num_steps: 0 }), /a positive integer/);
  assert.throws(() => ft({ norm_constraint: true }), /a non-negative number or false/);
  assert.throws(() => ft({ modules: [] }), /a non-empty list of weight names/);
  const kn = (o: unknown) => mergeKnHparams(knDefaults(cfg), o, cfg);
  assert.throws(() => kn({ adaptive_threshold: 1.5 }), /a number in \[0, 1\]/);
  assert.equal(kn({ erase_scale: -3 }).erase_scale, -3, "scales may be negative");
  assert.throws(() => kn({ add_scale: Infinity }), /a finite number/);
  const rome = (o: unknown) => mergeHparams(romeDefaults(cfg), o, cfg);
  assert.throws(() => rome({ fact_token: "first" }), /"subject_last" or "last"/);
  assert.throws(() => rome({ context_template_length_params: [[5]] }), /\[length, count\] integer pairs/);
  assert.throws(() => rome({ v_loss_layer: 0 }), /v_loss_layer 0 is not supported/);
  const d = romeDefaults(cfg);
  const pairs = d.context_template_length_params.map((p) => [...p]);
  rome({ context_template_length_params: [[1, 1]] });
  assert.deepEqual(d.context_template_length_params, pairs, "defaults are not modified");
});

// The published hparams files, method and statistics fields copied from the files (numbers are facts):
// kmeng01/rome hparams/ROME/*.json and hparams/FT/*.json at commit 0874014cd9837e4365f3e6f3c71400ef11509e04;
// kmeng01/memit hparams/MEMIT/*.json and hparams/ROME/EleutherAI_gpt-neox-20b.json at commit
// 80426fd9316cf9a50c5ba15e0912f2c2c5bfe84b. Module templates are kept for two files to show that they are
// accepted and ignored.
const SHAPES: Record<string, ModelConfig> = {
  "gpt2-medium": {
    nLayer: 24,
    nHead: 16,
    nEmbd: 1024,
    vocabSize: 50257,
    nPositions: 1024,
    nInner: 4096,
    layerNormEpsilon: 1e-5,
  },
  "gpt2-large": {
    nLayer: 36,
    nHead: 20,
    nEmbd: 1280,
    vocabSize: 50257,
    nPositions: 1024,
    nInner: 5120,
    layerNormEpsilon: 1e-5,
  },
  "gpt2-xl": {
    nLayer: 48,
    nHead: 25,
    nEmbd: 1600,
    vocabSize: 50257,
    nPositions: 1024,
    nInner: 6400,
    layerNormEpsilon: 1e-5,
  },
  "gpt-j-6B": {
    nLayer: 28,
    nHead: 16,
    nEmbd: 4096,
    vocabSize: 50400,
    nPositions: 2048,
    nInner: 16384,
    layerNormEpsilon: 1e-5,
    family: "gptj",
    architecture: "GPTJForCausalLM",
    rope: { dim: 64, style: "interleaved", theta: 10000, maxPositionEmbeddings: 2048 },
    parallelResidual: "one_norm",
    qkvBias: false,
    attnOutBias: false,
    headBias: true,
  },
  "gpt-neox-20b": {
    nLayer: 44,
    nHead: 64,
    nEmbd: 6144,
    vocabSize: 50432,
    nPositions: 2048,
    nInner: 24576,
    layerNormEpsilon: 1e-5,
    family: "neox",
    architecture: "GPTNeoXForCausalLM",
    rope: { dim: 24, style: "half", theta: 10000, maxPositionEmbeddings: 2048 },
    parallelResidual: "two_norms",
  },
};
const romeFile = (layer: number, lossLayer: number, clamp: number) => ({
  layers: [layer],
  fact_token: "subject_last",
  v_num_grad_steps: 20,
  v_lr: 5e-1,
  v_loss_layer: lossLayer,
  v_weight_decay: 0.5,
  clamp_norm_factor: clamp,
  kl_factor: 0.0625,
  mom2_adjustment: true,
  context_template_length_params: [[5, 10], [10, 10]],
  mom2_dataset: "wikipedia",
  mom2_n_samples: 100000,
  mom2_dtype: "float32",
});
const ROME_PUBLISHED: [string, Record<string, unknown>][] = [
  ["gpt2-medium", romeFile(8, 23, 3)],
  ["gpt2-large", romeFile(12, 35, 4)],
  ["gpt2-xl", {
    ...romeFile(17, 47, 4),
    rewrite_module_tmp: "transformer.h.{}.mlp.c_proj",
    layer_module_tmp: "transformer.h.{}",
    mlp_module_tmp: "transformer.h.{}.mlp",
    attn_module_tmp: "transformer.h.{}.attn",
    ln_f_module: "transformer.ln_f",
    lm_head_module: "transformer.wte",
  }],
  ["gpt-j-6B", romeFile(5, 27, 4)],
  ["gpt-neox-20b", romeFile(15, 43, 4)],
];
const MEMIT_PUBLISHED: [string, Record<string, unknown>][] = [
  ["gpt2-xl", {
    layers: [13, 14, 15, 16, 17],
    clamp_norm_factor: 0.75,
    layer_selection: "all",
    fact_token: "subject_last",
    v_num_grad_steps: 20,
    v_lr: 5e-1,
    v_loss_layer: 47,
    v_weight_decay: 0.5,
    kl_factor: 0.0625,
    mom2_adjustment: true,
    mom2_update_weight: 20000,
    mom2_dataset: "wikipedia",
    mom2_n_samples: 100000,
    mom2_dtype: "float32",
  }],
  ["gpt-j-6B", {
    layers: [3, 4, 5, 6, 7, 8],
    clamp_norm_factor: 0.75,
    layer_selection: "all",
    fact_token: "subject_last",
    v_num_grad_steps: 25,
    v_lr: 5e-1,
    v_loss_layer: 27,
    v_weight_decay: 0.5,
    kl_factor: 0.0625,
    mom2_adjustment: true,
    mom2_update_weight: 15000,
    rewrite_module_tmp: "transformer.h.{}.mlp.fc_out",
    mom2_dataset: "wikipedia",
    mom2_n_samples: 100000,
    mom2_dtype: "float32",
  }],
];
const ftFile = (layer: number, eps: number | false) => ({
  layers: [layer],
  num_steps: 25,
  lr: 5e-4,
  weight_decay: 0,
  kl_factor: 0,
  norm_constraint: eps,
});
const FTL_PUBLISHED: [string, Record<string, unknown>][] = [
  ["gpt2-medium", ftFile(0, 2e-3)],
  ["gpt2-large", ftFile(0, 1e-3)],
  ["gpt2-xl", ftFile(0, 5e-4)],
  ["gpt-j-6B", ftFile(0, 5e-5)],
];
const FT_PUBLISHED: [string, Record<string, unknown>][] = [
  ["gpt2-xl", ftFile(1, false)],
  ["gpt-j-6B", ftFile(21, false)],
];

/** Every field of the file that engram has equals engram's default; reading the file changes nothing. */
function assertDefaultsAreFile(
  defaults: Record<string, unknown>,
  file: Record<string, unknown>,
  merged: unknown,
  what: string,
) {
  let compared = 0;
  for (const [k, v] of Object.entries(file)) {
    if (!(k in defaults)) continue;
    assert.deepEqual(defaults[k], k === "norm_constraint" && v === false ? 0 : v, `${what}: ${k}`);
    compared++;
  }
  assert.ok(compared >= 5, `${what}: compared ${compared} fields`);
  assert.deepEqual(merged, defaults, `${what}: the file as overrides changes no default`);
}

for (const [name, file] of ROME_PUBLISHED) {
  Deno.test(`hparams: ROME defaults at ${name}'s shape are kmeng01's hparams/ROME file, field by field`, () => {
    const c = SHAPES[name];
    const d = romeDefaults(c);
    assertDefaultsAreFile(
      d as unknown as Record<string, unknown>,
      file,
      mergeHparams(d, file, c),
      `ROME ${name}`,
    );
  });
}
for (const [name, file] of MEMIT_PUBLISHED) {
  Deno.test(`hparams: MEMIT defaults at ${name}'s shape are kmeng01/memit's hparams/MEMIT file, field by field`, () => {
    const c = SHAPES[name];
    const d = memitDefaults(c);
    assertDefaultsAreFile(
      d as unknown as Record<string, unknown>,
      file,
      mergeHparams(d, file, c),
      `MEMIT ${name}`,
    );
    assert.deepEqual(d.context_template_length_params, [[10, 5]], "memit_main.py get_context_templates");
  });
}
for (const [name, file] of FTL_PUBLISHED) {
  Deno.test(`hparams: FT-L defaults at ${name}'s shape are ROME's hparams/FT/${name}_constr.json (ε per size, lr 5e-4)`, () => {
    const c = SHAPES[name];
    const d = ftlDefaults(c);
    assertDefaultsAreFile(
      d as unknown as Record<string, unknown>,
      file,
      mergeFtHparams(d, file, c),
      `FT-L ${name}`,
    );
  });
}
for (const [name, file] of FT_PUBLISHED) {
  Deno.test(`hparams: FT defaults at ${name}'s shape are ROME's hparams/FT/${name}_unconstr.json`, () => {
    const c = SHAPES[name];
    const d = ftDefaults(c);
    assertDefaultsAreFile(
      d as unknown as Record<string, unknown>,
      file,
      mergeFtHparams(d, file, c),
      `FT ${name}`,
    );
  });
}

Deno.test("hparams: other shapes scale from gpt2-xl (documented rules), with no data set", () => {
  // gpt2 (small) has no published file.
  const small: ModelConfig = { ...SHAPES["gpt2-medium"], nLayer: 12, nHead: 12, nEmbd: 768, nInner: 3072 };
  assert.equal(publishedModel(small), undefined);
  const r = romeDefaults(small);
  assert.deepEqual(r.layers, [4]); // ⌊17/48 · 12⌋
  assert.equal(r.clamp_norm_factor, 4);
  assert.equal(r.v_loss_layer, 11);
  assert.equal(r.mom2_dataset, "", "no Wikipedia statistics: the corpus must come from the folder or a flag");
  const m = memitDefaults(small);
  assert.deepEqual(m.layers, [4]); // a window of round(5/48 · 12) = 1 layer ending at the ROME layer
  assert.equal(m.mom2_update_weight, (20000 * 3072) / 6400);
  const f = ftlDefaults(small);
  assert.equal(f.lr, 5e-4 * (6400 / 3072));
  assert.equal(f.norm_constraint, 5e-4 * (6400 / 3072));
  // A shape matching a published model in depth and width but not MLP width is not that model.
  assert.equal(publishedModel({ ...SHAPES["gpt2-xl"], nInner: 6401 }), undefined);
  assert.equal(romeDefaults({ ...SHAPES["gpt2-medium"], nInner: 4000 }).clamp_norm_factor, 4);
  // MEMIT at a shape with a ROME file but no MEMIT file ends its window at ROME's layer.
  assert.deepEqual(memitDefaults(SHAPES["gpt2-medium"]).layers, [6, 7, 8]);
});

Deno.test("MEMIT refuses a template count below 5 (count / 5 per seed word would leave an empty group)", () => {
  const hp = mergeHparams(memitDefaults(cfg), { context_template_length_params: [[4, 3]] }, cfg, "hp.json");
  assert.throws(
    () => checkMemitTemplates(hp, "hp.json"),
    (e: unknown) =>
      e instanceof ConfigError && e.field === "context_template_length_params" && e.file === "hp.json",
  );
  for (const ok of [[[10, 5]], [[4, 0]], [[6, 7], [3, 10]]] as [number, number][][]) {
    checkMemitTemplates({ ...hp, context_template_length_params: ok });
  }
});

Deno.test("KN's IG follows EasyEdit's vendored EleutherAI code by default; Dai et al.'s rule is an option", () => {
  const d = knDefaults(cfg);
  assert.deepEqual([d.ig_points, d.ig_activation, d.ig_strict], ["linspace", "pre", true]);
  const dai = mergeKnHparams(
    d,
    { ig_points: "left", ig_activation: "post", ig_strict: false },
    cfg,
    "kn.json",
  );
  assert.deepEqual([dai.ig_points, dai.ig_activation, dai.ig_strict], ["left", "post", false]);
  assert.throws(
    () => mergeKnHparams(d, { ig_points: "midpoint" }, cfg, "kn.json"),
    (e: unknown) => e instanceof ConfigError && e.field === "ig_points",
  );
});

for (const [name, merge] of editors) {
  Deno.test(`hparams (${name}): prototype-named keys are unknown keys, values are excerpted, the file is named`, () => {
    for (const k of ["valueOf", "hasOwnProperty", "__proto__", "constructor", "toString", "isPrototypeOf"]) {
      // Through the strict parser (the file reader) and through JSON.parse (library callers).
      const text = `{"${k}": 1}`;
      for (const over of [parseHparamsText(text, "hp.json"), JSON.parse(text)]) {
        assert.throws(() => merge(over, "hp.json"), (e: Error) => {
          assert.ok(e instanceof ConfigError, `${k}: ${e}`);
          assert.match(e.message, new RegExp(`^hp\\.json.*unknown hparam '${k}'`));
          return true;
        });
      }
    }
    let deep: unknown = 1;
    for (let i = 0; i < 10000; i++) deep = [deep];
    const [key] = Object.keys(editors.find((e) => e[0] === name)![2]);
    for (const v of [deep, "x".repeat(100000), { toString: 1 }]) {
      assert.throws(() => merge({ [key]: v }, "hp.json"), (e: Error) => {
        assert.ok(e instanceof ConfigError, String(e));
        assert.ok(e.message.length < 200, `a ${e.message.length}-character message`);
        assert.match(e.message, /^hp\.json/);
        return true;
      });
    }
    // Without a file, errors name the flag.
    assert.throws(() => merge({ bogus: 1 }), /field '--hparams'/);
  });
}

Deno.test("parseHparamsText: duplicate keys, deep nesting and non-objects are ConfigErrors naming the file", () => {
  const cases: [string, RegExp][] = [
    ['{"v_lr": 1, "v_lr": 2}', /duplicate key/],
    ["[".repeat(10000) + "]".repeat(10000), /nested deeper than 32/],
    ["[1]", /must be a JSON object, got an array/],
    ['{"v_lr": ', /not valid JSON/],
  ];
  for (const [text, re] of cases) {
    assert.throws(() => parseHparamsText(text, "dir/hp.json"), (e: Error) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.match(e.message, /^dir\/hp\.json/);
      assert.match(e.message, re);
      assert.ok(e.message.length < 300);
      return true;
    });
  }
  const ok = parseHparamsText('{"v_lr": 0.5, "comment": "x"}', "hp.json") as Record<string, unknown>;
  assert.equal(mergeHparams(romeDefaults(cfg), ok, cfg, "hp.json").v_lr, 0.5);
});

// zjunlp/EasyEdit's files for the Llama family, at commit 14cea8245f06715684592ab55184939b99d70784:
// hparams/ROME/*.yaml, hparams/MEMIT/*.yaml and hparams/FT/*.yaml, every key as the file has it (YAML
// read as JSON; numbers are facts). The configs are the Hugging Face config.json values of the checkpoints
// the files name (NOTES-hparams.md says where they were read).
const llama = (
  architecture: string,
  [nLayer, nEmbd, nInner, nHead, nKvHead, vocabSize]: number[],
  theta: number,
  nPositions: number,
  extra: Partial<ModelConfig> = {},
): ModelConfig => ({
  nLayer,
  nHead,
  nEmbd,
  vocabSize,
  nPositions,
  nInner,
  layerNormEpsilon: 1e-5,
  family: "llama",
  architecture,
  nKvHead,
  norm: "rmsnorm",
  activation: "silu",
  rope: { dim: nEmbd / nHead, style: "half", theta, maxPositionEmbeddings: nPositions },
  qkvBias: false,
  attnOutBias: false,
  mlpBias: false,
  ...extra,
});
const LLAMA_SHAPES: Record<string, ModelConfig> = {
  "llama-7b": llama("LlamaForCausalLM", [32, 4096, 11008, 32, 32, 32000], 10000, 4096),
  "llama3-8b": llama("LlamaForCausalLM", [32, 4096, 14336, 32, 8, 128256], 500000, 8192),
  "llama3.2-3b": llama("LlamaForCausalLM", [28, 3072, 8192, 24, 8, 128256], 500000, 131072),
  "mistral-7b": llama("MistralForCausalLM", [32, 4096, 14336, 32, 8, 32000], 10000, 32768, {
    slidingWindow: 4096,
  }),
  "qwen2.5-7b": llama("Qwen2ForCausalLM", [28, 3584, 18944, 28, 4, 152064], 1000000, 131072, {
    qkvBias: true,
    layerNormEpsilon: 1e-6,
  }),
};
const LLAMA_MODULES = {
  rewrite_module_tmp: "model.layers.{}.mlp.down_proj",
  layer_module_tmp: "model.layers.{}",
  mlp_module_tmp: "model.layers.{}.mlp",
  attn_module_tmp: "model.layers.{}.self_attn",
  ln_f_module: "model.norm",
  lm_head_module: "lm_head",
};
const easyRome = (model: string, lossLayer: number, fp16?: boolean) => ({
  alg_name: "ROME",
  model_name: `./hugging_cache/${model}`,
  stats_dir: "./data/stats",
  device: 0,
  layers: [5],
  fact_token: "subject_last",
  v_num_grad_steps: 25,
  v_lr: 5e-1,
  v_loss_layer: lossLayer,
  v_weight_decay: 1e-3,
  clamp_norm_factor: 4,
  kl_factor: 0.0625,
  mom2_adjustment: false,
  context_template_length_params: [[5, 10], [10, 10]],
  ...LLAMA_MODULES,
  mom2_dataset: "wikipedia",
  mom2_n_samples: 100000,
  mom2_dtype: "float32",
  model_parallel: false,
  ...(fp16 === undefined ? {} : { fp16 }),
});
const EASY_ROME: [string, Record<string, unknown>][] = [
  ["llama-7b", easyRome("llama-2-7b-chat", 31)],
  ["llama3-8b", easyRome("Llama-3-8B", 31, true)],
  ["llama3.2-3b", easyRome("Llama3.2-3B", 27, true)],
  ["mistral-7b", easyRome("Mistral-7B-v0.1", 31, false)],
  ["qwen2.5-7b", easyRome("Qwen2.5-7B", 27, false)],
];
const easyMemit = (model: string, lossLayer: number, lmHead = "lm_head") => ({
  alg_name: "MEMIT",
  model_name: `./hugging_cache/${model}`,
  stats_dir: "./data/stats",
  device: 0,
  layers: [4, 5, 6, 7, 8],
  clamp_norm_factor: 4,
  layer_selection: "all",
  fact_token: "subject_last",
  v_num_grad_steps: 25,
  v_lr: 5e-1,
  v_loss_layer: lossLayer,
  v_weight_decay: 1e-3,
  kl_factor: 0.0625,
  mom2_adjustment: true,
  mom2_update_weight: 15000,
  ...LLAMA_MODULES,
  lm_head_module: lmHead,
  mom2_dataset: "wikipedia",
  mom2_n_samples: 100000,
  mom2_dtype: "float32",
  model_parallel: false,
});
const EASY_MEMIT: [string, Record<string, unknown>][] = [
  ["llama-7b", easyMemit("llama-2-7b", 31)],
  ["llama3.2-3b", easyMemit("llama-3.2-3b", 27, "model.embed_tokens")],
  ["mistral-7b", easyMemit("Mistral-7B-v0.1", 31)],
  ["qwen2.5-7b", easyMemit("Qwen2.5-7B", 27)],
];
const easyFt = (model: string, layer: number, eps: number | false) => ({
  alg_name: "FT",
  model_name: `./hugging_cache/${model}`,
  device: 0,
  layers: [layer],
  num_steps: 25,
  batch_size: 1,
  max_length: 40,
  lr: 5e-4,
  weight_decay: 0,
  kl_factor: 0,
  norm_constraint: eps,
  objective_optimization: "prompt_last",
  ...LLAMA_MODULES,
  rewrite_module_tmp: "model.layers.{}.mlp.down_proj.weight",
  model_parallel: false,
});
// [shape, file, constrained (FT-L) or not (FT)]
const EASY_FT: [string, Record<string, unknown>, boolean][] = [
  ["llama-7b", easyFt("llama-2-7b", 21, false), false],
  ["llama3-8b", easyFt("llama-3-8b", 21, false), false],
  ["llama3.2-3b", easyFt("Llama-3.2-3B", 21, false), false],
  ["mistral-7b", easyFt("Mistral-7B-v0.1", 21, 5e-5), true],
  ["qwen2.5-7b", easyFt("Qwen2.5-7B", 27, false), false],
];

for (const [name, file] of EASY_ROME) {
  Deno.test(`hparams: ROME defaults at ${name} are EasyEdit's hparams/ROME/${name}.yaml, field by field`, () => {
    const c = LLAMA_SHAPES[name];
    const d = romeDefaults(c);
    assertDefaultsAreFile(d as unknown as Record<string, unknown>, file, mergeHparams(d, file, c), name);
    // The fields that differ from kmeng01's GPT files, spelled out once more.
    assert.deepEqual(
      [d.layers, d.v_num_grad_steps, d.v_weight_decay, d.mom2_adjustment, d.v_loss_layer],
      [[5], 25, 1e-3, false, c.nLayer - 1],
    );
  });
}
for (const [name, file] of EASY_MEMIT) {
  Deno.test(`hparams: MEMIT defaults at ${name} are EasyEdit's hparams/MEMIT/${name}.yaml, field by field`, () => {
    const c = LLAMA_SHAPES[name];
    const d = memitDefaults(c);
    assertDefaultsAreFile(d as unknown as Record<string, unknown>, file, mergeHparams(d, file, c), name);
    assert.deepEqual(
      [d.layers, d.clamp_norm_factor, d.v_weight_decay, d.mom2_update_weight, d.mom2_dataset],
      [[4, 5, 6, 7, 8], 4, 1e-3, 15000, "wikipedia"],
    );
    assert.deepEqual(
      d.context_template_length_params,
      [[10, 5]],
      "EasyEdit memit_main.py hard-codes (10, 5)",
    );
  });
}
for (const [name, file, constr] of EASY_FT) {
  const editor = constr ? "FT-L" : "FT";
  Deno.test(`hparams: ${editor} defaults at ${name} are EasyEdit's hparams/FT/${name}.yaml`, () => {
    const c = LLAMA_SHAPES[name];
    const d = constr ? ftlDefaults(c) : ftDefaults(c);
    assertDefaultsAreFile(d as unknown as Record<string, unknown>, file, mergeFtHparams(d, file, c), name);
    assert.equal(d.objective, "prompt_last");
    assert.deepEqual(d.modules, ["mlp.down_proj.weight"], "EasyEdit's rewrite_module_tmp");
  });
}

Deno.test("hparams: a published model is matched by family, architecture and shape, not by numbers alone", () => {
  const L = LLAMA_SHAPES;
  const names = Object.fromEntries(Object.entries(L).map(([k, c]) => [k, publishedModel(c)]));
  assert.deepEqual(names, {
    "llama-7b": "meta-llama/Llama-2-7b",
    "llama3-8b": "meta-llama/Meta-Llama-3-8B",
    "llama3.2-3b": "meta-llama/Llama-3.2-3B",
    "mistral-7b": "mistralai/Mistral-7B-v0.1",
    "qwen2.5-7b": "Qwen/Qwen2.5-7B",
  });
  assert.equal(publishedModel(SHAPES["gpt-j-6B"]), "EleutherAI/gpt-j-6B");
  assert.equal(publishedModel(SHAPES["gpt-neox-20b"]), "EleutherAI/gpt-neox-20b");
  // GPT-2-family configs with Llama, GPT-J and NeoX numbers are none of them.
  const gpt2Like = (c: ModelConfig): ModelConfig => ({
    nLayer: c.nLayer,
    nHead: c.nHead,
    nEmbd: c.nEmbd,
    vocabSize: c.vocabSize,
    nPositions: c.nPositions,
    nInner: c.nInner,
    layerNormEpsilon: c.layerNormEpsilon,
  });
  for (const c of [...Object.values(L), SHAPES["gpt-j-6B"], SHAPES["gpt-neox-20b"]]) {
    assert.equal(publishedModel(gpt2Like(c)), undefined, `gpt2 with ${c.architecture}'s numbers`);
    assert.equal(publishedModel({ ...gpt2Like(c), family: "gpt2" }), undefined);
  }
  const r = romeDefaults(gpt2Like(L["llama-7b"]));
  assert.deepEqual(
    [r.layers, r.v_num_grad_steps, r.v_weight_decay, r.mom2_adjustment, r.mom2_dataset],
    [[11], 20, 0.5, true, ""],
    "the scaled gpt2-xl rules (⌊17/48 · 32⌋ = 11), not EasyEdit's Llama file",
  );
  assert.equal(ftDefaults(gpt2Like(L["llama-7b"])).layers[0], 1, "not EasyEdit's FT layer 21");
  // A Llama with GPT-J's numbers is not GPT-J; GPT-J's numbers in the NeoX family neither.
  const j = SHAPES["gpt-j-6B"];
  assert.equal(publishedModel({ ...L["llama-7b"], nLayer: 28, nEmbd: 4096, nInner: 16384 }), undefined);
  assert.equal(publishedModel({ ...j, family: "llama", architecture: "LlamaForCausalLM" }), undefined);
  assert.equal(publishedModel({ ...j, family: "neox" }), undefined);
  // In the Llama family the architecture decides: Mistral's numbers with Llama's architecture and the
  // reverse, Qwen2.5's numbers as Qwen3, and a Llama-family config with no architecture.
  assert.equal(publishedModel({ ...L["mistral-7b"], architecture: "LlamaForCausalLM" }), undefined);
  assert.equal(publishedModel({ ...L["llama3-8b"], architecture: "MistralForCausalLM" }), undefined);
  assert.equal(publishedModel({ ...L["qwen2.5-7b"], architecture: "Qwen3ForCausalLM" }), undefined);
  assert.equal(publishedModel({ ...L["llama-7b"], architecture: undefined }), undefined);
  // Hidden fields tell apart same-shape releases: Mistral v0.3 (vocab 32768), v0.2 (rope_theta 1e6),
  // a Llama-2-7B with grouped-query attention, a Llama-3-8B with 32 heads of 128 and an extended vocab.
  assert.equal(publishedModel({ ...L["mistral-7b"], vocabSize: 32768 }), undefined);
  const v02 = L["mistral-7b"];
  assert.equal(publishedModel({ ...v02, rope: { ...v02.rope!, theta: 1e6 } }), undefined);
  assert.equal(publishedModel({ ...L["llama-7b"], nKvHead: 8 }), undefined);
  assert.equal(publishedModel({ ...L["llama3-8b"], vocabSize: 128258 }), undefined);
  assert.equal(publishedModel({ ...L["llama3.2-3b"], nHead: 32, nKvHead: 8 }), undefined);
  assert.equal(publishedModel({ ...L["qwen2.5-7b"], rope: undefined }), undefined);
});

Deno.test("hparams: Llama-3-8B has EasyEdit ROME and FT files but no MEMIT file: MEMIT takes the scaled rules", () => {
  const c = LLAMA_SHAPES["llama3-8b"];
  const m = memitDefaults(c);
  // A window of round(5/48 · 32) = 3 layers ending at the published ROME layer 5; λ 20000 · 14336 / 6400.
  assert.deepEqual(m.layers, [3, 4, 5]);
  assert.equal(m.mom2_update_weight, 44800);
  assert.equal(m.clamp_norm_factor, 0.75);
  assert.equal(m.mom2_dataset, "wikipedia", "a published model: the Wikipedia statistics are named");
});

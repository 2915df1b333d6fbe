/**
 * Hugging Face folders of every family (GPT-2, Llama, Mistral, Qwen2, Qwen3, GPT-NeoX, GPT-J), written by
 * the independent writer in ./_hf_fixtures.ts: config fields, every weight bit for bit in F32, F16 and
 * BF16, sharded checkpoints, ignored buffers, tied and untied heads, save and reload, and each bad input
 * of issue 13 as a typed error naming file and field (also through the CLI).
 */
import assert from "node:assert/strict";
import { ConfigError, type EngramError, SafetensorsError } from "../src/errors.ts";
import { configToHF, loadHFModel, parseHFConfig, saveHFModel } from "../src/io/hf_model.ts";
import { readSafetensors, serializeSafetensors } from "../src/io/safetensors.ts";
import type { HostTensor } from "../src/model/config.ts";
import { resolveConfig } from "../src/model/config.ts";
import { type TinyCheckpoint, type TinyFamily, writeTinyCheckpoint } from "./_hf_fixtures.ts";
import { engram } from "./_util.ts";

const FAMILIES: TinyFamily[] = ["gpt2", "llama", "mistral", "qwen2", "qwen3", "gpt_neox", "gptj"];

async function withTmp(fn: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = await Deno.makeTempDir();
  try {
    await fn(tmp);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

/** The bits of a float32 array (NaN payloads and signed zeros compared exactly). */
function bits(a: Float32Array): Uint32Array {
  return new Uint32Array(a.slice().buffer);
}

/** Every weight loaded from `dir` equals the writer's, bit for bit, under the same names and shapes. */
async function assertSameWeights(dir: string, ck: TinyCheckpoint) {
  const m = await loadHFModel(dir);
  assert.deepEqual([...m.weights.keys()].sort(), [...ck.weights.keys()].sort());
  for (const [name, t] of ck.weights) {
    const got = m.weights.get(name)!;
    assert.deepEqual(got.shape, t.shape, name);
    assert.deepEqual(bits(got.data), bits(t.data), name);
  }
  return m;
}

async function assertLoadError(
  dir: string,
  cls: abstract new (...args: never[]) => EngramError,
  file: RegExp,
  field: string | RegExp,
  re: RegExp,
) {
  await assert.rejects(loadHFModel(dir), (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e}`);
    assert.match(e.file ?? "", file, e.message);
    assert.match(e.message, file);
    if (typeof field === "string") assert.equal(e.field, field, e.message);
    else assert.match(e.field ?? "", field, e.message);
    assert.match(e.message, re);
    return true;
  });
}

Deno.test("every family loads: config fields as transformers reads them, weights bit for bit, buffers ignored", async () => {
  await withTmp(async (tmp) => {
    const configs: Record<string, unknown> = {};
    for (const family of FAMILIES) {
      const ck = await writeTinyCheckpoint(`${tmp}/${family}`, { family, extraBuffers: true, seed: 3 });
      const m = await assertSameWeights(`${tmp}/${family}`, ck);
      assert.equal(m.modelType, family);
      configs[family] = m.config;
    }
    assert.deepEqual(configs.gpt2, {
      nLayer: 2,
      nHead: 3,
      nEmbd: 12,
      vocabSize: 17,
      nPositions: 32,
      nInner: 48,
      layerNormEpsilon: 1e-5,
    });
    const llama = {
      nLayer: 2,
      nHead: 3,
      nEmbd: 12,
      vocabSize: 17,
      nPositions: 32,
      nInner: 20,
      layerNormEpsilon: 1e-5,
      family: "llama",
      architecture: "LlamaForCausalLM",
      nKvHead: 1,
      headDim: 4,
      norm: "rmsnorm",
      activation: "silu",
      rope: { dim: 4, style: "half", theta: 10000, maxPositionEmbeddings: 32 },
      parallelResidual: "none",
      qkvBias: false,
      attnOutBias: false,
      mlpBias: false,
      headBias: false,
      qkNorm: false,
    };
    assert.deepEqual(configs.llama, llama);
    assert.deepEqual(configs.mistral, { ...llama, architecture: "MistralForCausalLM", slidingWindow: 5 });
    assert.deepEqual(configs.qwen2, {
      ...llama,
      architecture: "Qwen2ForCausalLM",
      layerNormEpsilon: 1e-6,
      rope: { ...llama.rope, theta: 1e6 },
      qkvBias: true,
    });
    assert.deepEqual(configs.qwen3, {
      ...llama,
      architecture: "Qwen3ForCausalLM",
      layerNormEpsilon: 1e-6,
      headDim: 6,
      rope: { ...llama.rope, dim: 6, theta: 1e6 },
      qkNorm: true,
    });
    assert.deepEqual(configs.gpt_neox, {
      ...llama,
      family: "neox",
      architecture: "GPTNeoXForCausalLM",
      nKvHead: 3,
      norm: "layernorm",
      activation: "gelu_erf",
      rope: { dim: 2, style: "half", theta: 10000, maxPositionEmbeddings: 32 },
      parallelResidual: "two_norms",
      qkvBias: true,
      attnOutBias: true,
      mlpBias: true,
    });
    assert.deepEqual(configs.gptj, {
      ...llama,
      family: "gptj",
      architecture: "GPTJForCausalLM",
      nKvHead: 3,
      norm: "layernorm",
      activation: "gelu_tanh",
      rope: { dim: 2, style: "interleaved", theta: 10000, maxPositionEmbeddings: 32 },
      parallelResidual: "one_norm",
      mlpBias: true,
      headBias: true,
    });
  });
});

Deno.test("names without the base-model prefix load too; a name stored both ways is refused", async () => {
  await withTmp(async (tmp) => {
    for (const family of ["qwen3", "gpt_neox", "gptj"] as const) {
      const dir = `${tmp}/${family}`;
      const ck = await writeTinyCheckpoint(dir, { family, extraBuffers: true });
      const f = await readSafetensors(`${dir}/model.safetensors`);
      const prefix = family === "qwen3" ? "model." : family === "gpt_neox" ? "gpt_neox." : "transformer.";
      const stripped = new Map<string, HostTensor>();
      for (const [name, t] of f.tensors) {
        if (t.dtype === "F32") {
          stripped.set(name.startsWith(prefix) ? name.slice(prefix.length) : name, t.toHost());
        }
      }
      await Deno.writeFile(`${dir}/model.safetensors`, serializeSafetensors(stripped));
      await assertSameWeights(dir, ck);
      const first = [...ck.hfNames.values()].find((n) => n.startsWith(prefix))!;
      stripped.set(first, stripped.get(first.slice(prefix.length))!);
      await Deno.writeFile(`${dir}/model.safetensors`, serializeSafetensors(stripped));
      const either = new RegExp(
        `^(${prefix.replace(".", "\\.")})?${first.slice(prefix.length).replaceAll(".", "\\.")}$`,
      );
      await assertLoadError(dir, SafetensorsError, /model\.safetensors/, either, /stored twice/);
    }
  });
});

Deno.test("F16 and BF16 files load as the writer's independent decoding, sharded or not", async () => {
  await withTmp(async (tmp) => {
    let n = 0;
    for (const family of FAMILIES) {
      for (const dtype of ["F16", "BF16"] as const) {
        const dir = `${tmp}/${family}-${dtype}`;
        const ck = await writeTinyCheckpoint(dir, { family, dtype, shards: n++ % 3 + 1, seed: n });
        await assertSameWeights(dir, ck);
        // The writer's tiny values (F16 subnormals) came through.
        const all = [...ck.weights.values()].flatMap((t) => Array.from(t.data));
        assert.ok(
          all.some((x) => x !== 0 && Math.abs(x) < 6.1e-5),
          `${family} ${dtype}: a tiny value survives`,
        );
      }
    }
  });
});

Deno.test("sharded checkpoints: every shard read, the index and shards must agree", async () => {
  await withTmp(async (tmp) => {
    const ck = await writeTinyCheckpoint(`${tmp}/ok`, { family: "llama", shards: 3, extraBuffers: true });
    assert.equal(ck.files.length, 5);
    const m = await assertSameWeights(`${tmp}/ok`, ck);
    assert.equal(m.weightFiles.length, 4);
    assert.match(m.weightFiles[0], /model\.safetensors\.index\.json$/);

    // A missing shard names the shard and the index.
    await writeTinyCheckpoint(`${tmp}/noshard`, { family: "gpt_neox", shards: 2 });
    await Deno.remove(`${tmp}/noshard/model-00002-of-00002.safetensors`);
    await assertLoadError(
      `${tmp}/noshard`,
      SafetensorsError,
      /model-00002-of-00002\.safetensors/,
      /^gpt_neox\.layers\.1\./,
      /shard 'model-00002-of-00002\.safetensors' is missing: .*model\.safetensors\.index\.json/,
    );

    // An index naming a tensor its shard does not hold.
    const absent = `${tmp}/absent`;
    await writeTinyCheckpoint(absent, { family: "qwen3", shards: 2 });
    const index = JSON.parse(await Deno.readTextFile(`${absent}/model.safetensors.index.json`));
    index.weight_map["model.layers.0.self_attn.q_norm.bias"] = "model-00001-of-00002.safetensors";
    await Deno.writeTextFile(`${absent}/model.safetensors.index.json`, JSON.stringify(index));
    await assertLoadError(
      absent,
      SafetensorsError,
      /model-00001-of-00002\.safetensors/,
      "model.layers.0.self_attn.q_norm.bias",
      /index .*maps tensor 'model\.layers\.0\.self_attn\.q_norm\.bias' to shard 'model-00001-of-00002\.safetensors', which does not hold it/,
    );

    // A shard tensor the index does not list, or lists in another shard.
    const unlisted = `${tmp}/unlisted`;
    await writeTinyCheckpoint(unlisted, { family: "gptj", shards: 2 });
    const ix = JSON.parse(await Deno.readTextFile(`${unlisted}/model.safetensors.index.json`));
    delete ix.weight_map["transformer.wte.weight"];
    await Deno.writeTextFile(`${unlisted}/model.safetensors.index.json`, JSON.stringify(ix));
    await assertLoadError(
      unlisted,
      SafetensorsError,
      /model-00001-of-00002\.safetensors/,
      "transformer.wte.weight",
      /is not in the index/,
    );
    ix.weight_map["transformer.wte.weight"] = "model-00002-of-00002.safetensors";
    await Deno.writeTextFile(`${unlisted}/model.safetensors.index.json`, JSON.stringify(ix));
    await assertLoadError(
      unlisted,
      SafetensorsError,
      /model-0000\d-of-00002\.safetensors/,
      "transformer.wte.weight",
      /maps it to|does not hold it/,
    );

    // An index shard name may not leave the folder.
    ix.weight_map["transformer.wte.weight"] = "../model-00001-of-00002.safetensors";
    await Deno.writeTextFile(`${unlisted}/model.safetensors.index.json`, JSON.stringify(ix));
    await assertLoadError(
      unlisted,
      SafetensorsError,
      /index\.json/,
      "transformer.wte.weight",
      /file name in the folder/,
    );
  });
});

Deno.test("tied and untied heads: tying families follow the file and tie_word_embeddings; NeoX and GPT-J refuse a tie", async () => {
  await withTmp(async (tmp) => {
    for (const family of ["llama", "qwen2", "qwen3", "gpt2"] as const) {
      const tied = await writeTinyCheckpoint(`${tmp}/${family}-tied`, { family, tied: true });
      const t = await assertSameWeights(`${tmp}/${family}-tied`, tied);
      assert.equal(t.tiedLmHead, true);
      assert.equal(t.weights.has("lm_head.weight"), false);
      const untied = await writeTinyCheckpoint(`${tmp}/${family}-untied`, { family, tied: false });
      const u = await assertSameWeights(`${tmp}/${family}-untied`, untied);
      assert.equal(u.tiedLmHead, false);
      assert.ok(u.weights.has("lm_head.weight"));
    }
    // Untied in config.json but no head tensor.
    await writeTinyCheckpoint(`${tmp}/nohead`, {
      family: "mistral",
      tied: true,
      configOnly: { tie_word_embeddings: false },
    });
    await assertLoadError(
      `${tmp}/nohead`,
      SafetensorsError,
      /model\.safetensors/,
      "lm_head.weight",
      /tie_word_embeddings=false/,
    );
    // Llama's default is untied: no tie_word_embeddings and no head is a missing head.
    await writeTinyCheckpoint(`${tmp}/nodefault`, {
      family: "llama",
      tied: true,
      configOnly: { tie_word_embeddings: undefined },
    });
    await assertLoadError(
      `${tmp}/nodefault`,
      SafetensorsError,
      /model\.safetensors/,
      "lm_head.weight",
      /missing tensor/,
    );
    for (const family of ["gpt_neox", "gptj"] as const) {
      await writeTinyCheckpoint(`${tmp}/${family}-tie`, {
        family,
        configOnly: { tie_word_embeddings: true },
      });
      await assertLoadError(
        `${tmp}/${family}-tie`,
        ConfigError,
        /config\.json/,
        "tie_word_embeddings",
        /untied head only/,
      );
    }
    // NeoX without embed_out.
    await writeTinyCheckpoint(`${tmp}/neox-nohead`, {
      family: "gpt_neox",
      tied: true,
      configOnly: { tie_word_embeddings: false },
    });
    await assertLoadError(
      `${tmp}/neox-nohead`,
      SafetensorsError,
      /model\.safetensors/,
      "embed_out.weight",
      /missing tensor/,
    );
  });
});

Deno.test("bad input: each contradiction or unsupported option is a typed error naming file and field", async () => {
  await withTmp(async (tmp) => {
    let i = 0;
    const bad = async (
      family: TinyFamily,
      configOnly: Record<string, unknown>,
      cls: abstract new (...args: never[]) => EngramError,
      file: RegExp,
      field: string,
      re: RegExp,
    ) => {
      const dir = `${tmp}/bad${i++}`;
      await writeTinyCheckpoint(dir, { family, configOnly });
      await assertLoadError(dir, cls, file, field, re);
    };
    const CFG = /config\.json/, ST = /model\.safetensors/;
    // num_key_value_heads not dividing num_attention_heads.
    await bad(
      "llama",
      { num_key_value_heads: 2 },
      ConfigError,
      CFG,
      "num_key_value_heads",
      /does not divide num_attention_heads 3/,
    );
    await bad(
      "qwen2",
      { num_key_value_heads: 0 },
      ConfigError,
      CFG,
      "num_key_value_heads",
      /positive integer/,
    );
    // head_dim inconsistent with the weights.
    await bad(
      "qwen3",
      { head_dim: 4 },
      ConfigError,
      ST,
      "layers.0.self_attn.q_proj.weight",
      /config says 'layers\.0\.self_attn\.q_proj\.weight' is \[12, 12\] \(.*head_dim=4\) but weights have \[18, 12\]/,
    );
    await bad(
      "qwen3",
      { head_dim: undefined },
      ConfigError,
      ST,
      "layers.0.self_attn.q_proj.weight",
      /head_dim=128/, // Qwen3Config's default head_dim
    );
    await bad("llama", { head_dim: 2.5 }, ConfigError, CFG, "head_dim", /positive integer/);
    await bad(
      "gpt_neox",
      { intermediate_size: 24 },
      ConfigError,
      ST,
      "layers.0.mlp.dense_h_to_4h.weight",
      /is \[24, 12\] \(hidden_size=12, intermediate_size=24\) but weights have \[20, 12\]/,
    );
    await bad(
      "gpt_neox",
      { hidden_size: 16 },
      ConfigError,
      CFG,
      "hidden_size",
      /not divisible by num_attention_heads 3/,
    );
    // Unsupported rope_scaling types, and malformed supported ones.
    for (const type of ["yarn", "longrope", "su"]) {
      await bad(
        "llama",
        { rope_scaling: { rope_type: type, factor: 2 } },
        ConfigError,
        CFG,
        "rope_scaling",
        new RegExp(`unsupported rope_scaling type "${type}"`),
      );
    }
    await bad(
      "gpt_neox",
      { rope_scaling: { type: "yarn", factor: 2 } },
      ConfigError,
      CFG,
      "rope_scaling",
      /unsupported rope_scaling type "yarn"/,
    );
    await bad(
      "llama",
      { rope_scaling: { rope_type: "llama3", factor: 8 } },
      ConfigError,
      CFG,
      "rope_scaling.low_freq_factor",
      /missing/,
    );
    await bad("mistral", { rope_scaling: { factor: 2 } }, ConfigError, CFG, "rope_scaling", /no rope_type/);
    await bad(
      "qwen2",
      { rope_scaling: { type: "linear", factor: -1 } },
      ConfigError,
      CFG,
      "rope_scaling.factor",
      /positive number/,
    );
    // Unsupported activations.
    await bad(
      "llama",
      { hidden_act: "gelu" },
      ConfigError,
      CFG,
      "hidden_act",
      /unsupported activation "gelu"/,
    );
    await bad(
      "gpt_neox",
      { hidden_act: "relu" },
      ConfigError,
      CFG,
      "hidden_act",
      /unsupported activation "relu"/,
    );
    await bad(
      "gptj",
      { activation_function: "quick_gelu" },
      ConfigError,
      CFG,
      "activation_function",
      /unsupported activation/,
    );
    // Options engram does not implement, refused by name.
    await bad(
      "qwen2",
      { use_sliding_window: true, max_window_layers: 1 },
      ConfigError,
      CFG,
      "max_window_layers",
      /max_window_layers=1 < num_hidden_layers=2/,
    );
    await bad(
      "qwen3",
      { use_sliding_window: true, layer_types: ["full_attention", "sliding_attention"] },
      ConfigError,
      CFG,
      "layer_types",
      /mixes/,
    );
    await bad(
      "gpt_neox",
      { attention_bias: false },
      ConfigError,
      CFG,
      "attention_bias",
      /attention_bias=false/,
    );
    await bad("gpt_neox", { rotary_pct: 1.5 }, ConfigError, CFG, "rotary_pct", /outside \(0, 1\]/);
    await bad(
      "gpt_neox",
      { rotary_pct: 0.25 },
      ConfigError,
      CFG,
      "rotary_pct",
      /int\(4 \* 0\.25\) = 1 must be even/,
    );
    await bad(
      "llama",
      { partial_rotary_factor: 0.5 },
      ConfigError,
      CFG,
      "partial_rotary_factor",
      /rotates the whole head/,
    );
    await bad("gptj", { rotary_dim: 6 }, ConfigError, CFG, "rotary_dim", /at most the head size 4/);
    await bad("gptj", { rotary_dim: null }, ConfigError, CFG, "rotary_dim", /n_head > 1/);
    await bad("llama", { model_type: "mamba" }, ConfigError, CFG, "model_type", /unknown architecture/);
    // A config with more layers than the weights is refused at once, with the family's field name.
    await bad(
      "mistral",
      { num_hidden_layers: 3000000 },
      SafetensorsError,
      ST,
      "layers.2.input_layernorm.weight",
      /num_hidden_layers=3000000, the weights hold layers 0\.\.1/,
    );
    // An unknown tensor (not a known buffer) is refused.
    const dir = `${tmp}/extra`;
    await writeTinyCheckpoint(dir, { family: "llama", overrides: { attention_bias: true } });
    await Deno.writeTextFile(
      `${dir}/config.json`,
      JSON.stringify({ ...JSON.parse(await Deno.readTextFile(`${dir}/config.json`)), attention_bias: false }),
    );
    await assertLoadError(dir, ConfigError, ST, "layers.0.self_attn.q_proj.bias", /unexpected tensor/);
  });
});

Deno.test("supported rope_scaling types, sliding windows and activations map to ModelConfig", () => {
  const base = (family: TinyFamily, extra: Record<string, unknown>) =>
    parseHFConfig({ ...TINY(family), ...extra }, "x/config.json").config;
  assert.deepEqual(base("llama", { rope_scaling: { rope_type: "linear", factor: 2 } }).rope?.scaling, {
    type: "linear",
    factor: 2,
  });
  assert.deepEqual(base("llama", { rope_scaling: { type: "dynamic", factor: 3 } }).rope?.scaling, {
    type: "dynamic",
    factor: 3,
    originalMaxPositionEmbeddings: 32,
  });
  assert.deepEqual(
    base("llama", {
      rope_scaling: {
        rope_type: "llama3",
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 16,
      },
    }).rope?.scaling,
    { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 16 },
  );
  assert.equal(base("llama", { rope_scaling: { rope_type: "default" } }).rope?.scaling, undefined);
  // num_key_value_heads: null is one per head, absent is the configuration class's default.
  assert.equal(base("qwen2", { num_key_value_heads: null }).nKvHead, 3);
  assert.equal(base("llama", { num_key_value_heads: undefined }).nKvHead, 3);
  assert.throws(
    () => base("mistral", { num_key_value_heads: undefined }),
    /num_key_value_heads 8 \(transformers' default\) does not divide num_attention_heads 3/,
  );
  assert.equal(base("mistral", { sliding_window: null }).slidingWindow, undefined);
  assert.equal(base("mistral", { sliding_window: undefined }).slidingWindow, 4096); // MistralConfig's default
  assert.equal(
    base("qwen2", { use_sliding_window: true, max_window_layers: 0, sliding_window: 7 }).slidingWindow,
    7,
  );
  assert.equal(base("qwen2", { use_sliding_window: true, max_window_layers: 2 }).slidingWindow, undefined);
  assert.equal(base("qwen2", { use_sliding_window: false, max_window_layers: 0 }).slidingWindow, undefined);
  assert.equal(
    base("qwen3", { layer_types: ["sliding_attention", "sliding_attention"] }).slidingWindow,
    undefined,
  );
  assert.equal(
    base("qwen3", {
      use_sliding_window: true,
      sliding_window: 9,
      layer_types: ["sliding_attention", "sliding_attention"],
    })
      .slidingWindow,
    9,
  );
  assert.equal(base("gpt_neox", { use_parallel_residual: false }).parallelResidual, "none");
  assert.equal(base("gpt_neox", { hidden_act: "gelu_new" }).activation, "gelu_tanh");
  assert.equal(base("gpt_neox", { rotary_pct: 1 }).rope?.dim, 4);
  assert.equal(base("gpt_neox", { rotary_emb_base: 500 }).rope?.theta, 500);
  assert.equal(base("gptj", { activation_function: "gelu" }).activation, "gelu_erf");
  assert.equal(base("gpt2", { activation_function: "gelu" }).activation, "gelu_erf");
  assert.equal(base("gpt2", { activation_function: "gelu_pytorch_tanh" }).activation, undefined);
  const l = base("llama", { attention_bias: true, mlp_bias: true });
  assert.deepEqual([l.qkvBias, l.attnOutBias, l.mlpBias], [true, true, true]);
  const q3 = base("qwen3", { attention_bias: true });
  assert.deepEqual([q3.qkvBias, q3.attnOutBias, q3.qkNorm], [true, true, true]);
  // model_type from architectures when absent.
  assert.equal(base("qwen2", { model_type: undefined }).architecture, "Qwen2ForCausalLM");
  // eos lists (Llama 3 instruct).
  const info = parseHFConfig({ ...TINY("llama"), eos_token_id: [2, 5] });
  assert.deepEqual([info.eosTokenId, info.eosTokenIds, info.bosTokenId], [undefined, [2, 5], 1]);
  // configToHF round trip for every family, scalings and windows included.
  for (const family of FAMILIES) {
    for (
      const extra of [
        {},
        family === "gptj" || family === "gpt2" ? {} : { rope_scaling: { rope_type: "linear", factor: 2 } },
      ]
    ) {
      const c = base(family, extra);
      assert.deepEqual(parseHFConfig(configToHF(c)).config, c, family);
    }
  }
  for (const c of [base("mistral", {}), base("qwen3", { use_sliding_window: true, max_window_layers: 0 })]) {
    assert.deepEqual(resolveConfig(parseHFConfig(configToHF(c)).config), resolveConfig(c));
  }
});

/** The writer's tiny config.json of a family (no tie field). */
function TINY(family: TinyFamily): Record<string, unknown> {
  return { ...TINY_CACHE[family] };
}
const TINY_CACHE = (await import("./_hf_fixtures.ts")).TINY_CONFIGS;

Deno.test("save and reload every family: same config and bits, prefixes restored, one F32 file, fields kept", async () => {
  await withTmp(async (tmp) => {
    for (const family of FAMILIES) {
      const src = `${tmp}/${family}`;
      const ck = await writeTinyCheckpoint(src, {
        family,
        dtype: "BF16",
        shards: 2,
        overrides: { custom_field: 7 },
      });
      await Deno.writeTextFile(`${src}/generation_config.json`, "{}\n");
      const m = await loadHFModel(src);
      const out = `${tmp}/${family}-saved`;
      await saveHFModel(out, {
        config: m.config,
        weights: m.weights,
        baseConfig: m.hfConfig,
        activationFunction: m.activationFunction,
        otherFiles: {
          "generation_config.json": "{}\n",
          "model-00001-of-00002.safetensors": new Uint8Array(8),
          "model.safetensors.index.json": "{}",
        },
      });
      const names = [...Deno.readDirSync(out)].map((e) => e.name).filter((n) => !n.startsWith(".")).sort();
      assert.deepEqual(names.filter((n) => n !== "engram_output.json" && !n.startsWith("engram")), [
        "config.json",
        "generation_config.json",
        "model.safetensors",
      ], family);
      const f = await readSafetensors(`${out}/model.safetensors`);
      assert.deepEqual([...f.tensors.keys()].sort(), [...ck.hfNames.values()].sort(), family);
      for (const t of f.tensors.values()) assert.equal(t.dtype, "F32");
      const r = await assertSameWeights(out, ck);
      assert.deepEqual(r.config, m.config, family);
      assert.equal(r.hfConfig.custom_field, 7);
      // The source's fields keep their values and order.
      assert.deepEqual(Object.keys(r.hfConfig).slice(0, 3), Object.keys(m.hfConfig).slice(0, 3), family);
    }
    // A tied Llama is written with tie_word_embeddings true (Llama's default is untied).
    const ck = await writeTinyCheckpoint(`${tmp}/tied2`, { family: "qwen2", tied: true });
    const m = await loadHFModel(`${tmp}/tied2`);
    await saveHFModel(`${tmp}/tied2-saved`, { config: m.config, weights: m.weights });
    const hf = JSON.parse(await Deno.readTextFile(`${tmp}/tied2-saved/config.json`));
    assert.equal(hf.tie_word_embeddings, true);
    assert.equal(hf.model_type, "qwen2");
    assert.equal((await assertSameWeights(`${tmp}/tied2-saved`, ck)).tiedLmHead, true);
    // A save whose weights do not fit the config names the tensor.
    const w = new Map(m.weights);
    w.delete("layers.1.mlp.down_proj.weight");
    await assert.rejects(
      saveHFModel(`${tmp}/bad-save`, { config: m.config, weights: w }),
      (e: unknown) => e instanceof SafetensorsError && e.field === "layers.1.mlp.down_proj.weight",
    );
  });
});

Deno.test("CLI: a bad config exits 1 naming file and field, no stack trace; predict --ids needs no tokenizer", async () => {
  await withTmp(async (tmp) => {
    await writeTinyCheckpoint(`${tmp}/yarn`, {
      family: "llama",
      configOnly: { rope_scaling: { rope_type: "yarn", factor: 4 } },
    });
    const r = await engram("predict", "--model", `${tmp}/yarn`, "--ids", "1,2,3");
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /config\.json, field 'rope_scaling': unsupported rope_scaling type "yarn"/);
    assert.doesNotMatch(r.stderr, /^\s+at /m);
    await writeTinyCheckpoint(`${tmp}/kv`, { family: "qwen2", configOnly: { num_key_value_heads: 2 } });
    const k = await engram("predict", "--model", `${tmp}/kv`, "--ids", "1");
    assert.equal(k.code, 1, k.stderr);
    assert.match(k.stderr, /config\.json, field 'num_key_value_heads'/);
    assert.doesNotMatch(k.stderr, /^\s+at /m);
    // GPT-2 runs today: --ids on a folder without tokenizer files.
    await writeTinyCheckpoint(`${tmp}/gpt2`, { family: "gpt2" });
    const p = await engram("predict", "--model", `${tmp}/gpt2`, "--ids", "1,2,3", "--top", "3", "--json");
    assert.equal(p.code, 0, p.stderr);
    const j = JSON.parse(p.stdout);
    assert.deepEqual(j.prompt_ids, [1, 2, 3]);
    assert.equal(j.logprobs.length, 17);
    assert.equal(j.top[0].token, null);
    // --text without a tokenizer is a user error, not a crash.
    const t = await engram("predict", "--model", `${tmp}/gpt2`, "--text", "hi");
    assert.equal(t.code, 1, t.stderr);
    assert.match(t.stderr, /no tokenizer files/);
  });
});

Deno.test({
  name: "CLI: predict --ids on a tiny Llama, NeoX and GPT-J folder without tokenizer",
  async fn() {
    await withTmp(async (tmp) => {
      for (const family of ["llama", "gpt_neox", "gptj"] as const) {
        await writeTinyCheckpoint(`${tmp}/${family}`, { family });
        const p = await engram("predict", "--model", `${tmp}/${family}`, "--ids", "1,2,3", "--json");
        assert.equal(p.code, 0, p.stderr);
        const j = JSON.parse(p.stdout);
        assert.deepEqual(j.prompt_ids, [1, 2, 3]);
        assert.equal(j.logprobs.length, 17);
        assert.ok(j.logprobs.every((x: number) => Number.isFinite(x)));
      }
    });
  },
});

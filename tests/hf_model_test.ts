/** Hugging Face GPT-2 folders: loading both shared checkpoints, save/reload, and every user error. */
import assert from "node:assert/strict";
import { ConfigError, EngramError, SafetensorsError } from "../src/errors.ts";
import { configFromHF, configToHF, loadHFModel, saveHFModel } from "../src/io/hf_model.ts";
import { readSafetensors, serializeSafetensors } from "../src/io/safetensors.ts";
import { weightShapes } from "../src/model/families/mod.ts";
import type { HostTensor, ModelConfig } from "../src/model/config.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { SHARED } from "./_util.ts";

const FAKE = `${SHARED}gpt2-tiny-random-lmbuddy/fake_gpt2`;
const TOY = `${SHARED}gpt2-tiny-random-lmbuddy/tiny_gpt2_toyvocab`;

async function withTmp(fn: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = await Deno.makeTempDir();
  try {
    await fn(tmp);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

/** A copy of `src`'s config.json (edited by `edit`) and model.safetensors (or `tensors`) in a new folder. */
async function badFolder(
  dir: string,
  src: string,
  edit: (c: Record<string, unknown>) => void = () => {},
  tensors?: Map<string, HostTensor>,
): Promise<string> {
  await Deno.mkdir(dir);
  const cfg = JSON.parse(await Deno.readTextFile(`${src}/config.json`));
  edit(cfg);
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(cfg));
  if (tensors) await Deno.writeFile(`${dir}/model.safetensors`, serializeSafetensors(tensors));
  else await Deno.copyFile(`${src}/model.safetensors`, `${dir}/model.safetensors`);
  return dir;
}

/** The raw tensors of a shared checkpoint as float32. */
async function rawTensors(src: string): Promise<Map<string, HostTensor>> {
  const f = await readSafetensors(`${src}/model.safetensors`);
  return new Map([...f.tensors].map(([k, t]) => [k, t.toHost()]));
}

async function assertLoadError(
  dir: string,
  cls: abstract new (...args: never[]) => EngramError,
  file: string,
  field: string | undefined,
  re: RegExp,
) {
  await assert.rejects(loadHFModel(dir), (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e}`);
    assert.ok(e.message.includes(file), `message should name ${file}: ${e.message}`);
    if (field !== undefined) assert.equal(e.field, field, e.message);
    assert.match(e.message, re);
    return true;
  });
}

Deno.test("loads fake_gpt2: prefixed keys, tied head, real tokenizer", async () => {
  const m = await loadHFModel(FAKE);
  assert.deepEqual(m.config, {
    nLayer: 1,
    nHead: 1,
    nEmbd: 2,
    vocabSize: 50257,
    nPositions: 1024,
    nInner: 8,
    layerNormEpsilon: 1e-5,
  });
  assert.equal(m.tiedLmHead, true);
  assert.equal(m.activationFunction, "gelu_new");
  assert.deepEqual([...m.weights.keys()].sort(), [...weightShapes(m.config).keys()].sort());
  for (const [name, shape] of weightShapes(m.config)) {
    assert.deepEqual(m.weights.get(name)!.shape, shape, name);
  }
  const raw = await rawTensors(FAKE);
  for (const [name, t] of m.weights) assert.deepEqual(t.data, raw.get(`transformer.${name}`)!.data, name);
  assert.equal(m.weights.get("wte.weight")!.data[0], Math.fround(0.027433224022388458));
  assert.deepEqual(Array.from(m.weights.get("h.0.ln_1.weight")!.data), [1, 1]);
  assert.ok(m.tokenizer);
  assert.equal(m.tokenizer.vocabSize, 50257);
  assert.deepEqual(m.tokenizer.encode("Hello world"), [15496, 995]);
});

Deno.test("loads tiny_gpt2_toyvocab: unprefixed keys, toy tokenizer from vocab.json + merges.txt", async () => {
  const m = await loadHFModel(TOY);
  assert.equal(m.config.vocabSize, 21);
  assert.equal(m.config.nInner, 8);
  assert.equal(m.tiedLmHead, true);
  assert.deepEqual(m.weights.get("wte.weight")!.shape, [21, 2]);
  assert.deepEqual(m.weights.get("h.0.attn.c_attn.weight")!.shape, [2, 6]);
  assert.equal(m.weights.get("wte.weight")!.data[0], Math.fround(0.03195413947105408));
  const raw = await rawTensors(TOY);
  for (const [name, t] of m.weights) assert.deepEqual(t.data, raw.get(name)!.data, name);
  assert.equal(m.tokenizer?.vocabSize, 21);
  assert.equal(m.tokenizer?.eosId, 20);
});

Deno.test("configFromHF / configToHF round trip; n_ctx accepted for n_positions", () => {
  const c: ModelConfig = {
    nLayer: 3,
    nHead: 4,
    nEmbd: 32,
    vocabSize: 100,
    nPositions: 64,
    nInner: 100,
    layerNormEpsilon: 1e-6,
  };
  const hf = configToHF(c);
  assert.equal(hf.model_type, "gpt2");
  assert.deepEqual(hf.architectures, ["GPT2LMHeadModel"]);
  assert.deepEqual(configFromHF(hf), c);
  assert.equal(configToHF({ ...c, nInner: 128 }).n_inner, null);
  const old = { model_type: "gpt2", n_layer: 1, n_head: 1, n_embd: 4, vocab_size: 10, n_ctx: 16 };
  assert.deepEqual(configFromHF(old), {
    nLayer: 1,
    nHead: 1,
    nEmbd: 4,
    vocabSize: 10,
    nPositions: 16,
    nInner: 16,
    layerNormEpsilon: 1e-5,
  });
  assert.equal(configFromHF({ ...old, model_type: undefined, architectures: ["GPT2LMHeadModel"] }).nEmbd, 4);
  for (
    const [field, v, re] of [
      ["n_head", 3, /not divisible by n_head 3/],
      ["n_layer", 0, /positive integer/],
      ["n_embd", 2.5, /positive integer/],
      ["vocab_size", undefined, /missing/],
      ["layer_norm_epsilon", -1, /positive number/],
      ["n_inner", "big", /positive integer/],
      ["scale_attn_by_inverse_layer_idx", true, /not implemented/],
    ] as [string, unknown, RegExp][]
  ) {
    assert.throws(() => configFromHF({ ...old, [field]: v }, "x/config.json"), (e: unknown) => {
      return e instanceof ConfigError && e.field === (field === "n_head" ? "n_embd" : field) &&
        e.message.includes("x/config.json") && re.test(e.message);
    }, field);
  }
});

Deno.test("save then reload is identical bit for bit (tied and untied heads), tokenizer copied", async () => {
  await withTmp(async (tmp) => {
    const m = await loadHFModel(FAKE);
    await saveHFModel(`${tmp}/fake`, { config: m.config, weights: m.weights, tokenizerFrom: FAKE });
    // Same tensors under the same names as HF writes them: the file is byte-identical to the original.
    assert.deepEqual(
      await Deno.readFile(`${tmp}/fake/model.safetensors`),
      await Deno.readFile(`${FAKE}/model.safetensors`),
    );
    const r = await loadHFModel(`${tmp}/fake`);
    assert.deepEqual(r.config, m.config);
    assert.equal(r.tiedLmHead, true);
    assert.deepEqual(r.tokenizer?.encode(" Hello world"), [18435, 995]);

    const cfg: ModelConfig = {
      nLayer: 2,
      nHead: 2,
      nEmbd: 8,
      vocabSize: 11,
      nPositions: 7,
      nInner: 12,
      layerNormEpsilon: 1e-5,
    };
    const w = randomGPT2(cfg, 7, { untiedHead: true });
    w.get("h.1.mlp.c_fc.bias")!.data[3] = -0; // signed zero and NaN payloads must survive
    w.get("ln_f.bias")!.data[0] = NaN;
    await saveHFModel(`${tmp}/untied`, { config: cfg, weights: w });
    const u = await loadHFModel(`${tmp}/untied`);
    assert.deepEqual(u.config, cfg);
    assert.equal(u.tiedLmHead, false);
    assert.equal(u.tokenizer, undefined);
    assert.deepEqual([...u.weights.keys()].sort(), [...w.keys()].sort());
    for (const [name, t] of w) {
      const got = u.weights.get(name)!;
      assert.deepEqual(got.shape, t.shape, name);
      assert.deepEqual(
        new Uint32Array(got.data.slice().buffer),
        new Uint32Array(t.data.slice().buffer),
        name,
      );
    }
    const hf = JSON.parse(await Deno.readTextFile(`${tmp}/untied/config.json`));
    assert.equal(hf.tie_word_embeddings, false);
    assert.equal(hf.n_inner, 12);

    // Refuses to overwrite unless asked.
    await assert.rejects(
      saveHFModel(`${tmp}/untied`, { config: cfg, weights: w }),
      (e: unknown) => e instanceof EngramError && e.code === "exists",
    );
    await saveHFModel(`${tmp}/untied`, { config: m.config, weights: m.weights }, { overwrite: true });
    assert.equal((await loadHFModel(`${tmp}/untied`)).config.vocabSize, 50257);
  });
});

Deno.test("a loaded model saved as it is keeps config.json's fields (bos/eos ids) and its tokenizer", async () => {
  await withTmp(async (tmp) => {
    const m = await loadHFModel(FAKE);
    await saveHFModel(`${tmp}/as-is`, m);
    const hf = JSON.parse(await Deno.readTextFile(`${tmp}/as-is/config.json`));
    const src = JSON.parse(await Deno.readTextFile(`${FAKE}/config.json`));
    assert.equal(hf.bos_token_id, 50256);
    assert.equal(hf.eos_token_id, 50256);
    assert.deepEqual(hf.task_specific_params, src.task_specific_params);
    const r = await loadHFModel(`${tmp}/as-is`);
    assert.deepEqual(r.tokenizer?.encode(" Hello world"), [18435, 995]);
    // Explicit fields still win over the loaded model's.
    await saveHFModel(`${tmp}/explicit`, { ...m, baseConfig: { bos_token_id: 7 }, tokenizerFrom: undefined });
    const e = JSON.parse(await Deno.readTextFile(`${tmp}/explicit/config.json`));
    assert.equal(e.bos_token_id, 7);
    assert.equal(e.task_specific_params, undefined);
  });
});

Deno.test("a model over maxShardBytes is written as save_pretrained's shards plus index and reloads bit for bit", async () => {
  await withTmp(async (tmp) => {
    const cfg: ModelConfig = {
      nLayer: 3,
      nHead: 2,
      nEmbd: 6,
      vocabSize: 29,
      nPositions: 7,
      nInner: 10,
      layerNormEpsilon: 1e-5,
    };
    const w = randomGPT2(cfg, 11);
    const max = 500; // wte alone is 29·6·4 = 696 bytes: over a shard, so it gets one of its own
    await saveHFModel(`${tmp}/sharded`, { config: cfg, weights: w, maxShardBytes: max });
    const names = [...Deno.readDirSync(`${tmp}/sharded`)].map((e) => e.name).sort();
    const shards = names.filter((n) => n.endsWith(".safetensors"));
    assert.ok(shards.length > 2 && !names.includes("model.safetensors"), names.join(", "));
    assert.deepEqual(
      shards,
      shards.map((_, i) =>
        `model-${String(i + 1).padStart(5, "0")}-of-${String(shards.length).padStart(5, "0")}.safetensors`
      ),
    );
    const index = JSON.parse(await Deno.readTextFile(`${tmp}/sharded/model.safetensors.index.json`));
    const bytes = (name: string) => w.get(name.replace(/^transformer\./, ""))!.data.length * 4;
    assert.equal(index.metadata.total_size, [...w.values()].reduce((s, t) => s + t.data.length * 4, 0));
    // Greedy in the weights' order: each shard holds ≤ max bytes (or one tensor), and the next shard's
    // first tensor would not have fitted.
    const perShard = shards.map((f) =>
      Object.keys(index.weight_map).filter((k) => index.weight_map[k] === f)
    );
    const order = [...w.keys()];
    const flat = perShard.map((ks) =>
      ks.map((k) => k.replace(/^transformer\./, "")).sort((a, b) => order.indexOf(a) - order.indexOf(b))
    );
    assert.deepEqual(flat.flat(), order, "shards follow the weights' order");
    for (let i = 0; i < flat.length; i++) {
      const size = flat[i].reduce((s, k) => s + bytes(k), 0);
      assert.ok(
        size <= max || flat[i].length === 1,
        `shard ${i + 1}: ${size} bytes in ${flat[i].length} tensors`,
      );
      if (i + 1 < flat.length) {
        assert.ok(size + bytes(flat[i + 1][0]) > max, `shard ${i + 1} could hold more`);
      }
    }
    const r = await loadHFModel(`${tmp}/sharded`);
    assert.deepEqual(r.config, cfg);
    for (const [name, t] of w) {
      assert.deepEqual(
        new Uint32Array(r.weights.get(name)!.data.slice().buffer),
        new Uint32Array(t.data.slice().buffer),
        name,
      );
    }
    await assert.rejects(
      saveHFModel(`${tmp}/bad`, { config: cfg, weights: w, maxShardBytes: 0 }),
      (e: unknown) => e instanceof EngramError && e.field === "maxShardBytes",
    );
  });
});

Deno.test("lm_head.weight equal to wte is tied; a different one is kept", async () => {
  await withTmp(async (tmp) => {
    const raw = await rawTensors(TOY);
    const wte = raw.get("wte.weight")!;
    raw.set("lm_head.weight", { shape: [21, 2], data: wte.data.slice() });
    const tied = await loadHFModel(await badFolder(`${tmp}/tied`, TOY, () => {}, raw));
    assert.equal(tied.tiedLmHead, true);
    assert.equal(tied.weights.has("lm_head.weight"), false);
    const other = wte.data.slice();
    other[5] += 1;
    raw.set("lm_head.weight", { shape: [21, 2], data: other });
    const untied = await loadHFModel(await badFolder(`${tmp}/untied`, TOY, () => {}, raw));
    assert.equal(untied.tiedLmHead, false);
    assert.deepEqual(untied.weights.get("lm_head.weight")!.data, other);
  });
});

Deno.test("attn.bias / attn.masked_bias buffers of any dtype are ignored", async () => {
  await withTmp(async (tmp) => {
    const dir = await badFolder(`${tmp}/buf`, TOY);
    // Append two non-float buffers to the real file by rebuilding its header.
    const f = await readSafetensors(`${TOY}/model.safetensors`);
    const entries: Record<string, unknown> = {};
    const chunks: Uint8Array[] = [];
    let off = 0;
    for (const [name, t] of f.tensors) {
      entries[`transformer.${name}`] = {
        dtype: t.dtype,
        shape: t.shape,
        data_offsets: [off, off + t.bytes.length],
      };
      chunks.push(t.bytes);
      off += t.bytes.length;
    }
    entries["transformer.h.0.attn.bias"] = {
      dtype: "BOOL",
      shape: [1, 1, 2, 2],
      data_offsets: [off, off + 4],
    };
    entries["h.0.attn.masked_bias"] = { dtype: "I64", shape: [], data_offsets: [off + 4, off + 12] };
    chunks.push(new Uint8Array(12));
    const h = new TextEncoder().encode(JSON.stringify(entries));
    const out = new Uint8Array(8 + h.length + off + 12);
    new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
    out.set(h, 8);
    let p = 8 + h.length;
    for (const c of chunks) (out.set(c, p), p += c.length);
    await Deno.writeFile(`${dir}/model.safetensors`, out);
    const m = await loadHFModel(dir);
    assert.equal(m.weights.size, 16);
  });
});

Deno.test("errors: missing folder, missing or malformed config.json, missing model.safetensors", async () => {
  await withTmp(async (tmp) => {
    await assertLoadError(`${tmp}/nope`, EngramError, "nope", undefined, /not found/);
    await Deno.mkdir(`${tmp}/empty`);
    await assertLoadError(`${tmp}/empty`, ConfigError, "config.json", undefined, /config\.json not found/);
    await Deno.mkdir(`${tmp}/badjson`);
    await Deno.writeTextFile(`${tmp}/badjson/config.json`, "{ n_layer: 1");
    await assertLoadError(`${tmp}/badjson`, ConfigError, "config.json", undefined, /not valid JSON/);
    await Deno.mkdir(`${tmp}/nost`);
    await Deno.copyFile(`${TOY}/config.json`, `${tmp}/nost/config.json`);
    await assertLoadError(`${tmp}/nost`, SafetensorsError, "model.safetensors", undefined, /not found/);
  });
});

Deno.test("errors: unknown architecture (model_type bert); llama fields required of a llama config", async () => {
  await withTmp(async (tmp) => {
    const dir = await badFolder(`${tmp}/bert`, FAKE, (c) => {
      c.model_type = "bert";
      c.architectures = ["BertForMaskedLM"];
    });
    await assertLoadError(dir, ConfigError, "config.json", "model_type", /unknown architecture.*bert/);
    // A GPT-2 config relabelled llama lacks the llama field names.
    const llama = await badFolder(`${tmp}/llama`, FAKE, (c) => {
      c.model_type = "llama";
      c.architectures = ["LlamaForCausalLM"];
    });
    await assertLoadError(
      llama,
      ConfigError,
      "config.json",
      "num_hidden_layers",
      /required field is missing/,
    );
  });
});

Deno.test("errors: unsupported activation (relu)", async () => {
  await withTmp(async (tmp) => {
    const dir = await badFolder(`${tmp}/relu`, TOY, (c) => (c.activation_function = "relu"));
    await assertLoadError(
      dir,
      ConfigError,
      "config.json",
      "activation_function",
      /unsupported activation "relu"/,
    );
  });
});

Deno.test("errors: config contradicting the weights (n_embd, vocab_size, n_layer edited)", async () => {
  await withTmp(async (tmp) => {
    const a = await badFolder(`${tmp}/embd`, TOY, (c) => (c.n_embd = 4));
    await assertLoadError(
      a,
      ConfigError,
      "model.safetensors",
      "wte.weight",
      /config says 'wte.weight' is \[21, 4\].*but weights have \[21, 2\]/,
    );
    const b = await badFolder(`${tmp}/vocab`, FAKE, (c) => (c.vocab_size = 50000));
    await assertLoadError(
      b,
      ConfigError,
      "model.safetensors",
      "wte.weight",
      /vocab_size=50000.*\[50257, 2\]/,
    );
    const c = await badFolder(`${tmp}/layers`, TOY, (c) => (c.n_layer = 2));
    await assertLoadError(
      c,
      SafetensorsError,
      "model.safetensors",
      "h.1.ln_1.weight",
      /missing tensor 'h.1.ln_1.weight'/,
    );
  });
});

Deno.test("errors: missing tensor, extra tensor, wrong lm_head shape", async () => {
  await withTmp(async (tmp) => {
    const raw = await rawTensors(TOY);
    const missing = new Map(raw);
    missing.delete("h.0.mlp.c_proj.bias");
    await assertLoadError(
      await badFolder(`${tmp}/missing`, TOY, () => {}, missing),
      SafetensorsError,
      "model.safetensors",
      "h.0.mlp.c_proj.bias",
      /missing tensor/,
    );
    const extra = new Map(raw);
    extra.set("h.0.attn.q_norm.weight", { shape: [2], data: new Float32Array(2) });
    await assertLoadError(
      await badFolder(`${tmp}/extra`, TOY, () => {}, extra),
      ConfigError,
      "model.safetensors",
      "h.0.attn.q_norm.weight",
      /unexpected tensor/,
    );
    const head = new Map(raw);
    head.set("lm_head.weight", { shape: [2, 21], data: new Float32Array(42) });
    await assertLoadError(
      await badFolder(`${tmp}/head`, TOY, () => {}, head),
      ConfigError,
      "model.safetensors",
      "lm_head.weight",
      /config says 'lm_head.weight' is \[21, 2\].*\[2, 21\]/,
    );
    const untiedNoHead = await badFolder(`${tmp}/nohead`, TOY, (c) => (c.tie_word_embeddings = false));
    await assertLoadError(
      untiedNoHead,
      SafetensorsError,
      "model.safetensors",
      "lm_head.weight",
      /tie_word_embeddings=false/,
    );
  });
});

Deno.test("errors: truncated model.safetensors names the file", async () => {
  await withTmp(async (tmp) => {
    const dir = await badFolder(`${tmp}/trunc`, FAKE);
    const st = await Deno.readFile(`${FAKE}/model.safetensors`);
    await Deno.writeFile(`${dir}/model.safetensors`, st.subarray(0, st.length - 100));
    await assertLoadError(dir, SafetensorsError, "model.safetensors", undefined, /truncated/);
  });
});

/**
 * Fuzz targets: one per input format, each with its seeds (valid inputs the mutators start from), the
 * parser entry point fed a mutant's bytes, and for some an independent check that an accepted input
 * really is valid. `owned` marks the formats whose parsers the fuzz test asserts on in CI.
 */
import { join } from "node:path";
import { ConfigError, EngramError, InputError } from "../errors.ts";
import { configFromHF, loadHFModel } from "../io/hf_model.ts";
import {
  DTYPE_SIZES,
  parseSafetensors,
  type SafetensorsFile,
  serializeSafetensors,
} from "../io/safetensors.ts";
import { loadTokenizer, type Tokenizer, tokenizerJsonFromVocabMerges } from "../io/tokenizer.ts";
import { mergeHparams, parseHparamsText, romeDefaults } from "../edit/hparams.ts";
import { parseTraceFacts } from "../prompt/facts.ts";
import { parseRequests } from "../edit/requests.ts";
import { readEditLog, sha256F32 } from "../edit/log.ts";
import type { HostTensor, ModelConfig } from "../model/config.ts";
import { mulberry32 } from "../model/generate.ts";
import { parseTrainConfigText } from "../train/config.ts";
import { parseCorpus } from "../train/corpus.ts";
import type { InputKind } from "./mutators.ts";
import { readWorld, worldWords } from "../io/world.ts";

/** A prepared target: seeds and the function that parses one input. */
export interface PreparedTarget {
  seeds: Uint8Array[];
  /** Parses one input; a returned value is an acceptance, a thrown error is classified by the runner. */
  run(input: Uint8Array): unknown;
  /** For an accepted input: a description of what is wrong with the acceptance, or undefined if it is right. */
  check?(result: unknown, input: Uint8Array): string | undefined;
  /** Frees what setup made (temporary folders). */
  close?(): Promise<void>;
}

/** A fuzz target. */
export interface FuzzTarget {
  name: string;
  kind: InputKind;
  /** Whether the CI fuzz test asserts on this format (parsers fixed for issue 12). */
  owned: boolean;
  setup(): Promise<PreparedTarget>;
}

const ROOT = new URL("../../", import.meta.url).pathname;
const enc = new TextEncoder();
/** Deno.readTextFile decodes lossily; so do the targets that stand for a file read. */
const dec = new TextDecoder();

function seedTensors(seed: number): Map<string, HostTensor> {
  const r = mulberry32(seed);
  const m = new Map<string, HostTensor>();
  const names = ["wte.weight", "h.0.attn.c_attn.bias", "ln_f.weight", "a", "constructor"];
  for (let i = 0, k = Math.floor(r() * 4); i < k; i++) {
    const shape = Array.from({ length: Math.floor(r() * 3) }, () => Math.floor(r() * 4));
    const n = shape.reduce((a, b) => a * b, 1);
    m.set(names[i + (seed % 2)], { shape, data: Float32Array.from({ length: n }, () => r() * 4 - 2) });
  }
  return m;
}

/** A safetensors file with one F16 and one I64 tensor, laid out as the reference writer does. */
function mixedDtypeFile(): Uint8Array {
  const header = enc.encode(
    JSON.stringify({
      __metadata__: { format: "pt" },
      b: { dtype: "I64", shape: [2], data_offsets: [0, 16] },
      h: { dtype: "F16", shape: [3], data_offsets: [16, 22] },
    }),
  );
  const pad = (8 - (header.length % 8)) % 8;
  const out = new Uint8Array(8 + header.length + pad + 22).fill(
    0x20,
    8 + header.length,
    8 + header.length + pad,
  );
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length + pad), true);
  out.set(header, 8);
  for (let i = 0; i < 22; i++) out[8 + header.length + pad + i] = (i * 37) & 0xff;
  return out;
}

/**
 * Independent check of an accepted safetensors file, by the format's rules rather than the parser's
 * code: re-reads the header with JSON.parse, and requires the same tensor names, byte sizes that match
 * shape × dtype, offsets that tile the data section exactly, and views at the declared bytes.
 */
function checkSafetensors(result: unknown, input: Uint8Array): string | undefined {
  const f = result as SafetensorsFile;
  const n = Number(new DataView(input.buffer, input.byteOffset, input.length).getBigUint64(0, true));
  const header = JSON.parse(dec.decode(input.subarray(8, 8 + n)));
  const names = Object.keys(header).filter((k) => k !== "__metadata__");
  if (names.length !== f.tensors.size) return `${f.tensors.size} tensors parsed, header has ${names.length}`;
  const spans: [number, number][] = [];
  for (const name of names) {
    const e = header[name], t = f.tensors.get(name);
    if (!t) return `tensor '${name}' missing`;
    const [b, end] = e.data_offsets;
    const numel = (e.shape as number[]).reduce((a, c) => a * c, 1);
    if (end - b !== numel * DTYPE_SIZES[e.dtype]) return `'${name}' size does not match its shape`;
    if (t.bytes.byteOffset !== input.byteOffset + 8 + n + b || t.bytes.length !== end - b) {
      return `'${name}' is not viewed at its declared bytes`;
    }
    spans.push([b, end]);
  }
  spans.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let at = 0;
  for (const [b, e] of spans) {
    if (b !== at) return `offsets do not tile the data section at ${at}`;
    at = e;
  }
  if (8 + n + at !== input.length) return `${input.length - 8 - n - at} trailing bytes accepted`;
  return undefined;
}

/** The GPT-2 config the hparams target checks layers against (the fixture world model's). */
const WORLD_CONFIG: ModelConfig = {
  nLayer: 2,
  nHead: 4,
  nEmbd: 96,
  nPositions: 24,
  nInner: 384,
  vocabSize: 1284,
  layerNormEpsilon: 1e-5,
};

/** JSON.parse as the loaders do it: a syntax error becomes the loader's typed error. */
function loaderJson(text: string, file: string, cls: typeof ConfigError | typeof InputError): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new cls(`not valid JSON: ${(e as Error).message}`, { file });
  }
}

/** A toy byte-level BPE vocabulary (ids 0..20) and its merges, for the tokenizer targets. */
const TOY_VOCAB: Record<string, number> = {
  "l": 0,
  "o": 1,
  "w": 2,
  "e": 3,
  "r": 4,
  "s": 5,
  "t": 6,
  "i": 7,
  "d": 8,
  "n": 9,
  "Ġ": 10,
  "Ġl": 11,
  "Ġn": 12,
  "Ġlo": 13,
  "Ġlow": 14,
  "er": 15,
  "Ġlowest": 16,
  "Ġnewer": 17,
  "Ġwider": 18,
  "<unk>": 19,
  "<|endoftext|>": 20,
};
const TOY_MERGES: [string, string][] = [["Ġ", "l"], ["Ġl", "o"], ["Ġlo", "w"], ["e", "r"]];

/** Three records in ROME's known_1000.json layout. */
const KNOWN_RECORDS = [
  {
    known_id: 0,
    subject: "Vinson Massif",
    attribute: "Antarctica",
    template: "{} is located in the continent",
    prediction: " Antarctica. It is",
    prompt: "Vinson Massif is located in the continent of",
    relation_id: "P30",
  },
  {
    known_id: 1,
    subject: "Beats Music",
    attribute: "Apple",
    template: "{} is owned by",
    prediction: " Apple, which",
    prompt: "Beats Music is owned by",
    relation_id: "P127",
  },
  {
    known_id: 2,
    subject: "Audible.com",
    attribute: "Amazon",
    template: "{} is owned by",
    prediction: " Amazon.com,",
    prompt: "Audible.com is owned by",
    relation_id: "P127",
  },
];

/** A loaded tokenizer must encode and decode without crashing: a sentence, its ids, each token's text. */
function roundTrip(t: Tokenizer): Tokenizer {
  const ids = t.encode("Narnux was born in Tarvos . lowest newer");
  t.decode(ids);
  for (const id of ids.slice(0, 8)) t.tokenString(id);
  return t;
}

/** Every target, by name. */
export const TARGETS: readonly FuzzTarget[] = [
  {
    name: "safetensors",
    kind: "bytes",
    owned: true,
    setup() {
      const seeds = [0, 1, 2, 3, 4, 5].map((s) =>
        serializeSafetensors(seedTensors(s), s % 3 === 0 ? { format: "pt", __proto__x: "y" } : undefined)
      );
      seeds.push(mixedDtypeFile());
      return Promise.resolve({
        seeds,
        run: (b: Uint8Array) => {
          const f = parseSafetensors(b, "/fuzz/model.safetensors");
          // Decoding must not crash either: float tensors decode, others fail typed.
          for (const t of f.tensors.values()) {
            try {
              if (t.data.length !== t.numel) throw new Error(`'${t.name}' decoded to the wrong length`);
            } catch (e) {
              if (!(e instanceof EngramError)) throw e;
            }
          }
          return f;
        },
        check: checkSafetensors,
      });
    },
  },
  {
    name: "train-config",
    kind: "json",
    owned: true,
    async setup() {
      const shipped = await Deno.readFile(join(ROOT, "fixtures/world/train_config.json"));
      const minimal = enc.encode('{"corpus":"c.jsonl","tokenizer":"t","out":"o"}');
      const full = enc.encode(JSON.stringify({
        corpus: "c.jsonl",
        tokenizer: "t",
        out: "o",
        init: "m",
        model: { n_layer: 1, n_head: 2, n_embd: 8, n_positions: 8, n_inner: 16 },
        checkpoint_epochs: true,
        comment: ["x"],
      }));
      return {
        seeds: [shipped, minimal, full],
        run: (b: Uint8Array) => parseTrainConfigText(dec.decode(b), "/fuzz/train.json"),
      };
    },
  },
  {
    name: "train-corpus",
    kind: "jsonl",
    owned: true,
    async setup() {
      const tok = await loadTokenizer(join(ROOT, "fixtures/world"));
      const text = await Deno.readTextFile(join(ROOT, "fixtures/world/train.jsonl"));
      const lines = text.split("\n");
      const seeds = [0, 7, 50].map((s) => enc.encode(lines.slice(s, s + 4).join("\n")));
      seeds.push(enc.encode('{"id":3,"text":"Narnux ."}\n\n{"text":"Tarvos ."}\n'));
      return { seeds, run: (b: Uint8Array) => parseCorpus(dec.decode(b), "/fuzz/train.jsonl", tok, 25) };
    },
  },
  {
    name: "hf-config",
    kind: "json",
    owned: true,
    async setup() {
      const seeds = [
        await Deno.readFile(join(ROOT, "fixtures/world/model/config.json")),
        await Deno.readFile(join(ROOT, "fixtures/models/fake-gpt2/config.json")),
      ];
      return {
        seeds,
        run: (b: Uint8Array) =>
          configFromHF(loaderJson(dec.decode(b), "/fuzz/config.json", ConfigError), "/fuzz/config.json"),
      };
    },
  },
  {
    // config.json through the whole folder loader, so that sizes are bounded against the real tensors.
    name: "hf-model",
    kind: "json",
    owned: true,
    async setup() {
      const dir = await Deno.makeTempDir({ prefix: "engram-fuzz-model-" });
      const src = join(ROOT, "fixtures/models/fake-gpt2");
      await Deno.copyFile(join(src, "model.safetensors"), join(dir, "model.safetensors"));
      return {
        seeds: [await Deno.readFile(join(src, "config.json"))],
        run: async (b: Uint8Array) => {
          await Deno.writeFile(join(dir, "config.json"), b);
          return await loadHFModel(dir);
        },
        close: () => Deno.remove(dir, { recursive: true }),
      };
    },
  },
  {
    name: "hparams",
    kind: "json",
    owned: true,
    async setup() {
      const seeds = [
        await Deno.readFile(join(ROOT, "fixtures/world/model/hparams/rome.json")),
        await Deno.readFile(join(ROOT, "fixtures/world/model/hparams/memit.json")),
      ];
      return {
        seeds,
        run: (b: Uint8Array) =>
          mergeHparams(
            romeDefaults(WORLD_CONFIG),
            parseHparamsText(dec.decode(b), "/fuzz/hparams.json"),
            WORLD_CONFIG,
            "/fuzz/hparams.json",
          ),
      };
    },
  },
  {
    name: "requests",
    kind: "json",
    owned: true,
    async setup() {
      const first = async (f: string) => {
        const all = JSON.parse(await Deno.readTextFile(join(ROOT, f)));
        return enc.encode(JSON.stringify(all.slice(0, 2), null, 1));
      };
      const seeds = [await first("fixtures/world/counterfact.json"), await first("fixtures/world/zsre.json")];
      const cf = JSON.parse(dec.decode(seeds[0]));
      seeds.push(enc.encode(cf.map((x: unknown) => JSON.stringify(x)).join("\n")));
      return { seeds, run: (b: Uint8Array) => parseRequests(dec.decode(b), "/fuzz/requests.json") };
    },
  },
  {
    name: "edit-log",
    kind: "json",
    owned: true,
    async setup() {
      const dir = await Deno.makeTempDir({ prefix: "engram-fuzz-log-" });
      const w = { shape: [2, 3], data: Float32Array.from([1, -2, 3, 0.5, 4, -6]) };
      await Deno.writeFile(
        join(dir, "original.safetensors"),
        serializeSafetensors({ "h.0.mlp.c_proj.weight": w }),
      );
      const sha = await sha256F32(w.data);
      const log = {
        version: 1,
        method: "rome",
        created: "2026-01-01T00:00:00.000Z",
        source_model: "m",
        requests: [{ prompt: "{} was born in", subject: "Narnux", target_new: { str: "Tarvos" } }],
        hparams: { layers: [0] },
        info: {},
        warnings: [],
        weights: [{ name: "h.0.mlp.c_proj.weight", shape: [2, 3], original_sha256: sha, edited_sha256: sha }],
      };
      return {
        seeds: [enc.encode(JSON.stringify(log, null, 2))],
        run: async (b: Uint8Array) => {
          await Deno.writeFile(join(dir, "log.json"), b);
          return await readEditLog(dir);
        },
        close: () => Deno.remove(dir, { recursive: true }),
      };
    },
  },
  {
    // tokenizer.json through the folder loader, then a round trip of a sentence through the result.
    name: "tokenizer-json",
    kind: "json",
    owned: true,
    async setup() {
      const dir = await Deno.makeTempDir({ prefix: "engram-fuzz-tok-" });
      return {
        seeds: [
          await Deno.readFile(join(ROOT, "fixtures/world/tokenizer.json")),
          enc.encode(JSON.stringify(tokenizerJsonFromVocabMerges(TOY_VOCAB, TOY_MERGES), null, 1)),
        ],
        run: async (b: Uint8Array) => {
          await Deno.writeFile(join(dir, "tokenizer.json"), b);
          return roundTrip(await loadTokenizer(dir));
        },
        close: () => Deno.remove(dir, { recursive: true }),
      };
    },
  },
  {
    // vocab.json (the first line) + merges.txt (the other lines) through the folder loader.
    name: "vocab-merges",
    kind: "jsonl",
    owned: true,
    async setup() {
      const dir = await Deno.makeTempDir({ prefix: "engram-fuzz-vm-" });
      const merges = "#version: 0.2\n" + TOY_MERGES.map((m) => m.join(" ")).join("\n") + "\n";
      return {
        seeds: [
          enc.encode(JSON.stringify(TOY_VOCAB) + "\n" + merges),
          enc.encode(
            JSON.stringify(TOY_VOCAB) + "\n" + TOY_MERGES.slice(0, 2).map((m) => m.join(" ")).join("\r\n"),
          ),
        ],
        run: async (b: Uint8Array) => {
          const text = dec.decode(b);
          const nl = text.indexOf("\n");
          await Deno.writeTextFile(join(dir, "vocab.json"), nl < 0 ? text : text.slice(0, nl));
          await Deno.writeTextFile(join(dir, "merges.txt"), nl < 0 ? "" : text.slice(nl + 1));
          return roundTrip(await loadTokenizer(dir));
        },
        close: () => Deno.remove(dir, { recursive: true }),
      };
    },
  },
  {
    // Facts to trace: a known_1000-style array (one line) and world prompt-file JSON lines.
    name: "facts",
    kind: "jsonl",
    owned: true,
    async setup() {
      const lines = (await Deno.readTextFile(join(ROOT, "fixtures/world/train_prompts.jsonl"))).split("\n");
      return {
        seeds: [
          enc.encode(JSON.stringify(KNOWN_RECORDS)),
          enc.encode(lines.slice(0, 4).join("\n")),
          enc.encode(JSON.stringify(KNOWN_RECORDS, null, 1)),
        ],
        run: (b: Uint8Array) => parseTraceFacts(dec.decode(b), "/fuzz/facts.jsonl"),
      };
    },
  },
  {
    // A world folder's facts.json through the folder reader and the vocabulary it implies.
    name: "world-facts",
    kind: "json",
    owned: true,
    async setup() {
      const dir = await copyWorld();
      return {
        seeds: [await Deno.readFile(join(ROOT, "fixtures/world/facts.json"))],
        run: async (b: Uint8Array) => {
          await Deno.writeFile(join(dir, "facts.json"), b);
          const w = await readWorld(dir);
          return worldWords(w.facts);
        },
        close: () => Deno.remove(dir, { recursive: true }),
      };
    },
  },
  {
    // A world folder's prompt lines (train_prompts.jsonl) through the folder reader.
    name: "world-prompts",
    kind: "jsonl",
    owned: true,
    async setup() {
      const dir = await copyWorld();
      const lines = (await Deno.readTextFile(join(ROOT, "fixtures/world/train_prompts.jsonl"))).split("\n");
      return {
        seeds: [enc.encode(lines.slice(0, 6).join("\n"))],
        run: async (b: Uint8Array) => {
          await Deno.writeFile(join(dir, "train_prompts.jsonl"), b);
          return (await readWorld(dir)).trainPrompts.length;
        },
        close: () => Deno.remove(dir, { recursive: true }),
      };
    },
  },
];

/** A temporary copy of the fixture world's files (not its model). */
async function copyWorld(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "engram-fuzz-world-" });
  for await (const e of Deno.readDir(join(ROOT, "fixtures/world"))) {
    if (e.isFile) await Deno.copyFile(join(ROOT, "fixtures/world", e.name), join(dir, e.name));
  }
  return dir;
}

/** The target named `name`. */
export function target(name: string): FuzzTarget {
  const t = TARGETS.find((x) => x.name === name);
  if (!t) {
    throw new InputError(`unknown fuzz format '${name}' (known: ${TARGETS.map((x) => x.name).join(", ")})`);
  }
  return t;
}

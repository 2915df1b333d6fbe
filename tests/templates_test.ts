/**
 * Context templates as the reference builds them (src/edit/templates.ts): MEMIT's are "{}" plus texts
 * of 10 tokens (the seed word counted) starting with "The", "Therefore", "Because", "I", "You", count / 5
 * per seed in that order; ROME's are "{}" plus texts sampled after end-of-text of `length` tokens with
 * the end-of-text counted; braces never survive; the same seed gives the same templates.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import type { Tokenizer } from "../src/io/tokenizer.ts";
import { generate } from "../src/model/generate.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { MEMIT_TEMPLATE_SEEDS, memitContextTemplates, romeContextTemplates } from "../src/edit/templates.ts";
import { freshSeed } from "./_util.ts";
import { TINY_EDIT_CONFIG } from "./_edit_util.ts";

const cfg = TINY_EDIT_CONFIG; // vocabulary 13, context 12
const EOS = cfg.vocabSize - 1;
/**
 * Ids 0..4: the seed words; 5: a token with braces; 6..12: " w6".." w12". MEMIT's templates need no
 * end-of-text, so this tokenizer has none and every sampled token stays visible.
 */
const tok: Tokenizer = {
  encode: (text: string) =>
    text.split(/\s+/).filter(Boolean).map((w) => {
      const s = MEMIT_TEMPLATE_SEEDS.indexOf(w);
      if (s >= 0) return s;
      if (/^w([6-9]|1[012])$/.test(w)) return Number(w.slice(1));
      throw new Error(`bad word ${w}`);
    }),
  decode: (ids: number[]) =>
    ids.map((i) => i < 5 ? ` ${MEMIT_TEMPLATE_SEEDS[i]}` : i === 5 ? " {b}" : ` w${i}`).join("").replace(
      /^ /,
      "",
    ),
  tokenString: (i: number) => `${i}`,
  vocabSize: cfg.vocabSize,
  source: "test",
};
/** The same with id 12 as end-of-text (ROME samples after it). */
const tokEos: Tokenizer = {
  ...tok,
  decode: (ids: number[]) => tok.decode(ids).replaceAll("w12", "<|endoftext|>"),
  eosId: EOS,
};

/** Tokens in a template's text part (the braces token reads "b" once its braces are gone). */
function tokens(template: string): string[] {
  assert.ok(template.endsWith(". {}"), template);
  const text = template.slice(0, -4);
  assert.ok(!/[{}]/.test(text), `braces survive in '${template}'`);
  return text.match(/Therefore|Because|The|You|I|b|w\d+/g) ?? [];
}

Deno.test("MEMIT context templates: '{}' plus 10-token texts seeded by The, Therefore, Because, I, You", async () => {
  const seed = freshSeed();
  const model = TransformerModel.create(await getGpu(), cfg, randomGPT2(cfg, seed));
  try {
    const groups = await memitContextTemplates(model, tok, [[10, 10]], 3);
    assert.equal(groups.length, 2);
    assert.deepEqual(groups[0], ["{}"]);
    assert.equal(groups[1].length, 10, "count / 5 = 2 texts per seed");
    groups[1].forEach((t, i) => {
      const seedWord = MEMIT_TEMPLATE_SEEDS[Math.floor(i / 2)];
      assert.ok(
        t.startsWith(seedWord + " "),
        `template ${i} '${t}' starts with '${seedWord}' (seed ${seed})`,
      );
      const toks = tokens(t);
      assert.equal(toks.length, 10, `'${t}': max_out_len 10 counts the seed token (seed ${seed})`);
      assert.equal(toks[0], seedWord);
    });
    assert.deepEqual(await memitContextTemplates(model, tok, [[10, 10]], 3), groups, "seeded");
    // The reference default [[10, 5]]: one text per seed.
    const ref = await memitContextTemplates(model, tok, [[10, 5]], 0);
    assert.deepEqual(ref[1].map((t) => tokens(t)[0]), [...MEMIT_TEMPLATE_SEEDS]);
  } finally {
    model.destroy();
  }
});

Deno.test("ROME context templates: '{}' plus texts after end-of-text, whose length counts the end-of-text", async () => {
  const seed = freshSeed();
  const model = TransformerModel.create(await getGpu(), cfg, randomGPT2(cfg, seed));
  try {
    const groups = await romeContextTemplates(model, tokEos, [[4, 3], [6, 2]], 1);
    assert.deepEqual(groups[0], ["{}"]);
    assert.deepEqual(groups.slice(1).map((g) => g.length), [3, 2]);
    // Replay: sample k is `length − 1` new tokens after end-of-text (seed 1000 + k), the whole sequence
    // decoded and the end-of-text strings removed as ROME's generate_fast does (so the space after the
    // leading end-of-text stays), braces removed. Sampled end-of-text tokens vanish: at most length − 1.
    const lengths = [4, 4, 4, 6, 6];
    for (const [k, t] of groups.slice(1).flat().entries()) {
      const { ids } = await generate(model, [EOS], {
        maxTokens: lengths[k] - 1,
        temperature: 1,
        topK: 5,
        seed: 1000 + k,
      });
      const want = tokEos.decode([EOS, ...ids]).replaceAll("<|endoftext|>", "").replaceAll("{", "")
        .replaceAll(
          "}",
          "",
        );
      assert.equal(t, `${want}. {}`, `template ${k} (seed ${seed})`);
      assert.ok(tokens(t).length <= lengths[k] - 1);
      assert.ok(!t.includes("endoftext"), t);
    }
  } finally {
    model.destroy();
  }
});

/**
 * Generates the fixture world (see src/io/world.ts) into a folder.
 *
 * usage: deno run -A scripts/make_world.ts --out fixtures/world --seed 1 [--subjects 100]
 *        [--rewrites-per-relation 25] [--version 2|3] [--biographies 6] [--records 30] [--cues 2] [--record-order shuffled|fixed] [--opener-rate 0.8] [--name-tokens 2] [--force] [--check]
 *
 * --version 3 adds the biography corpus of src/io/world_bio.ts (facts stored at the subject).
 *
 * --force replaces an existing folder; --check writes nothing and exits 1 when the folder differs from a
 * fresh regeneration (names the differing files).
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { EngramError } from "../src/errors.ts";
import { generateWorld, worldFiles, writeWorld } from "../src/io/world.ts";
import { generateWorldV3 } from "../src/io/world_bio.ts";

function intFlag(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (!/^-?\d+$/.test(v)) {
    throw new EngramError("input", `--${name} must be an integer, got ${JSON.stringify(v)}`);
  }
  return Number(v);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      out: { type: "string" },
      seed: { type: "string" },
      subjects: { type: "string" },
      "rewrites-per-relation": { type: "string" },
      version: { type: "string" },
      biographies: { type: "string" },
      records: { type: "string" },
      cues: { type: "string" },
      "record-order": { type: "string" },
      "opener-rate": { type: "string" },
      "name-tokens": { type: "string" },
      force: { type: "boolean", default: false },
      check: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(
      "usage: deno run -A scripts/make_world.ts --out DIR [--seed 1] [--subjects 100] [--rewrites-per-relation 25] [--version 2|3] [--biographies 6] [--records 30] [--cues 2] [--record-order shuffled|fixed] [--opener-rate 0.8] [--name-tokens 2] [--force] [--check]",
    );
    return 0;
  }
  if (!values.out) throw new EngramError("input", "--out DIR is required");
  const version = intFlag(values.version, "version", 2);
  if (version !== 2 && version !== 3) {
    throw new EngramError("input", `--version must be 2 or 3, got ${version}`);
  }
  const opts = {
    seed: intFlag(values.seed, "seed", 1),
    subjects: intFlag(values.subjects, "subjects", 100),
    rewritesPerRelation: intFlag(values["rewrites-per-relation"], "rewrites-per-relation", 25),
  };
  const v3Only = [
    values.biographies,
    values.records,
    values.cues,
    values["record-order"],
    values["opener-rate"],
    values["name-tokens"],
  ];
  if (version === 2 && v3Only.some((v) => v !== undefined)) {
    throw new EngramError(
      "input",
      "--biographies, --records, --cues, --record-order, --opener-rate and --name-tokens need --version 3",
    );
  }
  const openerRate = values["opener-rate"] === undefined ? 0.8 : Number(values["opener-rate"]);
  if (!(openerRate >= 0 && openerRate <= 1)) {
    throw new EngramError("input", `--opener-rate must be a number in [0, 1], got ${values["opener-rate"]}`);
  }
  const recordOrder = values["record-order"] ?? "shuffled";
  if (recordOrder !== "shuffled" && recordOrder !== "fixed") {
    throw new EngramError("input", `--record-order must be shuffled or fixed, got ${recordOrder}`);
  }
  const nameTokens = intFlag(values["name-tokens"], "name-tokens", 2);
  if (nameTokens < 2 || nameTokens > 5) {
    throw new EngramError("input", `--name-tokens must be an integer in 2..5, got ${nameTokens}`);
  }
  const world = version === 3
    ? generateWorldV3({
      ...opts,
      biographiesPerSubject: intFlag(values.biographies, "biographies", 6),
      recordCopies: intFlag(values.records, "records", 30),
      cueCopies: intFlag(values.cues, "cues", 2),
      recordOrder,
      openerRate,
      nameTokens,
    })
    : generateWorld(opts);
  const files = worldFiles(world);
  if (values.check) {
    const differ: string[] = [];
    for (const [name, content] of Object.entries(files)) {
      let have: string | undefined;
      try {
        have = await Deno.readTextFile(join(values.out, name));
      } catch {
        have = undefined;
      }
      if (have !== content) differ.push(name);
    }
    if (differ.length > 0) {
      console.error(`make_world: ${values.out} differs from a fresh regeneration in: ${differ.join(", ")}`);
      return 1;
    }
    console.log(`make_world: ${values.out} is up to date`);
    return 0;
  }
  try {
    await writeWorld(values.out, world, { overwrite: values.force });
  } catch (e) {
    if (e instanceof EngramError && e.code === "exists") {
      throw new EngramError("exists", "already exists (pass --force to replace it)", { file: values.out });
    }
    throw e;
  }
  const vocab = Object.keys((world.tokenizer.model as { vocab: Record<string, number> }).vocab).length;
  console.log(
    `make_world: wrote ${values.out} (seed ${world.facts.seed}): ${world.facts.subjects.length} subjects, ` +
      `${world.facts.relations.length} relations, ${world.train.length} training instances, ` +
      `${world.heldout.length} held-out prompts, ${world.counterfact.length} rewrites, vocab ${vocab}`,
  );
  return 0;
}

try {
  Deno.exit(await main());
} catch (e) {
  if (
    e instanceof EngramError ||
    (e instanceof TypeError && (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS"))
  ) {
    console.error(`make_world: error: ${(e as Error).message}`);
    Deno.exit(1);
  }
  throw e;
}

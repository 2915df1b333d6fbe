/**
 * Writes N CounterFact-layout edit requests built from a world's knowledge base (src/io/world_rewrites.ts:
 * each person fact rewritten at most once, a reserved never-edited neighbour per relation and object for
 * locality, insertions for non-people name pairs past the rewrites).
 *
 * usage: deno run -P scripts/make_world_rewrites.ts --world fixtures/world --n 1000 [--seed 1]
 *        --out docs/sequential-world-1000/requests.json [--check]
 *
 * --check writes nothing and exits 1 when --out differs from a fresh generation.
 */
import { parseArgs } from "node:util";
import { EngramError } from "../src/errors.ts";
import { readWorldFacts } from "../src/io/world.ts";
import { generateWorldRewrites } from "../src/io/world_rewrites.ts";
import { writeFileAtomic } from "../src/io/atomic.ts";

function intFlag(v: string | undefined, name: string, dflt?: number): number {
  if (v === undefined) {
    if (dflt === undefined) throw new EngramError("input", `--${name} is required`);
    return dflt;
  }
  if (!/^-?\d+$/.test(v)) {
    throw new EngramError("input", `--${name} must be an integer, got ${JSON.stringify(v)}`);
  }
  return Number(v);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      world: { type: "string" },
      n: { type: "string" },
      seed: { type: "string" },
      out: { type: "string" },
      check: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(
      "usage: deno run -P scripts/make_world_rewrites.ts --world DIR --n N [--seed 1] --out FILE [--check]",
    );
    return 0;
  }
  if (!values.world) throw new EngramError("input", "--world DIR is required");
  if (!values.out) throw new EngramError("input", "--out FILE is required");
  const stream = generateWorldRewrites(await readWorldFacts(values.world), {
    n: intFlag(values.n, "n"),
    seed: intFlag(values.seed, "seed", 1),
  });
  const text = JSON.stringify(stream.records, null, 1) + "\n";
  if (values.check) {
    let have: string | undefined;
    try {
      have = await Deno.readTextFile(values.out);
    } catch {
      have = undefined;
    }
    if (have !== text) {
      console.error(`make_world_rewrites: ${values.out} differs from a fresh generation`);
      return 1;
    }
    console.log(`make_world_rewrites: ${values.out} is up to date`);
    return 0;
  }
  await writeFileAtomic(values.out, text);
  const a = stream.available;
  console.log(
    `make_world_rewrites: wrote ${values.out}: ${stream.records.length} requests (${stream.rewrites} rewrites of ` +
      `${a.rewrites} possible, ${stream.insertions} insertions of ${a.insertions}; ${a.reserved} facts reserved for locality)`,
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
    console.error(`make_world_rewrites: error: ${(e as Error).message}`);
    Deno.exit(1);
  }
  throw e;
}

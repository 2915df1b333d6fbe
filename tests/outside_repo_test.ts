/**
 * The library works outside the repository: a script in a temporary folder imports mod.ts by file URL,
 * and another imports it by http URL from a local server, with no config file, import map or lock file,
 * and runs a forward pass of a random GPT-2 that matches the float64 reference. Nothing is copied. Also
 * checks that every import of the library is relative, `node:` or a full `npm:pkg@version`, so that no
 * import needs this repository's deno.json.
 */
import assert from "node:assert/strict";
import { gpt2ForwardRef, randomConfig, randomGPT2 } from "../mod.ts";

const ROOT = new URL("../", import.meta.url);
const SEED = 23;
const IDS_SEED = 5;
const T = 5;

/** The token ids both scripts run: T ids in [0, V), determined by the seeds. */
function idsFor(vocab: number): number[] {
  return Array.from({ length: T }, (_, i) => (IDS_SEED * 7919 + i * 104729) % vocab);
}

/** The script run in the temporary folder: imports the library from `modUrl` and prints log-probs. */
function script(modUrl: string): string {
  return [
    `import { getGpu, randomConfig, randomGPT2, TransformerModel } from ${JSON.stringify(modUrl)};`,
    `const cfg = randomConfig(${SEED});`,
    `const weights = randomGPT2(cfg, ${SEED});`,
    `const ids = Array.from({ length: ${T} }, (_, i) => (${IDS_SEED} * 7919 + i * 104729) % cfg.vocabSize);`,
    "const model = TransformerModel.create(await getGpu(), cfg, weights);",
    "const { logprobs } = await model.forward([ids]);",
    "model.destroy();",
    "console.log(JSON.stringify({ ids, logprobs: Array.from(logprobs[0]) }));",
    "",
  ].join("\n");
}

// Any request that leaves this machine fails fast through a proxy that does not exist; localhost is
// exempt. The npm packages come from Deno's cache, which this test's own imports have filled.
const OFFLINE = {
  HTTP_PROXY: "http://127.0.0.1:9",
  HTTPS_PROXY: "http://127.0.0.1:9",
  NO_PROXY: "127.0.0.1,localhost",
  DENO_NO_UPDATE_CHECK: "1",
};

/**
 * Runs `script.ts` in `dir` as a user would, with no config or lock file; returns the parsed output.
 * Without a lock file Deno resolves the npm dependencies' own dependencies from the registry's package
 * documents, which a locked install never fetches (a fresh cache holds the locked tarballs only), so a
 * first `deno cache` may reach the registry as a user's first run would; the run itself is offline.
 */
async function runIn(dir: string, env: Record<string, string> = {}) {
  await new Deno.Command(Deno.execPath(), {
    args: ["cache", "--no-config", "--no-lock", "script.ts"],
    cwd: dir,
    env: { DENO_NO_UPDATE_CHECK: "1", NO_PROXY: "127.0.0.1,localhost", ...env },
    stdout: "null",
    stderr: "null",
  }).output();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-config", "--no-lock", "script.ts"],
    cwd: dir,
    env: { ...OFFLINE, ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `script failed:\n${stderr}`);
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  return JSON.parse(lines[lines.length - 1]) as { ids: number[]; logprobs: number[] };
}

/** Checks the script's log-probs against the float64 reference on the same weights and ids. */
function checkForward(got: { ids: number[]; logprobs: number[] }): number {
  const cfg = randomConfig(SEED);
  const ids = idsFor(cfg.vocabSize);
  assert.deepEqual(got.ids, ids);
  const ref = gpt2ForwardRef(cfg, randomGPT2(cfg, SEED), ids).logprobsLast;
  assert.equal(got.logprobs.length, cfg.vocabSize);
  let err = 0;
  for (let v = 0; v < ref.length; v++) err = Math.max(err, Math.abs(got.logprobs[v] - ref[v]));
  // Far from flat: a wrong or missing kernel could not pass by accident.
  assert.ok(Math.max(...ref) - Math.min(...ref) > 1, "reference distribution is nearly flat");
  assert.ok(err <= 1e-4, `max |log-prob error| ${err} vs float64`);
  return err;
}

/** A fresh folder outside the repository (checked), removed by `dispose`. */
async function outsideDir(): Promise<string> {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "engram-outside-" }));
  const root = await Deno.realPath(ROOT);
  assert.ok(!`${dir}/`.startsWith(`${root}/`), `temporary folder ${dir} is inside the repository`);
  return dir;
}

/** Names in `dir` after a run: the script only, so nothing (lock file, node_modules) was written there. */
function listing(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

Deno.test("a script in a folder outside the repository imports mod.ts by file URL and runs a forward pass", async () => {
  const dir = await outsideDir();
  try {
    await Deno.writeTextFile(`${dir}/script.ts`, script(new URL("mod.ts", ROOT).href));
    const err = checkForward(await runIn(dir));
    assert.deepEqual(listing(dir), ["script.ts"]);
    console.log(`file URL: max |log-prob error| ${err.toExponential(2)} vs float64`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const TYPES: Record<string, string> = {
  ".ts": "application/typescript; charset=utf-8",
  ".js": "application/javascript; charset=utf-8",
  ".json": "application/json; charset=utf-8",
};

Deno.test("a script imports mod.ts by http URL from a local server; kernels arrive as imports", async () => {
  const root = await Deno.realPath(ROOT);
  const served: string[] = [];
  const missing: string[] = [];
  // Serves the repository's files read-only; a path is the URL path, already normalized (no `..`).
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    try {
      const body = await Deno.readFile(`${root}${path}`);
      served.push(path);
      const ext = path.slice(path.lastIndexOf("."));
      return new Response(body, { headers: { "content-type": TYPES[ext] ?? "text/plain; charset=utf-8" } });
    } catch {
      missing.push(path);
      return new Response("not found", { status: 404 });
    }
  });
  const dir = await outsideDir();
  // A private Deno cache, so remote modules of this random port do not pile up in the user's cache;
  // its npm folder is the user's, so npm packages need no download.
  const denoDir = await Deno.makeTempDir({ prefix: "engram-deno-dir-" });
  try {
    const info = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stdout: "piped" })
      .output();
    const npmCache = JSON.parse(new TextDecoder().decode(info.stdout)).npmCache as string;
    await Deno.symlink(npmCache, `${denoDir}/npm`);
    const url = `http://127.0.0.1:${server.addr.port}/mod.ts`;
    await Deno.writeTextFile(`${dir}/script.ts`, script(url));
    const err = checkForward(await runIn(dir, { DENO_DIR: denoDir }));
    assert.deepEqual(listing(dir), ["script.ts"]);
    assert.deepEqual(missing, [], "the library asked for files the repository does not have");
    assert.ok(served.includes("/mod.ts"));
    // The kernels came over HTTP as part of the module graph (a file read of an http URL would fail).
    for (const k of ["/kernels/mod.ts", "/kernels/embedding.wgsl", "/kernels/lib/kahan.wgsl"]) {
      assert.ok(served.includes(k), `${k} was not requested`);
    }
    console.log(`http URL: ${served.length} files served, max |log-prob error| ${err.toExponential(2)}`);
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(denoDir, { recursive: true });
  }
});

/** Every import specifier in a TypeScript source (static, type-only, re-exports and dynamic). */
function specifiers(text: string): string[] {
  const out: string[] = [];
  const re =
    /(?:^|[;\s])(?:import|export)\b[^;"'`]*?\bfrom\s*["']([^"']+)["']|\bimport\s*\(?\s*["']([^"']+)["']/gm;
  for (const m of text.matchAll(re)) out.push(m[1] ?? m[2]);
  return out;
}

Deno.test("every import of the library is relative, node: or npm:pkg@version, one version per package", async () => {
  const files: string[] = ["mod.ts"];
  const walk = async (sub: string) => {
    for await (const e of Deno.readDir(new URL(sub, ROOT))) {
      if (e.isDirectory) await walk(`${sub}${e.name}/`);
      else if (e.isFile && e.name.endsWith(".ts")) files.push(`${sub}${e.name}`);
    }
  };
  await walk("src/");
  await walk("kernels/");
  assert.ok(files.length > 50, `only ${files.length} files found`);
  const versions = new Map<string, Set<string>>();
  let npm = 0;
  for (const f of files) {
    for (const s of specifiers(await Deno.readTextFile(new URL(f, ROOT)))) {
      if (s.startsWith("./") || s.startsWith("../") || s.startsWith("node:")) continue;
      const m = /^npm:(@[^/@]+\/[^/@]+|[^/@]+)@(\d+\.\d+\.\d+[^/]*)(\/.*)?$/.exec(s);
      assert.ok(m, `${f}: import "${s}" needs an import map (use a relative path or npm:pkg@x.y.z)`);
      if (!versions.has(m[1])) versions.set(m[1], new Set());
      versions.get(m[1])!.add(m[2]);
      npm++;
    }
  }
  assert.ok(npm >= 4, `only ${npm} npm imports found: is the scan broken?`);
  // deno.json still maps some packages for the tests: the same version as the library's.
  const map = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT))).imports as Record<
    string,
    string
  >;
  for (const [pkg, vs] of versions) {
    assert.equal(vs.size, 1, `${pkg} is imported at versions ${[...vs].join(", ")}`);
    const mapped = map[pkg];
    if (mapped) assert.equal(mapped, `npm:${pkg}@${[...vs][0]}`, `deno.json maps ${pkg} to another version`);
  }
});

Deno.test("the import scan sees every form of import", () => {
  const src = [
    'import a from "npm:x@1.0.0";',
    'import type { B } from "y";',
    'export { c } from "./c.ts";',
    'export * from "z";',
    'import "side";',
    'const d = await import("dyn");',
    'import s from "./k.wgsl" with { type: "text" };',
    'import {\n  e,\n  f,\n} from "multi";',
  ].join("\n");
  assert.deepEqual(specifiers(src), ["npm:x@1.0.0", "y", "./c.ts", "z", "side", "dyn", "./k.wgsl", "multi"]);
});

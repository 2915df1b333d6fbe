/**
 * The subgroup variant of the softmax family (kernels/lib/online_softmax_subgroup.wgsl) on a device that
 * offers `subgroups`: no Deno adapter here does, headless Chromium's SwiftShader does. The test bundles
 * tests/browser/subgroups_entry.ts (engram's own launchers) with `deno bundle`, serves it on 127.0.0.1,
 * runs softmax, log-softmax and cross-entropy there at several row workgroup sizes with the variant and
 * without it, and compares every output against the float64 twins. Skipped, with a message, where no
 * Chromium is installed; where Chromium's adapter lacks `subgroups` only the plain kernels are checked
 * (it says so).
 */
import assert from "node:assert/strict";
import { logSoftmaxRef, softmaxRef } from "../src/reference/softmax.ts";
import { crossEntropyRef } from "../src/reference/cross_entropy.ts";
import { Browser, findChromium } from "./_chromium.ts";
import type { Case, check } from "./browser/subgroups_entry.ts";
import { assertClose, freshSeed, maxAbsErr, randn, rng } from "./_util.ts";

const chromium = await findChromium();
if (!chromium) console.log("subgroups_browser_test: no chromium on PATH (apt-get install chromium): skipped");

/** Bundles the browser entry into `dir`/bundle.js next to an index.html that loads it. */
async function bundle(dir: string): Promise<void> {
  const entry = new URL("./browser/subgroups_entry.ts", import.meta.url).pathname;
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--quiet", "--platform", "browser", entry, "-o", `${dir}/bundle.js`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(r.success, `deno bundle failed: ${new TextDecoder().decode(r.stderr)}`);
  await Deno.writeTextFile(
    `${dir}/index.html`,
    `<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body><script type="module" src="bundle.js"></script></body></html>`,
  );
}

Deno.test({
  name: "subgroup row statistics in Chromium (SwiftShader): softmax, log-softmax, cross-entropy vs float64",
  ignore: !chromium,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const seed = freshSeed();
    const r = rng(seed);
    // Odd sizes: long rows (many elements per lane), rows shorter than a workgroup (idle lanes), wide logits.
    const cases: Case[] = [[7, 1001, 3], [13, 37, 2], [5, 3, 1], [3, 2053, 30]].map((
      [rows, cols, scale],
    ) => ({
      rows,
      cols,
      x: Array.from(randn(r, rows * cols, scale)),
      targets: Array.from({ length: rows }, () => Math.floor(r() * cols)),
    }));
    // The adapter's own choice, one subgroup per workgroup (4 = SwiftShader's size), several, many.
    const sizes = [undefined, 4, 8, 64, 128];
    const dir = await Deno.makeTempDir({ prefix: "engram_subgroups_" });
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
      const name = new URL(req.url).pathname.slice(1) || "index.html";
      if (!["index.html", "bundle.js"].includes(name)) return new Response("not found", { status: 404 });
      const type = name.endsWith(".js") ? "text/javascript" : "text/html";
      return new Response(await Deno.readFile(`${dir}/${name}`), { headers: { "content-type": type } });
    });
    const browser = await Browser.launch(chromium!, 30000, { webgpu: true });
    try {
      await bundle(dir);
      const page = await browser.open(`http://127.0.0.1:${server.addr.port}/`, 800, 600, 240000);
      const got = await page.evaluate<Awaited<ReturnType<typeof check>>>(
        `engramSubgroupCheck(${JSON.stringify(cases)}, ${JSON.stringify(sizes)})`,
      );
      assert.deepEqual(page.errors, [], "console errors");
      const a = got.adapter;
      const offered = a.features.includes("subgroups") && a.subgroupMaxSize > 0;
      console.log(
        `subgroups_browser_test: ${a.description}, subgroup sizes ${a.subgroupMinSize}..${a.subgroupMaxSize}, ` +
          (offered
            ? "subgroups offered: both variants checked"
            : "no subgroups: only the plain kernels checked"),
      );
      let worst = 0, apart = 0, variantRuns = 0;
      got.results.forEach((runs, i) => {
        const { rows, cols, x, targets } = cases[i];
        const sm = softmaxRef(x, rows, cols), lsm = logSoftmaxRef(x, rows, cols);
        const ce = crossEntropyRef(x, targets, rows, cols, 1 / rows);
        for (const o of runs) {
          const tag = `case ${rows}x${cols}, WG ${o.wg ?? "auto"}, subgroups ${o.subgroups}`;
          // The variant runs exactly where it is asked for and the device can take it.
          const used = o.constants.SUBGROUPS === 1;
          const wg = o.constants.WG;
          assert.equal(
            used,
            o.subgroups && offered && wg % a.subgroupMaxSize === 0,
            `${tag}: variant chosen`,
          );
          if (used) variantRuns++;
          worst = Math.max(
            worst,
            assertClose(o.softmax, sm, 1e-5, `${tag}: softmax`, seed),
            assertClose(o.losses, ce.losses, 1e-5, `${tag}: losses`, seed),
            assertClose(o.dlogits, ce.dlogits, 1e-5, `${tag}: dlogits`, seed),
          );
          const e = maxAbsErr(o.logSoftmax, lsm);
          assert.ok(e <= 2e-5, `${tag}: log-softmax max abs error ${e} (seed ${seed})`);
        }
        // With and without the variant at one size: the same values up to the summation order.
        for (let k = 0; k + 1 < runs.length; k += 2) {
          apart = Math.max(apart, maxAbsErr(runs[k].softmax, runs[k + 1].softmax));
        }
      });
      if (offered) {
        assert.ok(variantRuns >= cases.length * (sizes.length - 1), `variant ran ${variantRuns} times`);
      }
      console.log(
        `subgroups_browser_test: worst relative error vs float64 ${worst.toExponential(2)}, ` +
          `variant vs plain softmax max |Δ| ${apart.toExponential(2)}, ${variantRuns} variant runs`,
      );
    } finally {
      await browser.close();
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

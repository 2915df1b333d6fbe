/**
 * Opens each kind of report.html (one-prompt trace, many-facts trace, eval) in headless Chromium: no
 * console errors, every figure is an SVG in the DOM with a non-empty box and drawn shapes, and a
 * screenshot is not blank. Skipped, with a message, where no Chromium is installed.
 */
import assert from "node:assert/strict";
import { Browser, findChromium } from "./_chromium.ts";
import { decodePng, inkPixels } from "./_png.ts";
import { writeSampleReports } from "./_report_samples.ts";

const chromium = await findChromium();
if (!chromium) console.log("report_browser_test: no chromium on PATH (apt-get install chromium): skipped");

Deno.test({
  name: "report pages render in headless Chromium: no console errors, every SVG drawn, screenshot not blank",
  ignore: !chromium,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "engram_browser_" });
    const browser = await Browser.launch(chromium!);
    try {
      const pages = await writeSampleReports(dir);
      for (const [kind, path] of Object.entries(pages)) {
        const page = await browser.open(new URL(`file://${path}`).href);
        const svgs = await page.evaluate<Array<{ w: number; h: number; shapes: number }>>(
          `[...document.querySelectorAll("figure.plot > svg")].map((s) => {
             const r = s.getBoundingClientRect();
             return { w: r.width, h: r.height, shapes: s.querySelectorAll("rect,polyline,polygon,line,text").length };
           })`,
        );
        const expected = kind === "trace" ? 3 : kind === "facts" ? 4 : 1;
        assert.equal(svgs.length, expected, `${kind}: ${svgs.length} figures`);
        for (const s of svgs) {
          assert.ok(s.w > 50 && s.h > 50 && s.shapes > 10, `${kind}: ${JSON.stringify(s)}`);
        }
        const tables = await page.evaluate<number>(`document.querySelectorAll("table tbody tr").length`);
        assert.ok(tables > 0, `${kind}: no table rows`);
        const img = decodePng(await page.screenshot());
        const ink = inkPixels(img);
        assert.ok(ink > 0.01 * img.width * img.height, `${kind}: screenshot has ${ink} non-white pixels`);
        assert.deepEqual(page.errors, [], `${kind}: console errors`);
      }
      // The check can fail: a page with a script error is caught.
      const bad = `${dir}/bad.html`;
      await Deno.writeTextFile(
        bad,
        `<!DOCTYPE html><html><body><script>console.error("x"); undefinedFn();</script></body></html>`,
      );
      const page = await browser.open(new URL(`file://${bad}`).href);
      assert.equal(page.errors.length, 2, JSON.stringify(page.errors));
    } finally {
      await browser.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

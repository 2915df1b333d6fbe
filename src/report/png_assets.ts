/**
 * The byte assets of PNG rendering (src/report/png.ts): resvg's wasm binary and the DejaVu faces, as
 * literal byte imports of npm packages, so that Deno caches them with the module graph of the checkout
 * (tests/report_test.ts imports this module) and `deno compile` embeds them (scripts/compile.ts includes
 * it). Byte imports are not yet stable, so `deno publish` refuses them: this file is left out of the
 * package (deno.json publish.exclude) and png.ts loads it by a computed specifier; where it is absent,
 * figures are written as SVG only, with a warning.
 *
 * @module
 */

/** resvg's wasm binary (npm @resvg/resvg-wasm 2.6.2). */
export async function resvgWasm(): Promise<Uint8Array> {
  return (await import("npm:@resvg/resvg-wasm@2.6.2/index_bg.wasm", { with: { type: "bytes" } }))
    .default as Uint8Array;
}

/** DejaVu Sans, Sans Bold, Sans Mono and Sans Mono Bold (npm dejavu-fonts-ttf 2.37.3). */
export async function dejavuFaces(): Promise<Uint8Array[]> {
  const faces = await Promise.all([
    import("npm:dejavu-fonts-ttf@2.37.3/ttf/DejaVuSans.ttf", { with: { type: "bytes" } }),
    import("npm:dejavu-fonts-ttf@2.37.3/ttf/DejaVuSans-Bold.ttf", { with: { type: "bytes" } }),
    import("npm:dejavu-fonts-ttf@2.37.3/ttf/DejaVuSansMono.ttf", { with: { type: "bytes" } }),
    import("npm:dejavu-fonts-ttf@2.37.3/ttf/DejaVuSansMono-Bold.ttf", { with: { type: "bytes" } }),
  ]);
  return faces.map((m) => m.default as Uint8Array);
}

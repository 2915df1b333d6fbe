/**
 * SVG to PNG with resvg (npm `@resvg/resvg-wasm`), for a PNG beside every SVG figure.
 *
 * The wasm binary and the fonts come from npm packages as byte imports (deno.json enables Deno's
 * `raw-imports`) in src/report/png_assets.ts, so nothing is fetched at run time beyond what Deno caches
 * with the checkout's module graph and a compiled binary embeds them (the published package leaves that
 * module out: byte imports are not stable yet). resvg-wasm has no system fonts: DejaVu Sans, Sans Mono and their bold
 * faces come from npm `dejavu-fonts-ttf` (the figures ask for DejaVu first); when that package cannot
 * be loaded, the system's DejaVu under /usr/share/fonts is used, and without either the PNG has no
 * text (a warning says so once).
 */

type ResvgModule = typeof import("npm:@resvg/resvg-wasm@2.6.2");

let ready: Promise<{ resvg: ResvgModule; fonts: Uint8Array[] }> | undefined;

const SYSTEM_DEJAVU = "/usr/share/fonts/truetype/dejavu";

/** The byte assets module, loaded by a computed specifier (see src/report/png_assets.ts for why). */
interface Assets {
  resvgWasm(): Promise<Uint8Array>;
  dejavuFaces(): Promise<Uint8Array[]>;
}
const ASSETS = new URL("./png_assets.ts", import.meta.url).href;

async function systemFonts(): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (
    const f of ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf"]
  ) {
    try {
      out.push(await Deno.readFile(`${SYSTEM_DEJAVU}/${f}`));
    } catch {
      // absent: the next face
    }
  }
  return out;
}

/** Loads resvg's wasm and the fonts once per process. */
function load(): Promise<{ resvg: ResvgModule; fonts: Uint8Array[] }> {
  ready ??= (async () => {
    const resvg = await import("npm:@resvg/resvg-wasm@2.6.2");
    const assets: Assets = await import(ASSETS);
    await resvg.initWasm(await assets.resvgWasm());
    let fonts: Uint8Array[];
    try {
      fonts = await assets.dejavuFaces();
    } catch {
      fonts = await systemFonts();
    }
    if (fonts.length === 0) {
      console.error(
        "engram: warning: no DejaVu font found (npm dejavu-fonts-ttf, /usr/share/fonts); PNGs have no text",
      );
    }
    return { resvg, fonts };
  })();
  return ready;
}

/** Renders `svg` to PNG bytes at `scale` times its size (default 2, for sharp text). */
export async function svgToPng(svg: string, scale = 2): Promise<Uint8Array> {
  const { resvg, fonts } = await load();
  const r = new resvg.Resvg(svg, {
    fitTo: { mode: "zoom", value: scale },
    font: { fontBuffers: fonts, loadSystemFonts: false, defaultFontFamily: "DejaVu Sans" },
  });
  const img = r.render();
  const png = img.asPng();
  img.free();
  r.free();
  return png;
}

/**
 * Adds `<name>.png` beside every `<name>.svg` of `files` (a folder's contents, name -> data). When resvg
 * itself cannot be loaded (e.g. its npm package is not in Deno's cache and the registry is out of reach)
 * the SVGs go without PNGs and a warning says why: the figures and data are the output that matters.
 */
export async function withPngs(files: Record<string, string | Uint8Array>): Promise<void> {
  try {
    await load();
  } catch (e) {
    ready = undefined;
    console.error(`engram: warning: no PNGs written, resvg could not be loaded: ${(e as Error).message}`);
    return;
  }
  for (const [name, data] of Object.entries(files)) {
    if (name.endsWith(".svg") && typeof data === "string") {
      files[name.slice(0, -4) + ".png"] = await svgToPng(data);
    }
  }
}

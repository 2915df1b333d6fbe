/**
 * A small PNG decoder for tests (8-bit RGB / RGBA / gray, non-interlaced): chunks, zlib (fflate), the
 * five row filters. Written from the PNG specification, independent of the renderers under test.
 */
import { unzlibSync } from "npm:fflate@0.8.3";

/** A decoded image: width, height, channels and the row-major samples. */
export interface Image {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
}

/** Decodes `png`; throws on anything this decoder does not handle. */
export function decodePng(png: Uint8Array): Image {
  const sig = [137, 80, 78, 71, 13, 10, 26, 10];
  if (sig.some((b, i) => png[i] !== b)) throw new Error("not a PNG");
  const dv = new DataView(png.buffer, png.byteOffset, png.byteLength);
  let pos = 8, width = 0, height = 0, channels = 0;
  const idat: Uint8Array[] = [];
  while (pos < png.length) {
    const len = dv.getUint32(pos);
    const type = String.fromCharCode(...png.subarray(pos + 4, pos + 8));
    const body = png.subarray(pos + 8, pos + 8 + len);
    if (type === "IHDR") {
      width = dv.getUint32(pos + 8);
      height = dv.getUint32(pos + 12);
      const depth = body[8], color = body[9], interlace = body[12];
      if (depth !== 8 || interlace !== 0) {
        throw new Error(`unsupported depth ${depth} / interlace ${interlace}`);
      }
      channels = ({ 0: 1, 2: 3, 4: 2, 6: 4 } as Record<number, number>)[color];
      if (!channels) throw new Error(`unsupported colour type ${color}`);
    } else if (type === "IDAT") idat.push(body);
    else if (type === "IEND") break;
    pos += 12 + len;
  }
  const z = new Uint8Array(idat.reduce((a, b) => a + b.length, 0));
  let o = 0;
  for (const b of idat) z.set(b, (o += b.length) - b.length);
  const raw = unzlibSync(z);
  const stride = width * channels, data = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? data[y * stride + x - channels] : 0;
      const b = y > 0 ? data[(y - 1) * stride + x] : 0;
      const c = x >= channels && y > 0 ? data[(y - 1) * stride + x - channels] : 0;
      let v = src[x];
      if (f === 1) v += a;
      else if (f === 2) v += b;
      else if (f === 3) v += (a + b) >> 1;
      else if (f === 4) {
        const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else if (f !== 0) throw new Error(`bad filter ${f}`);
      data[y * stride + x] = v & 255;
    }
  }
  return { width, height, channels, data };
}

/** Number of pixels that are not (near) white. */
export function inkPixels(img: Image): number {
  let n = 0;
  for (let i = 0; i < img.width * img.height; i++) {
    const px = img.data.subarray(i * img.channels, (i + 1) * img.channels);
    const rgb = img.channels >= 3 ? [px[0], px[1], px[2]] : [px[0]];
    const alpha = img.channels === 4 ? px[3] : img.channels === 2 ? px[1] : 255;
    if (alpha > 0 && Math.min(...rgb) < 200) n++;
  }
  return n;
}

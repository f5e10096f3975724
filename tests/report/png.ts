/** A minimal PNG decoder for the report tests (8-bit gray/RGB/RGBA, non-interlaced): signature, IHDR, IDAT. */
import { inflateSync } from "node:zlib";

export interface DecodedPng {
  width: number;
  height: number;
  channels: number;
  pixels: Uint8Array;
}

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

export function hasPngSignature(b: Uint8Array): boolean {
  return SIGNATURE.every((v, i) => b[i] === v);
}

export function decodePng(b: Uint8Array): DecodedPng {
  if (!hasPngSignature(b)) throw new Error("not a PNG (bad signature)");
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let off = 8, width = 0, height = 0, channels = 0;
  const idat: Uint8Array[] = [];
  while (off + 8 <= b.length) {
    const len = dv.getUint32(off);
    const type = String.fromCharCode(...b.subarray(off + 4, off + 8));
    const data = b.subarray(off + 8, off + 8 + len);
    if (type === "IHDR") {
      width = dv.getUint32(off + 8);
      height = dv.getUint32(off + 12);
      const depth = data[8], color = data[9], interlace = data[12];
      if (depth !== 8 || interlace !== 0) {
        throw new Error(`unsupported PNG: depth ${depth}, interlace ${interlace}`);
      }
      channels = ({ 0: 1, 2: 3, 4: 2, 6: 4 } as Record<number, number>)[color];
      if (!channels) throw new Error(`unsupported PNG color type ${color}`);
    } else if (type === "IDAT") idat.push(data);
    else if (type === "IEND") break;
    off += 12 + len;
  }
  const raw = new Uint8Array(inflateSync(concat(idat)));
  const stride = width * channels;
  const px = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const row = px.subarray(y * stride, (y + 1) * stride);
    const up = y ? px.subarray((y - 1) * stride, y * stride) : new Uint8Array(stride);
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? row[x - channels] : 0, c = x >= channels ? up[x - channels] : 0, u = up[x];
      let v = src[x];
      if (f === 1) v += a;
      else if (f === 2) v += u;
      else if (f === 3) v += (a + u) >> 1;
      else if (f === 4) {
        const p = a + u - c, pa = Math.abs(p - a), pb = Math.abs(p - u), pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? u : c;
      }
      row[x] = v & 255;
    }
  }
  return { width, height, channels, pixels: px };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Luma of pixel (x, y) (alpha ignored: the report PNGs have an opaque background). */
export function luma(img: DecodedPng, x: number, y: number): number {
  const i = (y * img.width + x) * img.channels;
  if (img.channels < 3) return img.pixels[i];
  return 0.299 * img.pixels[i] + 0.587 * img.pixels[i + 1] + 0.114 * img.pixels[i + 2];
}

/** Bounding box of pixels darker than `threshold` (ink on white), or null. */
export function inkBox(
  img: DecodedPng,
  threshold = 200,
): { x0: number; y0: number; x1: number; y1: number } | null {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      if (luma(img, x, y) < threshold) {
        x0 = Math.min(x0, x);
        x1 = Math.max(x1, x + 1);
        y0 = Math.min(y0, y);
        y1 = Math.max(y1, y + 1);
      }
    }
  }
  return x0 > x1 ? null : { x0, y0, x1, y1 };
}

/** Variance of luma over all pixels. */
export function lumaVariance(img: DecodedPng): number {
  let s = 0, s2 = 0;
  const n = img.width * img.height;
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      const v = luma(img, x, y);
      s += v;
      s2 += v * v;
    }
  }
  return s2 / n - (s / n) ** 2;
}

/** Asserts |actual - expected| <= tol. */
export function near(actual: number, expected: number, tol: number, msg = ""): void {
  if (!(Math.abs(actual - expected) <= tol)) {
    throw new Error(`expected ${actual} within ${tol} of ${expected}${msg ? ` (${msg})` : ""}`);
  }
}

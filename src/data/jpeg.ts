/**
 * JPEG decoding, bit-exact with Pillow: libjpeg-turbo's TurboJPEG compiled to wasm
 * (`@cwasm/jpeg-turbo`), the library Pillow is built on, with its defaults as Pillow uses them
 * (the accurate integer IDCT, fancy upsampling). Baseline and progressive, any subsampling,
 * restart markers, grayscale; CMYK and YCCK JPEGs are decoded to their CMYK planes and
 * converted as PIL does (it reads every CMYK JPEG as Adobe-inverted, as Photoshop writes them).
 *
 * As for PIL, a JPEG without its end-of-image marker is an error (libjpeg alone would fill the
 * missing rows with gray and only warn), and damaged entropy-coded data that libjpeg gets past
 * with a warning is not: PIL decodes such a file too. How libjpeg resynchronises after damage
 * changed between versions, so there (and only there) the pixels can differ from Pillow's.
 *
 * @module
 */

// TurboJPEG's wasm is loaded by URL; importing the package's manifest makes Deno fetch it.
import "@cwasm/jpeg-turbo/package.json" with { type: "json" };
import { VitLoraError } from "../core/errors.ts";
import type { RgbImage } from "./rgb.ts";

/** The first frame header (SOFn) of a JPEG: its size and number of colour components. */
export interface JpegFrame {
  width: number;
  height: number;
  components: number;
}

/**
 * The first frame header, or undefined when the segments before it do not lead to one.
 *
 * @example
 * ```ts
 * import { jpegFrame } from "./jpeg.ts";
 * // SOI, then a baseline frame header: 8 bits, 2 × 3 pixels, one component
 * const head = Uint8Array.of(0xff, 0xd8, 0xff, 0xc0, 0, 11, 8, 0, 2, 0, 3, 1, 1, 0x11, 0);
 * console.log(jpegFrame(head)); // { height: 2, width: 3, components: 1 }
 * ```
 */
export function jpegFrame(bytes: Uint8Array): JpegFrame | undefined {
  let i = 2;
  while (i + 9 < bytes.length) {
    if (bytes[i] !== 0xff) return undefined;
    const marker = bytes[i + 1];
    if (marker === 0xff) {
      i++;
      continue;
    }
    // SOF0…SOF15, except DHT (C4), JPG (C8) and DAC (CC)
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return {
        height: (bytes[i + 5] << 8) | bytes[i + 6],
        width: (bytes[i + 7] << 8) | bytes[i + 8],
        components: bytes[i + 9],
      };
    }
    i += 2 + ((bytes[i + 2] << 8) | bytes[i + 3]);
  }
  return undefined;
}

/**
 * Whether the segments and entropy-coded data of a JPEG run to an end-of-image marker (the
 * first one: what follows it, such as an MPO's second picture, is never read).
 *
 * @example
 * ```ts
 * import { jpegHasEnd } from "./jpeg.ts";
 * // a scan whose data holds a stuffed 0xff 0x00 and a restart marker, then EOI
 * const scan = [0xff, 0xda, 0, 2, 0x12, 0xff, 0x00, 0x34, 0xff, 0xd0, 0x56];
 * console.log(jpegHasEnd(Uint8Array.of(0xff, 0xd8, ...scan, 0xff, 0xd9))); // true
 * console.log(jpegHasEnd(Uint8Array.of(0xff, 0xd8, ...scan))); // false
 * ```
 */
export function jpegHasEnd(bytes: Uint8Array): boolean {
  let i = 2;
  while (i + 1 < bytes.length) {
    if (bytes[i] !== 0xff) {
      i++; // stray bytes between segments, which libjpeg skips with a warning
      continue;
    }
    const marker = bytes[i + 1];
    if (marker === 0xd9) return true;
    if (marker === 0xff) {
      i++;
      continue;
    }
    if (
      marker === 0x00 || marker === 0x01 || marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7)
    ) {
      i += 2;
      continue;
    }
    if (i + 3 >= bytes.length) return false;
    i += 2 + ((bytes[i + 2] << 8) | bytes[i + 3]);
    if (marker !== 0xda) continue;
    // entropy-coded data: up to the next marker that is neither a stuffed 0xff nor a restart
    while (i + 1 < bytes.length) {
      if (bytes[i] === 0xff) {
        const next = bytes[i + 1];
        if (next !== 0x00 && next !== 0xff && !(next >= 0xd0 && next <= 0xd7)) break;
      }
      i++;
    }
  }
  return false;
}

/** The exports of `@cwasm/jpeg-turbo`'s wasm: malloc/free and TurboJPEG's decompressor. */
interface TurboJpeg {
  memory: WebAssembly.Memory;
  malloc(size: number): number;
  free(pointer: number): void;
  tjInitDecompress(): number;
  tjDecompress2(
    handle: number,
    src: number,
    size: number,
    dst: number,
    width: number,
    pitch: number,
    height: number,
    pixelFormat: number,
    flags: number,
  ): number;
  tjDestroy(handle: number): number;
}

/** TurboJPEG's pixel formats: RGB (gray is replicated by libjpeg) and CMYK. */
const TJPF_RGB = 0, TJPF_CMYK = 11;
/** The wasm memory an instance may keep between calls (a 12-megapixel photo needs ~60 MB). */
const KEEP_MEMORY = 128 * 2 ** 20;
let turboModule: Promise<WebAssembly.Module> | undefined;
let turbo: TurboJpeg | undefined;

/**
 * A TurboJPEG instance. libjpeg's errors longjmp, which this build turns into a thrown
 * exception that leaves the instance's stack unwound half-way; the caller drops an instance
 * that threw, and the next call makes a fresh one from the compiled module.
 */
async function turboJpeg(): Promise<TurboJpeg> {
  turboModule ??= (async () => {
    const url = import.meta.resolve("@cwasm/jpeg-turbo/jpeg-turbo.wasm");
    return WebAssembly.compile(await (await fetch(url)).arrayBuffer());
  })();
  const module = await turboModule;
  if (turbo) return turbo;
  const fail = (what: string) => () => {
    throw new Error(what);
  };
  const instance = new WebAssembly.Instance(module, {
    env: { setjmp: () => 0, longjmp: fail("libjpeg stopped on an error in its data") },
    wasi_snapshot_preview1: {
      environ_sizes_get: () => 0,
      environ_get: fail("environ_get"),
      proc_exit: fail("proc_exit"),
      fd_close: fail("fd_close"),
      fd_seek: fail("fd_seek"),
      fd_write: fail("fd_write"),
    },
  });
  turbo = instance.exports as unknown as TurboJpeg;
  return turbo;
}

/** MULDIV255 of PIL's Convert.c: `a · b / 255`, rounded. */
const mulDiv255 = (a: number, b: number): number => {
  const t = a * b + 128;
  return ((t >> 8) + t) >> 8;
};

/**
 * A JPEG → RGB through TurboJPEG. CMYK and YCCK as PIL: libjpeg's CMYK planes, inverted (PIL's
 * `CMYK;I`), then PIL's `cmyk2rgb`: `r = 255 - k - c·(255 - k)/255`, and so on.
 */
async function decodeWithTurbo(bytes: Uint8Array, frame: JpegFrame): Promise<RgbImage> {
  const tj = await turboJpeg();
  const pointers: number[] = [];
  const alloc = (size: number) => {
    const p = tj.malloc(size);
    if (!p) throw new Error("out of wasm memory");
    pointers.push(p);
    return p;
  };
  let handle = 0;
  let ok = false;
  try {
    const src = alloc(bytes.length);
    new Uint8Array(tj.memory.buffer, src, bytes.length).set(bytes);
    handle = tj.tjInitDecompress();
    if (!handle) throw new Error("out of wasm memory");
    // the size from the frame header: TurboJPEG's own header call also wants a subsampling it
    // knows, which a 4-component JPEG need not have (libjpeg decodes any)
    const { width, height } = frame;
    const cmyk = frame.components === 4;
    const channels = cmyk ? 4 : 3;
    const dst = alloc(width * height * channels);
    const format = cmyk ? TJPF_CMYK : TJPF_RGB;
    // -1 is a warning (damaged data libjpeg decoded anyway, as PIL takes it): errors throw
    tj.tjDecompress2(handle, src, bytes.length, dst, width, width * channels, height, format, 0);
    const out = new Uint8Array(tj.memory.buffer, dst, width * height * channels);
    let data: Uint8Array;
    if (!cmyk) data = out.slice();
    else {
      data = new Uint8Array(width * height * 3);
      for (let p = 0, q = 0; q < data.length; p += 4, q += 3) {
        const nk = out[p + 3]; // 255 - k, k being the inverted plane
        data[q] = Math.max(0, nk - mulDiv255(255 - out[p], nk));
        data[q + 1] = Math.max(0, nk - mulDiv255(255 - out[p + 1], nk));
        data[q + 2] = Math.max(0, nk - mulDiv255(255 - out[p + 2], nk));
      }
    }
    ok = true;
    return { width, height, data };
  } finally {
    if (ok) {
      tj.tjDestroy(handle);
      for (const p of pointers) tj.free(p);
    }
    // after an error its memory may be inconsistent; after a very large photo it holds that
    // much memory for good (wasm memory does not shrink): the next call makes a new instance
    if (!ok || tj.memory.buffer.byteLength > KEEP_MEMORY) turbo = undefined;
  }
}

/**
 * Decodes JPEG bytes to RGB as PIL's `Image.open(f).convert("RGB")` does; the EXIF orientation
 * is not applied here. Throws `corrupt JPEG: …` when the bytes cannot be read.
 *
 * @example
 * ```ts
 * import { decodeJpeg } from "./jpeg.ts";
 * const cut = Uint8Array.of(0xff, 0xd8, 0xff, 0xc0, 0, 11, 8, 0, 1, 0, 1, 1, 1, 0x11, 0);
 * await decodeJpeg(cut).catch((e) => console.log(e.message));
 * // corrupt JPEG: truncated (no end-of-image marker)
 * ```
 */
export async function decodeJpeg(bytes: Uint8Array): Promise<RgbImage> {
  const frame = jpegFrame(bytes);
  if (!frame) throw new VitLoraError("corrupt JPEG: no frame header (truncated or damaged)");
  const { components } = frame;
  if (!jpegHasEnd(bytes)) {
    throw new VitLoraError("corrupt JPEG: truncated (no end-of-image marker)");
  }
  if (components !== 1 && components !== 3 && components !== 4) {
    throw new VitLoraError(`corrupt JPEG: ${components} colour components (1, 3 or 4 are read)`);
  }
  if (frame.width === 0 || frame.height === 0) throw new VitLoraError("corrupt JPEG: no size");
  try {
    return await decodeWithTurbo(bytes, frame);
  } catch (e) {
    throw new VitLoraError(`corrupt JPEG: ${e instanceof Error ? e.message : String(e)}`);
  }
}

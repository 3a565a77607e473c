// Types of the imagescript 1.3.1 wasm decoders that image.ts imports one by one.
interface Decoded {
  width: number;
  height: number;
  /** PNG: RGBA. */
  framebuffer: Uint8Array;
  /** JPEG: gray, RGB or CMYK per `format` (0, 1, 2); TIFF: RGBA. */
  buffer: Uint8Array;
  format: number;
}
declare const decoder: { init(): Promise<{ decode(bytes: Uint8Array): Decoded }> };
export default decoder;

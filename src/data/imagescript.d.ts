// Types of imagescript 1.3.1's wasm JPEG decoder, which image.ts imports on its own.
interface Decoded {
  width: number;
  height: number;
  /** Gray, RGB or CMYK per `format` (0, 1, 2). */
  buffer: Uint8Array;
  format: number;
}
declare const decoder: { init(): Promise<{ decode(bytes: Uint8Array): Decoded }> };
export default decoder;

/**
 * Images/s beside `deno bench`'s time per iteration: each case records the images and the
 * milliseconds of its measured iterations, and a line per case is printed when the bench
 * ends (`images/s: <case>: <rate>`), so that every comparison a group makes can be read as
 * images a second of the same work.
 *
 * @module
 */

const rates = new Map<string, { images: number; ms: number }>();

/** Records one measured iteration of `name`: `images` images in `ms` milliseconds. */
export function recordRate(name: string, images: number, ms: number): void {
  const r = rates.get(name) ?? { images: 0, ms: 0 };
  r.images += images;
  r.ms += ms;
  rates.set(name, r);
}

/** Times `fn` (which handles `images` images) and records it under `name`. */
export async function timed<T>(name: string, images: number, fn: () => Promise<T>): Promise<T> {
  const start = performance.now();
  const out = await fn();
  recordRate(name, images, performance.now() - start);
  return out;
}

globalThis.addEventListener("unload", () => {
  for (const [name, { images, ms }] of rates) {
    console.log(`images/s: ${name}: ${(images / (ms / 1000)).toFixed(2)}`);
  }
});

/**
 * Images/s beside `deno bench`'s time per iteration: each case records the images and the
 * milliseconds of every iteration it runs, and a line per case is printed when the bench ends
 * (`images/s: <case>: <rate>`, from the median iteration, so that a warm-up's export or
 * compilation does not count), so that every comparison a group makes can be read as images a
 * second of the same work.
 *
 * @module
 */

const rates = new Map<string, number[]>();

/** Records one iteration of `name`: `images` images in `ms` milliseconds. */
export function recordRate(name: string, images: number, ms: number): void {
  rates.set(name, [...rates.get(name) ?? [], images / (ms / 1000)]);
}

/** Times `fn` (which handles `images` images) and records it under `name`. */
export async function timed<T>(name: string, images: number, fn: () => Promise<T>): Promise<T> {
  const start = performance.now();
  const out = await fn();
  recordRate(name, images, performance.now() - start);
  return out;
}

globalThis.addEventListener("unload", () => {
  for (const [name, values] of rates) {
    const sorted = [...values].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    console.log(`images/s: ${name}: ${median.toFixed(2)} (median of ${values.length} iterations)`);
  }
});

/** Recursive folder copy for tests (std's fs/copy is on JSR, which is out of reach here). */

import { cp } from "node:fs/promises";

/** Copies a folder and everything in it. */
export async function copy(from: string, to: string): Promise<void> {
  await cp(from, to, { recursive: true });
}

/**
 * The decoding worker: receives encoded images, answers model input (see `loader.ts`).
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { prepareImage } from "./prepare.ts";
import type { TransformSpec } from "./transforms.ts";

/** A job sent to the worker. */
interface Job {
  id: number;
  bytes: Uint8Array;
  spec: TransformSpec;
  rng?: number[];
}

self.onmessage = async (event: MessageEvent<Job>) => {
  const { id, bytes, spec, rng } = event.data;
  try {
    const pixels = await prepareImage(bytes, spec, rng);
    self.postMessage({ id, pixels }, [pixels.buffer as ArrayBuffer]);
  } catch (e) {
    self.postMessage({ id, error: (e as Error)?.message ?? String(e) });
  }
};

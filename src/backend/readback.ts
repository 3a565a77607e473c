/**
 * Reading a small tensor back to the host without holding the GPU queue or the tensor: the
 * copy to a mappable buffer is queued behind the work already recorded, the tensor is
 * released at once, and the values arrive later. A training loop can so queue its next step
 * before it waits for the last one's loss (see the trainer).
 *
 * tfjs's own `data()` keeps the tensor until the values arrive and reads through tfjs's buffer
 * pool; here the mappable buffers are this module's own (a few bytes each, reused), so that the
 * tensor count and tfjs's GPU memory are the same whether a read is on its way or not.
 *
 * @module
 */

import { type Tensor, tf } from "../core/tf.ts";

/** The parts of tfjs-webgpu's `WebGPUBackend` a read needs (some private in its types). */
interface BackendInternals {
  device: GPUDevice;
  tensorMap: { get(dataId: object): { values?: unknown; resource?: unknown } | undefined };
  commandEncoder: GPUCommandEncoder | null;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
}

/**
 * Submits the work tfjs has recorded but not yet submitted (it submits every 15 kernels), so
 * that the GPU has it before the host waits for something; a no-op off WebGPU or when nothing
 * is recorded. tfjs also releases the buffers that work was holding.
 */
export function submitRecorded(): void {
  if (tf.getBackend() !== "webgpu") return;
  const backend = tf.backend() as unknown as BackendInternals;
  if (!backend.commandEncoder) return;
  backend.endComputePassEncoder();
  backend.submitQueue();
}

/** Mappable buffers no read is using, by size. */
const idle = new WeakMap<GPUDevice, Map<number, GPUBuffer[]>>();

/**
 * The values of `t` (float32), read back to the host; `t` is disposed at once. On WebGPU the
 * copy is queued after the work already recorded (and that work submitted), and the promise
 * resolves when the GPU has done it; elsewhere the values are read at once.
 *
 * @example
 * ```ts
 * import { initBackend, tf } from "@lora/vit";
 * import { readAndDispose } from "./readback.ts";
 * await initBackend("cpu");
 * const pending = readAndDispose(tf.tensor1d([1.5, 2]));
 * console.log(await pending); // Float32Array [1.5, 2]
 * ```
 */
export function readAndDispose(t: Tensor): Promise<Float32Array> {
  try {
    if (tf.getBackend() !== "webgpu" || t.dtype !== "float32") {
      return Promise.resolve(Float32Array.from(t.dataSync()));
    }
    const backend = tf.backend() as unknown as BackendInternals;
    const data = backend.tensorMap.get(t.dataId);
    const buffer = data?.resource;
    if (data?.values != null || !(buffer instanceof GPUBuffer)) {
      return Promise.resolve(Float32Array.from(t.dataSync())); // still on the host
    }
    const bytes = t.size * 4;
    const device = backend.device;
    let pool = idle.get(device);
    if (!pool) idle.set(device, pool = new Map());
    const staging = pool.get(bytes)?.pop() ??
      device.createBuffer({
        size: bytes,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
    backend.ensureCommandEncoderReady();
    backend.endComputePassEncoder();
    backend.commandEncoder!.copyBufferToBuffer(buffer, 0, staging, 0, bytes);
    backend.submitQueue();
    return staging.mapAsync(GPUMapMode.READ).then(() => {
      const values = new Float32Array(staging.getMappedRange().slice(0));
      staging.unmap();
      const free = pool.get(bytes);
      if (free) free.push(staging);
      else pool.set(bytes, [staging]);
      return values;
    });
  } finally {
    // Released now: the copy is queued before anything that could reuse the buffer.
    t.dispose();
  }
}

/**
 * A replica of a classifier in a worker, on tfjs's wasm backend (see `replicas.ts`): built
 * from a snapshot, it answers forward passes and training gradients for a part of a batch.
 * It runs as a `node:worker_threads` worker (which its host can unref), so it speaks through
 * `parentPort`.
 *
 * @module
 */

import "../backend/deno_platform.ts"; // Deno's environment, files and BLAS (core/platform.ts)
import { parentPort } from "node:worker_threads";
import { initBackend } from "../backend/backend.ts";
import type { ViTClassifier } from "../model/classifier.ts";
import { fromWire, type ReplicaReply, type ReplicaRequest, toWire } from "./replica_protocol.ts";
import { classifierFromSnapshot, type ClassifierSnapshot } from "./snapshot.ts";
import { type Tensor1D, type Tensor4D, tf } from "../core/tf.ts";

let clf: ViTClassifier | undefined;

async function handle(request: ReplicaRequest): Promise<ReplicaReply> {
  switch (request.type) {
    case "init": {
      await initBackend("wasm", { quiet: true });
      clf = classifierFromSnapshot(request.snapshot as ClassifierSnapshot);
      return { id: request.id };
    }
    case "trainable": {
      const vars = clf!.trainableVariables();
      for (const [key, { shape, data }] of Object.entries(request.tensors)) {
        tf.tidy(() => vars[key].assign(tf.tensor(data, [...shape], "float32")));
      }
      return { id: request.id };
    }
    case "logits": {
      const { size } = request;
      const x = tf.tensor4d(request.pixels, [request.rows, 3, size, size]) as Tensor4D;
      const logits = clf!.logits(x);
      const data = (await logits.data()) as Float32Array;
      tf.dispose([x, logits]);
      return { id: request.id, data };
    }
    case "gradients": {
      const { size, rows } = request;
      const x = tf.tensor4d(request.pixels, [rows, 3, size, size]) as Tensor4D;
      const y = tf.tensor1d(request.labels, "int32") as Tensor1D;
      const { loss, grads } = clf!.lossAndGradients(x, y, {
        training: request.training,
        dropoutSeed: request.dropoutSeed,
        labelSmoothing: request.labelSmoothing,
      });
      const out: Record<string, Float32Array> = {};
      for (const [key, g] of Object.entries(grads)) out[key] = (await g.data()) as Float32Array;
      const lossValue = (await loss.data())[0];
      tf.dispose([x, y, loss, ...Object.values(grads)]);
      return { id: request.id, loss: lossValue, grads: out };
    }
  }
}

const port = parentPort!;
port.on("message", async (message: ReplicaRequest) => {
  const { id } = message;
  try {
    const reply = await handle(fromWire(message));
    const transfer: ArrayBuffer[] = [];
    if (reply.data) transfer.push(reply.data.buffer as ArrayBuffer);
    for (const g of Object.values(reply.grads ?? {})) transfer.push(g.buffer as ArrayBuffer);
    port.postMessage(toWire(reply), transfer);
  } catch (e) {
    port.postMessage({ id, error: (e as Error)?.message ?? String(e) } satisfies ReplicaReply);
  }
});

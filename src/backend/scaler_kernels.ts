/**
 * The dynamic loss scaler's arithmetic on the GPU (see `training/grad_scaler.ts`), so that a
 * training step never waits for the host to learn whether its gradients overflowed: the scale
 * and growth tracker updated from the step's gradient norm (PyTorch's `_amp_update_scale_`),
 * and the step's values to read back. An overflow is a norm that is not finite (an infinity or
 * a NaN in any gradient makes the sum of squares one), tested on its bits. One kernel each on
 * WebGPU, plain ops elsewhere.
 *
 * @module
 */

import type { TensorInfo } from "@tensorflow/tfjs";
import type { WebGPUBackend, WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";
import { webgpu_util } from "@tensorflow/tfjs-backend-webgpu";
import { type Scalar, type Tensor, type Tensor1D, tf } from "../core/tf.ts";

/** GradScaler's constants. */
export interface ScalerRules {
  /** The factor after `interval` steps without an overflow. */
  growth: number;
  /** The factor after an overflow. */
  backoff: number;
  /** Steps without an overflow before the scale grows. */
  interval: number;
}

const UPDATE = "VitLoraScalerUpdate";
const STATS = "VitLoraScaledStepStats";

const FOUND = "let found = (bitcast<u32>(Norm[0]) & 0x7f800000u) == 0x7f800000u;";

/** A program over a few scalars: one invocation writes `result[0..n)`. */
class ScalarsProgram implements WebGPUProgram {
  variableNames: string[];
  size = true;
  uniforms = "growth : f32, backoff : f32, interval : f32,";
  workgroupSize: [number, number, number] = [1, 1, 1];
  outputShape: number[];
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number] = [1, 1, 1];
  shaderKey: string;
  #code: string;

  constructor(n: number, inputs: string[], key: string, code: string) {
    this.outputShape = [n];
    this.dispatchLayout = webgpu_util.flatDispatchLayout(this.outputShape);
    this.variableNames = inputs;
    this.shaderKey = `vit_lora_${key}`;
    this.#code = code;
  }

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index >= uniforms.size) { return; } // one invocation: index 0
        ${this.#code}
      }`;
  }
}

function scalars(n: number, inputs: string[], key: string, code: string): ScalarsProgram {
  return new ScalarsProgram(n, inputs, key, code);
}

tf.registerKernel({
  kernelName: UPDATE,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { scale, tracker, norm } = inputs as Record<string, TensorInfo>;
    const r = attrs as unknown as ScalerRules;
    // [scale, tracker]: as torch's _amp_update_scale_ (a grown scale kept only when finite)
    const program = scalars(
      2,
      ["Scale", "Tracker", "Norm"],
      UPDATE,
      `${FOUND}
        var s = Scale[0];
        var t = Tracker[0] + 1.0;
        if (found) {
          s = s * uniforms.backoff;
          t = 0.0;
        } else if (t >= uniforms.interval) {
          let grown = s * uniforms.growth;
          if ((bitcast<u32>(grown) & 0x7f800000u) != 0x7f800000u) { s = grown; }
          t = 0.0;
        }
        setOutputAtIndex(0, s);
        setOutputAtIndex(1, t);`,
    );
    return (backend as WebGPUBackend).runWebGPUProgram(
      program,
      [scale, tracker, norm],
      "float32",
      [
        { type: "float32", data: [r.growth] },
        { type: "float32", data: [r.backoff] },
        { type: "float32", data: [r.interval] },
      ],
    );
  },
});

tf.registerKernel({
  kernelName: STATS,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend }) => {
    const { loss, norm, scale } = inputs as Record<string, TensorInfo>;
    const program = scalars(
      4,
      ["Loss", "Norm", "Scale"],
      STATS,
      `${FOUND}
        setOutputAtIndex(0, Loss[0]);
        setOutputAtIndex(1, Norm[0] / Scale[0]);
        setOutputAtIndex(2, select(0.0, 1.0, found));
        setOutputAtIndex(3, Scale[0]);`,
    );
    return (backend as WebGPUBackend).runWebGPUProgram(program, [loss, norm, scale], "float32", [
      { type: "float32", data: [0] },
      { type: "float32", data: [0] },
      { type: "float32", data: [0] },
    ]);
  },
});

/** 1 where `norm` is not finite (the step overflowed), else 0: plain ops. */
function overflowed(norm: Tensor): Tensor {
  return tf.logicalNot(tf.isFinite(norm)).cast("float32");
}

/**
 * The scale and growth tracker after a step whose (scaled) gradient norm is `norm`: halved
 * (`backoff`) and the tracker reset on an overflow; else the tracker counts the step, and
 * after `interval` steps the scale doubles (`growth`) and the tracker resets. New tensors.
 *
 * @example
 * ```ts
 * import { initBackend, tf } from "@lora/vit";
 * import { updateScale } from "./scaler_kernels.ts";
 * await initBackend("cpu");
 * const next = updateScale(tf.scalar(65536), tf.scalar(0), tf.scalar(Infinity), {
 *   growth: 2, backoff: 0.5, interval: 2000,
 * });
 * console.log(await next.scale.data()); // [32768]
 * ```
 */
export function updateScale(
  scale: Tensor,
  tracker: Tensor,
  norm: Tensor,
  rules: ScalerRules,
): { scale: Scalar; tracker: Scalar } {
  if (tf.getBackend() === "webgpu") {
    const both = tf.engine().runKernel(UPDATE, { scale, tracker, norm }, { ...rules }) as Tensor;
    const [s, t] = tf.tidy(() => tf.unstack(both)) as Scalar[];
    both.dispose();
    return { scale: s, tracker: t };
  }
  return tf.tidy(() => {
    const found = overflowed(norm).reshape([]).cast("bool");
    const counted = tracker.add(1);
    const grows = counted.greaterEqual(rules.interval);
    const grown = scale.mul(rules.growth);
    const growsFinite = grows.logicalAnd(tf.isFinite(grown));
    const s = tf.where(found, scale.mul(rules.backoff), tf.where(growsFinite, grown, scale));
    const t = tf.where(found.logicalOr(grows), tf.zerosLike(tracker), counted);
    return { scale: s.reshape([]) as Scalar, tracker: t.reshape([]) as Scalar };
  });
}

/**
 * A scaled step's values to read back: `[loss, grad_norm, skipped, scale]`, the norm unscaled
 * (infinite or NaN on an overflow), `skipped` 1 on an overflow.
 */
export function scaledStepStats(loss: Tensor, norm: Tensor, scale: Tensor): Tensor1D {
  if (tf.getBackend() === "webgpu") {
    return tf.engine().runKernel(STATS, { loss, norm, scale }, {}) as Tensor1D;
  }
  return tf.tidy(() =>
    tf.stack([
      loss.reshape([]),
      norm.div(scale).reshape([]),
      overflowed(norm).reshape([]),
      scale.reshape([]),
    ])
  ) as Tensor1D;
}

/**
 * The MLP's activation on float16 tensors (`--precision fp16`), and its gradient: one kernel
 * each way, one invocation a word (two elements), as PyTorch runs an activation on a float16
 * tensor (computed in float32, rounded to float16). Every `hidden_act` a ViT config may name.
 *
 * @module
 */

import type { TensorInfo } from "@tensorflow/tfjs";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { type Tensor, tf } from "../core/tf.ts";
import { HALF_WGSL, halfReader, HalfTensor } from "./half.ts";
import { ERF_WGSL, FlatProgram } from "./programs.ts";

/** The activations (transformers' `hidden_act` names). */
export type Activation = "gelu" | "gelu_new" | "gelu_pytorch_tanh" | "relu" | "silu" | "swish";

/** WGSL: `act(u)` and `dact(u)` (its derivative) for each activation. */
const FORMULAS: Record<Activation, string> = {
  gelu: `${ERF_WGSL}
    fn act(u : f32) -> f32 { return 0.5 * u * (1.0 + erf_as(u * 0.7071067811865476)); }
    fn dact(u : f32) -> f32 {
      return 0.5 * (1.0 + erf_as(u * 0.7071067811865476)) + u * 0.3989422804014327 * exp(-0.5 * u * u);
    }`,
  gelu_new: `
    fn act(u : f32) -> f32 {
      return 0.5 * u * (1.0 + tanh(0.7978845608028654 * (u + 0.044715 * u * u * u)));
    }
    fn dact(u : f32) -> f32 {
      let t = tanh(0.7978845608028654 * (u + 0.044715 * u * u * u));
      return 0.5 * (1.0 + t) + 0.5 * u * (1.0 - t * t) * 0.7978845608028654 * (1.0 + 0.134145 * u * u);
    }`,
  gelu_pytorch_tanh: "",
  relu: `
    fn act(u : f32) -> f32 { return max(u, 0.0); }
    fn dact(u : f32) -> f32 { return select(0.0, 1.0, u > 0.0); }`,
  silu: `
    fn act(u : f32) -> f32 { return u / (1.0 + exp(-u)); }
    fn dact(u : f32) -> f32 { let s = 1.0 / (1.0 + exp(-u)); return s * (1.0 + u * (1.0 - s)); }`,
  swish: "",
};
FORMULAS.gelu_pytorch_tanh = FORMULAS.gelu_new;
FORMULAS.swish = FORMULAS.silu;

/** Over the words of `U` (and `Dy`): `act`, or `dy · dact`. */
function activation16Program(words: number, act: Activation, grad: boolean): FlatProgram {
  const value = (e: string) => grad ? `Dy_h(${e}) * dact(U_h(${e}))` : `act(U_h(${e}))`;
  return new FlatProgram({
    outputShape: [words],
    inputs: grad ? ["U", "Dy"] : ["U"],
    key: `vit_lora_Activation16_${act}_${grad}`,
    code: `${HALF_WGSL}${FORMULAS[act]}
      ${halfReader("U")}${grad ? halfReader("Dy") : ""}
      fn main(index : i32) {
        if (index < uniforms.size) {
          setOutputAtIndexI32(index, packHalves(${value("2 * index")}, ${value("2 * index + 1")}));
        }
      }`,
  });
}

function run(act: Activation, inputs: HalfTensor[]): HalfTensor {
  const [u] = inputs;
  const words = u.packed.size;
  const program = activation16Program(words, act, inputs.length > 1);
  const backend = tf.backend() as unknown as WebGPUBackend;
  const info = backend.runWebGPUProgram(
    program,
    inputs.map((h) => h.packed as unknown as TensorInfo),
    "int32",
  );
  return new HalfTensor(tf.engine().makeTensorFromTensorInfo(info) as Tensor, u.shape);
}

/**
 * `act(u)` for a float16 tensor `u` (an even size), as float16. WebGPU.
 *
 * @example
 * ```ts ignore
 * import { initBackend, tf } from "@lora/vit";
 * import { activation16 } from "./activation16.ts";
 * import { packHalf } from "./half.ts";
 *
 * await initBackend("webgpu"); // an adapter with shader-f16
 * const u = packHalf(tf.tensor2d([[-1, 0, 1, 2]])); // e.g. the MLP's pre-activations
 * const a = activation16("gelu", u); // float16
 * console.log(await a.unpack().data()); // ≈ [-0.1587, 0, 0.8413, 1.954]
 * ```
 */
export function activation16(act: Activation, u: HalfTensor): HalfTensor {
  return run(act, [u]);
}

/** `dy · act'(u)` for float16 tensors `u` and `dy`, as float16: the activation's gradient. */
export function activation16Grad(act: Activation, u: HalfTensor, dy: HalfTensor): HalfTensor {
  return run(act, [u, dy]);
}

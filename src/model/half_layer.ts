/**
 * One encoder layer under `--precision fp16`, with PyTorch's mixed-precision semantics (what
 * Trainer's `fp16=True` runs: autocast, float32 weights for what trains): the frozen weights
 * float16; the linear layers (the query/key/value projection fused into one product, the
 * output projection, the MLP, LoRA's A and B, read as float16) products of float16 inputs with
 * float32 accumulation and a float16 result; attention over float16 query, key and value with
 * its softmax in float32; LayerNorm, the residual stream and every gradient a float32 tensor
 * receives in float32; the gradients of float16 tensors in float16, as autograd's would be.
 *
 * The layer is one custom gradient: its forward pass is 10 kernels (with LoRA on query and
 * value) and keeps, for the backward pass, its input and its first residual sum (float32), the
 * fused projection's output, the attention's context and the MLP's pre-activation (float16),
 * and LoRA's `A x` products: 6 `[rows, hidden]` float32 tensors' worth, where tfjs's autodiff
 * of the float32 layer keeps some 14, and as much again of gradients until the backward pass
 * ends. The backward pass recomputes the LayerNorms' and the activation's outputs where LoRA
 * needs them, and frees what it makes as it goes.
 *
 * Dropout (hidden, and LoRA's on its branch's input) is drawn by the kernels from the pass's
 * keys, as `dropout` draws it; LoRA's is applied to the float16 input of its branch.
 *
 * @module
 */

import { type Tensor, type Tensor2D, tf, type Variable } from "../core/tf.ts";
import { HalfTensor } from "../backend/half.ts";
import { gemm16, type GemmDropout, type GemmOperand, type GemmTerm } from "../backend/gemm16.ts";
import { attention16, attention16Grad } from "../backend/attention16.ts";
import { type Activation, activation16, activation16Grad } from "../backend/activation16.ts";
import { layerNormGradAdd, layerNormHalf } from "../backend/layer_norm.ts";
import type { Dropout, Linear, LoraLayer, ViTLayer } from "./layers.ts";

/** What a float16 layer needs besides its tensors. */
export interface HalfLayerShape {
  /** Attention heads. */
  heads: number;
  /** Tokens an image. */
  tokens: number;
  /** The MLP's activation. */
  act: Activation;
  /** `hidden_dropout_prob`. */
  hiddenDropout: number;
}

/** The modules LoRA may be on, in the order the forward pass meets them. */
const MODULES = ["query", "key", "value", "output", "intermediate", "mlpOut"] as const;
type Module = (typeof MODULES)[number];

/** One LoRA branch of the layer, with its dropout mask for this pass. */
interface Branch {
  module: Module;
  lora: LoraLayer;
  drop?: GemmDropout;
  /** Its block of the fused projection's output (query 0, key 1, value 2). */
  block?: number;
}

function linearOf(layer: ViTLayer, module: Module): Linear {
  switch (module) {
    case "query":
    case "key":
    case "value":
      return layer.attention[module];
    case "output":
      return layer.attention.output;
    case "intermediate":
      return layer.intermediate;
    case "mlpOut":
      return layer.output;
  }
}

/**
 * One encoder layer in float16 (see the module's notes): `h` `[rows, hidden]` float32 in, the
 * layer's output float32 out, with a gradient for `h` and every LoRA `A` and `B`. WebGPU.
 */
export function encoderLayer16(
  layer: ViTLayer,
  h: Tensor2D,
  shape: HalfLayerShape,
  drop: Dropout,
): Tensor2D {
  const branches: Branch[] = [];
  for (const module of MODULES) {
    const lora = linearOf(layer, module).lora;
    if (!lora) continue;
    const block = module === "query"
      ? 0
      : module === "key"
      ? 1
      : module === "value"
      ? 2
      : undefined;
    branches.push({ module, lora, drop: drop.mask(lora.dropout), block });
  }
  const hidden1 = drop.mask(shape.hiddenDropout);
  const hidden2 = drop.mask(shape.hiddenDropout);
  const vars: Variable[] = branches.flatMap((b) => [b.lora.A, b.lora.B]);
  const [rows, width] = h.shape;
  const inner = layer.intermediate.weightT.shape[1];
  const qkv = layer.qkv!;
  const weight = (module: "output" | "intermediate" | "mlpOut") =>
    linearOf(layer, module).weightT as HalfTensor;
  const of = (module: Module) => branches.find((b) => b.module === module);
  const ln1 = layer.layernorm_before, ln2 = layer.layernorm_after;

  /** LoRA's `A x` for a branch whose input is `x` (`[rows, in]`, float16): float32 `[rows, r]`. */
  const down = (b: Branch, x: HalfTensor) =>
    gemm16({
      a: { t: x, drop: b.drop },
      b: { t: b.lora.A, trans: true },
      m: rows,
      k: x.shape[1],
      n: b.lora.rank,
    }) as Tensor;
  /** LoRA's `B (A x) · scaling` as a term of its frozen layer's product. */
  const upTerm = (b: Branch, d: Tensor): GemmTerm => ({
    d: { t: d },
    e: {
      t: b.lora.B,
      trans: true,
      window: b.block === undefined ? undefined : [b.block * width, (b.block + 1) * width],
    },
    rank: b.lora.rank,
    place: "inside",
    scale: b.lora.scaling,
  });

  const op = tf.customGrad(
    ((...args: unknown[]) => {
      const save = args[args.length - 1] as (tensors: Tensor[]) => void;
      const input = args[0] as Tensor2D;
      const downs = new Map<Module, Tensor>();
      // attention
      const x = layerNormHalf(input, ln1.weight, ln1.bias, ln1.eps);
      const qkvBranches = branches.filter((b) => b.block !== undefined);
      for (const b of qkvBranches) downs.set(b.module, down(b, x));
      const projected = gemm16({
        a: { t: x },
        b: { t: qkv.weightT },
        m: rows,
        k: width,
        n: 3 * width,
        bias: qkv.bias,
        terms: qkvBranches.map((b) => upTerm(b, downs.get(b.module)!)),
        out: "half",
      }) as HalfTensor;
      const context = attention16(projected, shape);
      const frozen = (
        module: "output" | "mlpOut",
        a: HalfTensor,
        residual: Tensor,
        key?: GemmDropout,
      ) => {
        const b = of(module);
        if (b) downs.set(module, down(b, a));
        const w = weight(module);
        return gemm16({
          a: { t: a },
          b: { t: w },
          m: rows,
          k: w.shape[0],
          n: w.shape[1],
          bias: linearOf(layer, module).bias,
          terms: b ? [upTerm(b, downs.get(module)!)] : [],
          residual: { t: residual, drop: key },
        }) as Tensor2D;
      };
      const h1 = frozen("output", context, input, hidden1);
      // MLP
      const x2 = layerNormHalf(h1, ln2.weight, ln2.bias, ln2.eps);
      const up = of("intermediate");
      if (up) downs.set("intermediate", down(up, x2));
      const u = gemm16({
        a: { t: x2 },
        b: { t: weight("intermediate") },
        m: rows,
        k: width,
        n: inner,
        bias: layer.intermediate.bias,
        terms: up ? [upTerm(up, downs.get("intermediate")!)] : [],
        out: "half",
      }) as HalfTensor;
      const a = activation16(shape.act, u);
      const h2 = frozen("mlpOut", a, h1, hidden2);
      save([input, projected.packed, context.packed, h1, u.packed, ...downs.values()]);
      const saved = [...downs.keys()];
      return {
        value: h2,
        gradFunc: (dy: Tensor, tensors: Tensor[]) =>
          tf.tidy(() => {
            const [hIn, qkvPacked, ctxPacked, h1Saved, uPacked, ...downList] = tensors;
            const d = new Map(saved.map((m, i) => [m, downList[i]]));
            return backward(dy as Tensor2D, {
              h: hIn as Tensor2D,
              qkv: new HalfTensor(qkvPacked, [rows, 3 * width]),
              context: new HalfTensor(ctxPacked, [rows, width]),
              h1: h1Saved as Tensor2D,
              u: new HalfTensor(uPacked, [rows, inner]),
              downs: d,
            });
          }),
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0],
  );

  /** The gradients of `h` and of every branch's A and B (in `vars`' order). */
  function backward(
    dy: Tensor2D,
    s: {
      h: Tensor2D;
      qkv: HalfTensor;
      context: HalfTensor;
      h1: Tensor2D;
      u: HalfTensor;
      downs: Map<Module, Tensor>;
    },
  ): Tensor[] {
    const grads = new Map<Module, [Tensor, Tensor]>();
    /**
     * A branch's gradients, given the gradient `dOut` of its layer's float16 output (an operand
     * read, `[rows, out]`) and its input `x`: dB, and dA; returns `d(A x)` for the input's.
     */
    const branchGrads = (b: Branch, dOut: GemmOperand, x: HalfTensor | (() => HalfTensor)) => {
      const r = b.lora.rank, out = b.lora.B.shape[0] as number;
      const dUp = { ...dOut, scale: b.lora.scaling }; // d(B A x) = r16(dOut · scaling)
      const dDown = gemm16({ a: dUp, b: { t: b.lora.B }, m: rows, k: out, n: r }) as Tensor;
      const dB = gemm16({
        a: { ...dUp, trans: true, ld: dUp.ld ?? out },
        b: { t: s.downs.get(b.module)! },
        m: out,
        k: rows,
        n: r,
      }) as Tensor;
      const input = typeof x === "function" ? x() : x;
      const dA = gemm16({
        a: { t: dDown, trans: true },
        b: { t: input, drop: b.drop },
        m: r,
        k: rows,
        n: input.shape[1],
      }) as Tensor;
      grads.set(b.module, [dA, dB]);
      return dDown;
    };
    /** The term that carries a branch's `d(A x)` into its input's gradient. */
    const downTerm = (b: Branch, dDown: Tensor, place: "inside" | "outside"): GemmTerm => ({
      d: { t: dDown },
      e: { t: b.lora.A },
      rank: b.lora.rank,
      place,
      drop: b.drop,
    });
    // the MLP's output projection: dy → da (float16)
    const dM: GemmOperand = { t: dy, drop: hidden2 };
    const mlpOut = of("mlpOut");
    const dDownM = mlpOut ? branchGrads(mlpOut, dM, () => activation16(shape.act, s.u)) : undefined;
    const w2 = weight("mlpOut");
    const da = gemm16({
      a: dM,
      b: { t: w2, trans: true },
      m: rows,
      k: width,
      n: inner,
      terms: mlpOut ? [downTerm(mlpOut, dDownM!, "inside")] : [],
      out: "half",
    }) as HalfTensor;
    const du = activation16Grad(shape.act, s.u, da);
    // the MLP's input projection: du → dx2 (float32), then LayerNorm's gradient
    const up = of("intermediate");
    const dDownU = up
      ? branchGrads(up, { t: du }, () => layerNormHalf(s.h1, ln2.weight, ln2.bias, ln2.eps))
      : undefined;
    const dx2 = gemm16({
      a: { t: du },
      b: { t: weight("intermediate"), trans: true },
      m: rows,
      k: inner,
      n: width,
      terms: up ? [downTerm(up, dDownU!, "outside")] : [],
    }) as Tensor;
    const dh1 = layerNormGradAdd(s.h1, dx2, ln2.weight, ln2.eps, dy);
    // the attention's output projection: dh1 → dcontext (float16)
    const dO: GemmOperand = { t: dh1, drop: hidden1 };
    const out = of("output");
    const dDownO = out ? branchGrads(out, dO, s.context) : undefined;
    const dContext = gemm16({
      a: dO,
      b: { t: weight("output"), trans: true },
      m: rows,
      k: width,
      n: width,
      terms: out ? [downTerm(out, dDownO!, "inside")] : [],
      out: "half",
    }) as HalfTensor;
    const dQkv = attention16Grad(s.qkv, s.context, dContext, shape);
    // the fused projection: its branches, then dx (float32) and LayerNorm's gradient
    let x: HalfTensor | undefined;
    const normed = () => x ??= layerNormHalf(s.h, ln1.weight, ln1.bias, ln1.eps);
    const qkvTerms = branches.filter((b) => b.block !== undefined).map((b) => {
      const dProjection: GemmOperand = { t: dQkv, ld: 3 * width, offset: b.block! * width };
      return downTerm(b, branchGrads(b, dProjection, normed), "outside");
    });
    const dx = gemm16({
      a: { t: dQkv },
      b: { t: qkv.weightT, trans: true },
      m: rows,
      k: 3 * width,
      n: width,
      terms: qkvTerms,
    }) as Tensor;
    const dh = layerNormGradAdd(s.h, dx, ln1.weight, ln1.eps, dh1);
    return [dh, ...branches.flatMap((b) => grads.get(b.module)!)];
  }

  return op(h, ...vars) as Tensor2D;
}

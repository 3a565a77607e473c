/**
 * An ONNX graph in memory, as the ViT's builder (`graph.ts`) makes it and the float16 and int8
 * passes (`float16.ts`, `quantize.ts`) rewrite it: nodes, initializers with their data as typed
 * arrays, typed inputs and outputs; and its encoding as a `ModelProto` (`proto.ts`, fields named
 * as in onnx.proto).
 *
 * @module
 */

import { VitLoraError } from "../core/errors.ts";
import {
  type AttributeProto,
  AttributeProto_AttributeType,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  TensorProto_DataType,
  type ValueInfoProto,
} from "./onnx_proto.ts";
import { encodeMessage } from "./proto.ts";

/** The element types the graphs use. */
export type ElementType = "float32" | "float16" | "int64" | "uint8" | "int8";

/** Each element type's typed array (float16 as its bits). */
export interface ElementArrays {
  /** float32 */ float32: Float32Array;
  /** IEEE half-precision bits */ float16: Uint16Array;
  /** int64 */ int64: BigInt64Array;
  /** uint8 */ uint8: Uint8Array;
  /** int8 */ int8: Int8Array;
}

/** An element type's `TensorProto.DataType`. */
export const DATA_TYPES: Readonly<Record<ElementType, number>> = {
  float32: TensorProto_DataType.FLOAT,
  float16: TensorProto_DataType.FLOAT16,
  int64: TensorProto_DataType.INT64,
  uint8: TensorProto_DataType.UINT8,
  int8: TensorProto_DataType.INT8,
};

/** The element type of a `TensorProto.DataType` ({@link DATA_TYPES} read backwards). */
export const ELEMENT_TYPES: ReadonlyMap<number, ElementType> = new Map(
  Object.entries(DATA_TYPES).map(([type, code]) => [code, type as ElementType]),
);

/** A node attribute. */
export type Attribute =
  | { kind: "int"; value: number }
  | { kind: "ints"; value: number[] }
  | { kind: "float"; value: number };

/** An `int` attribute. */
export const int = (value: number): Attribute => ({ kind: "int", value });
/** An `ints` attribute. */
export const ints = (value: number[]): Attribute => ({ kind: "ints", value });
/** A `float` attribute. */
export const float = (value: number): Attribute => ({ kind: "float", value });

/** A node of the graph. */
export interface OnnxNode {
  /** The operator (default domain). */
  op: string;
  /** The node's name (unique). */
  name: string;
  /** Input tensors' names. */
  inputs: string[];
  /** Output tensors' names. */
  outputs: string[];
  /** Attributes by name. */
  attributes: Record<string, Attribute>;
}

/** A constant tensor of the graph. */
export type OnnxTensor = {
  [T in ElementType]: { name: string; dims: number[]; type: T; data: ElementArrays[T] };
}[ElementType];

/** A graph input or output: name, element type, shape (a string is a free dimension). */
export interface OnnxValue {
  /** The tensor's name. */
  name: string;
  /** Its element type. */
  type: ElementType;
  /** Its shape; a string names a free dimension (e.g. `"batch"`). */
  shape: (number | string)[];
}

/** A graph: nodes in a valid order, initializers, inputs and outputs. */
export interface OnnxGraph {
  /** The nodes, each after the nodes its inputs come from. */
  nodes: OnnxNode[];
  /** The constant tensors. */
  initializers: OnnxTensor[];
  /** The graph's inputs. */
  inputs: OnnxValue[];
  /** The graph's outputs. */
  outputs: OnnxValue[];
}

/** Nodes and initializers, named as they are made. */
export class GraphBuilder {
  /** The nodes so far. */
  readonly nodes: OnnxNode[] = [];
  /** The initializers so far. */
  readonly initializers: OnnxTensor[] = [];
  readonly #names = new Set<string>();
  #next = 0;

  /** A node; returns its (first) output's name, `output` or a fresh one. */
  node(
    op: string,
    inputs: string[],
    attributes: Record<string, Attribute> = {},
    output?: string,
  ): string {
    const name = output ?? `${op.toLowerCase()}_${this.#next++}`;
    this.nodes.push({ op, name, inputs, outputs: [name], attributes });
    return name;
  }

  /** `Reshape(x, shape)`. */
  reshape(x: string, shape: number[]): string {
    return this.node("Reshape", [x, this.constant(shape, "int64")]);
  }

  /** A fresh constant initializer (`dims` default: a vector). */
  constant(values: number[], type: "float32" | "int64", dims: number[] = [values.length]): string {
    const name = `const_${this.#next++}`;
    if (type === "float32") this.add({ name, dims, type, data: Float32Array.from(values) });
    else this.add({ name, dims, type, data: BigInt64Array.from(values.map(BigInt)) });
    return name;
  }

  /** Whether an initializer of this name exists. */
  has(name: string): boolean {
    return this.#names.has(name);
  }

  /** Adds an initializer. */
  add(tensor: OnnxTensor): void {
    if (this.#names.has(tensor.name)) {
      throw new VitLoraError(`ONNX graph: two initializers named ${tensor.name}`);
    }
    this.#names.add(tensor.name);
    this.initializers.push(tensor);
  }
}

/** Options of {@link encodeGraph}. */
export interface EncodeGraphOptions {
  /** The graph's name (default `"vit"`). */
  name?: string;
  /** The default domain's opset (default 17: `LayerNormalization`). */
  opset?: number;
  /** The model's doc string. */
  docString?: string;
}

/** ONNX 1.13's IR version, the first with opset 18 and the last older runtimes all read. */
const IR_VERSION = 8;

/**
 * The graph as a `ModelProto`'s bytes (an `.onnx` file): IR version 8, opset 17 by default,
 * producer `vit-lora`.
 */
export function encodeGraph(graph: OnnxGraph, options: EncodeGraphOptions = {}): Uint8Array {
  const model: ModelProto = {
    ir_version: IR_VERSION,
    producer_name: "vit-lora",
    graph: {
      name: options.name ?? "vit",
      node: graph.nodes.map(nodeProto),
      initializer: graph.initializers.map(tensorProto),
      input: graph.inputs.map(valueInfo),
      output: graph.outputs.map(valueInfo),
    },
    opset_import: [{ domain: "", version: options.opset ?? 17 }],
    doc_string: options.docString,
  };
  return encodeMessage("ModelProto", model);
}

function nodeProto(n: OnnxNode): NodeProto {
  return {
    input: n.inputs,
    output: n.outputs,
    name: n.name,
    op_type: n.op,
    attribute: Object.entries(n.attributes).map(([name, a]): AttributeProto => {
      const T = AttributeProto_AttributeType;
      if (a.kind === "float") return { name, type: T.FLOAT, f: a.value };
      if (a.kind === "int") return { name, type: T.INT, i: a.value };
      return { name, type: T.INTS, ints: a.value };
    }),
  };
}

/** An initializer's `TensorProto`: dims, type, name, little-endian `raw_data` (no copy). */
export function tensorProto(t: OnnxTensor): TensorProto {
  const d = t.data;
  return {
    dims: t.dims,
    data_type: DATA_TYPES[t.type],
    name: t.name,
    raw_data: new Uint8Array(d.buffer, d.byteOffset, d.byteLength),
  };
}

function valueInfo(v: OnnxValue): ValueInfoProto {
  return {
    name: v.name,
    type: {
      tensor_type: {
        elem_type: DATA_TYPES[v.type],
        shape: {
          dim: v.shape.map((d) => typeof d === "number" ? { dim_value: d } : { dim_param: d }),
        },
      },
    },
  };
}

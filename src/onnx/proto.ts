/**
 * ONNX files as bytes and back: a message of `onnx_proto.ts` (fields named as in onnx.proto)
 * encoded by its field table, and decoded the same way. No dependency; the browser can run it.
 *
 * The encoder keeps `bytes` fields by reference and copies each once, into the final buffer, so a
 * ViT-B/16 (350 MB of `raw_data`) costs one copy. Fields are written in field-number order, as
 * the protobuf library writes them. The decoder returns `bytes` fields as views of the input (no
 * copy), skips fields it does not know (those of messages `onnx_proto.ts` leaves out), and reads
 * repeated scalars packed or not.
 *
 * @module
 */

import { VitLoraError } from "../core/errors.ts";
import {
  type FieldSpec,
  type MessageName,
  ONNX_MESSAGES,
  type OnnxMessages,
} from "./onnx_proto.ts";

type Fields = [string, FieldSpec][];
const sortedFields = new Map<MessageName, Fields>();

function fieldsOf(name: MessageName): Fields {
  let fields = sortedFields.get(name);
  if (!fields) {
    fields = (Object.entries(ONNX_MESSAGES[name]) as Fields).sort((a, b) =>
      a[1].number - b[1].number
    );
    sortedFields.set(name, fields);
  }
  return fields;
}

const VARINT = 0, FIXED64 = 1, LENGTH = 2, FIXED32 = 5;

function wireType(type: FieldSpec["type"]): number {
  switch (type) {
    case "float":
      return FIXED32;
    case "double":
      return FIXED64;
    case "string":
    case "bytes":
    case "message":
      return LENGTH;
    default:
      return VARINT;
  }
}

/**
 * `value` as the bytes of the protobuf message `name` (e.g. a `ModelProto`: the bytes of a
 * `.onnx` file).
 *
 * @example
 * ```ts
 * import { encodeMessage } from "./proto.ts";
 * const bytes = encodeMessage("OperatorSetIdProto", { domain: "", version: 17 });
 * console.log(bytes); // Uint8Array [ 10, 0, 16, 17 ]
 * ```
 */
export function encodeMessage<N extends MessageName>(name: N, value: OnnxMessages[N]): Uint8Array {
  return writeMessage(name, value as Record<string, unknown>).bytes();
}

function writeMessage(name: MessageName, value: Record<string, unknown>): Writer {
  const w = new Writer();
  for (const [field, spec] of fieldsOf(name)) {
    const v = value[field];
    if (v === undefined) continue;
    if (spec.repeated) {
      const values = v as unknown[];
      if (spec.packed && values.length > 0) {
        const packed = new Writer();
        for (const x of values) packed.scalar(spec.type, x);
        w.key(spec.number, LENGTH);
        w.child(packed);
      } else {
        for (const x of values) w.field(spec, x);
      }
    } else {
      w.field(spec, v);
    }
  }
  return w;
}

/** A message being written: parts kept by reference, lengths summed as they are added. */
class Writer {
  readonly parts: Uint8Array[] = [];
  length = 0;
  #scratch: number[] = [];
  static #text = new TextEncoder();

  field(spec: FieldSpec, value: unknown): void {
    this.key(spec.number, wireType(spec.type));
    if (spec.type === "message") {
      this.child(writeMessage(spec.message!, value as Record<string, unknown>));
    } else if (spec.type === "string" || spec.type === "bytes") {
      const data = spec.type === "string"
        ? Writer.#text.encode(value as string)
        : value as Uint8Array;
      this.varint(data.length);
      this.#flush();
      this.#push(data);
    } else {
      this.scalar(spec.type, value);
    }
  }

  scalar(type: FieldSpec["type"], value: unknown): void {
    if (type === "float" || type === "double") {
      const b = new Uint8Array(type === "float" ? 4 : 8);
      const view = new DataView(b.buffer);
      if (type === "float") view.setFloat32(0, value as number, true);
      else view.setFloat64(0, value as number, true);
      this.#scratch.push(...b);
    } else if (type === "bool") {
      this.varint(value ? 1 : 0);
    } else {
      this.varint(value as number);
    }
  }

  key(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  /** A varint of an integer; a negative one as 10 bytes (two's complement, as int64). */
  varint(value: number): void {
    if (!Number.isSafeInteger(value)) {
      throw new VitLoraError(`ONNX encoding: ${value} is not an integer`);
    }
    if (value >= 0) {
      while (value > 0x7f) {
        this.#scratch.push((value % 128) | 0x80);
        value = Math.floor(value / 128);
      }
      this.#scratch.push(value);
      return;
    }
    let v = BigInt.asUintN(64, BigInt(value));
    while (v > 0x7fn) {
      this.#scratch.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.#scratch.push(Number(v));
  }

  child(child: Writer): void {
    child.#flush();
    this.varint(child.length);
    this.#flush();
    for (const part of child.parts) this.#push(part);
  }

  #push(part: Uint8Array): void {
    this.parts.push(part);
    this.length += part.length;
  }

  #flush(): void {
    if (this.#scratch.length) {
      this.#push(Uint8Array.from(this.#scratch));
      this.#scratch = [];
    }
  }

  bytes(): Uint8Array {
    this.#flush();
    if (this.parts.length === 1) return this.parts[0];
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const part of this.parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }
}

/**
 * The protobuf message `name` read from `bytes` (e.g. a `ModelProto` from a `.onnx` file):
 * `bytes` fields are views of `bytes`; fields not in `onnx_proto.ts` are skipped. Malformed
 * input is a {@link VitLoraError}.
 *
 * @example
 * ```ts
 * import { decodeMessage, encodeMessage } from "./proto.ts";
 * const bytes = encodeMessage("OperatorSetIdProto", { domain: "", version: 17 });
 * console.log(decodeMessage("OperatorSetIdProto", bytes)); // { domain: "", version: 17 }
 * ```
 */
export function decodeMessage<N extends MessageName>(name: N, bytes: Uint8Array): OnnxMessages[N] {
  return new Reader(bytes).message(name, bytes.length) as OnnxMessages[N];
}

class Reader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #at = 0;
  static #text = new TextDecoder();

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  message(name: MessageName, end: number): Record<string, unknown> {
    const byNumber = new Map<number, [string, FieldSpec]>();
    for (const [field, spec] of fieldsOf(name)) byNumber.set(spec.number, [field, spec]);
    const out: Record<string, unknown> = {};
    while (this.#at < end) {
      const key = this.varint();
      const number = Math.floor(key / 8), wire = key % 8;
      const entry = byNumber.get(number);
      if (!entry) {
        this.#skip(wire);
        continue;
      }
      const [field, spec] = entry;
      if (spec.repeated && wire === LENGTH && wireType(spec.type) !== LENGTH) {
        const length = this.varint(); // packed
        const stop = this.#at + length;
        const values = (out[field] ??= []) as unknown[];
        while (this.#at < stop) values.push(this.scalar(spec.type));
        continue;
      }
      if (wire !== wireType(spec.type)) {
        throw new VitLoraError(`ONNX decoding: ${name}.${field} has wire type ${wire}`);
      }
      const value = this.value(spec);
      if (spec.repeated) ((out[field] ??= []) as unknown[]).push(value);
      else out[field] = value;
    }
    if (this.#at !== end) throw new VitLoraError(`ONNX decoding: ${name} overruns its length`);
    return out;
  }

  value(spec: FieldSpec): unknown {
    if (spec.type === "message") {
      const length = this.varint();
      return this.message(spec.message!, this.#at + length);
    }
    if (spec.type === "string" || spec.type === "bytes") {
      const data = this.#take(this.varint());
      return spec.type === "string" ? Reader.#text.decode(data) : data;
    }
    return this.scalar(spec.type);
  }

  scalar(type: FieldSpec["type"]): number | boolean {
    const at = this.#at;
    if (type === "float") return this.#take(4) && this.#view.getFloat32(at, true);
    if (type === "double") return this.#take(8) && this.#view.getFloat64(at, true);
    const v = this.varint(type === "int64" || type === "int32" || type === "enum");
    return type === "bool" ? v !== 0 : v;
  }

  /** A varint; `signed`: as a two's complement int64. */
  varint(signed = false): number {
    let result = 0, scale = 1, byte: number;
    let i = 0;
    const start = this.#at;
    do {
      if (this.#at >= this.#bytes.length) throw new VitLoraError("ONNX decoding: truncated varint");
      byte = this.#bytes[this.#at++];
      result += (byte & 0x7f) * scale;
      scale *= 128;
      i++;
    } while (byte & 0x80 && i < 10);
    if (i === 10 || result >= 2 ** 53) { // beyond a double's integers: exactly, through BigInt
      let v = 0n;
      for (let j = i - 1; j >= 0; j--) v = (v << 7n) | BigInt(this.#bytes[start + j] & 0x7f);
      return Number(signed ? BigInt.asIntN(64, v) : BigInt.asUintN(64, v));
    }
    return result;
  }

  #take(n: number): Uint8Array {
    if (this.#at + n > this.#bytes.length) throw new VitLoraError("ONNX decoding: truncated field");
    const out = this.#bytes.subarray(this.#at, this.#at + n);
    this.#at += n;
    return out;
  }

  #skip(wire: number): void {
    if (wire === VARINT) this.varint();
    else if (wire === FIXED64) this.#take(8);
    else if (wire === LENGTH) this.#take(this.varint());
    else if (wire === FIXED32) this.#take(4);
    else throw new VitLoraError(`ONNX decoding: unknown wire type ${wire}`);
  }
}

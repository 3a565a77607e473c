/**
 * The ONNX export (`src/onnx/`): the protobuf fields by name, float16 rounding as NumPy's, the
 * int8 model byte for byte ONNX Runtime's `quantize_dynamic`, the three files loaded and run by
 * ONNX Runtime against Python's onnxruntime on the same files (tests/fixtures/onnx/, made by
 * tests/reference/make_onnx_q8.py), the folder's files and config.json as transformers 5 loads it
 * (make_onnx_config.py), and the folder written whole or not at all.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { VitLoraError } from "../../src/core/errors.ts";
import { readSafetensors } from "../../src/model/safetensors_file.ts";
import { OrtClassifier, ortStatus } from "../../src/engines/ort.ts";
import { encodeViTOnnx, exportOnnx, parseOnnxDtypes } from "../../src/onnx/export.ts";
import { float16Array } from "../../src/onnx/float16.ts";
import { float16Value } from "../../src/core/float16.ts";
import { ONNX_FILES } from "../../src/onnx/folder.ts";
import { DATA_TYPES } from "../../src/onnx/ir.ts";
import type { ModelProto, TensorProto } from "../../src/onnx/onnx_proto.ts";
import { decodeMessage, encodeMessage } from "../../src/onnx/proto.ts";
import { writeOnnxFolder } from "../../src/onnx/write.ts";
import { VIT_BASE_CONFIG } from "../../src/model/config.ts";
import { relError, tempDir } from "../helpers.ts";
import { fixtureClassifier } from "./export_fixture.ts";

const FIXTURES = new URL("../fixtures/onnx/", import.meta.url).pathname;
const status = await ortStatus();

/**
 * The exported folder of vit-tiny-a (model + adapter), made once, by the first test that asks
 * (not at import: loading a model then would race the other test modules' backend switches).
 */
let made: Promise<Map<string, Uint8Array>> | undefined;
const exported = () =>
  made ??= (async () => {
    const clf = await fixtureClassifier();
    try {
      return await exportOnnx(clf);
    } finally {
      clf.dispose();
    }
  })();

const opCounts = (m: ModelProto) => {
  const counts: Record<string, number> = {};
  for (const n of m.graph?.node ?? []) counts[n.op_type!] = (counts[n.op_type!] ?? 0) + 1;
  return counts;
};

Deno.test("ONNX protobuf: fields by name, encoded and decoded back; the model's named fields", async () => {
  const files = await exported();
  const model = decodeMessage("ModelProto", files.get(ONNX_FILES.fp32)!);
  assert.equal(model.ir_version, 8);
  assert.deepEqual(model.opset_import, [{ domain: "", version: 17 }]);
  assert.equal(model.producer_name, "vit-lora");
  const g = model.graph!;
  assert.deepEqual(g.input!.map((i) => i.name), ["pixel_values"]);
  assert.deepEqual(g.output!.map((o) => o.name), ["logits"]);
  const dims = g.input![0].type!.tensor_type!.shape!.dim!;
  assert.deepEqual(dims, [{ dim_param: "batch" }, { dim_value: 3 }, { dim_value: 32 }, {
    dim_value: 32,
  }]);
  assert.deepEqual(g.output![0].type!.tensor_type!.shape!.dim, [{ dim_param: "batch" }, {
    dim_value: 7,
  }]);
  const ln = g.node!.find((n) => n.op_type === "LayerNormalization")!;
  assert.equal(ln.attribute![0].name, "axis");
  assert.equal(ln.attribute![0].i, -1);
  assert.ok(Math.abs(ln.attribute![1].f! - 1e-12) < 1e-18);
  // encoding what was decoded gives the same bytes (fields in number order, as protobuf writes)
  assert.deepEqual(encodeMessage("ModelProto", model), files.get(ONNX_FILES.fp32));
  // negative int64 values (a Reshape's -1) survive, as ten-byte varints
  const shape = g.initializer!.find((t) => t.name === "const_1")!;
  assert.equal(shape.data_type, DATA_TYPES.int64);
  assert.deepEqual(Array.from(new BigInt64Array(shape.raw_data!.slice().buffer)), [0n, 48n, -1n]);
  const t = encodeMessage("TensorProto", { dims: [-1, 2 ** 40], name: "x" });
  assert.deepEqual(decodeMessage("TensorProto", t), { dims: [-1, 2 ** 40], name: "x" });
});

Deno.test("ONNX protobuf: the model Python's onnxruntime quantized decodes field by field", async () => {
  const ref = decodeMessage("ModelProto", await Deno.readFile(join(FIXTURES, "q8_reference.onnx")));
  assert.equal(ref.producer_name, "onnx.quantize");
  const ours = decodeMessage("ModelProto", (await exported()).get(ONNX_FILES.q8)!);
  assert.deepEqual(opCounts(ours), opCounts(ref));
});

Deno.test("float16: values round to the bits NumPy's float16 gives (ties to even, subnormals, overflow)", async () => {
  const table = JSON.parse(await Deno.readTextFile(join(FIXTURES, "float16.json")));
  const bits = float16Array(Float32Array.from(table.float32), 0, Infinity); // no clamping
  assert.deepEqual(Array.from(bits), table.float16_bits);
  assert.equal(float16Value(0x3c00), 1);
  assert.equal(float16Value(0x0001), 2 ** -24);
  // the converter's clamping: tiny magnitudes to 1e-7, large to 1e4
  const clamped = float16Array(Float32Array.of(1e-9, -1e-9, 2e4, -2e4, 0));
  assert.deepEqual(Array.from(clamped, float16Value).map((v) => Math.fround(v)), [
    Math.fround(float16Value(float16Array(Float32Array.of(1e-7), 0, Infinity)[0])),
    -Math.fround(float16Value(float16Array(Float32Array.of(1e-7), 0, Infinity)[0])),
    float16Value(float16Array(Float32Array.of(1e4), 0, Infinity)[0]),
    -float16Value(float16Array(Float32Array.of(1e4), 0, Infinity)[0]),
    0,
  ]);
});

Deno.test("q8: our initializers are byte for byte those of onnxruntime's quantize_dynamic", async () => {
  // values compared, not their encoding: Python writes scalars as float_data/int32_data
  const values = (t: TensorProto) =>
    t.raw_data ??
      (t.float_data
        ? new Uint8Array(Float32Array.from(t.float_data).buffer)
        : t.int64_data
        ? new Uint8Array(BigInt64Array.from(t.int64_data.map(BigInt)).buffer)
        : Uint8Array.from(t.int32_data!));
  const init = (m: ModelProto) =>
    new Map(
      m.graph!.initializer!.map((t) => [t.name!, {
        dims: t.dims ?? [],
        type: t.data_type,
        values: values(t),
      }]),
    );
  const ours = init(decodeMessage("ModelProto", (await exported()).get(ONNX_FILES.q8)!));
  const ref = init(
    decodeMessage("ModelProto", await Deno.readFile(join(FIXTURES, "q8_reference.onnx"))),
  );
  assert.deepEqual([...ours.keys()].sort(), [...ref.keys()].sort());
  for (const [name, t] of ref) assert.deepEqual(ours.get(name), t, name);
  const quantized = [...ours.values()].filter((t) => t.type === DATA_TYPES.int8);
  assert.equal(quantized.length, 20); // 10 products: weight and zero point each
});

Deno.test({
  name:
    "ONNX Runtime loads all three files and gives Python's onnxruntime's logits (q8: quantize_dynamic's)",
  ignore: !status.ort,
  async fn() {
    const files = await exported();
    const ref = await readSafetensors(join(FIXTURES, "reference.safetensors"));
    const px = ref.get("pixel_values")!;
    const shape = { config: { ...VIT_BASE_CONFIG, image_size: 32 }, labels: Array(7).fill("") };
    const run = async (bytes: Uint8Array) => {
      const s = await OrtClassifier.fromBytes(status.ort!, bytes, shape);
      try {
        return await s.run(px.data as Float32Array, px.shape[0]);
      } finally {
        await s.release();
      }
    };
    const fp32 = ref.get("logits.fp32")!.data;
    const limits = { fp32: 1e-6, fp16: 1e-3, q8: 1e-6 };
    for (const dtype of ["fp32", "fp16", "q8"] as const) {
      const got = await run(files.get(ONNX_FILES[dtype])!);
      const err = relError(got, ref.get(`logits.${dtype}`)!.data);
      assert.ok(err <= limits[dtype], `${dtype}: ${err.toExponential(2)} from Python's`);
      if (dtype === "fp16") {
        const vsFp32 = relError(got, fp32);
        assert.ok(vsFp32 < 1e-2, `fp16 against fp32: ${vsFp32.toExponential(2)}`);
      }
    }
    const reference = await run(await Deno.readFile(join(FIXTURES, "q8_reference.onnx")));
    const ours = await run(files.get(ONNX_FILES.q8)!);
    assert.deepEqual(ours, reference, "the same q8 logits as quantize_dynamic's model");
  },
});

Deno.test("the folder: transformers.js's file names, config.json as transformers 5 loads and saves it", async () => {
  const files = await exported();
  assert.deepEqual([...files.keys()], [
    "config.json",
    "preprocessor_config.json",
    "README.md",
    "onnx/model.onnx",
    "onnx/model_fp16.onnx",
    "onnx/model_quantized.onnx",
  ]);
  const config = new TextDecoder().decode(files.get("config.json"));
  assert.equal(config, await Deno.readTextFile(join(FIXTURES, "config.json")));
  const auto = JSON.parse(await Deno.readTextFile(join(FIXTURES, "autoconfig.json")));
  assert.equal(auto.class, "ViTConfig");
  assert.deepEqual(auto.architectures, ["ViTForImageClassification"]);
  assert.equal(auto.num_labels, 7);
  const { transformers_version: _, ...saved } = auto.saved;
  assert.deepEqual(JSON.parse(config), saved, "what transformers itself would save");
  const pre = JSON.parse(new TextDecoder().decode(files.get("preprocessor_config.json")));
  assert.equal(pre.image_processor_type, "ViTImageProcessor");
  const readme = new TextDecoder().decode(files.get("README.md"));
  assert.match(readme, /pipeline\("image-classification", "this-folder", \{ dtype: "fp32" \}\)/);
  assert.match(readme, /onnxruntime/);
});

Deno.test("exportOnnx: a folder without fp32 names its dtype for transformers.js; bad dtypes are one error", async () => {
  const clf = await fixtureClassifier();
  try {
    const files = await exportOnnx(clf, { dtypes: ["q8"] });
    assert.deepEqual([...files.keys()].filter((k) => k.startsWith("onnx/")), [ONNX_FILES.q8]);
    const config = JSON.parse(new TextDecoder().decode(files.get("config.json")));
    assert.deepEqual(config["transformers.js_config"], { dtype: "q8" });
    await assert.rejects(() => exportOnnx(clf, { dtypes: [] }), /no dtype/);
  } finally {
    clf.dispose();
  }
  assert.deepEqual(parseOnnxDtypes("fp16, q8,fp16"), ["fp16", "q8"]);
  assert.throws(() => parseOnnxDtypes("fp32,int4"), (e: Error) => {
    assert.ok(e instanceof VitLoraError);
    assert.equal(e.message, 'unknown ONNX dtype "int4" (one of fp32, fp16, q8)');
    return true;
  });
  assert.throws(() => encodeViTOnnx(VIT_BASE_CONFIG, {}), /has no classifier.bias/);
});

Deno.test("writeOnnxFolder: whole or not at all; replaces an earlier export, refuses anything else", async () => {
  await using tmp = await tempDir();
  const files = new Map([
    ["config.json", new TextEncoder().encode("{}")],
    ["onnx/model.onnx", Uint8Array.of(1, 2, 3)],
  ]);
  const out = join(tmp.path, "nested", "export");
  await writeOnnxFolder(out, files);
  assert.deepEqual(await Deno.readFile(join(out, "onnx", "model.onnx")), Uint8Array.of(1, 2, 3));
  files.set("onnx/model.onnx", Uint8Array.of(4));
  await writeOnnxFolder(out + "/", files); // an earlier export is replaced
  assert.deepEqual(await Deno.readFile(join(out, "onnx", "model.onnx")), Uint8Array.of(4));
  const listing = async (dir: string) =>
    (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);
  assert.deepEqual(await listing(join(tmp.path, "nested")), ["export"], "no temporary left");

  const other = join(tmp.path, "photos");
  await Deno.mkdir(other);
  await Deno.writeTextFile(join(other, "cat.jpg"), "");
  await assert.rejects(
    () => writeOnnxFolder(other, files),
    new RegExp(`^ViTLoraError: ${other}: exists and is not an exported model folder`),
  );
  // a write that fails midway (a file where a folder must go) leaves no folder that looks complete
  const broken = new Map([...files, ["onnx/model.onnx/x", Uint8Array.of(0)]]);
  const target = join(tmp.path, "broken");
  await assert.rejects(() => writeOnnxFolder(target, broken), /broken: cannot write/);
  assert.deepEqual(await listing(tmp.path).then((l) => l.sort()), ["nested", "photos"]);
  // an unwritable place: one line naming it
  const file = join(tmp.path, "nested", "export", "config.json");
  await assert.rejects(() => writeOnnxFolder(join(file, "sub"), files), (e: Error) => {
    assert.ok(e instanceof VitLoraError);
    assert.match(e.message, new RegExp(`^${file}/sub: cannot write: `));
    assert.ok(!e.message.includes("\n"));
    return true;
  });
});

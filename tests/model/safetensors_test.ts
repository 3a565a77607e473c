/** safetensors: round trips, the dtypes read, and the checks that name a bad file's fault. */

import assert from "node:assert/strict";
import { VitLoraError } from "../../src/core/errors.ts";
import { decodeSafetensors, encodeSafetensors } from "../../src/model/safetensors.ts";
import {
  openSafetensors,
  readSafetensors,
  writeSafetensors,
} from "../../src/model/safetensors_file.ts";
import { tempDir } from "../helpers.ts";

/** Builds a file from a raw header object and data bytes. */
function rawFile(header: unknown, data: Uint8Array, pad = true): Uint8Array {
  let json = new TextEncoder().encode(JSON.stringify(header));
  if (pad && json.length % 8) {
    const p = new Uint8Array(Math.ceil(json.length / 8) * 8).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

Deno.test("safetensors: F32 round trip through a file, header padded, format pt", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/t.safetensors`;
  const a = new Float32Array([1.5, -2, 3.25, 0, 1e-30, -7]);
  await writeSafetensors(path, {
    "layer.weight": { shape: [2, 3], data: a },
    "layer.bias": { shape: [1], data: new Float32Array([42]) },
  });
  const bytes = await Deno.readFile(path);
  const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(headerLen % 8, 0, "header padded to a multiple of 8");
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen)));
  assert.deepEqual(header.__metadata__, { format: "pt" });
  assert.deepEqual(header["layer.weight"], { dtype: "F32", shape: [2, 3], data_offsets: [0, 24] });
  const back = await readSafetensors(path);
  assert.deepEqual([...back.get("layer.weight")!.data], [...a]);
  assert.deepEqual(back.get("layer.weight")!.shape, [2, 3]);
  assert.deepEqual([...back.get("layer.bias")!.data], [42]);
  // No temporary file is left beside it.
  const names = [...Deno.readDirSync(dir.path)].map((e) => e.name);
  assert.deepEqual(names, ["t.safetensors"]);
});

Deno.test("safetensors: F16, BF16, F64 upcast to float32; I64 and U8 to int32", () => {
  const f16 = new Uint16Array([0x3c00, 0xc000, 0x3555, 0x0001, 0x7c00]); // 1, -2, ~1/3, 2^-24, inf
  const bf16 = new Uint16Array([0x3f80, 0xc0a0, 0x3eaa]); // 1, -5, ~0.332
  const f64 = new Float64Array([0.1, -1e10]);
  const i64 = new BigInt64Array([5n, -3n]);
  const u8 = new Uint8Array([0, 255, 7, 0]); // padded to keep offsets simple
  const parts = [f16, bf16, f64, i64, u8].map((a) => new Uint8Array(a.buffer));
  const header: Record<string, unknown> = {};
  const specs = [
    ["h", "F16", [5]],
    ["b", "BF16", [3]],
    ["d", "F64", [2]],
    ["l", "I64", [2]],
    ["u", "U8", [4]],
  ] as const;
  let offset = 0;
  specs.forEach(([name, dtype, shape], i) => {
    header[name] = { dtype, shape, data_offsets: [offset, offset + parts[i].length] };
    offset += parts[i].length;
  });
  const data = new Uint8Array(offset);
  let at = 0;
  for (const p of parts) {
    data.set(p, at);
    at += p.length;
  }
  const t = decodeSafetensors(rawFile(header, data));
  const h = t.get("h")!.data;
  assert.equal(h[0], 1);
  assert.equal(h[1], -2);
  assert.ok(Math.abs(h[2] - 0.33325195) < 1e-7);
  assert.equal(h[3], 2 ** -24);
  assert.equal(h[4], Infinity);
  assert.ok(h instanceof Float32Array);
  assert.equal(t.get("b")!.data[0], 1);
  assert.equal(t.get("b")!.data[1], -5);
  assert.ok(Math.abs(t.get("b")!.data[2] - 0.33203125) < 1e-7);
  assert.ok(Math.abs(t.get("d")!.data[0] - 0.1) < 1e-8);
  const l = t.get("l")!.data;
  assert.ok(l instanceof Int32Array);
  assert.deepEqual([...l], [5, -3]);
  assert.deepEqual([...t.get("u")!.data], [0, 255, 7, 0]);
});

Deno.test("safetensors: a truncated file names the file and the tensor", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/model.safetensors`;
  await writeSafetensors(path, {
    a: { shape: [4], data: new Float32Array(4) },
    b: { shape: [8], data: new Float32Array(8) },
  });
  const bytes = await Deno.readFile(path);
  await Deno.writeFile(path, bytes.subarray(0, bytes.length - 5));
  await assert.rejects(
    () => openSafetensors(path),
    (e: Error) => {
      assert.ok(e instanceof VitLoraError);
      assert.match(e.message, /model\.safetensors: tensor 'b': data_offsets \[16, 48\] run past/);
      assert.match(e.message, /truncated/);
      return true;
    },
  );
  // Cut inside the header itself.
  await Deno.writeFile(path, bytes.subarray(0, 20));
  await assert.rejects(
    () => openSafetensors(path),
    /header length \d+ runs past the end of the file/,
  );
  await Deno.writeFile(path, bytes.subarray(0, 3));
  await assert.rejects(() => openSafetensors(path), /too short for a header/);
});

Deno.test("safetensors: headers that lie are refused with the reason", () => {
  const data = new Uint8Array(16);
  const cases: [unknown, RegExp][] = [
    [
      { w: { dtype: "F32", shape: [2], data_offsets: [0, 32] } },
      /needs 8 bytes but data_offsets \[0, 32\] hold 32/,
    ],
    [
      { w: { dtype: "F32", shape: [8], data_offsets: [0, 32] } },
      /run past the end of the data \(16 bytes\)/,
    ],
    [{ w: { dtype: "F32", shape: [2], data_offsets: [8, 0] } }, /is not a range/],
    [{ w: { dtype: "Q4", shape: [2], data_offsets: [0, 8] } }, /unsupported dtype "Q4"/],
    [{ w: { dtype: "F32", shape: [-1], data_offsets: [0, 8] } }, /is not a list of sizes/],
    [
      {
        a: { dtype: "F32", shape: [3], data_offsets: [0, 12] },
        b: { dtype: "F32", shape: [2], data_offsets: [8, 16] },
      },
      /tensor 'b' overlaps tensor 'a'/,
    ],
    [[1, 2], /header is not a JSON object/],
  ];
  for (const [header, pattern] of cases) {
    assert.throws(() => decodeSafetensors(rawFile(header, data), "bad.safetensors"), (e: Error) => {
      assert.ok(e instanceof VitLoraError, `${e}`);
      assert.match(e.message, /^bad\.safetensors: /);
      assert.match(e.message, pattern);
      return true;
    });
  }
  const notJson = rawFile({}, data);
  notJson.set(new TextEncoder().encode("{oops"), 8);
  assert.throws(() => decodeSafetensors(notJson, "bad.safetensors"), /not valid UTF-8 JSON/);
});

Deno.test("safetensors: a missing file is one clear error", async () => {
  await assert.rejects(() => openSafetensors("/nonexistent/model.safetensors"), (e: Error) => {
    assert.ok(e instanceof VitLoraError);
    assert.equal(e.message, "/nonexistent/model.safetensors: file not found");
    return true;
  });
});

Deno.test("safetensors: encode refuses data that does not fill its shape", () => {
  assert.throws(
    () => encodeSafetensors({ w: { shape: [2, 2], data: new Float32Array(3) } }),
    /tensor 'w': 3 values do not fill shape \[2, 2\]/,
  );
});

Deno.test("safetensors: the reference fixtures read with PyTorch's names and shapes", async () => {
  const t = await readSafetensors(
    new URL("../fixtures/vit-tiny-a/adapter/adapter_model.safetensors", import.meta.url).pathname,
  );
  const a = t.get("base_model.model.vit.encoder.layer.0.attention.attention.query.lora_A.weight")!;
  assert.deepEqual(a.shape, [4, 48]);
  assert.equal(a.dtype, "F32");
  assert.deepEqual(t.get("base_model.model.classifier.weight")!.shape, [7, 48]);
});

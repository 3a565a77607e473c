/**
 * Image folders as `datasets`' `imagefolder` reads them (`fixtures/own-images/`, whose
 * `folder-labels.json` the real `datasets` 5 wrote): the same splits, rows in the same order,
 * the same class names and ids; and each kind of bad folder one clear line.
 */

import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { openImageFolder } from "../../src/data/imagefolder.ts";
import { openDataset } from "../../src/hub/dataset.ts";
import { fixture, tempDir } from "../helpers.ts";

const OWN = fixture("own-images");

interface DatasetsView {
  splits: Record<string, [string, number | string][]>;
  label_feature: { type: string; names?: string[] };
}

for (const name of ["folder", "folder-meta", "folder-flat"]) {
  Deno.test(`imagefolder: ${name}/ has the splits, rows, class names and ids datasets gives it`, async () => {
    const expected = JSON.parse(
      await Deno.readTextFile(join(OWN, "folder-labels.json")),
    )[name] as DatasetsView;
    const data = await openImageFolder(join(OWN, name));
    assert.deepEqual(Object.keys(data.sizes), Object.keys(expected.splits));
    // a string label column (metadata.csv) is encoded as datasets' class_encode_column does
    const names = expected.label_feature.names ??
      [...new Set(Object.values(expected.splits).flat().map(([, l]) => l as string))].sort();
    assert.deepEqual(data.labels, names);
    assert.equal(data.labelsFrom, expected.label_feature.names ? "folders" : "strings");
    for (const [split, rows] of Object.entries(expected.splits)) {
      const got = [];
      for (const group of data.rowGroups(split)) {
        for (const row of await data.readRowGroup(group)) {
          got.push([relative(join(OWN, name), row.file), data.labels[row.label]]);
        }
      }
      const want = rows.map(([file, label]) => [
        file,
        typeof label === "number" ? names[label] : label,
      ]);
      assert.deepEqual(got, want, `${name} ${split}`);
    }
  });
}

Deno.test("imagefolder: text files are left out and counted; openDataset tells folders from parquet", async () => {
  const flat = await openDataset(join(OWN, "folder-flat"));
  assert.equal(flat.kind, "imagefolder");
  assert.equal(flat.ignored, 1, "notes.txt");
  assert.deepEqual(flat.sizes, { train: 12 });
  const parquet = await openDataset(fixture("train-tiny"));
  assert.equal(parquet.kind, "parquet");
});

Deno.test("imagefolder: bad folders are one line naming the folder or file", async () => {
  await using dir = await tempDir();
  const at = (...p: string[]) => join(dir.path, ...p);
  const jpeg = await Deno.readFile(join(OWN, "folder-flat", "cat", "cat0.jpg"));
  await assert.rejects(
    () => openImageFolder(at("nope")),
    /nope: cannot read the folder: no such folder/,
  );
  await Deno.mkdir(at("empty"));
  await Deno.writeTextFile(at("empty", "readme.md"), "hi");
  await assert.rejects(() => openImageFolder(at("empty")), /empty: no images found/);
  await assert.rejects(
    () => openDataset(at("empty")),
    /empty: neither an image folder \(class folders of images\) nor parquet shards/,
  );
  // an empty class folder
  await Deno.mkdir(at("a", "cat"), { recursive: true });
  await Deno.mkdir(at("a", "dog"), { recursive: true });
  await Deno.writeFile(at("a", "cat", "1.jpg"), jpeg);
  await assert.rejects(
    () => openImageFolder(at("a")),
    /a\/dog: no images in this class folder/,
  );
  // images not in class folders
  await Deno.mkdir(at("b"));
  await Deno.writeFile(at("b", "1.jpg"), jpeg);
  await assert.rejects(() => openImageFolder(at("b")), /b: the images are not in class folders/);
  // a metadata.csv naming a missing file, without a label column, with a label out of range
  await Deno.mkdir(at("c"));
  await Deno.writeFile(at("c", "1.jpg"), jpeg);
  await Deno.writeTextFile(at("c", "metadata.csv"), "file_name,label\n1.jpg,cat\n2.jpg,dog\n");
  await assert.rejects(
    () => openImageFolder(at("c")),
    /c\/metadata\.csv:3: no such file: .*2\.jpg/,
  );
  await Deno.writeTextFile(at("c", "metadata.csv"), "file_name,kind\n1.jpg,cat\n");
  await assert.rejects(
    () => openImageFolder(at("c")),
    /metadata\.csv: no "label" or "labels" column \(columns: file_name, kind; choose one with --label-column\)/,
  );
  assert.deepEqual(
    (await openImageFolder(at("c"), { labelColumn: "kind" })).labels,
    ["cat"],
    "--label-column names another column",
  );
  await Deno.writeTextFile(at("c", "metadata.csv"), "file_name,label\n1.jpg,3\n");
  await assert.rejects(
    () => openImageFolder(at("c"), { labels: ["cat", "dog"] }),
    /metadata\.csv:2: label 3 is out of range \(2 classes\)/,
  );
  const ids = await openImageFolder(at("c"));
  assert.deepEqual([ids.labels, ids.labelsFrom], [
    ["class_0", "class_1", "class_2", "class_3"],
    "generated",
  ]);
});

/**
 * Reading a checkpoint: a generated 64 MB safetensors file (ViT-B's is 346 MB; the suite of
 * the speed issue uses that size) read tensor by tensor, as the model loader does.
 */

import { encodeSafetensors } from "../src/model/safetensors.ts";
import { readSafetensors } from "../src/model/safetensors_file.ts";

const path = await Deno.makeTempFile({ suffix: ".safetensors" });
const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
for (let i = 0; i < 32; i++) {
  tensors[`encoder.layer.${i}.weight`] = {
    shape: [512, 1024],
    data: new Float32Array(512 * 1024).fill(i),
  };
}
await Deno.writeFile(path, encodeSafetensors(tensors));

Deno.bench({
  name: "read a 64 MB safetensors file",
  async fn() {
    const t = await readSafetensors(path);
    if (t.size !== 32) throw new Error("wrong count");
  },
});

globalThis.addEventListener("unload", () => Deno.removeSync(path));

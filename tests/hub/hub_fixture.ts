/** The Hub imitation the hub and push tests share: a tiny model, its adapter, a dataset. */

import { join } from "node:path";
import { writeSyntheticDataset } from "../../src/data/synthetic.ts";
import type { HubSettings } from "../../src/hub/settings.ts";
import { FakeHub } from "./hub_server.ts";
import { fixture, folderFiles } from "../helpers.ts";

/** A Hub with the tiny model (private), its adapter and a generated dataset. */
export async function setup(tmp: string): Promise<{ hub: FakeHub; settings: HubSettings }> {
  const hub = await FakeHub.start();
  hub.addRepo("model", "acme/vit-tiny", await folderFiles(`${fixture("vit-tiny-a")}/model`), {
    private: true,
  });
  hub.addRepo(
    "model",
    "acme/vit-tiny-adapter",
    await folderFiles(`${fixture("vit-tiny-a")}/adapter`),
  );
  hub.addRepo("model", "acme/only-bin", {
    "config.json": "{}",
    "pytorch_model.bin": new Uint8Array(64),
  });
  await writeSyntheticDataset(join(tmp, "ds"), {
    classes: 3,
    trainPerClass: 12,
    validationPerClass: 6,
  });
  const data: Record<string, Uint8Array> = { "README.md": new TextEncoder().encode("# patterns") };
  for (const [name, bytes] of Object.entries(await folderFiles(join(tmp, "ds", "data")))) {
    data[`data/${name}`] = bytes;
  }
  hub.addRepo("dataset", "acme/patterns", data);
  const settings: HubSettings = {
    endpoint: hub.url,
    token: hub.token,
    tokenSource: "HF_TOKEN",
    cacheDir: join(tmp, "cache"),
    offline: false,
  };
  return { hub, settings };
}

/**
 * `deno task web [--port N] [--out DIR]`: builds the web page (the browser entry bundled with
 * `deno bundle --platform browser`, tfjs's wasm files, and a demo model and dataset generated
 * here) into `web-dist/`, and serves it on 127.0.0.1. Open the address it prints: the page
 * fine-tunes LoRA in the tab, on the GPU through WebGPU when the browser offers it, else on the
 * CPU (wasm). It works offline with the demo model and images.
 *
 * @module
 */

import { createRequire } from "node:module";
import { dirname, extname, join, normalize } from "node:path";
import encodeJpeg from "@jsquash/jpeg/encode.js";
import { initBackend } from "../src/backend/backend.ts";
import { VitLoraError } from "../src/core/errors.ts";
import { Random } from "../src/core/random.ts";
import { SYNTHETIC_CLASSES, syntheticPattern } from "../src/data/synthetic.ts";
import { parseViTConfig } from "../src/model/config.ts";
import { createClassifier } from "../src/model/loading.ts";
import { decodeSafetensors, encodeSafetensors } from "../src/model/safetensors.ts";
import { type OptionSchema, withDefaults } from "../src/core/options.ts";
import { type Command, parseCommand, runTask } from "./cli.ts";
import { DEMO_CONFIG } from "./demo.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** The demo dataset: 4 generated patterns, 32 images each, 48 × 40 JPEGs. */
const DEMO_CLASSES = SYNTHETIC_CLASSES.slice(0, 4);
const DEMO_PER_CLASS = 32;

async function run(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new VitLoraError(
      `${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
}

/** A `ViTModel` checkpoint (no head, so any labels fit) with random weights, in HF layout. */
async function writeDemoModel(dir: string): Promise<void> {
  await initBackend("cpu", { quiet: true });
  const clf = await createClassifier(parseViTConfig(DEMO_CONFIG), {
    labels: ["a", "b"],
    seed: 42,
    replicas: 0,
  });
  const files = await clf.mergedFiles();
  clf.dispose();
  const tensors = decodeSafetensors(files.get("model.safetensors")!);
  const kept: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, t] of tensors) {
    if (!name.startsWith("classifier.")) {
      kept[name] = { shape: t.shape, data: t.data as Float32Array };
    }
  }
  const config = JSON.parse(new TextDecoder().decode(files.get("config.json")));
  delete config.id2label;
  delete config.label2id;
  config.architectures = ["ViTModel"];
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeFile(join(dir, "model.safetensors"), encodeSafetensors(kept));
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(config, null, 2) + "\n");
  await Deno.writeFile(
    join(dir, "preprocessor_config.json"),
    files.get("preprocessor_config.json")!,
  );
}

/** The demo images: `index.json` and a folder of JPEGs a class. */
async function writeDemoImages(dir: string): Promise<void> {
  const images: { path: string; label: number }[] = [];
  const width = 48, height = 40;
  for (const [label, name] of DEMO_CLASSES.entries()) {
    await Deno.mkdir(join(dir, name), { recursive: true });
    for (let i = 0; i < DEMO_PER_CLASS; i++) {
      const rgba = syntheticPattern(
        label,
        DEMO_CLASSES.length,
        width,
        height,
        Random.derive(7, label, i),
      );
      const jpeg = await encodeJpeg(
        { data: rgba, width, height, colorSpace: "srgb" } as ImageData,
        {
          quality: 90,
        },
      );
      const path = `${name}/${String(i).padStart(3, "0")}.jpg`;
      await Deno.writeFile(join(dir, path), new Uint8Array(jpeg));
      images.push({ path, label });
    }
  }
  await Deno.writeTextFile(
    join(dir, "index.json"),
    JSON.stringify({ classes: DEMO_CLASSES, images }, null, 1) + "\n",
  );
}

/**
 * Builds the page into `out`: `index.html`, `app.js` (the bundle), `wasm/` (tfjs's wasm
 * files) and `demo/` (model and images; kept when already there).
 */
export async function buildWeb(out: string): Promise<void> {
  await Deno.mkdir(out, { recursive: true });
  await run("deno", [
    "bundle",
    "--quiet",
    "--platform",
    "browser",
    "--output",
    join(out, "app.js"),
    join(ROOT, "src/web/page/app.ts"),
  ]);
  await Deno.copyFile(join(ROOT, "src/web/page/index.html"), join(out, "index.html"));
  const wasmPackage = dirname(
    createRequire(import.meta.url).resolve("@tensorflow/tfjs-backend-wasm/package.json"),
  );
  await Deno.mkdir(join(out, "wasm"), { recursive: true });
  for await (const entry of Deno.readDir(join(wasmPackage, "wasm-out"))) {
    if (entry.name.endsWith(".wasm")) {
      await Deno.copyFile(join(wasmPackage, "wasm-out", entry.name), join(out, "wasm", entry.name));
    }
  }
  const demo = join(out, "demo");
  try {
    await Deno.stat(join(demo, "images", "index.json"));
  } catch {
    await writeDemoModel(join(demo, "model"));
    await writeDemoImages(join(demo, "images"));
  }
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".jpg": "image/jpeg",
  ".png": "image/png",
  ".safetensors": "application/octet-stream",
};

/**
 * Serves the files of `dir` on `hostname:port` (0: a free port); `extra` answers first (the
 * tests add their fixtures). Returns the server and its address.
 */
export function serveWeb(
  dir: string,
  options: {
    hostname?: string;
    port?: number;
    extra?: (req: Request) => Response | undefined | Promise<Response | undefined>;
  } = {},
): { server: Deno.HttpServer<Deno.NetAddr>; url: string } {
  const hostname = options.hostname ?? "127.0.0.1";
  const server = Deno.serve(
    { hostname, port: options.port ?? 0, onListen: () => {} },
    async (req) => {
      const answer = await options.extra?.(req);
      if (answer) return answer;
      const path = normalize(decodeURIComponent(new URL(req.url).pathname)).replace(/^\/+/, "");
      if (path.startsWith("..")) return new Response("forbidden", { status: 403 });
      const file = join(dir, path === "" || path.endsWith("/") ? `${path}index.html` : path);
      try {
        const body = await Deno.readFile(file);
        return new Response(body, {
          headers: { "content-type": TYPES[extname(file)] ?? "application/octet-stream" },
        });
      } catch {
        return new Response("not found", { status: 404 });
      }
    },
  );
  return { server, url: `http://${hostname}:${server.addr.port}/` };
}

/** The options of `deno task web`. */
export const WEB_OPTIONS = {
  /** The port on 127.0.0.1. */
  port: {
    kind: "integer",
    min: 0,
    flag: "port",
    arg: "N",
    default: 8000,
    help: "the port on 127.0.0.1",
  },
  /** Where the page is built. */
  out: {
    kind: "string",
    flag: "out",
    arg: "DIR",
    default: "web-dist",
    help: "where the page is built",
  },
} as const satisfies OptionSchema;

/** `deno task web`: its help and flags. */
export const WEB_COMMAND: Command<typeof WEB_OPTIONS> = {
  summary: "Build and serve the web page: fine-tune LoRA in the browser, on its GPU.",
  usage: ["deno task web [--port N] [--out DIR]"],
  schema: WEB_OPTIONS,
};

if (import.meta.main) {
  await runTask(async () => {
    const { values } = parseCommand(WEB_COMMAND, Deno.args);
    const { out, port } = withDefaults(WEB_OPTIONS, values);
    console.error(`building the page into ${out}/ …`);
    await buildWeb(out);
    const { url } = serveWeb(out, { port });
    console.log(`serving ${out}/ at ${url} (Ctrl-C to stop)`);
    console.log(
      "open it in Chrome or Edge (WebGPU); in Chromium on Linux, start it with --enable-unsafe-webgpu",
    );
  });
}

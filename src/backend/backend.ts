/**
 * The tfjs instance the module uses, and the choice of its backend: WebGPU through Deno's
 * `navigator.gpu` when there is a real GPU; tfjs's `wasm` backend (XNNPACK, SIMD) on the CPU
 * otherwise, as it is some 30× faster there than WebGPU on a software adapter; tfjs's plain
 * `cpu` backend on request. `--backend` or `VIT_LORA_BACKEND` choose.
 *
 * tfjs 4.22's own WebGPU factory asks the adapter for features as a nested array
 * (`[['bgra8unorm-storage']]`), which Deno rejects on GPUs that offer that feature, so the
 * device is requested here and handed to `new WebGPUBackend(device, adapter.info)`.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import "@tensorflow/tfjs-backend-wasm";
import { platform, platformEnv } from "../core/platform.ts";
import { VitLoraError } from "../core/errors.ts";
import { registerWasmKernels } from "./wasm_kernels.ts";

/** The backends this module can run on. */
export type BackendName = "webgpu" | "wasm" | "cpu";

/** The backends this module can run on, for flag validation. */
export const BACKENDS: readonly BackendName[] = ["webgpu", "wasm", "cpu"];

/** What {@link initBackend} set up. */
export interface BackendInfo {
  /** The tfjs backend now active. */
  name: BackendName;
  /** The GPU adapter's description (WebGPU only), e.g. `NVIDIA H100` or `llvmpipe (…)`. */
  adapter?: string;
  /** True when the adapter is a software (fallback) one: WebGPU runs, but on the CPU. */
  software?: boolean;
  /**
   * Whether the device offers WGSL's `f16` type (the adapter's `shader-f16` feature, requested
   * when offered): what the float16 kernels of `--precision fp16` need.
   */
  f16?: boolean;
}

/** Options for {@link initBackend}. */
export interface InitBackendOptions {
  /** Do not print the adapter line, now or later (it is printed once per process otherwise). */
  quiet?: boolean;
}

/** The WebGPU device, opened once per process (and isolate) on first use. */
let webgpu: Promise<{ backend: WebGPUBackend; info: BackendInfo }> | undefined;
/** What the WebGPU device is, once it is open. */
let opened: BackendInfo | undefined;
let announced = false;
/** The backend the last {@link initBackend} call chose: later calls without a name keep it. */
let current: BackendName | undefined;

function openWebGPU(): Promise<{ backend: WebGPUBackend; info: BackendInfo }> {
  return webgpu ??= createWebGPU();
}

// The package registers a factory of its own on import, which asks for features in a form
// Deno rejects; replace it, so that tfjs's own choice of backend (`await tf.ready()` before
// any classifier is loaded) opens the device the way this module does.
tf.removeBackend("webgpu");
tf.registerBackend("webgpu", async () => (await openWebGPU()).backend, 3);
fixAddN();
registerWasmKernels();

/** Checks a backend name given by a user (flag or environment). */
export function parseBackendName(name: string, source = "--backend"): BackendName {
  if ((BACKENDS as readonly string[]).includes(name)) return name as BackendName;
  throw new VitLoraError(`${source}: unknown backend '${name}' (choose ${BACKENDS.join(", ")})`);
}

/**
 * Selects and initialises the tfjs backend: `name`; else the one an earlier call chose; else
 * `VIT_LORA_BACKEND`; else `webgpu` when a hardware GPU adapter is found, `wasm` otherwise.
 * Calling it again with the same backend is cheap. It prints its choice once (to stderr), so
 * a user sees whether a real GPU, a software one or the CPU runs.
 *
 * @example
 * ```ts ignore
 * import { initBackend } from "@lora/vit";
 * const info = await initBackend("webgpu"); // "vit-lora: WebGPU on NVIDIA H100 …"
 * console.log(info.name, info.adapter);
 * ```
 */
export async function initBackend(
  name?: BackendName,
  options: InitBackendOptions = {},
): Promise<BackendInfo> {
  const fromEnv = platformEnv("VIT_LORA_BACKEND");
  let chosen = name ?? current ??
    (fromEnv ? parseBackendName(fromEnv, "VIT_LORA_BACKEND") : undefined);
  if (!chosen) {
    // no choice made: a real GPU if there is one, else the fastest CPU path
    const gpu = await openWebGPU().then((w) => w.info, () => undefined);
    chosen = gpu && !gpu.software ? "webgpu" : "wasm";
    if (chosen === "wasm" && !options.quiet && !announced) {
      announced = true;
      console.error(
        `vit-lora: ${
          gpu ? `the WebGPU adapter is a software one (${gpu.adapter})` : "no WebGPU adapter"
        }: running on the CPU with tfjs's wasm backend (--backend webgpu to use WebGPU anyway)`,
      );
    }
  }
  if (chosen === "wasm") {
    current = "wasm";
    if (tf.getBackend() !== "wasm" && !(await tf.setBackend("wasm"))) {
      throw new VitLoraError("the wasm backend failed to start (see the message above)");
    }
    return { name: "wasm" };
  }
  if (chosen === "cpu") {
    current = "cpu";
    if (tf.getBackend() !== "cpu") await tf.setBackend("cpu");
    // tfjs-backend-cpu advertises tfjs-node on first use when it believes it runs in Node
    // (tfjs takes Deno for Node); that advice does not apply here.
    (tf.backend() as unknown as { firstUse: boolean }).firstUse = false;
    return { name: "cpu" };
  }
  const { info } = await openWebGPU(); // a clear error when there is no adapter
  if (tf.getBackend() !== "webgpu") await tf.setBackend("webgpu");
  current = "webgpu";
  if (options.quiet) announced = true;
  if (!announced) {
    announced = true;
    console.error(
      `vit-lora: WebGPU on ${info.adapter}${
        info.software ? " (a software adapter: no GPU is used)" : ""
      }`,
    );
  }
  return info;
}

async function createWebGPU(): Promise<{ backend: WebGPUBackend; info: BackendInfo }> {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu) {
    throw new VitLoraError(
      "WebGPU is not available in this runtime (navigator.gpu is missing): run with Deno 2, or use --backend wasm",
    );
  }
  platform().beforeGpu?.();
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) {
    throw new VitLoraError(
      "no WebGPU adapter found: install a Vulkan driver (on Debian: mesa-vulkan-drivers, or the GPU vendor's driver), or use --backend wasm",
    );
  }
  const limits = adapter.limits;
  const requiredFeatures: GPUFeatureName[] = [];
  if (adapter.features.has("timestamp-query")) requiredFeatures.push("timestamp-query");
  const f16 = adapter.features.has("shader-f16");
  if (f16) requiredFeatures.push("shader-f16");
  const device = await adapter.requestDevice({
    requiredFeatures,
    // The limits tfjs's own factory asks for: everything the adapter offers.
    requiredLimits: {
      maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
      maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
      maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
      maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
      // the float16 products read up to 10 tensors (WebGPU's default allows 8)
      maxStorageBuffersPerShaderStage: limits.maxStorageBuffersPerShaderStage,
    },
  });
  hoistEnableDirectives(device);
  const backend = new WebGPUBackend(device, adapter.info);
  // Release tfjs's GPU buffers, textures and query sets, then the device, when the runtime
  // unloads, so that nothing outlives the device. (This does not prevent the heap abort seen
  // at exit with wgpu's GL backend enabled: see the README's "How it is checked".)
  globalThis.addEventListener("unload", () => {
    try {
      backend.dispose();
    } finally {
      device.destroy();
    }
  });
  const info = adapter.info;
  const description = info.description ||
    [info.vendor, info.architecture, info.device].filter(Boolean).join(" ") ||
    "an unnamed adapter";
  const software = (info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter ??
    /llvmpipe|lavapipe|swiftshader|software/i.test(description);
  opened = { name: "webgpu", adapter: description, software, f16 };
  return { backend, info: opened };
}

/**
 * What the WebGPU device is (adapter, software or not, `f16` or not) once it has been opened by
 * {@link initBackend}; undefined before, or when there is none.
 *
 * @example
 * ```ts ignore
 * import { initBackend } from "@lora/vit";
 * import { webgpuInfo } from "./backend.ts";
 *
 * await initBackend("webgpu");
 * console.log(webgpuInfo()?.f16); // true where the adapter offers shader-f16
 * ```
 */
export function webgpuInfo(): BackendInfo | undefined {
  return opened;
}

/**
 * WGSL requires `enable` directives (`enable f16;`) to open a shader module, but tfjs puts its
 * own declarations before a program's code: the device's `createShaderModule` moves a program's
 * directives to the top of the module it is given.
 */
function hoistEnableDirectives(device: GPUDevice): void {
  const create = device.createShaderModule.bind(device);
  device.createShaderModule = (descriptor: GPUShaderModuleDescriptor) => {
    const directives: string[] = [];
    const code = descriptor.code.replace(/^[ \t]*enable [a-z0-9_, ]+;[ \t]*$/gm, (line) => {
      directives.push(line.trim());
      return "";
    });
    if (directives.length === 0) return create(descriptor);
    return create({ ...descriptor, code: [...new Set(directives), code].join("\n") });
  };
}

/**
 * tfjs-backend-webgpu 4.22's AddN returns wrong sums for more than 7 inputs (the extra
 * inputs are dropped, or the result is zero). Replace it with a chain of its Add kernel,
 * which is right for any count.
 */
function fixAddN(): void {
  const add = tf.getKernel(tf.Add, "webgpu");
  const addN = tf.getKernel(tf.AddN, "webgpu");
  if (!add || !addN) return;
  tf.unregisterKernel(tf.AddN, "webgpu");
  tf.registerKernel({
    kernelName: tf.AddN,
    backendName: "webgpu",
    kernelFunc: (args) => {
      const tensors = args.inputs as unknown as tf.TensorInfo[];
      if (tensors.length <= 4) return addN.kernelFunc(args);
      const backend = args.backend as WebGPUBackend;
      let sum = tensors[0];
      for (let i = 1; i < tensors.length; i++) {
        const next = add.kernelFunc({
          inputs: { a: sum, b: tensors[i] },
          backend,
          attrs: {},
        }) as tf.TensorInfo;
        if (i > 1) backend.disposeData(sum.dataId);
        sum = next;
      }
      return sum;
    },
  });
}

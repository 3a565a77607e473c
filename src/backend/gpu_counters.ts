/**
 * Counts what tfjs's WebGPU backend asks of the GPU: compute passes and dispatches, queue
 * submits, uniform and other buffer writes, bind groups, buffers created (and their bytes),
 * host readbacks, and every program run by kind, tfjs's matMul programs by variant. None of
 * it depends on the GPU, so a software adapter counts what a real GPU would be asked to do.
 *
 * It wraps the methods of WebGPU's classes (`GPUDevice`, `GPUQueue`, `GPUCommandEncoder`,
 * `GPUComputePassEncoder`, `GPUBuffer`) and the backend's `runWebGPUProgram`, `read` and
 * `readSync` while a {@link GpuCounter} is started; {@link GpuCounter.stop} puts them back.
 * For benchmarks and tests (`bench/gpu_counts.ts`), not for training runs.
 *
 * @module
 */

import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { tf } from "../core/tf.ts";

/** What a stretch of work asked of the GPU. */
export interface GpuCounts {
  /** `dispatchWorkgroups` calls: one a program run. */
  dispatches: number;
  /** Compute passes begun. */
  computePasses: number;
  /** Command encoders created. */
  commandEncoders: number;
  /** `queue.submit` calls. */
  submits: number;
  /** `queue.writeBuffer` calls into uniform buffers (tfjs: one a program run). */
  uniformWrites: number;
  /** Other `queue.writeBuffer` calls. */
  otherWrites: number;
  /** `createBindGroup` calls (tfjs: one a program run). */
  bindGroups: number;
  /** GPU buffers created, and their bytes. */
  buffersCreated: number;
  /** Bytes of the buffers created. */
  bytesCreated: number;
  /** Uniform buffers among them. */
  uniformBuffersCreated: number;
  /** Buffers created mapped, for an upload from the host (tfjs: its staging buffers). */
  uploadBuffersCreated: number;
  /** Buffer-to-buffer copies encoded (uploads through staging buffers, readbacks). */
  copies: number;
  /** `mapAsync` calls for reading: host readbacks, each waiting for the GPU. */
  readbacks: number;
  /** tfjs `read` (`data()`) and `readSync` (`dataSync()`) calls that reached the GPU. */
  tensorReads: number;
  /** Compute pipelines created (shader compilations). */
  pipelines: number;
  /** The most bytes of tfjs's GPU buffers in use at once (its buffer manager's count). */
  peakBytesInUse: number;
  /** Program runs by kind: tfjs's class name, with the matMul variant, or our kernel's name. */
  programs: Record<string, number>;
  /** matMul runs by variant, shapes and transposes (`MatMulPacked scalar [1,34,192]·… tB`). */
  matMuls: Record<string, number>;
}

/** A running count; {@link GpuCounter.stop} ends it. */
export interface GpuCounter {
  /** The counts so far (a copy). */
  snapshot(): GpuCounts;
  /** Sets every count back to zero. */
  reset(): void;
  /** Stops counting and puts the wrapped methods back; returns the final counts. */
  stop(): GpuCounts;
}

function zero(): GpuCounts {
  return {
    dispatches: 0,
    computePasses: 0,
    commandEncoders: 0,
    submits: 0,
    uniformWrites: 0,
    otherWrites: 0,
    bindGroups: 0,
    buffersCreated: 0,
    bytesCreated: 0,
    uniformBuffersCreated: 0,
    uploadBuffersCreated: 0,
    copies: 0,
    readbacks: 0,
    tensorReads: 0,
    pipelines: 0,
    peakBytesInUse: 0,
    programs: {},
    matMuls: {},
  };
}

/** The fields of tfjs's programs the counter reads. */
interface ProgramLike {
  constructor: { name: string };
  shaderKey?: string;
  outputShape?: number[];
  isVec4?: boolean;
  isVectorA?: boolean;
  outputComponent?: number;
  transposeA?: boolean;
  transposeB?: boolean;
  addBias?: boolean;
}

/**
 * The kind of a program run: tfjs's class name (`BinaryOpProgram`, …), matMul programs with
 * their variant (`MatMulPacked vec4`, `MatMulPacked scalar`, `MatMulSmallOutputSize`, …,
 * `batched` when the product has a batch dimension), and this module's kernels by name.
 */
export function programKind(program: ProgramLike): string {
  // a bundler may rename a class that shares its name with another (`MatMulPackedProgram2`)
  const name = program.constructor.name.replace(/\d+$/, "");
  const key = program.shaderKey ?? "";
  if (key.startsWith("vit_lora_")) {
    return key.replace(/^vit_lora_(VitLora)?/, "").replace(/_.*$/, "");
  }
  if (!name.startsWith("MatMul")) return name;
  const batched = (program.outputShape?.[0] ?? 1) > 1 ? " batched" : "";
  const base = name.replace(/Program$/, "");
  if (name === "MatMulPackedProgram") {
    const variant = program.isVec4 ? "vec4" : program.isVectorA ? "vector" : "scalar";
    return `${base} ${variant}${batched}`;
  }
  if (name === "MatMulSplitKProgram") {
    return `${base} ${program.outputComponent === 4 ? "vec4" : "scalar"}${batched}`;
  }
  return `${base}${batched}`;
}

type Method = (...args: unknown[]) => unknown;

/**
 * Starts counting the GPU work of `backend` (default: tfjs's active backend, which must be
 * `webgpu`). Only one counter runs at a time.
 *
 * @example
 * ```ts ignore
 * import { initBackend, tf } from "@lora/vit";
 * import { startGpuCounting } from "./gpu_counters.ts";
 *
 * await initBackend("webgpu");
 * const [a, b] = [tf.randomNormal([256, 256]), tf.randomNormal([256, 256])];
 * const counter = startGpuCounting();
 * const y = tf.matMul(a, b);
 * await y.data();
 * console.log(counter.stop()); // { dispatches: 1, submits: 1, readbacks: 1, … }
 * ```
 */
export function startGpuCounting(backend?: WebGPUBackend): GpuCounter {
  const gpu = backend ?? tf.backend() as unknown as WebGPUBackend;
  if (tf.getBackend() !== "webgpu" && !backend) {
    throw new Error("startGpuCounting: the active tfjs backend is not webgpu");
  }
  let counts = zero();
  const restore: (() => void)[] = [];
  const wrap = (
    target: Record<string, unknown>,
    name: string,
    count: (args: unknown[], self: unknown) => void,
  ) => {
    const original = target[name] as Method;
    target[name] = function (this: unknown, ...args: unknown[]) {
      count(args, this);
      return original.apply(this, args);
    };
    restore.push(() => {
      target[name] = original;
    });
  };
  const g = globalThis as unknown as Record<string, { prototype: Record<string, unknown> }>;
  const proto = (name: string) => g[name].prototype;
  wrap(proto("GPUComputePassEncoder"), "dispatchWorkgroups", () => counts.dispatches++);
  wrap(proto("GPUCommandEncoder"), "beginComputePass", () => counts.computePasses++);
  wrap(proto("GPUCommandEncoder"), "copyBufferToBuffer", () => counts.copies++);
  wrap(proto("GPUDevice"), "createCommandEncoder", () => counts.commandEncoders++);
  wrap(proto("GPUDevice"), "createBindGroup", () => counts.bindGroups++);
  wrap(proto("GPUDevice"), "createComputePipeline", () => counts.pipelines++);
  wrap(proto("GPUDevice"), "createComputePipelineAsync", () => counts.pipelines++);
  wrap(proto("GPUDevice"), "createBuffer", (args) => {
    const d = args[0] as GPUBufferDescriptor;
    counts.buffersCreated++;
    counts.bytesCreated += d.size;
    if (d.usage & GPUBufferUsage.UNIFORM) counts.uniformBuffersCreated++;
    if (d.mappedAtCreation) counts.uploadBuffersCreated++;
  });
  wrap(proto("GPUQueue"), "submit", () => counts.submits++);
  wrap(proto("GPUQueue"), "writeBuffer", (args) => {
    if ((args[0] as GPUBuffer).usage & GPUBufferUsage.UNIFORM) counts.uniformWrites++;
    else counts.otherWrites++;
  });
  wrap(proto("GPUBuffer"), "mapAsync", (args) => {
    if ((args[0] as number) & GPUMapMode.READ) counts.readbacks++;
  });
  const self = gpu as unknown as Record<string, unknown>;
  const tensorData = (gpu as unknown as { tensorMap: { get(id: unknown): { values: unknown } } })
    .tensorMap;
  for (const name of ["read", "readSync"]) {
    wrap(self, name, (args) => {
      if (tensorData.get(args[0])?.values == null) counts.tensorReads++;
    });
  }
  wrap(self, "runWebGPUProgram", (args) => {
    const program = args[0] as ProgramLike;
    const kind = programKind(program);
    counts.programs[kind] = (counts.programs[kind] ?? 0) + 1;
    if (kind.startsWith("MatMul")) {
      const inputs = args[1] as { shape: number[] }[];
      const t = `${program.transposeA ? " tA" : ""}${program.transposeB ? " tB" : ""}${
        program.addBias ? " +bias" : ""
      }`;
      const key = `${kind} ${inputs.map((i) => `[${i.shape}]`).slice(0, 2).join("·")}${t}`;
      counts.matMuls[key] = (counts.matMuls[key] ?? 0) + 1;
    }
  });
  const manager = (gpu as unknown as { bufferManager: Record<string, unknown> }).bufferManager;
  const inUse = () => manager.numBytesUsed as number;
  counts.peakBytesInUse = inUse();
  // the most in use: looked at after each buffer tfjs takes (its count includes the new one)
  const acquire = manager.acquireBuffer as Method;
  manager.acquireBuffer = function (this: unknown, ...args: unknown[]) {
    const buffer = acquire.apply(this, args);
    counts.peakBytesInUse = Math.max(counts.peakBytesInUse, inUse());
    return buffer;
  };
  restore.push(() => {
    manager.acquireBuffer = acquire;
  });
  const copy = (): GpuCounts => ({
    ...counts,
    programs: { ...counts.programs },
    matMuls: { ...counts.matMuls },
  });
  let stopped = false;
  return {
    snapshot: copy,
    reset: () => {
      counts = zero();
      counts.peakBytesInUse = inUse();
    },
    stop: () => {
      if (!stopped) {
        stopped = true;
        for (const undo of restore.reverse()) undo();
      }
      return copy();
    },
  };
}

/**
 * What every task's command line shares: flags parsed with `node:util`'s `parseArgs` (a bad
 * flag is one error line), `-h/--help`, numeric flags, and the rule that a `VitLoraError` ends
 * the task with `error: <message>` and exit status 1.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { VitLoraError } from "../mod.ts";
import { parseShard, type Shard } from "../src/eval/shard.ts";

/**
 * `parseArgs(config)` with its errors as a {@link VitLoraError}; with `help`, `-h`/`--help`
 * prints it and exits.
 */
export function parseFlags<const T extends ParseArgsConfig>(
  config: T,
  help?: string,
): ReturnType<typeof parseArgs<T>> {
  let parsed: ReturnType<typeof parseArgs<T>>;
  try {
    parsed = parseArgs(config);
  } catch (e) {
    throw new VitLoraError(`${(e as Error).message} (see --help)`);
  }
  if (help !== undefined && (parsed.values as Record<string, unknown>).help) {
    console.log(help);
    Deno.exit(0);
  }
  return parsed;
}

/** A number flag's value (undefined when absent); anything but a finite number is an error. */
export function numberFlag(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) {
    throw new VitLoraError(`--${flag}: not a number: ${JSON.stringify(value)}`);
  }
  return n;
}

/** A count flag's value (undefined when absent): an integer ≥ `min`. */
export function countFlag(flag: string, value: string | undefined, min = 0): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    throw new VitLoraError(`--${flag}: not a ${min > 0 ? "positive " : ""}count: ${value}`);
  }
  return n;
}

/**
 * `--shard`'s value (undefined when absent): `i/n` with 0 ≤ i < n, or `auto/n`, which reads
 * the index from `JOB_COMPLETION_INDEX` (a Kubernetes Indexed Job) or `SLURM_ARRAY_TASK_ID`.
 */
export function shardFlag(value: string | undefined): Shard | undefined {
  return value === undefined ? undefined : parseShard(value);
}

/** Runs a task's body: a {@link VitLoraError} becomes `error: <message>` and exit status 1. */
export async function runTask(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (e) {
    if (e instanceof VitLoraError) {
      console.error(`error: ${e.message}`);
      Deno.exit(1);
    }
    // a path or host outside the task's permissions (deno.json's task line): one line too
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
      console.error(`error: ${(e as Error).message.split("\n")[0]}`);
      Deno.exit(1);
    }
    throw e;
  }
}

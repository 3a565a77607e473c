/**
 * What every task's command line shares: flags parsed with `node:util`'s `parseArgs` (a bad
 * flag is one error line), `-h/--help`, numeric flags, and the rule that a `VitLoraError` ends
 * the task with `error: <message>` and exit status 1.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { VitLoraError } from "../mod.ts";
import {
  commandHelp,
  commandLineOptions,
  type OptionInputs,
  type OptionSchema,
  parseOptionText,
} from "../src/core/options.ts";
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

/** A command: what it does, its usage lines and its options (see `core/options.ts`). */
export interface Command<S extends OptionSchema> {
  /** One line saying what the command does. */
  summary: string;
  /** Usage lines, without `usage: `. */
  usage: readonly string[];
  /** The options: the flags and their help come from here. */
  schema: S;
  /** Lines after the options in the help. */
  notes?: string;
  /** Whether arguments other than flags are allowed (e.g. predict's images). */
  positionals?: boolean;
}

/** The `--help` text of a command. */
export function helpOf(command: Command<OptionSchema>): string {
  return commandHelp(command);
}

/**
 * Parses a command line against a command's schema: every flag's text read and checked as its
 * option's value (see `parseOptionText`), `-h`/`--help` printing the help and exiting, a bad
 * flag one {@link VitLoraError}.
 */
export function parseCommand<S extends OptionSchema>(
  command: Command<S>,
  args: readonly string[],
): { values: OptionInputs<S>; positionals: string[] } {
  const options: NonNullable<ParseArgsConfig["options"]> = {
    help: { type: "boolean", short: "h" },
  };
  const entries = commandLineOptions(command.schema);
  const negatedChoice = new Map<string, string>();
  for (const [, spec] of entries) {
    options[spec.flag] = {
      type: spec.kind === "boolean" ? "boolean" : "string",
      ...(spec.short ? { short: spec.short } : {}),
    };
    if (spec.kind === "choice" && spec.negated !== undefined) {
      negatedChoice.set(`--no-${spec.flag}`, `--${spec.flag}=${spec.negated}`);
    }
  }
  const { values, positionals } = parseFlags({
    args: args.map((a) => negatedChoice.get(a) ?? a),
    options,
    allowNegative: true,
    allowPositionals: command.positionals ?? false,
  });
  if (values.help) {
    console.log(commandHelp(command));
    Deno.exit(0);
  }
  const out: Record<string, unknown> = {};
  const given = values as Record<string, string | boolean | undefined>;
  for (const [name, spec] of entries) {
    const text = given[spec.flag];
    if (text !== undefined) out[name] = parseOptionText(spec, text);
  }
  return { values: out as OptionInputs<S>, positionals };
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

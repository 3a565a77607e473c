/**
 * Options declared once. A command's options are a schema: a literal record of
 * {@link OptionSpec}s (`as const satisfies OptionSchema`), one entry an option, keyed by its
 * name in the library's options object. Everything else is derived from it: the type of the
 * values ({@link OptionValues}, {@link OptionInputs}), the defaults ({@link optionDefaults}),
 * the checks ({@link checkOptions}), a flag's text read as a value ({@link parseOptionText}),
 * the command line's help ({@link optionsHelp}) and the README's table of options
 * ({@link optionsTable}). Adding an option is one entry, and the code that uses it.
 *
 * Browser-safe: the command line itself is parsed in `tasks/cli.ts` (`node:util`).
 *
 * @example
 * ```ts
 * import { checkOptions, optionDefaults, type OptionSchema, type OptionValues } from "./options.ts";
 *
 * const SCHEMA = {
 *   epochs: { kind: "integer", min: 1, flag: "epochs", arg: "N", help: "passes", default: 5 },
 *   backend: { kind: "choice", choices: ["wasm", "cpu"], flag: "backend", help: "where to run" },
 * } as const satisfies OptionSchema;
 *
 * const values: OptionValues<typeof SCHEMA> = { ...optionDefaults(SCHEMA), backend: "cpu" };
 * checkOptions(SCHEMA, values);
 * console.log(values.epochs + 1); // 6
 * ```
 *
 * @module
 */

import { VitLoraError } from "./errors.ts";

/** How an option's value is written and checked. */
export type OptionKind = "string" | "list" | "boolean" | "integer" | "number" | "choice";

/** One option: its value's kind and limits, its flag, its default and its help. */
export interface OptionSpec {
  /** The value's kind: a string, a list of strings, a boolean, a number, one of `choices`. */
  readonly kind: OptionKind;
  /** The command-line flag, without `--` (`batch-size`). */
  readonly flag: string;
  /** A one-letter alias of the flag, without `-`. */
  readonly short?: string;
  /** What the flag's value is called in the help (`N`, `DIR`). */
  readonly arg?: string;
  /** The help text; `\n` starts another line. */
  readonly help: string;
  /** The group of the help and of the README's table it is listed in. */
  readonly section?: string;
  /** The default value; an option without one is optional (`undefined` when not given). */
  readonly default?: unknown;
  /** The default as the help says it, when there is no fixed one or it reads better so. */
  readonly defaultText?: string;
  /** `integer`, `number`: the smallest value allowed. */
  readonly min?: number;
  /** `number`: values must be below this. */
  readonly below?: number;
  /** `choice`: the values allowed; `list`: the items allowed (any string when absent). */
  readonly choices?: readonly string[];
  /** `choice`: the value `--no-<flag>` stands for (e.g. `none`). */
  readonly negated?: string;
  /** Part of a training run's configuration: recorded in `config.json`, kept on `--resume`. */
  readonly config?: boolean;
  /** Not a flag of the command line (the library's alone). */
  readonly libraryOnly?: boolean;
}

/** A command's options: their names (in the library's options object) and specs. */
export type OptionSchema = { readonly [name: string]: OptionSpec };

/** The value type of one option spec. */
export type OptionValue<S> = S extends { kind: "boolean" } ? boolean
  : S extends { kind: "integer" | "number" } ? number
  : S extends { kind: "choice"; choices: readonly (infer C)[] } ? C
  : S extends { kind: "list"; choices: readonly (infer C)[] } ? C[]
  : S extends { kind: "list" } ? string[]
  : string;

/**
 * The values of a schema's options once defaults are applied: options with a default are
 * present, the others optional.
 */
export type OptionValues<S extends OptionSchema> =
  & { -readonly [K in keyof S as S[K] extends { default: unknown } ? K : never]: OptionValue<S[K]> }
  & {
    -readonly [K in keyof S as S[K] extends { default: unknown } ? never : K]?: OptionValue<
      S[K]
    >;
  };

/** What a caller may pass: every option optional. */
export type OptionInputs<S extends OptionSchema> = {
  -readonly [K in keyof S]?: OptionValue<S[K]>;
};

/** The defaults of a schema's options (options without one are left out). */
export function optionDefaults<S extends OptionSchema>(schema: S): OptionValues<S> {
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(schema)) {
    if (spec.default !== undefined) {
      out[name] = Array.isArray(spec.default) ? [...spec.default] : spec.default;
    }
  }
  return out as OptionValues<S>;
}

/** `values` with the defaults of `schema` where a value is undefined. */
export function withDefaults<S extends OptionSchema>(
  schema: S,
  values: OptionInputs<S>,
): OptionValues<S> {
  const out: Record<string, unknown> = { ...optionDefaults(schema) };
  for (const [name, value] of Object.entries(values)) {
    if (value !== undefined) out[name] = value;
  }
  return out as OptionValues<S>;
}

/** What a value of `spec` must be, as the error messages say it. */
export function optionRule(spec: OptionSpec): string {
  switch (spec.kind) {
    case "string":
      return "a non-empty string";
    case "boolean":
      return "true or false";
    case "list":
      return spec.choices ? `a list of ${spec.choices.join(", ")}` : "a list of names";
    case "choice":
      return `one of ${spec.choices?.join(", ")}`;
    case "integer":
      return spec.min === 1
        ? "a positive integer"
        : spec.min === 0
        ? "a count (0, 1, 2, …)"
        : spec.min === undefined
        ? "an integer"
        : `an integer ≥ ${spec.min}`;
    case "number": {
      const lo = spec.min, hi = spec.below;
      if (lo !== undefined && hi !== undefined) return `a number in [${lo}, ${hi})`;
      if (lo !== undefined) return `a number ≥ ${lo}`;
      if (hi !== undefined) return `a number below ${hi}`;
      return "a number";
    }
  }
}

function fault(spec: OptionSpec, value: unknown): VitLoraError {
  const shown = typeof value === "string" ? JSON.stringify(value) : String(
    Array.isArray(value) ? JSON.stringify(value) : value,
  );
  return new VitLoraError(`--${spec.flag} must be ${optionRule(spec)}, not ${shown}`);
}

/** Checks one value against its spec; a bad one is a {@link VitLoraError} naming the flag. */
export function checkOption(spec: OptionSpec, value: unknown): void {
  const ok = (() => {
    switch (spec.kind) {
      case "string":
        return typeof value === "string" && value !== "";
      case "boolean":
        return typeof value === "boolean";
      case "list":
        return Array.isArray(value) && value.length > 0 &&
          value.every((v) =>
            typeof v === "string" && v !== "" && (!spec.choices || spec.choices.includes(v))
          );
      case "choice":
        return typeof value === "string" && (spec.choices ?? []).includes(value);
      case "integer":
        return Number.isSafeInteger(value) &&
          (spec.min === undefined || value as number >= spec.min);
      case "number":
        return typeof value === "number" && Number.isFinite(value) &&
          (spec.min === undefined || value >= spec.min) &&
          (spec.below === undefined || value < spec.below);
    }
  })();
  if (!ok) {
    // a list: the item at fault
    const bad = spec.kind === "list" && Array.isArray(value)
      ? value.find((v) => typeof v !== "string" || v === "" || !(spec.choices?.includes(v) ?? true))
      : undefined;
    throw fault(spec, bad ?? value);
  }
}

/**
 * Checks every value present in `values` against `schema` (undefined ones are skipped; names
 * the schema does not know are an error).
 */
export function checkOptions<S extends OptionSchema>(
  schema: S,
  values: OptionInputs<S> | OptionValues<S>,
): void {
  for (const [name, value] of Object.entries(values)) {
    const spec = schema[name];
    if (!spec) throw new VitLoraError(`unknown option ${JSON.stringify(name)}`);
    if (value !== undefined) checkOption(spec, value);
  }
}

/**
 * A flag's text as the option's value, checked: numbers parsed, lists split on commas.
 * `true`/`false` (a boolean flag given or negated) stays as it is; for a choice with
 * `negated`, `false` (`--no-<flag>`) is that value.
 */
export function parseOptionText(spec: OptionSpec, text: string | boolean): unknown {
  let value: unknown = text;
  if (typeof text === "boolean") {
    if (spec.kind === "choice" && spec.negated !== undefined && text === false) {
      value = spec.negated;
    } else if (spec.kind !== "boolean") {
      throw new VitLoraError(`--${spec.flag} needs a value (${optionRule(spec)})`);
    }
  } else if (spec.kind === "list") {
    value = text.split(",").map((s) => s.trim()).filter(Boolean);
  } else if (spec.kind === "integer" || spec.kind === "number") {
    value = text.trim() === "" ? NaN : Number(text);
    if (!Number.isFinite(value)) throw fault(spec, text);
  } else if (spec.kind === "boolean") {
    throw new VitLoraError(`--${spec.flag} takes no value`);
  }
  checkOption(spec, value);
  return value;
}

/** The flag as the help shows it: `--batch-size N`, `--no-shuffle`, `-h, --help`. */
export function flagText(spec: OptionSpec): string {
  if (spec.kind === "boolean") return `--${spec.default === true ? "no-" : ""}${spec.flag}`;
  const arg = spec.arg ??
    (spec.kind === "choice" ? spec.choices!.join("|") : spec.kind.toUpperCase());
  return `${spec.short ? `-${spec.short}, ` : ""}--${spec.flag} ${arg}`;
}

/** The default as the help shows it, if there is one to show. */
export function defaultText(spec: OptionSpec): string | undefined {
  if (spec.defaultText !== undefined) return spec.defaultText;
  if (spec.default === undefined || spec.kind === "boolean") return undefined;
  return Array.isArray(spec.default) ? spec.default.join(",") : String(spec.default);
}

/** The schema's command-line options, in order, with their names (library-only ones left out). */
export function commandLineOptions(schema: OptionSchema): [string, OptionSpec][] {
  return Object.entries(schema).filter(([, spec]) => !spec.libraryOnly);
}

/**
 * The help lines of the options of `schema` (only those of `section` when given): the flag,
 * then the help and the default, aligned at `width`.
 */
export function optionsHelp(
  schema: OptionSchema,
  options: { section?: string; width?: number } = {},
): string {
  const width = options.width ?? 24;
  const lines: string[] = [];
  for (const [, spec] of commandLineOptions(schema)) {
    if (options.section !== undefined && spec.section !== options.section) continue;
    const dflt = defaultText(spec);
    const text = spec.help + (dflt === undefined ? "" : ` (default ${dflt})`);
    const name = flagText(spec);
    const [first, ...rest] = text.split("\n");
    if (name.length + 2 >= width) {
      lines.push(`  ${name}`);
      lines.push(`  ${"".padEnd(width)}${first}`);
    } else lines.push(`  ${name.padEnd(width)}${first}`);
    for (const more of rest) lines.push(`  ${"".padEnd(width)}${more}`);
  }
  return lines.join("\n");
}

/** The sections of a schema's command-line options, in order of first appearance. */
export function optionSections(schema: OptionSchema): string[] {
  const seen: string[] = [];
  for (const [, spec] of commandLineOptions(schema)) {
    const section = spec.section ?? "";
    if (!seen.includes(section)) seen.push(section);
  }
  return seen;
}

/** A command's whole `--help`: what it does, its usage lines, its options by section, notes. */
export function commandHelp(command: {
  /** One line saying what the command does. */
  summary: string;
  /** Usage lines, without `usage: `. */
  usage: readonly string[];
  /** The options. */
  schema: OptionSchema;
  /** Lines after the options. */
  notes?: string;
}): string {
  const sections = optionSections(command.schema).map((section) =>
    (section ? `${section}\n` : "") + optionsHelp(command.schema, { section })
  );
  const [first, ...more] = command.usage;
  return [
    command.summary,
    "",
    [`usage: ${first}`, ...more.map((u) => `       ${u}`)].join("\n"),
    "",
    ...sections.flatMap((s) => [s, ""]),
    "  -h, --help              this text",
    ...(command.notes ? ["", command.notes] : []),
  ].join("\n");
}

/** The README's table of a schema's command-line options (Markdown). */
export function optionsTable(schema: OptionSchema): string {
  const cell = (s: string) => s.replaceAll("|", "\\|").replaceAll("\n", " ");
  const rows = commandLineOptions(schema).map(([, spec]) => {
    const dflt = defaultText(spec);
    const flag = cell(flagText(spec).replace(/^-\w, /, ""));
    return `| \`${flag}\` | ${dflt === undefined ? "" : cell(dflt)} | ${cell(spec.help)} |`;
  });
  return ["| flag | default | what it does |", "| --- | --- | --- |", ...rows].join("\n");
}

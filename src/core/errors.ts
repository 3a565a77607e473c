/**
 * The one error type the module throws for bad input: a message of one line that names the
 * file (or option) and what is wrong with it, fit to print as is.
 *
 * @module
 */

/**
 * An error caused by the user's input (a file, a folder, a flag), not by a bug.
 *
 * @example
 * ```ts
 * import { VitLoraError } from "@lora/vit";
 * try {
 *   throw new VitLoraError("model/config.json: hidden_size must be a positive integer");
 * } catch (e) {
 *   if (e instanceof VitLoraError) console.error(`error: ${e.message}`);
 * }
 * ```
 */
export class VitLoraError extends Error {
  /** Makes an error with a one-line message. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "VitLoraError";
  }
}

/** Formats a shape the way PyTorch prints it: `[768, 3, 16, 16]`. */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** True when both shapes have the same rank and sizes. */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

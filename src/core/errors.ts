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
 * import { ViTLoraError } from "./errors.ts";
 * try {
 *   throw new ViTLoraError("model/config.json: hidden_size must be a positive integer");
 * } catch (e) {
 *   if (e instanceof ViTLoraError) console.log(e.message); // the tasks print `error: ` + this
 * }
 * ```
 */
export class ViTLoraError extends Error {
  /** Makes an error with a one-line message. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ViTLoraError";
  }
}

/**
 * The old spelling of {@link ViTLoraError}, kept for one release.
 *
 * @deprecated Use {@link ViTLoraError}.
 */
export const VitLoraError: typeof ViTLoraError = ViTLoraError;
/**
 * The old spelling of {@link ViTLoraError}, kept for one release.
 *
 * @deprecated Use {@link ViTLoraError}.
 */
export type VitLoraError = ViTLoraError;

/**
 * Reading the environment without asking: a variable the process may not read counts as
 * unset (no permission prompt, no error), so each task's `--allow-env` list decides.
 *
 * @module
 */

/** The variable's value, or undefined when it is unset, empty, or may not be read. */
export function readEnv(name: string): string | undefined {
  try {
    if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
      return undefined;
    }
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

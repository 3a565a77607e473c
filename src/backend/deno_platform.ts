/**
 * Deno's side of the platform seam (`core/platform.ts`): the environment (read without a
 * permission prompt), files written atomically, Mesa's Wayland probe quieted before a GPU is
 * asked for, and OpenBLAS through the FFI. Imported for its effect by every Deno entry and by
 * the Deno-only modules that need it; never by the browser entry.
 *
 * @module
 */

import { readEnv } from "../core/env.ts";
import { writeFiles } from "../core/files.ts";
import { usePlatform } from "../core/platform.ts";
import { blasStatus } from "./blas.ts";

/**
 * Mesa's drivers (the software ones included) probe Wayland as they start and print
 * `error: XDG_RUNTIME_DIR is invalid or not set in the environment.` on machines without a
 * desktop session (servers, containers, CI), though nothing is wrong. When the variable is
 * unset and this process may set it, it is set to the conventional place, which silences the
 * probe; no file is made there, and a machine that has a session keeps its own value.
 */
export function quietWayland(): void {
  try {
    if (Deno.build.os !== "linux") return;
    const state = Deno.permissions.querySync({ name: "env", variable: "XDG_RUNTIME_DIR" }).state;
    if (state !== "granted" || Deno.env.get("XDG_RUNTIME_DIR")) return;
    Deno.env.set("XDG_RUNTIME_DIR", "/run/user/vit-lora-no-session");
  } catch {
    // not allowed: the probe's line is harmless
  }
}

usePlatform({ env: readEnv, writeFiles, beforeGpu: quietWayland, blas: blasStatus });

/**
 * The seam between the module's core, which runs in Deno and in a web page alike, and what
 * only Deno has: its environment, files, and native libraries. The core asks {@link platform}
 * for them; in a web page nothing is plugged in and each asks gets the browser's answer (no
 * environment, no folders, no BLAS). Deno's implementations are plugged in by
 * `backend/deno_platform.ts`, which every Deno entry (and Deno-only module that needs them)
 * imports. The browser entry's module graph holds no module that uses `Deno` or `node:`
 * (`tasks/check_graph.ts` checks it).
 *
 * @module
 */

/** A native matrix product library, as `backend/blas.ts` loads it (see there). */
export interface PlatformBlas {
  /** The library, when one is loaded (opaque here; `backend/blas.ts`'s `Blas`). */
  blas?: unknown;
  /** One line saying why none is used. */
  reason?: string;
  /** True when there is nothing to announce. */
  quiet?: boolean;
}

/** What the platform provides. Every member is optional: absent means "not here". */
export interface Platform {
  /** An environment variable's value, undefined when unset or unreadable. */
  env?(name: string): string | undefined;
  /** Writes files by name into a folder (made if needed), each atomically. */
  writeFiles?(dir: string, files: Map<string, Uint8Array>): Promise<void>;
  /** Called before a GPU adapter is asked for (Deno: quiets Mesa's Wayland probe). */
  beforeGpu?(): void;
  /** The native BLAS for the wasm backend's products, loaded on first use. */
  blas?(): PlatformBlas;
}

let current: Platform = {};

/** The platform the process runs on (in a web page: nothing plugged in). */
export function platform(): Platform {
  return current;
}

/** Plugs a platform's implementations in (what is given replaces what was). */
export function usePlatform(implementations: Platform): void {
  current = { ...current, ...implementations };
}

/** An environment variable through the platform (undefined in a web page). */
export function platformEnv(name: string): string | undefined {
  return current.env?.(name);
}

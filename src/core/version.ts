/**
 * This package's version, as `deno.json` gives it (recorded in each run's `config.json`).
 *
 * @module
 */

import meta from "../../deno.json" with { type: "json" };

/** The package's version, e.g. `0.1.0`. */
export const VERSION: string = meta.version;

/**
 * Progress on the terminal: a bar redrawn in place on a TTY, plain lines otherwise (logs,
 * CI), so a five-hour run can be followed either way.
 *
 * @module
 */

/** Formats seconds as `h:mm:ss` or `m:ss`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const mm = h > 0 ? String(m).padStart(2, "0") : String(m);
  return `${h > 0 ? `${h}:` : ""}${mm}:${String(r).padStart(2, "0")}`;
}

/** Formats a byte count: `512 B`, `3.4 MB`, `1.2 GB`. */
export function formatBytes(bytes: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (bytes >= 1000 && i < units.length - 1) {
    bytes /= 1000;
    i++;
  }
  return `${i === 0 ? bytes : bytes.toFixed(1)} ${units[i]}`;
}

/** Options of {@link Progress}. */
export interface ProgressOptions {
  /** Redraw a bar in place (default: whether stderr is a terminal). */
  tty?: boolean;
  /** Where lines go (default: stderr). */
  write?: (text: string) => void;
}

/**
 * A progress display for one pass over `total` units.
 *
 * @example
 * ```ts
 * import { Progress } from "./progress.ts";
 * const lines: string[] = [];
 * const p = new Progress({ tty: false, write: (t) => lines.push(t) });
 * p.start("epoch 1/5", 10);
 * p.update(5, "loss 1.23");
 * p.line("done");
 * console.log(lines.at(-1)); // "done\n"
 * ```
 */
export class Progress {
  readonly #tty: boolean;
  readonly #write: (text: string) => void;
  #label = "";
  #total = 0;
  #start = 0;
  #drawn = false;
  #lastLine = 0;
  #format: (n: number) => string = String;

  /** A display writing to stderr (or `write`). */
  constructor(options: ProgressOptions = {}) {
    const encoder = new TextEncoder();
    this.#tty = options.tty ?? Deno.stderr.isTerminal();
    this.#write = options.write ?? ((t) => Deno.stderr.writeSync(encoder.encode(t)));
  }

  /** Begins a pass of `total` units named `label`, counts shown with `format` (e.g. bytes). */
  start(label: string, total: number, format: (n: number) => string = String): void {
    this.#label = label;
    this.#total = total;
    this.#format = format;
    this.#start = performance.now();
    this.#lastLine = 0;
  }

  /** Reports `done` units finished, with `detail` (loss, rate, …). */
  update(done: number, detail = ""): void {
    const elapsed = (performance.now() - this.#start) / 1000;
    const eta = done > 0 ? elapsed * (this.#total - done) / done : NaN;
    const counts = `${this.#format(done)}/${this.#format(this.#total)}`;
    if (this.#tty) {
      const width = 24;
      const filled = Math.round(width * Math.min(1, done / Math.max(1, this.#total)));
      const bar = "█".repeat(filled) + "░".repeat(width - filled);
      this.#write(
        `\r\x1b[2K${this.#label} ${bar} ${counts} ${detail} · ETA ${formatDuration(eta)}`,
      );
      this.#drawn = true;
    } else {
      // about ten lines a pass, and the last
      const every = Math.max(1, Math.floor(this.#total / 10));
      if (done === this.#total || done - this.#lastLine >= every) {
        this.#lastLine = done;
        this.#write(
          `${[this.#label, counts, detail].filter(Boolean).join(" ")} · ETA ${
            formatDuration(eta)
          }\n`,
        );
      }
    }
  }

  /** Prints a line of its own (below the bar on a TTY). */
  line(text: string): void {
    if (this.#drawn) this.#write("\r\x1b[2K");
    this.#drawn = false;
    this.#write(text + "\n");
  }
}

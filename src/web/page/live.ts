/**
 * Live classification: classify the camera's current frame, show its top classes, and go on
 * with the next frame once that is done: one frame in flight at a time, at most one a screen
 * refresh (`requestAnimationFrame`, which also pauses in a hidden tab).
 *
 * @module
 */

/// <reference lib="dom" />

import type { RgbImage } from "../../data/image.ts";
import type { Prediction } from "../../eval/top.ts";

/** What the loop calls. */
export interface LiveOptions {
  /** The current frame. */
  grab: () => RgbImage;
  /** Its top classes. */
  classify: (image: RgbImage) => Promise<Prediction[]>;
  /** Shows them: the frame's number (1, 2, …) and the frames a second so far. */
  show: (top: Prediction[], frame: number, perSecond: number) => void;
  /** When a frame fails (the loop stops). */
  onError: (error: unknown) => void;
}

/**
 * The live loop: {@link LiveLoop.start}, {@link LiveLoop.stop}.
 *
 * @example
 * ```ts ignore
 * import { classify, type ViTClassifier } from "@lora/vit/web";
 * import { Camera } from "./camera.ts";
 * import { LiveLoop, showTop } from "./live.ts";
 * declare const clf: ViTClassifier;
 * const camera = new Camera(document.querySelector("video")!);
 * await camera.start();
 * const box = document.getElementById("live")!;
 *
 * const loop = new LiveLoop();
 * loop.start({
 *   grab: () => camera.image(),
 *   classify: async (image) => (await classify(clf, [image], { topK: 3 }))[0],
 *   show: (top, frame, perSecond) =>
 *     showTop(box, top, `frame ${frame} · ${perSecond.toFixed(1)} frames/s`),
 *   onError: (e) => console.error(e),
 * });
 * // … later
 * await loop.stop();
 * ```
 */
export class LiveLoop {
  /** Frames classified since the last start. */
  frames = 0;
  #running: Promise<void> | undefined;
  #stopping = false;

  /** Whether it runs. */
  get running(): boolean {
    return this.#running !== undefined;
  }

  /** Starts classifying frames (nothing when it runs already). */
  start(options: LiveOptions): void {
    if (this.#running) return;
    this.#stopping = false;
    this.frames = 0;
    this.#running = this.#loop(options).finally(() => this.#running = undefined);
  }

  /** Stops after the frame in flight; resolves once it is done. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#running;
  }

  async #loop(options: LiveOptions): Promise<void> {
    const start = performance.now();
    try {
      while (!this.#stopping) {
        const top = await options.classify(options.grab());
        if (this.#stopping) break;
        this.frames++;
        options.show(top, this.frames, this.frames / ((performance.now() - start) / 1000));
        await new Promise((resolve) => requestAnimationFrame(resolve));
      }
    } catch (e) {
      options.onError(e);
    }
  }
}

/**
 * Renders top classes as rows of name, bar and percentage into `box`, and a caption line.
 *
 * @example
 * ```ts ignore
 * import { showTop } from "./live.ts";
 * const box = document.getElementById("live")!;
 *
 * showTop(box, [{ label: "cat", index: 0, probability: 0.9 }], "frame 1");
 * ```
 */
export function showTop(box: HTMLElement, top: Prediction[], caption: string): void {
  const rows = top.map((p) => {
    const row = document.createElement("div");
    row.className = "live-row";
    const name = document.createElement("span");
    name.className = "live-label";
    name.textContent = p.label;
    const bar = document.createElement("span");
    bar.className = "live-bar";
    const fill = document.createElement("span");
    fill.style.width = `${(100 * p.probability).toFixed(1)}%`;
    bar.append(fill);
    const value = document.createElement("span");
    value.className = "live-p";
    value.textContent = `${(100 * p.probability).toFixed(1)}%`;
    row.append(name, bar, value);
    return row;
  });
  const note = document.createElement("div");
  note.className = "note";
  note.textContent = caption;
  box.replaceChildren(...rows, note);
}

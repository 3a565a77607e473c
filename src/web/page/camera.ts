/**
 * The page's camera: `getUserMedia({ video: true })` into a `<video>` preview, frames grabbed
 * through a canvas as RGB images (`rgbFromRgba`) with a small thumbnail each, and one line
 * saying why there is no camera when the browser gives none.
 *
 * @module
 */

/// <reference lib="dom" />

import type { RgbImage } from "../../data/image.ts";
import { rgbFromRgba } from "../images.ts";

/** A grabbed frame: its pixels and a thumbnail (`data:` URL). */
export interface Frame {
  /** The frame, its shorter side scaled down to the camera's `shortSide` when longer. */
  image: RgbImage;
  /** A JPEG thumbnail, 64 pixels on its longer side. */
  thumb: string;
}

/**
 * Why the browser gave no camera, in words: from `getUserMedia`'s error (its `name`, as the
 * Media Capture spec defines them), or when the page is offered no `mediaDevices` at all.
 *
 * @example
 * ```ts
 * import { cameraProblem } from "./camera.ts";
 * console.log(cameraProblem(new DOMException("Permission denied", "NotAllowedError")));
 * // permission to use it was denied (allow the camera in the browser's site settings)
 * ```
 */
export function cameraProblem(error: unknown): string {
  const name = (error as { name?: string })?.name ?? "";
  const message = (error as { message?: string })?.message ?? String(error);
  switch (name) {
    case "NotAllowedError":
    case "SecurityError":
      return "permission to use it was denied (allow the camera in the browser's site settings)";
    case "NotFoundError":
    case "OverconstrainedError":
      return "no camera was found";
    case "NotReadableError":
    case "AbortError":
      return "the camera is in use by another program or could not start";
    case "NoMediaDevices":
      return "this browser offers no camera to this page (it needs https or localhost)";
    default:
      return `${name || "error"}: ${message}`.replace(/\s+/g, " ");
  }
}

/**
 * The one line the page shows when there is no camera.
 *
 * @example
 * ```ts
 * import { noCameraLine } from "./camera.ts";
 * console.log(noCameraLine(new DOMException("Requested device not found", "NotFoundError")));
 * // No camera: no camera was found; you can still add images from files.
 * ```
 */
export function noCameraLine(error: unknown): string {
  return `No camera: ${cameraProblem(error)}; you can still add images from files.`;
}

/**
 * A camera shown in a `<video>` element, whose frames can be grabbed.
 *
 * @example
 * ```ts ignore
 * import { Camera, noCameraLine } from "./camera.ts";
 * const line = document.getElementById("camera-status")!;
 *
 * const camera = new Camera(document.querySelector("video")!, {
 *   onEnd: () => {
 *     line.textContent = "The camera stopped (unplugged, or its permission withdrawn).";
 *   },
 * });
 * try {
 *   await camera.start();
 *   const { image, thumb } = camera.grab(); // an RgbImage, and a data: URL to show
 *   console.log(image.width, image.height, thumb);
 * } catch (e) {
 *   line.textContent = noCameraLine(e);
 * }
 * ```
 */
export class Camera {
  /** The preview. */
  readonly video: HTMLVideoElement;
  /** Frames are scaled down so that their shorter side is at most this (pixels). */
  shortSide: number;
  #stream: MediaStream | undefined;
  #canvas = document.createElement("canvas");
  #thumb = document.createElement("canvas");
  #mirrors: HTMLVideoElement[] = [];
  #onEnd: (() => void) | undefined;

  /**
   * A camera for the preview `video`; `shortSide` is the frames' shorter side at most (256);
   * `onEnd` is called when the camera ends by itself (unplugged, or the permission withdrawn).
   */
  constructor(
    video: HTMLVideoElement,
    options: { shortSide?: number; onEnd?: () => void } = {},
  ) {
    this.video = video;
    this.shortSide = options.shortSide ?? 256;
    this.#onEnd = options.onEnd;
  }

  /** Whether the camera is on and showing frames. */
  get on(): boolean {
    return this.#stream !== undefined && this.video.videoWidth > 0;
  }

  /** Also shows the camera in `video` (e.g. next to the live classes). */
  mirrorTo(video: HTMLVideoElement): void {
    this.#mirrors.push(video);
    if (this.#stream) void this.#show(video);
  }

  async #show(video: HTMLVideoElement): Promise<void> {
    video.muted = true;
    video.playsInline = true;
    video.srcObject = this.#stream ?? null;
    if (this.#stream) await video.play();
  }

  /**
   * Starts the camera (the browser asks the user once) and waits for its first frame; throws
   * `getUserMedia`'s error (see {@link cameraProblem}) when there is none.
   */
  async start(): Promise<void> {
    if (this.#stream) return;
    if (!navigator.mediaDevices?.getUserMedia) {
      throw new DOMException("navigator.mediaDevices is undefined", "NoMediaDevices");
    }
    const stream = await navigator.mediaDevices.getUserMedia({ video: true });
    this.#stream = stream;
    for (const track of stream.getTracks()) {
      track.addEventListener("ended", () => {
        if (this.#stream !== stream) return;
        this.stop();
        this.#onEnd?.();
      });
    }
    try {
      const first = new Promise((resolve) =>
        this.video.addEventListener("loadeddata", resolve, { once: true })
      );
      await this.#show(this.video);
      if (this.video.videoWidth === 0) await first;
      for (const mirror of this.#mirrors) await this.#show(mirror);
    } catch (e) {
      this.stop();
      throw e;
    }
  }

  /** Stops the camera and clears the previews. */
  stop(): void {
    for (const track of this.#stream?.getTracks() ?? []) track.stop();
    this.#stream = undefined;
    for (const video of [this.video, ...this.#mirrors]) video.srcObject = null;
  }

  /** The current frame's pixels (the camera must be on). */
  image(): RgbImage {
    const { videoWidth: vw, videoHeight: vh } = this.video;
    if (!this.on) throw new Error("the camera is off");
    const scale = Math.min(1, this.shortSide / Math.min(vw, vh));
    const width = Math.max(1, Math.round(vw * scale));
    const height = Math.max(1, Math.round(vh * scale));
    this.#canvas.width = width;
    this.#canvas.height = height;
    const ctx = this.#canvas.getContext("2d", { willReadFrequently: true })!;
    ctx.drawImage(this.video, 0, 0, width, height);
    return rgbFromRgba(ctx.getImageData(0, 0, width, height).data, width, height);
  }

  /** The current frame and its thumbnail (the camera must be on). */
  grab(): Frame {
    const image = this.image();
    const t = 64 / Math.max(image.width, image.height);
    this.#thumb.width = Math.max(1, Math.round(image.width * t));
    this.#thumb.height = Math.max(1, Math.round(image.height * t));
    this.#thumb.getContext("2d")!.drawImage(
      this.#canvas,
      0,
      0,
      this.#thumb.width,
      this.#thumb.height,
    );
    return { image, thumb: this.#thumb.toDataURL("image/jpeg", 0.8) };
  }
}

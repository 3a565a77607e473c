/**
 * The class editor: a card per class with its name (edit to rename), its count and latest
 * thumbnails, a Capture button (click: one camera frame; hold: a burst), an "Add images"
 * picker, a Remove button, and the card itself takes dropped files or folders.
 *
 * @module
 */

/// <reference lib="dom" />

import type { ClassList, ImageClass } from "./classes.ts";
import { dropZone, filesOfDrop, filesOfInput, type PathFile } from "./files.ts";

/** The thumbnails a card shows at most (the latest). */
const THUMBS = 24;
/** A held Capture button starts a burst after this long (ms)… */
const BURST_AFTER = 400;
/** …and grabs a frame this often (ms) until it is let go. */
const BURST_EVERY = 150;

/** What the editor's controls do, by class. */
export interface EditorActions {
  /** Grab one camera frame into the class. */
  capture: (cls: ImageClass) => void;
  /** Decode picked or dropped files into the class. */
  files: (cls: ImageClass, files: PathFile[]) => void;
  /** Remove the class (and release its thumbnails). */
  remove: (cls: ImageClass) => void;
  /** A failed edit (a taken name, …). */
  error: (e: unknown) => void;
}

interface Card {
  root: HTMLElement;
  name: HTMLInputElement;
  count: HTMLElement;
  capture: HTMLButtonElement;
  thumbs: HTMLElement;
  shown: string;
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<HTMLElementTagNameMap[K]> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const el = Object.assign(document.createElement(tag), props);
  el.append(...children);
  return el;
}

/**
 * The cards of a {@link ClassList} in `container`, kept up to date with it.
 *
 * @example
 * ```ts ignore
 * import { Camera } from "./camera.ts";
 * import { ClassEditor } from "./class_editor.ts";
 * import { ClassList } from "./classes.ts";
 * import { addToClass, releaseThumbs } from "./sources.ts";
 * const camera = new Camera(document.querySelector("video")!);
 * let frames = 0;
 *
 * const classes = new ClassList();
 * const editor = new ClassEditor(document.getElementById("classes")!, classes, {
 *   capture: (cls) => {
 *     const { image, thumb } = camera.grab();
 *     classes.addSamples(cls, [{ image, thumb, source: "camera", name: `camera ${++frames}` }]);
 *   },
 *   files: (cls, files) => addToClass(classes, cls, files).catch(console.error),
 *   remove: (cls) => releaseThumbs(classes.remove(cls)),
 *   error: (e) => console.error(e),
 * });
 * classes.add("cat"); // a card appears
 * editor.cameraOn = true; // its Capture button works
 * ```
 */
export class ClassEditor {
  /** Where the cards are. */
  readonly container: HTMLElement;
  /** The classes they show. */
  readonly list: ClassList;
  #actions: EditorActions;
  #cards = new Map<ImageClass, Card>();
  #cameraOn = false;
  #burst: { timer: ReturnType<typeof setTimeout> | undefined } | undefined;

  /** Draws `list` into `container` and redraws it on every change. */
  constructor(container: HTMLElement, list: ClassList, actions: EditorActions) {
    this.container = container;
    this.list = list;
    this.#actions = actions;
    list.onChange(() => this.render());
    const release = () => this.#endBurst();
    addEventListener("pointerup", release);
    addEventListener("pointercancel", release);
    addEventListener("blur", release);
    this.render();
  }

  /** Enables the Capture buttons (when the camera is on). */
  set cameraOn(on: boolean) {
    this.#cameraOn = on;
    if (!on) this.#endBurst();
    for (const card of this.#cards.values()) this.#enable(card);
  }

  #enable(card: Card): void {
    card.capture.disabled = !this.#cameraOn;
    card.capture.title = this.#cameraOn
      ? "click: one frame; hold: a burst"
      : "start the camera first";
  }

  #endBurst(): void {
    if (this.#burst) clearTimeout(this.#burst.timer);
    this.#burst = undefined;
  }

  #startBurst(cls: ImageClass): void {
    this.#endBurst();
    const burst: { timer: ReturnType<typeof setTimeout> | undefined } = { timer: undefined };
    const tick = () => {
      if (this.#burst !== burst || !this.list.classes.includes(cls)) return;
      this.#actions.capture(cls);
      burst.timer = setTimeout(tick, BURST_EVERY);
    };
    burst.timer = setTimeout(tick, BURST_AFTER);
    this.#burst = burst;
  }

  #card(cls: ImageClass): Card {
    const name = element("input", { type: "text", className: "class-name", value: cls.name });
    name.setAttribute("aria-label", "class name");
    name.addEventListener("change", () => {
      try {
        this.list.rename(cls, name.value);
      } catch (e) {
        name.value = cls.name;
        this.#actions.error(e);
      }
    });
    name.addEventListener("keydown", (e) => {
      if (e.key === "Enter") name.blur();
    });
    const capture = element("button", { className: "capture", textContent: "Capture" });
    capture.addEventListener("contextmenu", (e) => e.preventDefault());
    let pressed = false;
    capture.addEventListener("pointerdown", (e) => {
      if (capture.disabled || e.button !== 0) return;
      pressed = true;
      this.#actions.capture(cls);
      this.#startBurst(cls);
    });
    // a click without a press before it: the keyboard's, or a script's
    capture.addEventListener("click", () => {
      if (!pressed) this.#actions.capture(cls);
      pressed = false;
    });
    const picker = element("input", { type: "file", multiple: true, accept: "image/*" });
    picker.addEventListener("change", () => {
      this.#actions.files(cls, filesOfInput(picker));
      picker.value = "";
    });
    const add = element("label", { className: "button secondary" }, "Add images", picker);
    const remove = element("button", {
      className: "remove secondary",
      textContent: "Remove",
      title: "remove this class and its images",
    });
    remove.addEventListener("click", () => this.#actions.remove(cls));
    const count = element("span", { className: "count" });
    const thumbs = element("div", { className: "thumbs" });
    const root = element(
      "div",
      { className: "class-card" },
      element("div", { className: "class-head" }, name, count),
      element("div", { className: "class-tools" }, capture, add, remove),
      thumbs,
    );
    dropZone(root, (data) => {
      filesOfDrop(data).then((files) => this.#actions.files(cls, files)).catch(
        this.#actions.error,
      );
    });
    const card = { root, name, count, capture, thumbs, shown: "" };
    this.#enable(card);
    return card;
  }

  /** Brings the cards in line with the list: new, removed, renamed and grown classes. */
  render(): void {
    for (const [cls, card] of this.#cards) {
      if (!this.list.classes.includes(cls)) {
        card.root.remove();
        this.#cards.delete(cls);
      }
    }
    this.list.classes.forEach((cls, i) => {
      let card = this.#cards.get(cls);
      if (!card) {
        card = this.#card(cls);
        this.#cards.set(cls, card);
      }
      if (this.container.children[i] !== card.root) {
        this.container.insertBefore(card.root, this.container.children[i] ?? null);
      }
      if (document.activeElement !== card.name) card.name.value = cls.name;
      const n = cls.samples.length;
      const camera = cls.samples.filter((s) => s.source === "camera").length;
      card.count.textContent = `${n} image${n === 1 ? "" : "s"}${
        camera ? ` (${camera} from the camera)` : ""
      }`;
      const key = `${n}:${cls.samples.at(-1)?.thumb ?? ""}`;
      if (card.shown !== key) {
        card.shown = key;
        const imgs = cls.samples.slice(-THUMBS).map((s) =>
          element("img", { src: s.thumb, alt: s.name, title: s.name })
        );
        const more = n > THUMBS ? [element("span", { className: "more" }, `+${n - THUMBS}`)] : [];
        card.thumbs.replaceChildren(...more, ...imgs);
        if (n === 0) {
          card.thumbs.append(
            element("span", { className: "note" }, "capture, pick or drop images here"),
          );
        }
      }
    });
  }
}

/**
 * The page's classes: named lists of example images (from files or the camera), the edits the
 * class editor makes (add, rename, remove), and the labelled train and validation sets they
 * give. No DOM: the editor (`class_editor.ts`) draws it, and a Deno test checks it.
 *
 * @module
 */

import { ViTLoraError } from "../../core/errors.ts";
import type { RgbImage } from "../../data/image.ts";
import type { Example } from "../train.ts";

/** One example image of a class. */
export interface Sample {
  /** The decoded pixels. */
  image: RgbImage;
  /** A small picture of it for the page (`blob:` or `data:` URL). */
  thumb: string;
  /** Where it came from. */
  source: "file" | "camera";
  /** A file's path, or `camera N`. */
  name: string;
}

/** A class: its name and its examples, in the order they came. */
export interface ImageClass {
  /** The class name (unique, trimmed, not empty). */
  name: string;
  /** Its examples. */
  samples: Sample[];
}

/** The labelled images the classes give, split for training. */
export interface SplitExamples {
  /** The class names, in order: label `i` is `labels[i]`. */
  labels: string[];
  /** About 80% of each class (all of a class of one image). */
  train: Example[];
  /** The rest (the last images of each class). */
  validation: Example[];
}

/**
 * The classes of the page, with the edits of the class editor. Every change calls the
 * listeners given to {@link ClassList.onChange}.
 *
 * @example
 * ```ts
 * import { ClassList } from "./classes.ts";
 * const list = new ClassList();
 * list.add("cat");
 * list.add("dog");
 * list.rename(1, "puppy");
 * console.log(list.labels); // ["cat", "puppy"]
 * ```
 */
export class ClassList {
  /** The classes, in label order. */
  readonly classes: ImageClass[] = [];
  #listeners: (() => void)[] = [];

  /** Calls `listen` after every change. */
  onChange(listen: () => void): void {
    this.#listeners.push(listen);
  }

  #changed(): void {
    for (const listen of this.#listeners) listen();
  }

  /** The class names, in order. */
  get labels(): string[] {
    return this.classes.map((c) => c.name);
  }

  /** All examples, of every class. */
  get size(): number {
    return this.classes.reduce((n, c) => n + c.samples.length, 0);
  }

  /** The index of the class named `name`, or -1. */
  indexOf(name: string): number {
    return this.classes.findIndex((c) => c.name === name);
  }

  #at(target: number | ImageClass): ImageClass {
    const found = typeof target === "number"
      ? this.classes[target]
      : this.classes.find((c) => c === target);
    if (!found) {
      throw new ViTLoraError(
        typeof target === "number" ? `there is no class ${target + 1}` : "that class was removed",
      );
    }
    return found;
  }

  #checkName(name: string, except?: ImageClass): string {
    const clean = name.trim();
    if (clean === "") throw new ViTLoraError("a class needs a name");
    if (/[\n\r,]/.test(clean)) {
      throw new ViTLoraError(`class name “${clean}”: no commas or line breaks`);
    }
    const other = this.classes.find((c) => c.name === clean);
    if (other && other !== except) {
      throw new ViTLoraError(`there is already a class named “${clean}”`);
    }
    return clean;
  }

  /** Adds an empty class (named `class N` when no name is given) at the end. */
  add(name?: string): ImageClass {
    let chosen = name;
    if (chosen === undefined) {
      let n = this.classes.length + 1;
      while (this.indexOf(`class ${n}`) >= 0) n++;
      chosen = `class ${n}`;
    }
    const added = { name: this.#checkName(chosen), samples: [] };
    this.classes.push(added);
    this.#changed();
    return added;
  }

  /** The class named `name`, added at the end when there is none. */
  named(name: string): ImageClass {
    return this.classes[this.indexOf(name.trim())] ?? this.add(name);
  }

  /** Renames a class (by index or itself; the name trimmed; empty or taken names are an error). */
  rename(target: number | ImageClass, name: string): void {
    const cls = this.#at(target);
    cls.name = this.#checkName(name, cls);
    this.#changed();
  }

  /** Removes a class (by index or itself); returns its examples (to release thumbnails). */
  remove(target: number | ImageClass): Sample[] {
    const [removed] = this.classes.splice(this.classes.indexOf(this.#at(target)), 1);
    this.#changed();
    return removed.samples;
  }

  /** Removes every class that has no examples. */
  removeEmpty(): void {
    const kept = this.classes.filter((c) => c.samples.length > 0);
    if (kept.length === this.classes.length) return;
    this.classes.splice(0, this.classes.length, ...kept);
    this.#changed();
  }

  /** Removes every class; returns their examples. */
  clear(): Sample[] {
    const samples = this.classes.flatMap((c) => c.samples);
    this.classes.length = 0;
    this.#changed();
    return samples;
  }

  /** Adds examples to a class (by index or itself). */
  addSamples(target: number | ImageClass, samples: Sample[]): void {
    this.#at(target).samples.push(...samples);
    this.#changed();
  }

  /**
   * The examples as labelled train and validation sets: each class's first 80% (rounded, at
   * least one) to train on and the rest to validate; a class of one image only trains.
   */
  split(): SplitExamples {
    const train: Example[] = [], validation: Example[] = [];
    this.classes.forEach((c, label) => {
      const n = c.samples.length;
      const cut = n < 2 ? n : Math.max(1, Math.round(n * 0.8));
      c.samples.forEach((s, i) => (i < cut ? train : validation).push({ image: s.image, label }));
    });
    return { labels: this.labels, train, validation };
  }

  /** Throws one line when the classes cannot be trained on: fewer than two, or one empty. */
  checkTrainable(): void {
    if (this.classes.length < 2) {
      const n = this.classes.length;
      throw new ViTLoraError(
        `${n} class${n === 1 ? "" : "es"}: training needs at least two (add a class)`,
      );
    }
    const empty = this.classes.find((c) => c.samples.length === 0);
    if (empty) {
      throw new ViTLoraError(
        `class “${empty.name}” has no images: capture or add some, or remove the class`,
      );
    }
  }

  /** One line: how many images in which classes, and how they split. */
  summary(): string {
    if (this.size === 0) return `No images yet (${this.classes.length} classes).`;
    const { train, validation } = this.split();
    const counts = this.classes.map((c) => `${c.name}: ${c.samples.length}`);
    return `${this.size} images in ${this.classes.length} classes (${
      counts.join(", ")
    }): ${train.length} to train on, ${validation.length} to validate.`;
  }
}

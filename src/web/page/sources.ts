/**
 * Where the classes' images come from, besides the camera: the demo dataset `deno task web`
 * generates, a picked or dropped folder of class folders, and files given to one class. Files
 * the browser cannot decode are left out and named; files that are not images are counted.
 *
 * @module
 */

/// <reference lib="dom" />

import { ViTLoraError } from "../../core/errors.ts";
import { decodeImageInBrowser } from "../images.ts";
import type { ClassList, ImageClass, Sample } from "./classes.ts";
import { isImageName, type PathFile } from "./files.ts";

/** What adding files did. */
export interface Added {
  /** Images added. */
  added: number;
  /** Classes they went to. */
  classes: number;
  /** Images the browser could not decode, by name (left out). */
  bad: string[];
  /** Files that are not images (by their names), ignored. */
  ignored: number;
}

/**
 * One line saying what adding files did.
 *
 * @example
 * ```ts
 * import { describe } from "./sources.ts";
 * console.log(describe({ added: 3, classes: 1, bad: [], ignored: 1 }));
 * // 3 images added to 1 class; 1 file that is not an image ignored
 * ```
 */
export function describe(result: Added): string {
  const { added, classes, bad, ignored } = result;
  const s = (n: number) => n === 1 ? "" : "s";
  let line = `${added} image${s(added)} added to ${classes} class${classes === 1 ? "" : "es"}`;
  if (ignored) {
    line += `; ${ignored} file${s(ignored)} that ${
      ignored === 1 ? "is not an image" : "are not images"
    } ignored`;
  }
  if (bad.length) {
    line += `; ${bad.length} left out (not an image the browser decodes): ${
      bad.slice(0, 5).join(", ")
    }${bad.length > 5 ? ", …" : ""}`;
  }
  return line;
}

/**
 * Drops the examples' thumbnails (the `blob:` URLs of files).
 *
 * @example
 * ```ts ignore
 * import type { ClassList } from "./classes.ts";
 * import { releaseThumbs } from "./sources.ts";
 * declare const classes: ClassList;
 *
 * releaseThumbs(classes.remove(0)); // the first class removed, its blob: URLs revoked
 * ```
 */
export function releaseThumbs(samples: Sample[]): void {
  for (const s of samples) if (s.thumb.startsWith("blob:")) URL.revokeObjectURL(s.thumb);
}

/** Decodes files into examples; those the browser cannot decode are named in `bad`. */
async function decode(
  files: { blob: Blob; name: string }[],
  bad: string[],
): Promise<Sample[]> {
  const out: Sample[] = [];
  for (const { blob, name } of files) {
    try {
      const image = await decodeImageInBrowser(blob, name);
      out.push({ image, thumb: URL.createObjectURL(blob), source: "file", name });
    } catch {
      bad.push(name);
    }
  }
  return out;
}

/**
 * The demo dataset at `base` (`index.json`: its classes and images) in place of every class.
 *
 * @example
 * ```ts ignore
 * import { ClassList } from "./classes.ts";
 * import { describe, useDemo } from "./sources.ts";
 * const classes = new ClassList();
 *
 * const result = await useDemo(classes);
 * console.log(describe(result)); // 128 images added to 4 classes
 * ```
 */
export async function useDemo(classes: ClassList, base = "demo/images/"): Promise<Added> {
  const index = await (await fetch(`${base}index.json`)).json() as {
    classes: string[];
    images: { path: string; label: number }[];
  };
  releaseThumbs(classes.clear());
  const bad: string[] = [];
  for (const [label, name] of index.classes.entries()) {
    const files = [];
    for (const image of index.images.filter((i) => i.label === label)) {
      files.push({ blob: await (await fetch(`${base}${image.path}`)).blob(), name: image.path });
    }
    classes.addSamples(classes.add(name), await decode(files, bad));
  }
  return {
    added: index.images.length - bad.length,
    classes: index.classes.length,
    bad,
    ignored: 0,
  };
}

/**
 * A folder of class folders (picked or dropped): each image goes to the class named as its
 * parent folder (added, in sorted order, when there is none); classes left empty are then
 * removed (the page starts with two empty ones).
 *
 * @example
 * ```ts ignore
 * import { ClassList } from "./classes.ts";
 * import { filesOfInput } from "./files.ts";
 * import { describe, useFolder } from "./sources.ts";
 * const classes = new ClassList();
 * const folderInput = document.querySelector<HTMLInputElement>("input[webkitdirectory]")!;
 * const line = document.getElementById("classes-status")!;
 *
 * folderInput.addEventListener("change", async () => {
 *   const result = await useFolder(classes, filesOfInput(folderInput));
 *   line.textContent = describe(result);
 * });
 * ```
 */
export async function useFolder(classes: ClassList, files: PathFile[]): Promise<Added> {
  const images = files.filter((f) => isImageName(f.path));
  if (images.length === 0) {
    throw new ViTLoraError(
      `no images among the ${files.length} files (JPEG, PNG, WebP, GIF, BMP, AVIF)`,
    );
  }
  const classOf = (path: string) => path.split("/").slice(-2, -1)[0] ?? "images";
  const labels = [...new Set(images.map((f) => classOf(f.path)))].sort();
  const bad: string[] = [];
  let filled = 0;
  for (const label of labels) {
    const samples = await decode(
      images.filter((f) => classOf(f.path) === label).map((f) => ({ blob: f.file, name: f.path })),
      bad,
    );
    if (samples.length) classes.addSamples(classes.named(label), samples);
    if (samples.length) filled++;
  }
  classes.removeEmpty();
  return {
    added: images.length - bad.length,
    classes: filled,
    bad,
    ignored: files.length - images.length,
  };
}

/**
 * Picked or dropped files (folders walked) of one class.
 *
 * @example
 * ```ts ignore
 * import type { ClassList } from "./classes.ts";
 * import { filesOfInput } from "./files.ts";
 * import { addToClass, describe } from "./sources.ts";
 * declare const classes: ClassList;
 * declare const picker: HTMLInputElement; // an <input type="file" multiple>
 *
 * const result = await addToClass(classes, classes.classes[0], filesOfInput(picker));
 * console.log(describe(result)); // e.g. 3 images added to 1 class
 * ```
 */
export async function addToClass(
  classes: ClassList,
  cls: ImageClass,
  files: PathFile[],
): Promise<Added> {
  const images = files.filter((f) => isImageName(f.path));
  const bad: string[] = [];
  const samples = await decode(images.map((f) => ({ blob: f.file, name: f.path })), bad);
  if (!classes.classes.includes(cls)) {
    releaseThumbs(samples);
    throw new ViTLoraError(`class “${cls.name}” was removed before its images were decoded`);
  }
  classes.addSamples(cls, samples);
  return { added: samples.length, classes: 1, bad, ignored: files.length - images.length };
}

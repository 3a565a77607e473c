/**
 * Files the user picks or drops: the images among them, and the files of dropped folders
 * (walked through the entries API) with their paths.
 *
 * @module
 */

/// <reference lib="dom" />

/** A file and its path (`folder/class/name.jpg` for a picked or dropped folder). */
export interface PathFile {
  /** The file. */
  file: File;
  /** Its path, relative to what was picked or dropped. */
  path: string;
}

/**
 * Whether `path` names an image the browser decodes (by its extension).
 *
 * @example
 * ```ts
 * import { isImageName } from "./files.ts";
 * console.log(isImageName("photos/cat/1.JPG"), isImageName("notes.txt")); // true false
 * ```
 */
export function isImageName(path: string): boolean {
  return /\.(jpe?g|png|webp|gif|bmp|avif)$/i.test(path);
}

/**
 * The files of a picked `<input type="file">` (with their folder paths when it picks folders).
 *
 * @example
 * ```ts ignore
 * import type { ClassList } from "./classes.ts";
 * import { filesOfInput } from "./files.ts";
 * import { useFolder } from "./sources.ts";
 * declare const classes: ClassList;
 * const input = document.querySelector<HTMLInputElement>("input[webkitdirectory]")!;
 *
 * input.addEventListener("change", () => useFolder(classes, filesOfInput(input)));
 * ```
 */
export function filesOfInput(input: HTMLInputElement): PathFile[] {
  return [...(input.files ?? [])].map((file) => ({
    file,
    path: file.webkitRelativePath || file.name,
  }));
}

/**
 * The files of a drop, folders walked (their files' paths start with the folder's name). Read
 * it in the `drop` event itself: its items are gone afterwards.
 *
 * @example
 * ```ts ignore
 * import { filesOfDrop } from "./files.ts";
 * const zone = document.getElementById("drop")!;
 *
 * zone.addEventListener("drop", (e) => {
 *   e.preventDefault();
 *   filesOfDrop(e.dataTransfer!).then((files) => console.log(files.map((f) => f.path)));
 * });
 * ```
 */
export async function filesOfDrop(data: DataTransfer): Promise<PathFile[]> {
  const out: PathFile[] = [];
  const walk = async (entry: FileSystemEntry, path: string): Promise<void> => {
    if (entry.isFile) {
      const file = await new Promise<File>((resolve, reject) =>
        (entry as FileSystemFileEntry).file(resolve, reject)
      );
      out.push({ file, path: `${path}${entry.name}` });
    } else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((resolve, reject) =>
          reader.readEntries(resolve, reject)
        );
        if (batch.length === 0) break;
        for (const child of batch) await walk(child, `${path}${entry.name}/`);
      }
    }
  };
  const entries = [...data.items].map((i) => i.webkitGetAsEntry?.()).filter((e) => e);
  // a drop made by a script (or an old browser) has files but no entries
  if (entries.length === 0) return [...data.files].map((file) => ({ file, path: file.name }));
  for (const entry of entries) await walk(entry!, "");
  return out;
}

/**
 * Makes `zone` take drops (highlighted while something is dragged over it).
 *
 * @example
 * ```ts ignore
 * import type { ClassList } from "./classes.ts";
 * import { dropZone, filesOfDrop } from "./files.ts";
 * import { addToClass } from "./sources.ts";
 * declare const classes: ClassList;
 * declare const card: HTMLElement; // the first class's card
 * const cls = classes.classes[0];
 *
 * dropZone(card, (data) => filesOfDrop(data).then((files) => addToClass(classes, cls, files)));
 * ```
 */
export function dropZone(zone: HTMLElement, take: (data: DataTransfer) => void): void {
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    e.stopPropagation();
    zone.classList.remove("over");
    if (e.dataTransfer) take(e.dataTransfer);
  });
}

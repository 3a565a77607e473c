/**
 * A small seeded random number generator, identical on every machine and backend, for what
 * must be reproducible: the validation/test split, the order of each epoch and each image's
 * augmentation. Streams are derived from a seed and integers (epoch, image index), so a
 * result does not depend on how many workers decode or where a resumed run starts.
 *
 * @module
 */

/**
 * The named random streams of a run, derived from its seed: each draw of the module comes
 * from `Random.stream(seed, STREAMS.<name>, ...ids)`, so no two uses share draws.
 *
 * | stream       | ids                      | draws                                          |
 * | ------------ | ------------------------ | ---------------------------------------------- |
 * | `testSplit`  | —                        | which validation rows are held out as test     |
 * | `epochOrder` | epoch                    | the order of an epoch's row groups and rows    |
 * | `dropout`    | step, micro-batch        | the LoRA dropout masks of a step's micro-batch |
 * | `augment`    | epoch, row               | a training image's crop, flip and augmentation |
 * | `validationSplit` | —                   | which train rows are held out as validation    |
 * | `encoderInit`, `headInit`, `loraInit` | — | new weights: a random encoder's, a new head's, a new adapter's (tfjs's seeded initialisers) |
 */
export const STREAMS = {
  testSplit: 1,
  epochOrder: 2,
  dropout: 3,
  augment: 4,
  validationSplit: 5,
  encoderInit: 6,
  headInit: 7,
  loraInit: 8,
} as const;

/** Mixes 32-bit integers into one (MurmurHash3's finaliser over a running hash). */
function mix(h: number, k: number): number {
  h = Math.imul(h ^ (k >>> 0), 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * A seeded generator (mulberry32): 32 bits of state, uniform floats in [0, 1) with 32 bits.
 *
 * @example
 * ```ts
 * import { Random } from "./random.ts";
 * const rng = Random.derive(42, 1, 7); // seed 42, then any integers (e.g. epoch 1, image 7)
 * const order = rng.permutation(5);
 * console.log(order.length); // 5
 * ```
 */
export class Random {
  /** The generator's state; a new `Random(state)` continues the same sequence. */
  state: number;

  /** A generator with the given 32-bit state. */
  constructor(state: number) {
    this.state = state >>> 0;
  }

  /**
   * A generator for the stream named by `seed` and any further integers. The count of
   * integers is mixed in too, so `(seed, 2)` and `(seed, 2, 0)` are different streams.
   */
  static derive(seed: number, ...ids: number[]): Random {
    let h = mix(mix(0x9e3779b9, seed), ids.length);
    for (const id of ids) h = mix(h, id);
    return new Random(h);
  }

  /** The named stream `stream` (one of {@link STREAMS}) of a run's seed, for `ids`. */
  static stream(seed: number, stream: number, ...ids: number[]): Random {
    return Random.derive(seed, stream, ...ids);
  }

  /** A float in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** A float in [low, high). */
  uniform(low: number, high: number): number {
    return low + (high - low) * this.next();
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Shuffles `items` in place (Fisher–Yates) and returns it. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }

  /** A random permutation of 0 … n-1. */
  permutation(n: number): number[] {
    return this.shuffle(Array.from({ length: n }, (_, i) => i));
  }
}

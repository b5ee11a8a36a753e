/**
 * The fuzzing harness's shared parts: what a target is, how an input is judged,
 * and the byte mutations applied to seeds (real files and packet streams).
 *
 * A target takes bytes and must return (a value, possibly a Promise) or throw one
 * of the errors its parser documents. Errors that V8 raises on its own (reading a
 * property of undefined, an invalid array length, a DataView read out of bounds,
 * a blown stack) are TypeErrors and RangeErrors too, but they are bugs, not
 * answers: `judge` tells them apart by their messages.
 */
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface Target {
  name: string;
  /** Real inputs to mutate (files, packet streams built from files). */
  seeds(): Uint8Array[] | Promise<Uint8Array[]>;
  /** Structured inputs from fast-check (valid-looking headers, lines, packets). */
  arbitrary: fc.Arbitrary<Uint8Array>;
  /**
   * Runs the parser. Returns the number of bytes it produced or kept (for the
   * memory bound), or throws.
   */
  run(input: Uint8Array, slot: number): number | Promise<number>;
  /** The errors the parser documents for bad input. */
  expected(err: unknown): boolean;
  /** Output bytes allowed per input byte (plus OUTPUT_SLACK); default 4. */
  outputRatio?: number;
  /**
   * Inputs in flight at once (file targets: their I/O waits overlap, still on one
   * core); `slot` (0 <= slot < concurrency) tells them apart. Default 1, at most SLOTS.
   */
  concurrency?: number;
  /** Per-input time bound, ms; default TIME_BOUND_MS. */
  timeBoundMs?: number;
  /** Also run, once per process, before the first input (file targets make a folder). */
  setup?(): Promise<void>;
  teardown?(): Promise<void>;
}

/** What main.ts hands its loop worker. */
export interface LoopData {
  target: string;
  seconds: number;
  inputs: number;
  seed: number;
  sab: SharedArrayBuffer;
}

/**
 * Shared memory between main.ts and its loop: an Int32 count of inputs started,
 * then one slot per input in flight: an Int32 length and up to SLOT_BYTES bytes.
 */
export const SLOTS = 8;
export const SLOT_BYTES = 1 << 20;
export const SAB_BYTES = 4 + SLOTS * (4 + SLOT_BYTES);
export const slotOffset = (k: number): number => 4 + k * (4 + SLOT_BYTES);

/** Per-input time bound: generous for a loaded 2-core machine; a parser at fault takes seconds or forever. */
export const TIME_BOUND_MS = 1000;
/** Output bytes allowed on top of `outputRatio` × input (fixed-size records, headers). */
export const OUTPUT_SLACK = 64 * 1024;

const ACCIDENTAL = [
  /Cannot read propert/,
  /Cannot set propert/,
  /is not a function/,
  /is not iterable/,
  /is not a constructor/,
  /Cannot convert/,
  /Cannot mix BigInt/,
  /Invalid array length/,
  /Invalid typed array length/,
  /Array buffer allocation failed/,
  /out of bounds/i,
  /outside the bounds/i,
  /Maximum call stack/,
  /Invalid string length/,
  /start offset of .* should be/,
  /byte length of .* should be/,
  /Invalid time value/,
  /The value of "offset" is out of range/,
];

/**
 * True for an error a parser threw on purpose (not one V8 raised on a bug). A
 * wrapped error is judged by its innermost cause: an accidental one raised in
 * offcast's own code is a bug even when a reader wrapped it in a MediaError; one
 * raised inside a dependency and wrapped is the reader's defence working.
 */
export function isDeliberate(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  let leaf: Error = err;
  for (let depth = 0; leaf.cause instanceof Error && depth < 8; depth++) leaf = leaf.cause;
  if (!ACCIDENTAL.some((re) => re.test(leaf.message))) return true;
  // The first frame in a file (V8's own frames, "new Uint8Array (<anonymous>)", name none).
  const origin = leaf.stack?.split('\n').find((l) => l.trim().startsWith('at ') && l.includes('/')) ?? '';
  return leaf !== err && origin.includes('/node_modules/');
}

/** Error classes by name along the prototype chain (works across module copies). */
export function isA(err: unknown, ...names: string[]): boolean {
  if (!(err instanceof Error)) return false;
  for (let p = Object.getPrototypeOf(err); p !== null && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    if (names.includes(p.constructor?.name)) return true;
  }
  return false;
}

export type Verdict = { ok: true; ms: number } | { ok: false; ms: number; why: string };

/** Runs one input and judges it: value (within the output bound), expected error, or a crash. */
export async function judge(target: Target, input: Uint8Array, slot = 0): Promise<Verdict> {
  const started = performance.now();
  const bound = target.timeBoundMs ?? TIME_BOUND_MS;
  let why: string | null = null;
  try {
    let produced = target.run(input, slot);
    if (typeof produced !== 'number') {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new HangError(bound)), bound * 5);
      });
      try {
        produced = await Promise.race([produced, late]);
      } finally {
        clearTimeout(timer);
      }
    }
    const limit = (target.outputRatio ?? 4) * input.length + OUTPUT_SLACK;
    if (produced > limit) why = `output of ${produced} bytes from ${input.length} input bytes (bound ${limit})`;
  } catch (err) {
    if (err instanceof HangError) why = err.message;
    else if (!target.expected(err) || !isDeliberate(err)) why = `unexpected ${describe(err)}`;
  }
  const ms = performance.now() - started;
  if (why === null && ms > bound) why = `took ${ms.toFixed(0)} ms (bound ${bound} ms)`;
  return why === null ? { ok: true, ms } : { ok: false, ms, why };
}

class HangError extends Error {
  constructor(bound: number) {
    super(`no answer after ${bound * 5} ms`);
  }
}

export function describe(err: unknown): string {
  if (err instanceof Error) return `${err.constructor.name}: ${err.message}\n${err.stack?.split('\n').slice(1, 6).join('\n') ?? ''}`;
  return `non-Error throw: ${String(err)}`;
}

// ---------------------------------------------------------------------------
// Seeds and mutations

export function fixture(rel: string): Uint8Array {
  return new Uint8Array(readFileSync(fileURLToPath(new URL(`../${rel}`, import.meta.url))));
}

export function seedFile(name: string): Uint8Array {
  return new Uint8Array(readFileSync(fileURLToPath(new URL(`./seeds/${name}`, import.meta.url))));
}

/** A small fast PRNG (xorshift32): mutations must be cheap and reproducible from a seed. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let x = this.#s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#s = x >>> 0;
    return this.#s;
  }
  /** 0 <= n < bound. */
  below(bound: number): number {
    return bound <= 0 ? 0 : this.next() % bound;
  }
}

const INTERESTING_8 = [0, 1, 0x7f, 0x80, 0xff, 0x40, 0x20, 0x10];
const INTERESTING_32 = [0, 1, 2, 7, 8, 12, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff, 0xfffffffe];

function splice(a: Uint8Array, at: number, remove: number, insert: Uint8Array): Uint8Array {
  remove = Math.min(remove, a.length - at);
  const out = new Uint8Array(a.length - remove + insert.length);
  out.set(a.subarray(0, at), 0);
  out.set(insert, at);
  out.set(a.subarray(at + remove), at + insert.length);
  return out;
}

/**
 * One mutation of `input` (a copy is returned when its length changes, else it is
 * changed in place): bit flips, interesting bytes, truncation, deletion, duplicated
 * or inserted ranges, splices with another seed, and length fields (8/16/32-bit,
 * both byte orders) set to edge values or nudged by ±1.
 */
export function mutateOnce(input: Uint8Array, rng: Rng, others: readonly Uint8Array[]): Uint8Array {
  const n = input.length;
  switch (rng.below(n === 0 ? 2 : 11)) {
    case 0: {
      // insert random bytes
      const add = new Uint8Array(1 + rng.below(16));
      for (let i = 0; i < add.length; i++) add[i] = rng.next() & 0xff;
      return splice(input, rng.below(n + 1), 0, add);
    }
    case 1: {
      // splice in a range of another seed
      const other = others[rng.below(others.length)] ?? input;
      if (other.length === 0) return input;
      const from = rng.below(other.length);
      const len = 1 + rng.below(Math.min(4096, other.length - from));
      return splice(input, rng.below(n + 1), rng.below(2) === 0 ? 0 : rng.below(Math.min(len, n) + 1), other.subarray(from, from + len));
    }
    case 2:
    case 3: {
      const at = rng.below(n);
      input[at] = input[at]! ^ (1 << rng.below(8));
      return input;
    }
    case 4:
      input[rng.below(n)] = rng.below(2) === 0 ? INTERESTING_8[rng.below(INTERESTING_8.length)]! : rng.next() & 0xff;
      return input;
    case 5:
      // truncate
      return input.slice(0, rng.below(n));
    case 6: {
      // delete a range
      const at = rng.below(n);
      return splice(input, at, 1 + rng.below(Math.min(256, n - at)), new Uint8Array(0));
    }
    case 7: {
      // duplicate a range
      const at = rng.below(n);
      const len = 1 + rng.below(Math.min(1024, n - at));
      return splice(input, rng.below(n + 1), 0, input.slice(at, at + len));
    }
    case 8:
    case 9: {
      // a length field: 1, 2 or 4 bytes, big- or little-endian
      const width = [1, 2, 4][rng.below(3)]!;
      if (n < width) return input;
      const at = rng.below(n - width + 1);
      const le = rng.below(2) === 0;
      let v = 0;
      for (let i = 0; i < width; i++) v = v * 256 + input[le ? at + width - 1 - i : at + i]!;
      const choice = rng.below(3);
      v = choice === 0 ? INTERESTING_32[rng.below(INTERESTING_32.length)]! : choice === 1 ? v + 1 : v - 1;
      v = ((v % 2 ** (8 * width)) + 2 ** (8 * width)) % 2 ** (8 * width);
      for (let i = width - 1; i >= 0; i--) {
        input[le ? at + width - 1 - i : at + i] = v & 0xff;
        v = Math.floor(v / 256);
      }
      return input;
    }
    default: {
      // overwrite a range with random bytes
      const at = rng.below(n);
      const len = 1 + rng.below(Math.min(32, n - at));
      for (let i = 0; i < len; i++) input[at + i] = rng.next() & 0xff;
      return input;
    }
  }
}

/** 1-8 stacked mutations of a copy of `seed`. */
export function mutate(seed: Uint8Array, rng: Rng, others: readonly Uint8Array[]): Uint8Array {
  let out: Uint8Array = seed.slice();
  const count = 1 + rng.below(rng.below(2) === 0 ? 2 : 8);
  for (let i = 0; i < count; i++) out = mutateOnce(out, rng, others);
  return out;
}

/** fast-check: a seed with 1-8 mutations (the shrinker works on the seed index and the PRNG seed). */
export function mutatedSeeds(seeds: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc.tuple(fc.nat(seeds.length - 1), fc.integer({ min: 1, max: 0x7fffffff })).map(([i, s]) => mutate(seeds[i]!, new Rng(s), seeds));
}

// ---------------------------------------------------------------------------
// Byte building for arbitraries

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function u16be(v: number): Uint8Array {
  return new Uint8Array([(v >>> 8) & 0xff, v & 0xff]);
}

export function u32be(v: number): Uint8Array {
  return new Uint8Array([(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]);
}

export function u32le(v: number): Uint8Array {
  return new Uint8Array([v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff]);
}

export const text = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Raw bytes, biased to short. */
export const rawBytes = fc.uint8Array({ maxLength: 512 });

/** Bytes of what `run` produced: typed arrays, strings and arrays in a result (depth-bounded walk). */
export function bytesOf(value: unknown, depth = 0): number {
  if (value === null || value === undefined || depth > 6) return 0;
  if (ArrayBuffer.isView(value)) return value.byteLength;
  if (typeof value === 'string') return value.length;
  if (typeof value !== 'object') return 0;
  if (Array.isArray(value)) {
    let n = value.length * 8;
    for (const v of value) n += bytesOf(v, depth + 1);
    return n;
  }
  let n = 0;
  for (const v of Object.values(value)) n += bytesOf(v, depth + 1);
  return n;
}

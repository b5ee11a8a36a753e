/**
 * The file readers (WAV, Ogg/Opus, MP4, Annex B): each input is written to a
 * file on tmpfs, opened as the server does on upload, and every sample read.
 * Their contract: a reader, or a MediaError (UnsupportedMediaError 415,
 * CorruptMediaError 422) — TypeError/RangeError from the parsers must be
 * wrapped by then.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MediaReader } from '../../../storage/types.js';
import { isA, type Target } from '../lib.js';
import { scratchDir } from './scratch.js';

export function readerTarget(
  name: string,
  ext: string,
  open: (path: string) => Promise<MediaReader>,
  rest: Pick<Target, 'seeds' | 'arbitrary'> & Partial<Target>,
): Target {
  let dir = '';

  return {
    name,
    async setup() {
      dir = mkdtempSync(join(scratchDir(), `offcast-fuzz-${name}-`));
    },
    async teardown() {
      rmSync(dir, { recursive: true, force: true });
    },
    async run(input, slot) {
      const file = join(dir, `input${slot}.${ext}`);
      writeFileSync(file, input);
      const reader = await open(file);
      let bytes = 0;
      try {
        for await (const s of reader.samples()) {
          bytes += s.data.length + 32;
          for (const n of s.nals ?? []) bytes += n.length + 8;
        }
      } finally {
        await reader.close();
      }
      return bytes;
    },
    expected: (err) => isA(err, 'MediaError'),
    // Samples are streamed, not held: this bounds the work per input byte (a
    // 1-byte sample costs its object, counted as 32 bytes).
    outputRatio: 40,
    concurrency: 4,
    ...rest,
  };
}

/** The committed corpus: test/fuzz/corpus/<target>/<sha1 of the input>.bin, replayed by npm test. */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CORPUS_DIR = fileURLToPath(new URL('./corpus/', import.meta.url));

/** Saves an input under its hash (once); returns the path. */
export function saveCrasher(target: string, input: Uint8Array): string {
  const dir = join(CORPUS_DIR, target);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${createHash('sha1').update(input).digest('hex')}.bin`);
  writeFileSync(file, input);
  return file;
}

export function corpusFiles(target: string): { file: string; input: Uint8Array }[] {
  let names: string[];
  try {
    names = readdirSync(join(CORPUS_DIR, target));
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith('.bin'))
    .sort()
    .map((n) => ({ file: join(CORPUS_DIR, target, n), input: new Uint8Array(readFileSync(join(CORPUS_DIR, target, n))) }));
}

/**
 * Replays inputs through a target and says what each gives (for a crasher the
 * fuzzer saved, or any file):
 *   node --import @tapjs/typescript/import test/fuzz/replay.ts TARGET [FILE...]
 * Without files, the target's whole corpus.
 */
import { readFileSync } from 'node:fs';
import { corpusFiles } from './corpus.js';
import { judge } from './lib.js';
import { loadTarget } from './targets/index.js';

const [name, ...files] = process.argv.slice(2);
if (name === undefined) throw new Error('usage: replay.ts TARGET [FILE...]');
const target = await loadTarget(name);
await target.setup?.();
const inputs = files.length > 0 ? files.map((file) => ({ file, input: new Uint8Array(readFileSync(file)) })) : corpusFiles(name);
let failing = 0;
for (const { file, input } of inputs) {
  const v = await judge(target, input);
  if (!v.ok) failing++;
  console.log(`${file}: ${v.ok ? 'ok' : `FAILS: ${v.why}`} (${v.ms.toFixed(1)} ms)`);
}
await target.teardown?.();
process.exitCode = failing > 0 ? 1 : 0;

#!/usr/bin/env node
// `npm run fuzz`: fuzzes each target for --inputs inputs (default 1,000,000) or
// --seconds seconds (default 900), whichever comes first, one target at a time in
// its own process (one core). Failing inputs go to test/fuzz/corpus/<target>/,
// which `npm test` replays (test/fuzz/corpus.test.ts). Exit code 1 if any failed.
//
//   npm run fuzz                                  every target
//   npm run fuzz -- --target rtp,sdp --seconds 60 some, for a minute each
//   npm run fuzz -- --list                        the target names
//   --seed N reproduces a run.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const { values } = parseArgs({
  options: {
    target: { type: 'string' },
    seconds: { type: 'string', default: '900' },
    inputs: { type: 'string', default: '1000000' },
    seed: { type: 'string' },
    list: { type: 'boolean', default: false },
  },
});
// The target names, read from the registry (this runner is plain JavaScript).
const registry = readFileSync(path.join(here, 'targets', 'index.ts'), 'utf8');
const all = [...registry.matchAll(/^\s+'?([a-z0-9-]+)'?: \(\) => import/gm)].map((m) => m[1]);
if (values.list) {
  console.log(all.join('\n'));
  process.exit(0);
}
const targets = values.target === undefined ? all : values.target.split(',');
let failed = 0;
for (const name of targets) {
  const args = ['--import', '@tapjs/typescript/import', path.join(here, 'main.ts'), '--target', name, '--seconds', values.seconds, '--inputs', values.inputs];
  if (values.seed !== undefined) args.push('--seed', values.seed);
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' } });
  if (r.status !== 0) failed++;
}
console.log(`${targets.length - failed} of ${targets.length} targets ran without a failing input`);
process.exit(failed > 0 ? 1 : 0);

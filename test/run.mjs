#!/usr/bin/env node
// `npm test`: runs every test with tap, then prints the closing line CI reads:
// "N passed, N failed, N skipped" — counted from the top-level tests of each
// file's TAP output (.tap/test-results). Extra arguments go to tap (and then
// only those run). With CI=true a skipped test also counts as failed: tests that
// lack a tool fail themselves then (test/helpers/tools.ts), this catches the rest.
//
// The `*.test.ts` files run in parallel; the `*.serial.ts` ones (the benchmark's
// --quick run, which loads both cores for a minute) run after them, alone, so
// that they neither disturb the real-time interop tests nor are disturbed.
// Then the tests that send media (play, video, interop) run once more with the
// dgram fallback (OFFCAST_TEST_SEND=dgram, test/helpers/server.ts), so both send
// paths are tested; their results are counted under "dgram: ".
import { spawn } from 'node:child_process';
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const results = path.join(root, '.tap', 'test-results');
await rm(results, { recursive: true, force: true });

const tapBin = path.join(root, 'node_modules', '.bin', 'tap');
/** @param {string[]} args @returns {Promise<number>} */
function tap(args, env = process.env) {
  return new Promise((resolve) => {
    const child = spawn(tapBin, args, { cwd: root, stdio: 'inherit', env });
    child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0)));
  });
}

const args = process.argv.slice(2);
let code = await tap(args);
if (args.length === 0) {
  const serial = (await files(path.join(root, 'test'), '.serial.ts')).map((f) => path.relative(root, f)).sort();
  if (serial.length > 0) code = Math.max(code, await tap(serial));
}

/** @param {string} dir @param {string} suffix @returns {Promise<string[]>} */
async function files(dir, suffix) {
  /** @type {string[]} */
  const out = [];
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'node_modules') out.push(...(await files(p, suffix)));
    } else if (e.name.endsWith(suffix)) out.push(p);
  }
  return out;
}

let passed = 0;
let failed = 0;
let skipped = 0;
const failures = [];
/** Counts the top-level results of the last tap run; `label` prefixes its failures. */
async function count(label) {
  for (const file of await files(results, '.tap')) {
    const text = await readFile(file, 'utf8');
    let seen = 0;
    for (const line of text.split('\n')) {
      const m = /^(not ok|ok) \d+(?: - (.*?))?(?: # (SKIP|TODO)\b.*)?$/i.exec(line);
      if (m === null) {
        if (/^Bail out!/.test(line)) {
          failed++;
          failures.push(`${label}${path.relative(results, file)}: bailed out`);
        }
        continue;
      }
      seen++;
      if (m[3] !== undefined && /skip/i.test(m[3])) {
        skipped++;
        // CI installs every tool the tests use (.ci/run): a skip there is a broken install, not a pass.
        if (process.env.CI === 'true') {
          failed++;
          failures.push(`${label}${path.relative(results, file)}: ${m[2] ?? ''} skipped with CI=true`);
        }
      } else if (m[1] === 'ok' || (m[3] !== undefined && /todo/i.test(m[3]))) passed++;
      else {
        failed++;
        failures.push(`${label}${path.relative(results, file)}: ${m[2] ?? ''}`);
      }
    }
    if (seen === 0) {
      failed++;
      failures.push(`${label}${path.relative(results, file)}: no test results (crashed?)`);
    }
  }
}

/** Files run a second time with the dgram sender: everything that sends media through a play session. */
const SEND_PATH_FILES = ['test/integration/play.test.ts', 'test/integration/video.test.ts'];
await count('');
if (args.length === 0) {
  const interop = (await files(path.join(root, 'test', 'interop'), '.test.ts')).map((f) => path.relative(root, f)).sort();
  await rm(results, { recursive: true, force: true });
  code = Math.max(code, await tap([...SEND_PATH_FILES, ...interop], { ...process.env, OFFCAST_TEST_SEND: 'dgram' }));
  await count('dgram: ');
}
if (code !== 0 && failed === 0) {
  failed++;
  failures.push(`tap exited with code ${code}`);
}
for (const f of failures) console.log(`FAILED ${f}`);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(code !== 0 ? code : failed > 0 ? 1 : 0);

#!/usr/bin/env node
// The `offcast` command (package.json "bin"). The CLI and the server are
// TypeScript compiled by tsc into dist/, as `npm start` does; this launcher
// compiles first when dist/ is missing or older than a source file (a fresh
// clone after `npm install`, or after an edit), then runs dist/cli/main.js.
// Concurrent first runs take a lock so only one compiles.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const dist = path.join(root, 'dist');
const entry = path.join(dist, 'cli', 'main.js');
const stamp = path.join(dist, '.offcast-build');
const lock = path.join(root, '.offcast-build.lock');

/** @param {string} p */
function mtime(p) {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return -1;
  }
}

/** Newest mtime of the .ts files under dir. @param {string} dir */
function newest(dir) {
  let t = -1;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return t;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newest(p));
    else if (e.name.endsWith('.ts')) t = Math.max(t, mtime(p));
  }
  return t;
}

function stale() {
  const built = mtime(stamp);
  if (built < 0 || !existsSync(entry)) return true;
  const sources = ['cli', 'server', 'offload', 'storage', 'config'].map((d) => newest(path.join(root, d)));
  return Math.max(mtime(path.join(root, 'tsconfig.json')), ...sources) > built;
}

function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function build() {
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  if (!existsSync(tsc)) {
    process.stderr.write(`offcast: ${root} has no node_modules/typescript: run npm install there first\n`);
    process.exit(1);
  }
  // mkdir is atomic: whoever creates the lock compiles, the others wait for it (a lock older than 5 min is stale).
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
      if (Date.now() - mtime(lock) > 300_000) rmSync(lock, { recursive: true, force: true });
      else sleep(200);
      if (!stale()) return;
    }
  }
  try {
    if (!stale()) return;
    process.stderr.write('offcast: compiling the TypeScript sources into dist/ (first run, or sources changed)…\n');
    const started = Date.now();
    const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.json')], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
    if (r.status !== 0 && !existsSync(entry)) {
      process.stderr.write('offcast: the build failed (see above)\n');
      process.exit(1);
    }
    mkdirSync(dist, { recursive: true });
    // Stamp with the build's start time: a source saved during the build is newer, so the next run rebuilds.
    writeFileSync(stamp, new Date(started).toISOString() + '\n');
    utimesSync(stamp, started / 1000, started / 1000);
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

if (stale()) build();
const version = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).version;
const { run } = await import(pathToFileURL(entry).href);
await run(process.argv, { version });

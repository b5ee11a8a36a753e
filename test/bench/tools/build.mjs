// Builds the C measuring tools (rtprecv, rtpsend) into a cache directory,
// recompiling only when the source, compiler or flags changed.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const toolsDir = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(toolsDir, '../../..');

/** Where the binaries go unless told otherwise (git-ignored `build/`). */
export const defaultOutDir = path.join(repoRoot, 'build', 'bench-tools');

const cflags = ['-O2', '-Wall', '-Wextra'];
const libs = ['-lm'];
const compileTimeoutMs = 60_000;

/**
 * @typedef {object} BuildOptions
 * @property {string} [outDir]  cache directory (default `<repo>/build/bench-tools`)
 * @property {string} [cc]      compiler (default `$CC` or `cc`)
 * @property {boolean} [force]  rebuild even when the cache is current
 */

/**
 * @typedef {object} ToolPaths
 * @property {string} rtprecv  absolute path of the receiver binary
 * @property {string} rtpsend  absolute path of the sender binary
 */

/**
 * Compiles both tools (in parallel) unless the cached binaries match the
 * current source. Throws with the compiler's output when compilation fails.
 * @param {BuildOptions} [options]
 * @returns {Promise<ToolPaths>}
 */
export async function buildTools(options = {}) {
  const outDir = options.outDir ?? defaultOutDir;
  const cc = options.cc ?? process.env.CC ?? 'cc';
  await mkdir(outDir, { recursive: true });
  const [rtprecv, rtpsend] = await Promise.all([
    buildOne('rtprecv', outDir, cc, options.force === true),
    buildOne('rtpsend', outDir, cc, options.force === true),
  ]);
  return { rtprecv, rtpsend };
}

/**
 * @param {string} name
 * @param {string} outDir
 * @param {string} cc
 * @param {boolean} force
 * @returns {Promise<string>} the binary's path
 */
async function buildOne(name, outDir, cc, force) {
  const source = path.join(toolsDir, `${name}.c`);
  const binary = path.join(outDir, name);
  const stampPath = `${binary}.stamp`;
  const text = await readFile(source);
  const stamp = createHash('sha256')
    .update(JSON.stringify([cc, cflags, libs]))
    .update(text)
    .digest('hex');
  if (!force && (await isCurrent(binary, stampPath, stamp))) return binary;

  // Compile to a private name, then rename: concurrent builders never see a half-written binary.
  const tmp = `${binary}.${process.pid}.${Date.now()}.tmp`;
  try {
    const warnings = await compile(cc, [...cflags, '-o', tmp, source, ...libs]);
    if (warnings) process.emitWarning(`${name}.c compiled with warnings:\n${warnings}`);
    await rename(tmp, binary);
    await writeFile(stampPath, stamp);
  } finally {
    await rm(tmp, { force: true });
  }
  return binary;
}

/**
 * @param {string} binary
 * @param {string} stampPath
 * @param {string} stamp
 * @returns {Promise<boolean>}
 */
async function isCurrent(binary, stampPath, stamp) {
  try {
    const [saved, info] = await Promise.all([readFile(stampPath, 'utf8'), stat(binary)]);
    return saved === stamp && info.isFile();
  } catch {
    return false;
  }
}

/**
 * Runs the compiler; resolves with its stderr (warnings), rejects with it on failure.
 * @param {string} cc
 * @param {string[]} args
 * @returns {Promise<string>}
 */
function compile(cc, args) {
  return new Promise((resolve, reject) => {
    execFile(cc, args, { timeout: compileTimeoutMs }, (error, _stdout, stderr) => {
      if (error) {
        reject(new Error(`${cc} ${args.join(' ')} failed: ${error.message}\n${stderr}`));
        return;
      }
      resolve(stderr.trim());
    });
  });
}

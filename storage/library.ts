/**
 * The media library: a flat directory of media files addressed by name. Names are
 * validated before they touch the filesystem and paths are kept inside the root
 * (also through symlinks). Opening files (format detection, the readers) is in
 * ./open.ts: the control plane uses this module and never parses media.
 */
import { readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';

/** A media name: one path segment of safe characters, starting with a letter or digit. */
export const MEDIA_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function isValidMediaName(name: string): boolean {
  // The regex already excludes '.' and '..'; the explicit check keeps that true if it changes.
  return typeof name === 'string' && name !== '.' && name !== '..' && MEDIA_NAME_RE.test(name);
}

/**
 * Names that writers use for files still being written (uploads, recordings); the
 * library never lists them. Dot-files are excluded separately.
 */
export function isTempMediaName(name: string): boolean {
  return /\.(tmp|temp|part|partial)$/i.test(name) || /\.tmp[.-]/i.test(name);
}

/** True if `child` (absolute, normalized) is strictly inside `root`. */
function isInside(root: string, child: string): boolean {
  const rel = path.relative(root, child);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

/**
 * The path of media `name` under `root`. Throws RangeError for an invalid name or a
 * path that would leave the root. Does not touch the filesystem.
 */
export function resolveMediaPath(root: string, name: string): string {
  if (!isValidMediaName(name)) throw new RangeError(`invalid media name ${JSON.stringify(name)}`);
  const rootAbs = path.resolve(root);
  const full = path.resolve(rootAbs, name);
  if (!isInside(rootAbs, full) || path.dirname(full) !== rootAbs) {
    throw new RangeError(`media name ${JSON.stringify(name)} resolves outside the library`);
  }
  return full;
}

/**
 * Like resolveMediaPath for a file that exists: returns its real path after
 * following symlinks, and throws RangeError if that lies outside the real root.
 * Filesystem errors (ENOENT when the file is missing) pass through.
 */
export async function resolveExistingMediaPath(root: string, name: string): Promise<string> {
  const full = resolveMediaPath(root, name);
  const [realRoot, realFile] = await Promise.all([realpath(root), realpath(full)]);
  if (!isInside(realRoot, realFile)) {
    throw new RangeError(`media ${JSON.stringify(name)} links outside the library`);
  }
  return realFile;
}

export interface MediaEntry {
  name: string;
  bytes: number;
  mtimeMs: number;
}

/**
 * The media files in `root` (not recursive), sorted by name: regular files (or
 * symlinks to regular files inside the root) with valid names, except dot-files and
 * temp files. A missing root lists as empty.
 */
export async function listMedia(root: string): Promise<MediaEntry[]> {
  let entries;
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: MediaEntry[] = [];
  for (const entry of entries) {
    const name = entry.name;
    if (name.startsWith('.') || !isValidMediaName(name) || isTempMediaName(name)) continue;
    if (!entry.isFile() && !entry.isSymbolicLink()) continue;
    try {
      const full = entry.isSymbolicLink() ? await resolveExistingMediaPath(root, name) : path.join(root, name);
      const info = await stat(full);
      if (!info.isFile()) continue;
      out.push({ name, bytes: info.size, mtimeMs: info.mtimeMs });
    } catch {
      // Removed since readdir, a dangling link, or a link leading out: not listed.
      continue;
    }
  }
  out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return out;
}

// The control plane never parses media files: the offload probes them
// (media.probe). No module the server loads at run time may reach a container
// reader, followed through every value import (type-only imports load nothing).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const READERS = ['storage/open.ts', 'storage/wav.ts', 'storage/ogg.ts', 'storage/mp4.ts', 'storage/h264/annexb.ts'];

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return sources(full);
    return name.endsWith('.ts') ? [full] : [];
  });
}

/** Files a module loads at run time: relative imports that are not `import type` (or `export type`). */
function valueImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  const re = /^\s*(import|export)\s+(type\s+)?[^'";]*?from\s+'(\.[^']+)'|^\s*import\s+'(\.[^']+)'/gm;
  for (const m of text.matchAll(re)) {
    if (m[2] !== undefined) continue;
    const spec = m[3] ?? m[4]!;
    out.push(path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts')));
  }
  return out;
}

t.test('no server module reaches a media reader', async (t) => {
  const roots = sources(path.join(repo, 'server'));
  t.ok(roots.length > 10, `${roots.length} server modules`);
  const via = new Map<string, string>();
  const todo = [...roots];
  for (const r of roots) via.set(r, '');
  while (todo.length > 0) {
    const file = todo.pop()!;
    for (const dep of valueImports(file)) {
      if (via.has(dep)) continue;
      via.set(dep, file);
      todo.push(dep);
    }
  }
  const chain = (file: string): string => {
    const parts: string[] = [];
    for (let f: string | undefined = file; f; f = via.get(f) || undefined) parts.unshift(path.relative(repo, f));
    return parts.join(' -> ');
  };
  for (const reader of READERS) {
    const full = path.join(repo, reader);
    t.ok(statSync(full).isFile(), `${reader} exists (the check looks for the right files)`);
    t.notOk(via.has(full), via.has(full) ? `reached: ${chain(full)}` : `${reader} is not reached from server/`);
  }
  t.ok(via.has(path.join(repo, 'storage/library.ts')), 'the check follows imports into storage (library.ts is reached)');
});

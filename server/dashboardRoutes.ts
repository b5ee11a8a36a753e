/**
 * The dashboard at `/`: static files (server/dashboard/) read once at start and
 * served as they are — no build step. The page uses the public API only, with
 * the bearer token the operator types in, so the files themselves need no token.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { projectRoot } from './assets.js';

const FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
};

/** Paths of the dashboard, served without the token (the data behind them still needs it). */
export function isDashboardPath(url: string): boolean {
  const p = url.split('?')[0]!;
  return p === '/' || (p.startsWith('/dashboard/') && Object.hasOwn(FILES, p.slice('/dashboard/'.length)));
}

export async function registerDashboard(app: FastifyInstance): Promise<void> {
  const dir = path.join(projectRoot(), 'server', 'dashboard');
  const bodies = new Map<string, Buffer>();
  for (const name of Object.keys(FILES)) bodies.set(name, await readFile(path.join(dir, name)));
  const send = (name: string) => async (_req: unknown, reply: FastifyReply) =>
    reply
      .type(FILES[name]!)
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .header('content-security-policy', "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'")
      .send(bodies.get(name));
  app.get('/', { schema: { hide: true } }, send('index.html'));
  for (const name of Object.keys(FILES)) app.get(`/dashboard/${name}`, { schema: { hide: true } }, send(name));
}

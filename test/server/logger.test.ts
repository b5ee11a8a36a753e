// log.format: pretty (pino-pretty) on a terminal, JSON otherwise, and the key
// overrides it. The real server runs in a child process, once under a
// pseudo-terminal (util-linux `script`) and once on a pipe.
import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig } from '../../config/index.js';
import { logFormat, loggerOptions } from '../../server/logger.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = path.join(root, 'bin', 'offcast.mjs');

// The first run of bin/offcast.mjs may compile the sources (about a minute on a loaded machine): more than tap's default budget.
t.setTimeout(600_000);

t.test('the format chosen for each setting and terminal', async (t) => {
  const cases: ['auto' | 'pretty' | 'json', boolean, 'pretty' | 'json'][] = [
    ['auto', true, 'pretty'],
    ['auto', false, 'json'],
    ['pretty', false, 'pretty'],
    ['pretty', true, 'pretty'],
    ['json', true, 'json'],
    ['json', false, 'json'],
  ];
  for (const [format, tty, want] of cases) t.equal(logFormat(format, tty), want, `${format} on ${tty ? 'a TTY' : 'a pipe'} -> ${want}`);
  t.same(loggerOptions({ level: 'debug', format: 'json' }, true), { level: 'debug' });
  t.match(loggerOptions({ level: 'info', format: 'auto' }, true), { level: 'info', transport: { target: 'pino-pretty', options: { colorize: true } } });
  t.match(loggerOptions({ level: 'info', format: 'pretty' }, false), { transport: { target: 'pino-pretty', options: { colorize: false } } });
  t.equal(loggerOptions({ level: 'silent', format: 'pretty' }, true), false);
});

t.test('log.format in the config', async (t) => {
  t.equal(loadConfig({ argv: [], env: {} }).log.format, 'auto', 'auto by default');
  t.equal(loadConfig({ argv: [], env: { OFFCAST_LOG_FORMAT: 'pretty' } }).log.format, 'pretty', 'OFFCAST_LOG_FORMAT');
  let err: unknown;
  try {
    loadConfig({ argv: [], env: { OFFCAST_LOG_FORMAT: 'xml' } });
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof ConfigError, 'a bad value is a ConfigError');
  t.equal((err as ConfigError).key, 'log.format', 'naming the key');
  t.match((err as Error).message, /must be one of auto, pretty, json/);
});

/** Runs `offcast serve` until it logs that it listens, then stops it; returns what it printed. */
async function serveOutput(t: Test, env: Record<string, string>, tty: boolean): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'offcast-log-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const childEnv = {
    ...process.env,
    OFFCAST_HTTP_PORT: '0',
    // No RTSP listener: parallel test files must not fight over port 8554.
    OFFCAST_RTSP_PORT: '0',
    OFFCAST_MEDIA_ROOT: path.join(dir, 'media'),
    OFFCAST_RECORDINGS_ROOT: path.join(dir, 'rec'),
    ...env,
  };
  delete (childEnv as Record<string, string | undefined>).OFFCAST_API_TOKEN;
  const cmd = `${JSON.stringify(process.execPath)} ${JSON.stringify(bin)} serve`;
  // `script` gives the server a pseudo-terminal for stdout, as an operator's shell would.
  const child = tty
    ? spawn('script', ['-qfec', cmd, '/dev/null'], { cwd: root, env: childEnv, stdio: ['pipe', 'pipe', 'pipe'] })
    : spawn(process.execPath, [bin, 'serve'], { cwd: root, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listen line in: ${out}`)), 240_000);
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (/Server listening at/.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
  });
  if (tty) {
    // The server under `script` is its grandchild: Ctrl-C through the terminal, as a person would stop it.
    child.stdin!.write('\x03');
  } else child.kill('SIGTERM');
  const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(killer);
  return out;
}

const hasScript = spawnSync('script', ['--version']).status === 0;

t.test('on a terminal, auto is pretty', { skip: !hasScript && 'util-linux script is missing (no pseudo-terminal)' }, async (t) => {
  const out = await serveOutput(t, {}, true);
  const line = out.split(/\r?\n/).find((l) => l.includes('Server listening at'))!;
  t.notMatch(line, /^\{/, 'not JSON');
  t.match(
    line.replace(/\x1b\[[0-9;]*m/g, ''),
    /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: Server listening at http:\/\/127\.0\.0\.1:\d+/,
    `pino-pretty: ${JSON.stringify(line)}`,
  );
  t.match(line, /\x1b\[\d+m/, 'coloured for the terminal');
});

t.test('on a pipe, auto is JSON; log.format overrides both ways', async (t) => {
  const json = await serveOutput(t, {}, false);
  const line = json.split('\n').find((l) => l.includes('Server listening at'))!;
  const parsed = JSON.parse(line);
  t.equal(parsed.level, 30);
  t.match(parsed.msg, /^Server listening at http:\/\/127\.0\.0\.1:\d+$/);

  const pretty = await serveOutput(t, { OFFCAST_LOG_FORMAT: 'pretty' }, false);
  const pl = pretty.split('\n').find((l) => l.includes('Server listening at'))!;
  t.match(pl, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: Server listening at /, 'pretty on a pipe when asked');
  t.notMatch(pl, /\x1b\[/, 'without colours off a terminal');

  if (hasScript) {
    const forced = await serveOutput(t, { OFFCAST_LOG_FORMAT: 'json' }, true);
    const fl = forced.split(/\r?\n/).find((l) => l.includes('Server listening at'))!;
    t.equal(JSON.parse(fl.trim()).level, 30, 'JSON on a terminal when asked');
  }
});

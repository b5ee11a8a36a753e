/** ffmpeg as a real peer in tests: availability, bounded runs, framemd5 parsing. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';

/** ffmpeg and ffprobe run (test/helpers/tools.ts: with CI=true a missing tool fails, see skipFile/skipUnless). */
export { hasFfmpeg } from './tools.js';

export const NO_FFMPEG = 'ffmpeg is not installed (CI installs it with apt-get): skipping';

let cachedGst: boolean | undefined;
export function hasGstreamer(): boolean {
  if (cachedGst === undefined) cachedGst = spawnSync('gst-launch-1.0', ['--version'], { stdio: 'ignore' }).status === 0;
  return cachedGst;
}

/** Runs a command to completion with a time bound; resolves with its output. */
export function run(cmd: string, args: string[], timeoutMs = 60000): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr: err });
    });
  });
}

export async function ffmpeg(args: string[], timeoutMs = 60000): Promise<Buffer> {
  const r = await run('ffmpeg', ['-hide_banner', '-nostdin', '-loglevel', 'error', ...args], timeoutMs);
  if (r.code !== 0) throw new Error(`ffmpeg ${args.join(' ')} failed (${r.code}): ${r.stderr.slice(-2000)}`);
  return r.stdout;
}

/**
 * A long-running ffmpeg (a receiver): exited(ms) waits (bounded) for it to end by itself, e.g. on
 * the RTCP BYEs a play session sends on every track at its end (ffmpeg's RTP input then reaches
 * its end and flushes everything it holds); stop() sends SIGINT and waits.
 */
export function startFfmpeg(
  args: string[],
  maxMs = 60000,
): {
  child: ChildProcess;
  done: Promise<{ code: number | null; stderr: string }>;
  exited(ms: number): Promise<boolean>;
  stop(): Promise<{ code: number | null; stderr: string }>;
} {
  const child = spawn('ffmpeg', ['-hide_banner', '-nostdin', '-loglevel', 'error', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), maxMs);
  const done = new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    }),
  );
  return {
    child,
    done,
    async exited(ms: number) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
      const ended = await Promise.race([done.then(() => true as const), timeout]);
      clearTimeout(timer);
      return ended;
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGINT');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      const r = await done;
      clearTimeout(t);
      return r;
    },
  };
}

export interface FrameMd5 {
  stream: number;
  dts: number;
  pts: number;
  duration: number;
  size: number;
  hash: string;
}

/** Parses `-f framemd5` output. */
export function parseFrameMd5(text: string): FrameMd5[] {
  const out: FrameMd5[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const parts = line.split(',').map((s) => s.trim());
    if (parts.length < 6) continue;
    out.push({ stream: Number(parts[0]), dts: Number(parts[1]), pts: Number(parts[2]), duration: Number(parts[3]), size: Number(parts[4]), hash: parts[5]! });
  }
  return out;
}

/**
 * A check on a test's own clip or tool (not on offcast): throws when it fails, so the
 * file fails with the reason, without counting as a product test when it holds.
 */
export function requireSetup(ok: boolean, what: string): void {
  if (!ok) throw new Error(`test setup: ${what}`);
}

/**
 * Readiness waits for tests, instead of fixed sleeps: poll a condition that
 * says the peer is ready (its socket is bound, it has read every datagram and
 * gone idle, the first packet arrived), bounded in time.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';

/** Polls `check` every `everyMs` until it holds; false if it still doesn't after `ms`. */
export async function waitFor(check: () => boolean | Promise<boolean>, ms: number, everyMs = 20): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end;) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return await check();
}

/** Like waitFor, but throws (naming `what`) when the time is up. */
export async function waitUntil(check: () => boolean | Promise<boolean>, ms: number, what: string, everyMs = 20): Promise<void> {
  if (!(await waitFor(check, ms, everyMs))) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** Whether Linux's UDP socket tables can be read (else the socket waits below cannot work). */
export const HAS_PROC_NET_UDP = existsSync('/proc/net/udp');

export interface UdpSocketRow {
  port: number;
  /** Bytes queued for the owner to read. */
  rxQueue: number;
  inode: number;
}

/** Every UDP socket of the network namespace (IPv4 and IPv6 tables). */
export function udpSockets(): UdpSocketRow[] {
  const out: UdpSocketRow[] = [];
  for (const table of ['/proc/net/udp', '/proc/net/udp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    // "sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ..."
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const local = f[1]!;
      const queues = f[4]!.split(':');
      out.push({ port: parseInt(local.slice(local.lastIndexOf(':') + 1), 16), rxQueue: parseInt(queues[1] ?? '0', 16), inode: Number(f[9]) });
    }
  }
  return out;
}

/** True once some socket is bound to UDP `port`. */
export function udpBound(port: number): boolean {
  return udpSockets().some((s) => s.port === port);
}

/** Waits until every port of `ports` has a socket bound to it (a receiver that is ready to take packets). */
export async function waitUdpBound(ports: readonly number[], ms = 20000): Promise<void> {
  await waitUntil(
    () => {
      const bound = new Set(udpSockets().map((s) => s.port));
      return ports.every((p) => bound.has(p));
    },
    ms,
    `UDP ports ${ports.join(', ')} to be bound`,
  );
}

/** Bytes waiting to be read on the sockets bound to `ports`. */
export function udpQueued(ports: readonly number[]): number {
  const want = new Set(ports);
  return udpSockets().reduce((n, s) => (want.has(s.port) ? n + s.rxQueue : n), 0);
}

/** Whether every thread of process `pid` is asleep (not running nor runnable), or the process has exited. */
export function processIdle(pid: number): boolean {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return true; // gone: it does nothing more
  }
  for (const task of tasks) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${task}/stat`, 'utf8');
    } catch {
      continue; // the thread ended meanwhile
    }
    // "pid (comm) S ...": the state follows the last ')' (comm may hold spaces or parentheses).
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state !== 'S' && state !== 'I' && state !== 'Z') return false;
  }
  return true;
}

/** The sizes of `files` (-1: absent), as one comparable string: a progress signal for waitDrained. */
export function fileSizes(files: readonly string[]): string {
  return files
    .map((file) => {
      try {
        return statSync(file).size;
      } catch {
        return -1;
      }
    })
    .join(',');
}

/**
 * Waits until a receiving process has taken in everything sent to it: nothing
 * queued on its sockets (`ports`), all its threads asleep and its `progress`
 * (e.g. output sizes, lines printed) unchanged, on `polls` polls in a row.
 * For peers that don't end by themselves (gst-launch's udpsrc ignores RTCP
 * BYE); a threads-asleep sample alone can catch a short timed wait, hence the
 * run of polls. Returns false if that never held within `ms` (the caller's
 * later checks say what was missing).
 */
export async function waitDrained(
  pid: number | undefined,
  ports: readonly number[],
  progress: () => unknown = () => 0,
  ms = 30000,
  polls = 8,
): Promise<boolean> {
  if (pid === undefined) return false;
  let quiet = 0;
  let last = progress();
  return waitFor(
    () => {
      const now = progress();
      if (udpQueued(ports) === 0 && processIdle(pid) && now === last) quiet++;
      else quiet = 0;
      last = now;
      return quiet >= polls;
    },
    ms,
    25,
  );
}

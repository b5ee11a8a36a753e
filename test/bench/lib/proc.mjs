// Process helpers for the benchmark: bounded child processes (all tracked, so
// an interrupted run kills exactly what it started), RSS and CPU from /proc.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { chmod, readFile, writeFile } from 'node:fs/promises';

/** @type {Set<import('node:child_process').ChildProcess>} */
const children = new Set();

/**
 * Registers a child so killTracked() ends it; forgets it when it exits.
 * @param {import('node:child_process').ChildProcess} child
 * @returns {import('node:child_process').ChildProcess}
 */
export function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  child.once('error', () => children.delete(child));
  return child;
}

/** SIGKILLs every tracked child still running (by pid; synchronous: safe in 'exit'). */
export function killTracked() {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  children.clear();
}

/** @param {number} ms */
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/**
 * @param {import('node:child_process').ChildProcess} child
 * @returns {Promise<{code: number | null, signal: NodeJS.Signals | null}>}
 */
export function exitOf(child) {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: null, signal: null }));
  });
}

/**
 * Sends `signal`, waits up to graceMs, then SIGKILLs. Resolves once it has ended.
 * @param {import('node:child_process').ChildProcess} child
 * @param {NodeJS.Signals} [signal]
 * @param {number} [graceMs]
 */
export async function stopChild(child, signal = 'SIGTERM', graceMs = 5000) {
  const exited = exitOf(child);
  if (child.exitCode !== null || child.signalCode !== null) return exited;
  try {
    child.kill(signal);
  } catch {
    // already gone
  }
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  const killed = new Promise((resolve) => {
    timer = setTimeout(() => {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
      resolve(undefined);
    }, graceMs);
  });
  await Promise.race([exited, killed]);
  clearTimeout(timer);
  return exited;
}

/**
 * Runs a command to completion with a time limit; stdout and stderr collected
 * (the last 256 KB of each).
 * @param {string} cmd
 * @param {string[]} args
 * @param {{timeoutMs: number, cwd?: string, env?: NodeJS.ProcessEnv}} opts
 * @returns {Promise<{code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string, timedOut: boolean}>}
 */
export async function runBounded(cmd, args, opts) {
  const child = track(spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] }));
  let stdout = '';
  let stderr = '';
  const keep = 256 * 1024;
  child.stdout?.setEncoding('utf8').on('data', (/** @type {string} */ c) => {
    stdout = (stdout + c).slice(-keep);
  });
  child.stderr?.setEncoding('utf8').on('data', (/** @type {string} */ c) => {
    stderr = (stderr + c).slice(-keep);
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, opts.timeoutMs);
  const { code, signal } = await exitOf(child);
  clearTimeout(timer);
  return { code, signal, stdout, stderr, timedOut };
}

/**
 * Resident set size of a process in bytes (VmRSS of /proc/<pid>/status), or null if gone.
 * @param {number} pid
 * @returns {Promise<number | null>}
 */
export async function rssBytes(pid) {
  try {
    const text = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(text);
    return m === null ? null : Number(m[1]) * 1024;
  } catch {
    return null;
  }
}

/**
 * Median of `count` RSS samples taken `everyMs` apart: one sample catches a GC mid-way.
 * @param {number} pid
 * @param {number} [count]
 * @param {number} [everyMs]
 * @returns {Promise<number | null>}
 */
export async function rssMedian(pid, count = 5, everyMs = 200) {
  /** @type {number[]} */
  const samples = [];
  for (let i = 0; i < count; i++) {
    if (i > 0) await sleep(everyMs);
    const v = await rssBytes(pid);
    if (v !== null) samples.push(v);
  }
  return samples.length === 0 ? null : median(samples);
}

/**
 * Lowest of `count` RSS samples taken `everyMs` apart.
 * @param {number} pid
 * @param {number} [count]
 * @param {number} [everyMs]
 * @returns {Promise<number | null>}
 */
export async function rssFloor(pid, count = 10, everyMs = 400) {
  let low = Infinity;
  for (let i = 0; i < count; i++) {
    if (i > 0) await sleep(everyMs);
    const v = await rssBytes(pid);
    if (v !== null && v < low) low = v;
  }
  return Number.isFinite(low) ? low : null;
}

const clockTicks = 100; // USER_HZ: 100 on every Linux architecture Node supports

/**
 * CPU time (user + system, all threads) of a process in seconds, or null if gone.
 * @param {number} pid
 * @returns {number | null}
 */
export function cpuSeconds(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces: fields count from after its closing parenthesis.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / clockTicks;
  } catch {
    return null;
  }
}

/** Busy and total jiffies of the whole machine (/proc/stat "cpu" line). */
function machineTicks() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/**
 * Starts a CPU measurement; `stop()` returns each pid's CPU use in percent of
 * one core, and the machine's busy share in percent of all cores.
 * @param {number[]} pids
 * @returns {{stop(): {byPid: Record<number, number | null>, machineBusyPct: number}}}
 */
export function cpuMeter(pids) {
  const t0 = performance.now();
  const m0 = machineTicks();
  const c0 = pids.map((p) => cpuSeconds(p));
  return {
    stop() {
      const secs = (performance.now() - t0) / 1000;
      const m1 = machineTicks();
      /** @type {Record<number, number | null>} */
      const byPid = {};
      pids.forEach((pid, i) => {
        const a = c0[i];
        const b = cpuSeconds(pid);
        byPid[pid] = a === null || a === undefined || b === null || secs <= 0 ? null : round1(((b - a) / secs) * 100);
      });
      const dt = m1.total - m0.total;
      return { byPid, machineBusyPct: dt > 0 ? round1(((m1.busy - m0.busy) / dt) * 100) : 0 };
    },
  };
}

/**
 * Pids of this process's children whose command name is `name` (drive.mjs does
 * not expose the pids of the tools it spawns).
 * @param {string} name
 * @returns {number[]}
 */
export function childPidsNamed(name) {
  /** @type {number[]} */
  const out = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const text = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const open = text.indexOf('(');
      const close = text.lastIndexOf(')');
      const comm = text.slice(open + 1, close);
      const ppid = Number(text.slice(close + 2).split(' ')[1]);
      if (comm === name && ppid === process.pid) out.push(Number(entry));
    } catch {
      // the process ended meanwhile
    }
  }
  return out;
}

/**
 * A bash wrapper that runs `bin` and then writes the CPU seconds (user +
 * system) it used to `<script>.cpu` — for tools spawned by code that does not
 * expose their pids (drive.mjs's runSender).
 * @param {string} bin
 * @param {string} script   where to write the wrapper
 * @returns {Promise<{bin: string, cpuSeconds: () => Promise<number | null>}>}
 */
export async function cpuTimedTool(bin, script) {
  const out = `${script}.cpu`;
  await writeFile(script, `#!/bin/bash\n${JSON.stringify(bin)} "$@"\nrc=$?\ntimes > ${JSON.stringify(out)}\nexit $rc\n`);
  await chmod(script, 0o755);
  return {
    bin: script,
    async cpuSeconds() {
      try {
        // `times`: the shell's user/system, then its children's.
        const lines = (await readFile(out, 'utf8')).trim().split('\n');
        const parts = [...(lines[1] ?? '').matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
        return parts.length === 2 ? /** @type {number} */ (parts[0]) + /** @type {number} */ (parts[1]) : null;
      } catch {
        return null;
      }
    },
  };
}

/**
 * Datagrams the kernel dropped on a process's UDP sockets (the `drops` column
 * of /proc/net/udp and udp6, for the socket inodes among its descriptors):
 * unlike RcvbufErrors, other processes' losses do not count.
 * @param {number} pid
 * @returns {Promise<{sockets: number, drops: number} | null>}
 */
export async function udpSocketDrops(pid) {
  /** @type {Set<string>} */
  const inodes = new Set();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m !== null) inodes.add(/** @type {string} */ (m[1]));
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    return null;
  }
  let sockets = 0;
  let drops = 0;
  for (const table of ['/proc/net/udp', '/proc/net/udp6']) {
    let text;
    try {
      text = await readFile(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
      if (f.length < 13 || !inodes.has(/** @type {string} */ (f[9]))) continue;
      sockets++;
      drops += Number(f[12]);
    }
  }
  return { sockets, drops };
}

/** UDP RcvbufErrors of the network namespace (/proc/net/snmp), or null. */
export async function udpRcvbufErrors() {
  try {
    const lines = (await readFile('/proc/net/snmp', 'utf8')).split('\n').filter((l) => l.startsWith('Udp: '));
    const names = (lines[0] ?? '').trim().split(/\s+/);
    const values = (lines[1] ?? '').trim().split(/\s+/);
    const i = names.indexOf('RcvbufErrors');
    return i < 0 ? null : Number(values[i]);
  } catch {
    return null;
  }
}

/** @param {number[]} values */
export function median(values) {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? /** @type {number} */ (s[mid]) : /** @type {number} */ (s[mid - 1] + /** @type {number} */ (s[mid])) / 2;
}

/**
 * The value at quantile q (nearest rank) of `values`.
 * @param {number[]} values
 * @param {number} q
 */
export function quantile(values, q) {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const rank = Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1));
  return /** @type {number} */ (s[rank]);
}

/** @param {number} v */
export function round1(v) {
  return Math.round(v * 10) / 10;
}

/** @param {number} v */
export function round3(v) {
  return Math.round(v * 1000) / 1000;
}

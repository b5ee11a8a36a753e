// The machine a run measured: figures are only comparable on the same one.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { runBounded } from './proc.mjs';

/** @param {string} file */
function readOr(file, fallback = '') {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return fallback;
  }
}

/**
 * @returns {Promise<{cpuModel: string, cores: number, node: string, kernel: string, memTotalMiB: number, rmemMax: number | null, wmemMax: number | null, ffmpeg: string | null, hostname: string, date: string}>}
 */
export async function describeMachine() {
  const cpus = os.cpus();
  const rmem = Number(readOr('/proc/sys/net/core/rmem_max', 'NaN'));
  const wmem = Number(readOr('/proc/sys/net/core/wmem_max', 'NaN'));
  let ffmpeg = null;
  try {
    const r = await runBounded('ffmpeg', ['-hide_banner', '-version'], { timeoutMs: 10_000 });
    if (r.code === 0) ffmpeg = (r.stdout.split('\n')[0] ?? '').replace(/ Copyright.*/, '');
  } catch {
    ffmpeg = null;
  }
  return {
    cpuModel: (cpus[0]?.model ?? 'unknown').trim(),
    cores: os.availableParallelism?.() ?? cpus.length,
    node: process.version,
    kernel: `${os.type()} ${os.release()}`,
    memTotalMiB: Math.round(os.totalmem() / 1024 / 1024),
    rmemMax: Number.isFinite(rmem) ? rmem : null,
    wmemMax: Number.isFinite(wmem) ? wmem : null,
    ffmpeg,
    hostname: os.hostname(),
    date: new Date().toISOString(),
  };
}

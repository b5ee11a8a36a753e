// Thin, time-bounded wrappers around the rtprecv and rtpsend binaries:
// spawn, wait for READY, collect the JSON report, kill on timeout.
import { spawn } from 'node:child_process';
import { buildTools } from './build.mjs';

const stderrKeepBytes = 64 * 1024;

/**
 * @typedef {object} ReceiverOptions
 * @property {number} portBase            first port
 * @property {string} [host]              bind address in 127.0.0.0/8 (default 127.0.0.1)
 * @property {number} [count]             number of ports/streams (default 1)
 * @property {number} [step]              port step (default 2)
 * @property {number} [clock]             RTP clock rate for lateness (default 48000)
 * @property {Record<number, number>} [clockMap]  per-port clock rates
 * @property {number} [duration]          stop this many seconds after the first packet
 * @property {number} [maxSeconds]        hard cap on the run (tool default 600)
 * @property {number} [warmup]            seconds of each stream excluded from lateness
 * @property {number} [rcvbuf]            SO_RCVBUF request in bytes
 * @property {number} [baseQuantile]      lateness base: 0 = minimum (default), else this quantile of d
 * @property {boolean} [perStream]        include `perStream` details in the report
 * @property {boolean} [verifyPayload]    check payloads against expectedPayload()
 * @property {string[]} [args]            extra raw arguments
 * @property {string} [bin]               rtprecv path (default: built with buildTools())
 * @property {number} [readyTimeoutMs]    default 10000 (includes building when `bin` is absent)
 * @property {number} [stopTimeoutMs]     default 10000
 */

/**
 * @typedef {object} LatenessSummary  milliseconds, all streams pooled
 * @property {number} p50
 * @property {number} p90
 * @property {number} p99
 * @property {number} p999
 * @property {number} max
 */

/**
 * @typedef {object} StreamDetail
 * @property {number} port
 * @property {number} packets
 * @property {number} bytes
 * @property {number} lost
 * @property {number} duplicates
 * @property {number} reordered
 * @property {number} nonRtp
 * @property {number} markers
 * @property {number} ssrcChanges
 * @property {number | null} ssrc           last SSRC seen
 * @property {number | null} payloadType    last payload type seen
 * @property {number | null} sizeMin
 * @property {number | null} sizeMax
 * @property {number} [payloadMismatches]   with verifyPayload
 * @property {number | null} p99            ms
 * @property {number | null} max            ms
 */

/**
 * @typedef {object} Report  rtprecv's JSON report
 * @property {'kernel' | 'user'} timestampSource
 * @property {number} streams
 * @property {number} activeStreams
 * @property {number} packets            RTP packets (non-RTP datagrams are only in nonRtp)
 * @property {number} bytes
 * @property {number} durationSec        first to last packet
 * @property {number} packetsPerSec
 * @property {number} lost
 * @property {number} duplicates
 * @property {number} reordered
 * @property {number} nonRtp
 * @property {number} ssrcChanges
 * @property {number} markers
 * @property {number} [payloadMismatches]
 * @property {number | null} sizeMin
 * @property {number | null} sizeMax
 * @property {LatenessSummary | null} lateness
 * @property {{p50: number, max: number} | null} perStreamP99
 * @property {{port: number, p99: number | null, lost: number}[]} worstStreams
 * @property {number} rcvbuf             SO_RCVBUF as the kernel reports it (twice the usable size)
 * @property {number} rcvbufRequested
 * @property {number | null} rcvbufErrorsDelta   Udp RcvbufErrors from /proc/net/snmp, end minus start
 * @property {'min' | 'quantile'} base
 * @property {number} baseQuantile
 * @property {number} warmupSec
 * @property {number} latenessSamples
 * @property {boolean} latenessSampled   true when reservoir sampling kicked in
 * @property {number} userTimestampPackets
 * @property {StreamDetail[]} [perStream]
 */

/**
 * @typedef {object} Receiver
 * @property {Promise<void>} ready   resolves once every socket is bound
 * @property {() => Promise<Report>} stop  ends the measurement (stdin EOF) and returns the report
 * @property {Promise<void>} exited  resolves when the process has ended, however it ended
 */

/**
 * Starts rtprecv. `ready` rejects (and the process is killed) if it does not
 * bind within readyTimeoutMs. `stop()` is idempotent; it also works after the
 * tool ended by itself (--duration), returning the same report.
 * @param {ReceiverOptions} opts
 * @returns {Receiver}
 */
export function startReceiver(opts) {
  const args = ['--port-base', String(opts.portBase), '--stop-on-stdin-eof'];
  pushOpt(args, '--host', opts.host);
  pushOpt(args, '--count', opts.count);
  pushOpt(args, '--step', opts.step);
  pushOpt(args, '--clock', opts.clock);
  if (opts.clockMap) {
    const map = Object.entries(opts.clockMap).map(([port, hz]) => `${port}:${hz}`);
    if (map.length > 0) args.push('--clock-map', map.join(','));
  }
  pushOpt(args, '--duration', opts.duration);
  pushOpt(args, '--max-seconds', opts.maxSeconds);
  pushOpt(args, '--warmup', opts.warmup);
  pushOpt(args, '--rcvbuf', opts.rcvbuf);
  pushOpt(args, '--base-quantile', opts.baseQuantile);
  if (opts.perStream) args.push('--per-stream');
  if (opts.verifyPayload) args.push('--verify-payload');
  if (opts.args) args.push(...opts.args);
  const readyTimeoutMs = opts.readyTimeoutMs ?? 10_000;
  const stopTimeoutMs = opts.stopTimeoutMs ?? 10_000;

  /** @type {import('node:child_process').ChildProcess | undefined} */
  let child;
  let stdout = '';
  let stderr = '';
  /** @type {Promise<{code: number | null, signal: NodeJS.Signals | null}>} */
  let exitedWith = new Promise(() => {});
  /** @type {Promise<Report> | undefined} */
  let stopping;

  const ready = (async () => {
    const bin = opts.bin ?? (await buildTools()).rtprecv;
    const proc = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    child = proc;
    exitedWith = onExit(proc);
    proc.stdout?.setEncoding('utf8').on('data', (/** @type {string} */ chunk) => {
      stdout += chunk;
    });
    // Errors on our end of stdin (EPIPE after the tool ended) are expected.
    proc.stdin?.on('error', () => {});
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`rtprecv not ready after ${readyTimeoutMs} ms: ${stderr.trim()}`));
      }, readyTimeoutMs);
      proc.stderr?.setEncoding('utf8').on('data', (/** @type {string} */ chunk) => {
        stderr = (stderr + chunk).slice(-stderrKeepBytes);
        if (/(^|\n)READY\n/.test(stderr)) {
          clearTimeout(timer);
          resolve(undefined);
        }
      });
      exitedWith.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`rtprecv exited before READY (code ${code}, signal ${signal}): ${stderr.trim()}`));
      });
    });
  })();

  const exited = ready.then(
    () => exitedWith.then(() => undefined),
    () => undefined,
  );

  /** @returns {Promise<Report>} */
  async function stopOnce() {
    await ready;
    const proc = /** @type {import('node:child_process').ChildProcess} */ (child);
    proc.stdin?.end();
    const { code, signal } = await waitOrKill(proc, exitedWith, stopTimeoutMs, 'rtprecv');
    if (code !== 0) throw new Error(`rtprecv failed (code ${code}, signal ${signal}): ${stderr.trim()}`);
    return /** @type {Report} */ (parseLastJsonLine(stdout, 'rtprecv'));
  }

  return {
    ready,
    exited,
    stop() {
      stopping ??= stopOnce();
      return stopping;
    },
  };
}

/**
 * @typedef {object} RampOptions
 * @property {number} start   first rate, packets/s (all streams)
 * @property {number} step    rate increment per step (may be negative)
 * @property {number} every   step length in seconds
 */

/**
 * @typedef {object} SenderOptions
 * @property {number} portBase
 * @property {string} [host]         destination in 127.0.0.0/8 (default 127.0.0.1)
 * @property {number} [count]        destinations/streams (default 1)
 * @property {number} [step]         port step (default 2)
 * @property {number} [pps]          total packets/s, paced (one of pps, ramp, max)
 * @property {RampOptions} [ramp]
 * @property {boolean} [max]         unpaced: as fast as the kernel accepts
 * @property {number} [duration]     seconds (schedule time when paced, wall time with max)
 * @property {number} [packets]      cap on slots (sequence numbers) over all streams
 * @property {number} [maxSeconds]   hard cap on the run (tool default 600)
 * @property {number} [size]         RTP packet size in bytes, header included (default 172)
 * @property {number} [pt]           payload type (default 96)
 * @property {number} [clock]        RTP clock rate (default 48000)
 * @property {number} [ssrcBase]     stream i gets SSRC ssrcBase + i (default 0x0ffca570)
 * @property {number} [seqStart]     first sequence number of every stream (default 0)
 * @property {number} [tsStart]      first RTP timestamp offset (default 0)
 * @property {boolean} [connected]   one connected socket per destination
 * @property {boolean} [nonblock]    MSG_DONTWAIT: count EAGAIN instead of blocking
 * @property {number} [batch]        messages per sendmmsg (default 64)
 * @property {number} [tickUs]       pacing tick (default 1000)
 * @property {number} [markerEvery]  marker on packet j when j % K == 0 (always on j == 0)
 * @property {number} [skipEvery]    do not send packet j when (j + 1) % K == 0
 * @property {number} [dupEvery]     send packet j twice when (j + 1) % K == 0
 * @property {number} [reorderEvery] send packet j after packet j + 1 when (j + 1) % K == 0
 * @property {string[]} [args]       extra raw arguments
 * @property {string} [bin]          rtpsend path (default: built with buildTools())
 * @property {number} [timeoutMs]    default: expected run time + 10 s
 */

/**
 * @typedef {object} RampStepReport
 * @property {number} rate
 * @property {number} packets
 * @property {number} durationSec
 * @property {number} achievedPps
 */

/**
 * @typedef {object} SendReport  rtpsend's JSON report
 * @property {'paced' | 'ramp' | 'max'} mode
 * @property {boolean} connected
 * @property {number} streams
 * @property {number} slots          sequence numbers used, over all streams
 * @property {number} packets        datagrams sent successfully (duplicates included, skipped excluded)
 * @property {number} bytes
 * @property {number} skipped
 * @property {number} duplicated
 * @property {number} reordered
 * @property {number} sendErrors
 * @property {number} eagain
 * @property {number} enobufs
 * @property {number} otherErrors
 * @property {number} durationSec
 * @property {number} achievedPps
 * @property {number | null} targetPps
 * @property {number | null} sendLagMaxMs  how far behind its schedule the sender fell
 * @property {boolean} truncated       hit maxSeconds
 * @property {boolean} stopped         ended by a signal
 * @property {number} size
 * @property {number} payloadType
 * @property {number} clock
 * @property {number} ssrcBase
 * @property {number} seqStart
 * @property {number} tsStart
 * @property {RampStepReport[] | null} ramp
 */

/**
 * Runs rtpsend to completion and returns its report. Rejects when it fails,
 * or when it outlives timeoutMs (it is then killed).
 * @param {SenderOptions} opts
 * @returns {Promise<SendReport>}
 */
export async function runSender(opts) {
  const args = ['--port-base', String(opts.portBase)];
  pushOpt(args, '--host', opts.host);
  pushOpt(args, '--count', opts.count);
  pushOpt(args, '--step', opts.step);
  pushOpt(args, '--pps', opts.pps);
  if (opts.ramp) {
    args.push('--ramp', '--ramp-start', String(opts.ramp.start), '--ramp-step', String(opts.ramp.step));
    args.push('--ramp-every', String(opts.ramp.every));
  }
  if (opts.max) args.push('--max');
  pushOpt(args, '--duration', opts.duration);
  pushOpt(args, '--packets', opts.packets);
  pushOpt(args, '--max-seconds', opts.maxSeconds);
  pushOpt(args, '--size', opts.size);
  pushOpt(args, '--pt', opts.pt);
  pushOpt(args, '--clock', opts.clock);
  pushOpt(args, '--ssrc-base', opts.ssrcBase);
  pushOpt(args, '--seq-start', opts.seqStart);
  pushOpt(args, '--ts-start', opts.tsStart);
  if (opts.connected) args.push('--connected');
  if (opts.nonblock) args.push('--nonblock');
  pushOpt(args, '--batch', opts.batch);
  pushOpt(args, '--tick-us', opts.tickUs);
  pushOpt(args, '--marker-every', opts.markerEvery);
  pushOpt(args, '--skip-every', opts.skipEvery);
  pushOpt(args, '--dup-every', opts.dupEvery);
  pushOpt(args, '--reorder-every', opts.reorderEvery);
  if (opts.args) args.push(...opts.args);
  const timeoutMs = opts.timeoutMs ?? expectedSendMs(opts) + 10_000;

  const bin = opts.bin ?? (await buildTools()).rtpsend;
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout?.setEncoding('utf8').on('data', (/** @type {string} */ chunk) => {
    stdout += chunk;
  });
  proc.stderr?.setEncoding('utf8').on('data', (/** @type {string} */ chunk) => {
    stderr = (stderr + chunk).slice(-stderrKeepBytes);
  });
  const exited = onExit(proc);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill('SIGKILL');
  }, timeoutMs);
  const { code, signal } = await exited;
  clearTimeout(timer);
  if (timedOut) throw new Error(`rtpsend killed after ${timeoutMs} ms: ${stderr.trim()}`);
  if (code !== 0) throw new Error(`rtpsend failed (code ${code}, signal ${signal}): ${stderr.trim()}`);
  return /** @type {SendReport} */ (parseLastJsonLine(stdout, 'rtpsend'));
}

/**
 * The payload rtpsend puts after the 12-byte RTP header (rtprecv
 * --verify-payload checks the same): byte k of the packet (ssrc, seq) is
 *   ((ssrc >>> (8 * (k % 4))) + 7 * seq + k) mod 256
 * with seq the 16-bit sequence number on the wire. It repeats every 256 bytes.
 * @param {number} ssrc            32-bit SSRC
 * @param {number} seq             16-bit sequence number
 * @param {number} payloadLength   bytes after the header: rtpsend --size minus 12
 * @returns {Buffer}
 */
export function expectedPayload(ssrc, seq, payloadLength) {
  const out = Buffer.allocUnsafe(payloadLength);
  const seqTerm = (7 * (seq & 0xffff)) & 0xff;
  for (let k = 0; k < payloadLength; k++) {
    out[k] = ((ssrc >>> (8 * (k & 3))) + seqTerm + k) & 0xff;
  }
  return out;
}

/**
 * @param {string[]} args
 * @param {string} flag
 * @param {string | number | undefined} value
 */
function pushOpt(args, flag, value) {
  if (value !== undefined) args.push(flag, String(value));
}

/**
 * A generous guess at how long a send run lasts, for its timeout.
 * @param {SenderOptions} opts
 * @returns {number} milliseconds
 */
function expectedSendMs(opts) {
  if (opts.duration !== undefined) return opts.duration * 1000;
  const rate = opts.pps ?? opts.ramp?.start;
  if (opts.packets !== undefined && rate !== undefined) return (opts.packets / rate) * 1000;
  return (opts.maxSeconds ?? 600) * 1000;
}

/**
 * @param {import('node:child_process').ChildProcess} proc
 * @returns {Promise<{code: number | null, signal: NodeJS.Signals | null}>}
 */
function onExit(proc) {
  return new Promise((resolve) => {
    proc.once('error', () => resolve({ code: null, signal: null }));
    proc.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

/**
 * Waits for the exit; after timeoutMs sends SIGTERM (the tools still report),
 * and SIGKILL two seconds later.
 * @param {import('node:child_process').ChildProcess} proc
 * @param {Promise<{code: number | null, signal: NodeJS.Signals | null}>} exited
 * @param {number} timeoutMs
 * @param {string} name
 * @returns {Promise<{code: number | null, signal: NodeJS.Signals | null}>}
 */
async function waitOrKill(proc, exited, timeoutMs, name) {
  /** @type {NodeJS.Timeout | undefined} */
  let term;
  /** @type {NodeJS.Timeout | undefined} */
  let kill;
  const timers = new Promise((resolve) => {
    term = setTimeout(() => {
      proc.kill('SIGTERM');
      kill = setTimeout(() => {
        proc.kill('SIGKILL');
        resolve(undefined);
      }, 2000);
    }, timeoutMs);
  });
  const result = await Promise.race([exited, timers.then(() => exited)]);
  clearTimeout(term);
  clearTimeout(kill);
  if (result.signal === 'SIGKILL') throw new Error(`${name} did not stop within ${timeoutMs + 2000} ms`);
  return result;
}

/**
 * @param {string} text
 * @param {string} name
 * @returns {unknown}
 */
function parseLastJsonLine(text, name) {
  const line = text.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`${name} printed no JSON report: ${JSON.stringify(text.slice(-500))}`);
  }
}

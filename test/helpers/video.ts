/**
 * Video test media and views of what arrives: clips made with ffmpeg at test
 * time, the source's packets as ffmpeg reads them (the reference), and the
 * received RTP regrouped into frames and access units (RFC 6184 mode 1, RFC
 * 3640 AAC-hbr) so they can be matched to source packets by content.
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { ffmpeg, run } from './ffmpeg.js';
import dgram from 'node:dgram';
import { Worker } from 'node:worker_threads';
import { bindPortBlock, parseRtp, type ReceivedRtp } from './rtp.js';
import { parseSps } from '../../storage/h264/sps.js';
import { annexB, writeSps } from '../fixtures/h264/synth.js';

export interface ClipOptions {
  seconds: number;
  size?: string;
  rate?: number;
  /** GOP length in frames (keyframe every `gop` frames, no scene cuts). */
  gop?: number;
  bframes?: number;
  /** testsrc2 noise strength: more noise, bigger keyframes. */
  noise?: number;
  crf?: number;
  /** AAC 48 kHz mono at 128 kbit/s beside the video (a chirp). */
  audio?: boolean;
}

/** An MP4 of H.264 (B-frames, fixed GOP) and optionally AAC, made with ffmpeg. */
export async function makeMp4(file: string, o: ClipOptions): Promise<void> {
  const rate = o.rate ?? 25;
  const gop = o.gop ?? 50;
  const noise = o.noise ?? 0;
  const src = `testsrc2=size=${o.size ?? '320x180'}:rate=${rate}${noise > 0 ? `,noise=alls=${noise}` : ''}`;
  const args = ['-f', 'lavfi', '-i', src];
  // A chirp: no two AAC frames are alike, so received AUs map to source packets by content.
  if (o.audio !== false) args.push('-f', 'lavfi', '-i', "aevalsrc='0.3*sin(2*PI*(300+150*t)*t)':s=48000");
  args.push('-t', String(o.seconds), '-c:v', 'libx264', '-preset', 'veryfast', '-crf', String(o.crf ?? 20), '-bf', String(o.bframes ?? 2));
  args.push('-g', String(gop), '-x264-params', `keyint_min=${gop}:scenecut=0`, '-pix_fmt', 'yuv420p');
  if (o.audio !== false) args.push('-c:a', 'aac', '-b:a', '128k');
  await ffmpeg([...args, '-y', file]);
}

/**
 * The A/V sync clip: black video with a white frame at 1.0 s and 3.0 s, silence
 * with a 1 kHz beep starting at exactly 1.0 s and 3.0 s (100 ms each).
 */
export async function makeSyncClip(file: string): Promise<void> {
  await ffmpeg([
    '-f',
    'lavfi',
    '-i',
    "color=c=black:size=320x180:rate=25,drawbox=c=white:t=fill:enable='between(t,0.99,1.01)+between(t,2.99,3.01)',format=yuv420p",
    '-f',
    'lavfi',
    '-i',
    "aevalsrc='if(between(t,1,1.1)+between(t,3,3.1),0.5*sin(2*PI*1000*t),0)':s=48000",
    '-t',
    '4',
    '-c:v',
    'libx264',
    '-preset',
    'veryfast',
    '-bf',
    '2',
    '-g',
    '25',
    '-x264-params',
    'keyint_min=25:scenecut=0',
    '-c:a',
    'aac',
    '-b:a',
    '128k',
    '-y',
    file,
  ]);
}

/**
 * Raw H.264 (Annex B, no B-frames) whose SPS carries no VUI timing, so the
 * frame rate must come from the session's `frameRate`. libx264 always writes
 * timing_info: the SPS is rewritten without it (the other fields are kept).
 */
export async function makeAnnexBWithoutTiming(file: string, frames: number): Promise<void> {
  const raw = await ffmpeg([
    '-f',
    'lavfi',
    '-i',
    'testsrc2=size=160x90:rate=25',
    '-frames:v',
    String(frames),
    '-c:v',
    'libx264',
    '-bf',
    '0',
    '-g',
    '10',
    '-f',
    'h264',
    '-',
  ]);
  const nals: Uint8Array[] = [];
  for (const nal of splitAnnexB(raw)) {
    if ((nal[0]! & 0x1f) !== 7) {
      nals.push(nal);
      continue;
    }
    const sps = parseSps(nal);
    if (sps.vui === undefined) throw new Error('libx264 wrote no VUI');
    const { timing: _timing, ...vui } = sps.vui;
    nals.push(writeSps({ ...sps, vui }));
  }
  await writeFile(file, annexB(nals));
}

/** NAL units of an Annex B byte stream (3- or 4-byte start codes). */
export function splitAnnexB(b: Uint8Array): Uint8Array[] {
  const starts: number[] = [];
  for (let i = 0; i + 2 < b.length; i++) {
    if (b[i] === 0 && b[i + 1] === 0 && b[i + 2] === 1) {
      starts.push(i + 3);
      i += 2;
    }
  }
  return starts.map((s, k) => {
    let end = k + 1 < starts.length ? starts[k + 1]! - 3 : b.length;
    while (end > s && b[end - 1] === 0) end--;
    return b.subarray(s, end);
  });
}

export interface SourcePacket {
  /** Decode order. */
  index: number;
  /** In the stream's time base. */
  pts: number;
  dts: number;
  size: number;
  key: boolean;
  /** md5 of the packet as stored (AVCC for H.264, raw AU for AAC). */
  hash: string;
}

export interface SourceStream {
  /** Time base: seconds = value * num / den. */
  tb: { num: number; den: number };
  packets: SourcePacket[];
}

/** The packets of one stream ('v' or 'a') in decode order, hashed as stored (`-c copy -f framemd5`). */
export async function sourcePackets(file: string, stream: 'v' | 'a'): Promise<SourceStream> {
  const md5 = (await ffmpeg(['-i', file, '-map', `0:${stream}:0`, '-c', 'copy', '-f', 'framemd5', '-'])).toString();
  const tbMatch = /#tb 0: (\d+)\/(\d+)/.exec(md5);
  if (tbMatch === null) throw new Error('framemd5 without a time base');
  const probe = await run('ffprobe', ['-v', 'error', '-select_streams', `${stream}:0`, '-show_entries', 'packet=pts,flags', '-of', 'csv=p=0', file]);
  const flags = probe.stdout
    .toString()
    .trim()
    .split('\n')
    .map((l) => l.split(','));
  const packets: SourcePacket[] = [];
  for (const line of md5.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const [, dts, pts, , size, hash] = line.split(',').map((s) => s.trim());
    const i = packets.length;
    packets.push({ index: i, pts: Number(pts), dts: Number(dts), size: Number(size), key: (flags[i]?.[1] ?? '').startsWith('K'), hash: hash! });
  }
  return { tb: { num: Number(tbMatch[1]), den: Number(tbMatch[2]) }, packets };
}

/** `value` of time base `tb` in units of `clock` Hz, rounded. */
export function rescale(value: number, tb: { num: number; den: number }, clock: number): number {
  return Math.round((value * tb.num * clock) / tb.den);
}

export function md5(...parts: Uint8Array[]): string {
  const h = createHash('md5');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

// ---------------------------------------------------------------------------
// H.264 over RTP (RFC 6184, packetization-mode 1)

export const NAL = { IDR: 5, SEI: 6, SPS: 7, PPS: 8, STAP_A: 24, FU_A: 28 } as const;

/** What one RTP payload carries: the NAL unit types in it and, for FU-A, its start/end bits. */
export function payloadNals(p: Uint8Array): { kind: 'single' | 'stap-a' | 'fu-a'; types: number[]; nals: Uint8Array[]; start?: boolean; end?: boolean } {
  const type = p[0]! & 0x1f;
  if (type === NAL.STAP_A) {
    const nals: Uint8Array[] = [];
    let o = 1;
    while (o + 2 <= p.length) {
      const n = (p[o]! << 8) | p[o + 1]!;
      if (o + 2 + n > p.length) throw new RangeError(`STAP-A NAL of ${n} bytes runs past the payload`);
      nals.push(p.subarray(o + 2, o + 2 + n));
      o += 2 + n;
    }
    return { kind: 'stap-a', types: nals.map((n) => n[0]! & 0x1f), nals };
  }
  if (type === NAL.FU_A) return { kind: 'fu-a', types: [p[1]! & 0x1f], nals: [], start: (p[1]! & 0x80) !== 0, end: (p[1]! & 0x40) !== 0 };
  return { kind: 'single', types: [type], nals: [p] };
}

export interface H264Frame {
  ts: number;
  /** The frame's packets, consecutive in arrival order. */
  packets: ReceivedRtp[];
  /** Reassembled NAL units in order. */
  nals: Uint8Array[];
  /** NAL unit types in order. */
  types: number[];
  idr: boolean;
}

/**
 * Groups packets into frames by timestamp (a frame's packets are consecutive)
 * and reassembles NAL units. Throws if FU-A fragments don't chain.
 */
export function h264Frames(pkts: ReceivedRtp[]): H264Frame[] {
  const frames: H264Frame[] = [];
  let fu: Uint8Array[] | null = null;
  let fuHeader = 0;
  for (const p of pkts) {
    let f = frames[frames.length - 1];
    if (f === undefined || f.ts !== p.ts) {
      f = { ts: p.ts, packets: [], nals: [], types: [], idr: false };
      frames.push(f);
    }
    f.packets.push(p);
    const d = payloadNals(p.payload);
    if (d.kind === 'fu-a') {
      if (d.start) {
        fu = [];
        fuHeader = (p.payload[0]! & 0xe0) | (p.payload[1]! & 0x1f);
      }
      if (fu === null) throw new RangeError(`FU-A continuation without a start (seq ${p.seq})`);
      fu.push(p.payload.subarray(2));
      if (d.end) {
        const nal = Buffer.concat([Buffer.from([fuHeader]), ...fu]);
        f.nals.push(nal);
        f.types.push(fuHeader & 0x1f);
        fu = null;
      }
    } else {
      for (const n of d.nals) {
        f.nals.push(n);
        f.types.push(n[0]! & 0x1f);
      }
    }
    if (d.types.includes(NAL.IDR)) f.idr = true;
  }
  return frames;
}

/**
 * md5 of a frame as an MP4 sample (4-byte lengths), without the SPS/PPS the
 * payloader inserts before IDRs (MP4 keeps them in avcC, not in samples).
 */
export function avccHash(f: H264Frame): string {
  const parts: Uint8Array[] = [];
  for (const n of f.nals) {
    const type = n[0]! & 0x1f;
    if (type === NAL.SPS || type === NAL.PPS) continue;
    const len = Buffer.alloc(4);
    len.writeUInt32BE(n.length);
    parts.push(len, n);
  }
  return md5(...parts);
}

/** The AUs of one AAC-hbr payload (13-bit sizes, 3-bit indexes); null for a fragment of a larger AU. */
export function aacAus(p: Uint8Array): Uint8Array[] | null {
  const headerBits = (p[0]! << 8) | p[1]!;
  const headers = headerBits / 16;
  if (!Number.isInteger(headers)) throw new RangeError(`AU-headers-length ${headerBits} is not a multiple of 16`);
  const aus: Uint8Array[] = [];
  let o = 2 + 2 * headers;
  for (let i = 0; i < headers; i++) {
    const size = ((p[2 + 2 * i]! << 8) | p[3 + 2 * i]!) >> 3;
    if (o + size > p.length) return null;
    aus.push(p.subarray(o, o + size));
    o += size;
  }
  return aus;
}

// ---------------------------------------------------------------------------
// GStreamer

let gstElements: Map<string, boolean> | undefined;
/** Whether gst-inspect-1.0 knows every element in `names`. */
export function hasGstElements(names: string[]): boolean {
  gstElements ??= new Map();
  return names.every((n) => {
    let ok = gstElements!.get(n);
    if (ok === undefined) {
      ok = spawnSync('gst-inspect-1.0', ['--exists', n], { stdio: 'ignore' }).status === 0;
      gstElements!.set(n, ok);
    }
    return ok;
  });
}

/** Reads a metadata=print / ametadata=print file: one { pts, value } per frame for `key`. */
export async function readMetadataPrint(file: string, key: string): Promise<{ pts: number; value: number }[]> {
  const text = await readFile(file, 'utf8');
  const out: { pts: number; value: number }[] = [];
  let pts = NaN;
  for (const line of text.split('\n')) {
    const m = /pts_time:([-\d.e]+)/.exec(line);
    if (m) {
      pts = Number(m[1]);
      continue;
    }
    if (line.startsWith(`${key}=`)) out.push({ pts, value: Number(line.slice(key.length + 1)) });
  }
  return out;
}

// ---------------------------------------------------------------------------
// Receiving every track of a session

/** RTP/RTCP receivers on 127.0.0.1 for `tracks` tracks at base + 2·i (RTCP on +1). */
export class TrackSinks {
  readonly base: number;
  readonly rtp: ReceivedRtp[][];
  readonly rtcp: { at: number; msg: Buffer }[][];
  private readonly sockets: dgram.Socket[];

  private constructor(base: number, sockets: dgram.Socket[]) {
    this.base = base;
    this.sockets = sockets;
    const tracks = sockets.length / 2;
    this.rtp = Array.from({ length: tracks }, () => []);
    this.rtcp = Array.from({ length: tracks }, () => []);
    sockets.forEach((s, k) => {
      const track = k >> 1;
      if (k % 2 === 0) {
        s.on('message', (msg) => {
          const p = parseRtp(msg, performance.now());
          if (p !== null) this.rtp[track]!.push(p);
        });
      } else {
        s.on('message', (msg) => this.rtcp[track]!.push({ at: performance.now(), msg: Buffer.from(msg) }));
      }
    });
  }

  static async open(tracks: number): Promise<TrackSinks> {
    const { base, sockets } = await bindPortBlock(2 * tracks, (k) => (k % 2 === 0 ? 8 * 1024 * 1024 : 0));
    return new TrackSinks(base, sockets);
  }

  /** Resolves once `pred` holds (checked every 10 ms); rejects after `timeoutMs`. */
  async until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what} (${this.rtp.map((r) => r.length).join('/')} packets)`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  close(): void {
    for (const s of this.sockets) s.close();
  }
}

/**
 * Receivers in a thread of their own: arrival times stay true while the main
 * thread (which also runs the server under test) is busy, e.g. compiling a
 * route on its first call. Packets are handed over by `take()`.
 */
export class ThreadedSinks {
  readonly base: number;
  private readonly worker: Worker;

  private constructor(base: number, worker: Worker) {
    this.base = base;
    this.worker = worker;
  }

  static async open(tracks: number): Promise<ThreadedSinks> {
    const worker = new Worker(THREADED_SINK_SOURCE, { eval: true, workerData: { tracks } });
    const base = await new Promise<number>((resolve, reject) => {
      worker.once('message', (m: { base?: number; error?: string }) => (m.base !== undefined ? resolve(m.base) : reject(new Error(m.error))));
      worker.once('error', reject);
    });
    return new ThreadedSinks(base, worker);
  }

  /** Everything received so far, per track (arrival times on this thread's clock). */
  take(): Promise<ReceivedRtp[][]> {
    return new Promise((resolve) => {
      this.worker.once('message', (m: { rtp: { at: number; msg: Uint8Array }[][]; origin: number }) => {
        const shift = m.origin - performance.timeOrigin;
        resolve(m.rtp.map((list) => list.map((r) => parseRtp(Buffer.from(r.msg), r.at + shift)).filter((p): p is ReceivedRtp => p !== null)));
      });
      this.worker.postMessage('take');
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

const THREADED_SINK_SOURCE = `
const dgram = require('node:dgram');
const { parentPort, workerData } = require('node:worker_threads');
const rtp = Array.from({ length: workerData.tracks }, () => []);
function bind(s, port) {
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.bind(port, '127.0.0.1', () => { s.off('error', reject); resolve(); });
  });
}
(async () => {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 40000 + 2 * Math.floor(Math.random() * 9000);
    const sockets = [];
    try {
      for (let k = 0; k < 2 * workerData.tracks; k++) {
        const s = dgram.createSocket('udp4');
        sockets.push(s);
        await bind(s, base + k);
        if (k % 2 === 0) {
          s.setRecvBufferSize(8 * 1024 * 1024);
          const list = rtp[k >> 1];
          s.on('message', (msg) => list.push({ at: performance.now(), msg }));
        }
      }
      parentPort.on('message', () => parentPort.postMessage({ rtp, origin: performance.timeOrigin }));
      parentPort.postMessage({ base });
      return;
    } catch {
      for (const s of sockets) s.close();
    }
  }
  parentPort.postMessage({ error: 'no free port block' });
})();
`;

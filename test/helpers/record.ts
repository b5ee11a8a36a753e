/**
 * ffmpeg as the sender of record sessions: the source clip (H.264 with
 * B-frames + Opus in MP4), its reference hashes (decoded frames, Opus packets
 * as stored), a bounded `-f rtp` push, the sender's own SDP, a UDP tap that
 * timestamps and forwards what a peer sends, and helpers to compare runs of
 * hashes.
 */
import dgram from 'node:dgram';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ffmpeg, parseFrameMd5, run, startFfmpeg } from './ffmpeg.js';
import { bindPortBlock, parseRtp, type ReceivedRtp } from './rtp.js';
import type { TestServer } from './server.js';

/**
 * H.264 (2 B-frames, a keyframe every 25 frames, no scene cuts) + Opus mono
 * (or AAC) in MP4. Audio is a chirp so that no two audio packets are alike and
 * a received packet maps to one source packet by its hash.
 */
export async function makeRecordSource(file: string, seconds: number, audio: 'opus' | 'aac' = 'opus'): Promise<void> {
  await ffmpeg([
    '-f',
    'lavfi',
    '-i',
    'testsrc2=size=320x240:rate=25',
    '-f',
    'lavfi',
    '-i',
    "aevalsrc='0.3*sin(2*PI*(300+150*t)*t)':s=48000",
    '-t',
    String(seconds),
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
    '-pix_fmt',
    'yuv420p',
    '-c:a',
    audio === 'aac' ? 'aac' : 'libopus',
    '-b:a',
    audio === 'aac' ? '96k' : '64k',
    '-y',
    file,
  ]);
}

export interface Reference {
  /** Decoded video frames in presentation order (`-fps_mode passthrough -f framemd5`). */
  frames: string[];
  /** Opus packets as stored (`-c:a copy -f framemd5`). */
  opus: string[];
  opusSizes: number[];
}

/** Decoded-frame hashes of the first video stream of `input` (any container ffmpeg reads). */
export async function decodedFrames(input: string[], timeoutMs = 60000): Promise<{ hashes: string[]; stderr: string }> {
  const r = await run(
    'ffmpeg',
    ['-hide_banner', '-nostdin', '-loglevel', 'error', ...input, '-map', '0:v:0', '-fps_mode', 'passthrough', '-f', 'framemd5', '-'],
    timeoutMs,
  );
  if (r.code !== 0) throw new Error(`ffmpeg decode of ${input.join(' ')} failed (${r.code}): ${r.stderr.slice(-2000)}`);
  return { hashes: parseFrameMd5(r.stdout.toString()).map((f) => f.hash), stderr: r.stderr };
}

/** Packet hashes and sizes of the first audio stream of `file`, copied (not decoded). */
export async function audioPackets(file: string): Promise<{ hashes: string[]; sizes: number[] }> {
  const f = parseFrameMd5((await ffmpeg(['-i', file, '-map', '0:a:0', '-c:a', 'copy', '-f', 'framemd5', '-'])).toString());
  return { hashes: f.map((x) => x.hash), sizes: f.map((x) => x.size) };
}

export async function reference(file: string): Promise<Reference> {
  const [v, a] = await Promise.all([decodedFrames(['-i', file]), audioPackets(file)]);
  return { frames: v.hashes, opus: a.hashes, opusSizes: a.sizes };
}

export interface PushOptions {
  /** Where the video and audio RTP go (RTCP to port + 1). */
  videoPort: number;
  audioPort: number;
  sdpFile?: string;
  /** Output duration bound (-t), seconds. */
  seconds?: number;
  /** Loop the input (-stream_loop -1); needs `seconds`. */
  loop?: boolean;
  /** -rtpflags send_bye: an RTCP SR + BYE per track at the end. */
  bye?: boolean;
  /** Real-time pacing (-re); default true. */
  realtime?: boolean;
}

/** ffmpeg pushing the clip's video and audio as two RTP outputs, bounded in time. */
export function pushArgs(src: string, o: PushOptions): string[] {
  const args: string[] = [];
  if (o.realtime !== false) args.push('-re');
  if (o.loop === true) args.push('-stream_loop', '-1');
  args.push('-i', src);
  const out = (map: string, port: number): string[] => {
    const a = ['-map', map, '-c', 'copy'];
    if (o.seconds !== undefined) a.push('-t', String(o.seconds));
    if (o.bye === true) a.push('-rtpflags', 'send_bye');
    return [...a, '-f', 'rtp', `rtp://127.0.0.1:${port}`];
  };
  args.push(...out('0:v', o.videoPort), ...out('0:a', o.audioPort));
  if (o.sdpFile !== undefined) args.push('-sdp_file', o.sdpFile);
  return args;
}

export function push(src: string, o: PushOptions, maxMs = 60000): ReturnType<typeof startFfmpeg> {
  return startFfmpeg(pushArgs(src, o), maxMs);
}

/**
 * ffmpeg's own SDP for the clip: a short push (0.2 s, not real time) to a
 * bound UDP sink of ours, so nothing answers with ICMP errors.
 */
export async function senderSdp(src: string, dir: string): Promise<string> {
  const sink = await UdpTap.open(null);
  try {
    const sdpFile = path.join(dir, `sender-${sink.port}.sdp`);
    await ffmpeg(pushArgs(src, { videoPort: sink.port, audioPort: sink.port + 2, sdpFile, seconds: 0.2, realtime: false }), 20000);
    return await readFile(sdpFile, 'utf8');
  } finally {
    sink.close();
  }
}

/** One datagram a tap saw: when, on which of its ports (0 RTP / 1 RTCP of track k at 2k, 2k+1), and its bytes. */
export interface Tapped {
  at: number;
  socket: number;
  msg: Buffer;
}

/**
 * UDP sockets on 127.0.0.1 at base .. base + 2·tracks - 1 (track k's RTP at
 * base + 2k, its RTCP at base + 2k + 1) that record every datagram with its
 * arrival time (performance.now()) and, when given the targets' RTP ports,
 * forward it at once to track k's target (RTCP to its port + 1): a
 * transparent hop that tells what a peer sent and when.
 */
export class UdpTap {
  readonly port: number;
  readonly seen: Tapped[] = [];
  private readonly sockets: dgram.Socket[];
  private readonly targets: readonly number[] | null;

  private constructor(port: number, sockets: dgram.Socket[], targets: readonly number[] | null) {
    this.port = port;
    this.sockets = sockets;
    this.targets = targets;
    sockets.forEach((s, k) =>
      s.on('message', (msg, rinfo) => {
        const to = this.targets?.[k >> 1];
        // What the target says back (receiver reports) is not the peer's.
        if (to !== undefined && rinfo.port === to + (k & 1)) return;
        this.seen.push({ at: performance.now(), socket: k, msg });
        if (to !== undefined) s.send(msg, to + (k & 1), '127.0.0.1');
      }),
    );
  }

  /** `targets`: each track's RTP port to forward to (null: only record, for `tracks` tracks). */
  static async open(targets: readonly number[] | null, tracks = targets?.length ?? 2): Promise<UdpTap> {
    const { base, sockets } = await bindPortBlock(2 * tracks, () => 8 * 1024 * 1024);
    return new UdpTap(base, sockets, targets);
  }

  /** The RTP packets seen on track `k`'s RTP port, parsed. */
  rtp(k: number): ReceivedRtp[] {
    const out: ReceivedRtp[] = [];
    for (const s of this.seen) {
      if (s.socket !== 2 * k) continue;
      const p = parseRtp(s.msg, s.at);
      if (p !== null) out.push(p);
    }
    return out;
  }

  /** The RTCP datagrams seen on track `k`'s RTCP port. */
  rtcp(k: number): Tapped[] {
    return this.seen.filter((s) => s.socket === 2 * k + 1);
  }

  close(): void {
    for (const s of this.sockets) s.close();
  }
}

export interface SenderReport {
  ssrc: number;
  /** NTP timestamp as Unix ms. */
  ntpMs: number;
  rtpTs: number;
  packets: number;
  octets: number;
}

/** Sender reports in an RTCP compound packet (RFC 3550 6.4.1). */
export function senderReports(msg: Uint8Array): SenderReport[] {
  const out: SenderReport[] = [];
  const v = Buffer.from(msg.buffer, msg.byteOffset, msg.byteLength);
  let o = 0;
  while (o + 4 <= v.length) {
    const len = (v.readUInt16BE(o + 2) + 1) * 4;
    if (v[o + 1] === 200 && o + 28 <= v.length) {
      const ntpMs = (v.readUInt32BE(o + 8) - 2208988800) * 1000 + (v.readUInt32BE(o + 12) / 2 ** 32) * 1000;
      out.push({ ssrc: v.readUInt32BE(o + 4), ntpMs, rtpTs: v.readUInt32BE(o + 16), packets: v.readUInt32BE(o + 20), octets: v.readUInt32BE(o + 24) });
    }
    o += len;
  }
  return out;
}

/**
 * How far a sender report's RTP timestamp is from the stream's own clock, in
 * ms: the packet received last before the report (or the first one, for a
 * report ahead of all packets), extrapolated to the report's arrival.
 */
export function reportSkewMs(sr: SenderReport, at: number, packets: readonly ReceivedRtp[], clockRate: number): number {
  let p = packets[0];
  for (const x of packets) {
    if (x.at > at) break;
    p = x;
  }
  if (p === undefined) return NaN;
  const expected = p.ts + ((at - p.at) * clockRate) / 1000;
  const diff = (((sr.rtpTs - Math.round(expected)) | 0) * 1000) / clockRate;
  return diff;
}

/** Whether an RTCP compound packet holds a BYE. */
export function hasBye(msg: Uint8Array): boolean {
  let o = 0;
  while (o + 4 <= msg.length) {
    if (msg[o + 1] === 203) return true;
    o += (((msg[o + 2]! << 8) | msg[o + 3]!) + 1) * 4;
  }
  return false;
}

/** Saves GET /v1/recordings/:name/tracks/:index to `file`; returns its content type. */
export async function downloadTrack(server: TestServer, name: string, index: number, file: string): Promise<string> {
  const res = await fetch(`${server.url}/v1/recordings/${name}/tracks/${index}`);
  if (res.status !== 200) throw new Error(`GET track ${index} of ${name}: ${res.status} ${await res.text()}`);
  await writeFile(file, Buffer.from(await res.arrayBuffer()));
  return res.headers.get('content-type') ?? '';
}

/** Length of the common prefix of two hash lists. */
export function commonPrefix(a: readonly string[], b: readonly string[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

/**
 * Where `got` sits in `source` repeated (a looped source): the index of its
 * first element and whether all of it follows the source contiguously,
 * wrapping at the end. The source's elements must be distinct.
 */
export function cyclicRun(got: readonly string[], source: readonly string[]): { start: number; contiguous: number } {
  if (got.length === 0) return { start: -1, contiguous: 0 };
  const start = source.indexOf(got[0]!);
  if (start < 0) return { start, contiguous: 0 };
  let n = 0;
  while (n < got.length && got[n] === source[(start + n) % source.length]) n++;
  return { start, contiguous: n };
}

/**
 * Real packet streams for the packet targets' seeds: the fixture H.264 files and
 * an AAC (ADTS) seed, packetized by offcast's own payloaders, and the encoding
 * that turns a packet sequence into the bytes a target takes.
 *
 * Sequence encoding, repeated: a flags byte (bit 0 marker, bit 1 packets lost
 * before this one, bit 2 the RTP timestamp moves on), a 16-bit big-endian payload
 * length, the payload (cut at the end of the input).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { AacPayloader } from '../../../offload/codecs/aac/payloader.js';
import { H264Payloader } from '../../../offload/codecs/h264/payloader.js';
import { parseAdtsFrames } from '../../../storage/aac.js';
import { openAnnexB } from '../../../storage/h264/annexb.js';
import { concat, fixture, seedFile, u16be, u32be } from '../lib.js';

export interface SeqPacket {
  payload: Uint8Array;
  marker: boolean;
  lost: boolean;
  nextTs: boolean;
}

export function encodeSequence(packets: readonly SeqPacket[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const p of packets) {
    parts.push(new Uint8Array([(p.marker ? 1 : 0) | (p.lost ? 2 : 0) | (p.nextTs ? 4 : 0)]), u16be(p.payload.length), p.payload);
  }
  return concat(parts);
}

/** Decodes a sequence (any bytes are one) and calls `each` per packet. */
export function forEachPacket(input: Uint8Array, each: (payload: Uint8Array, ts: number, marker: boolean, lost: number) => void): void {
  let at = 0;
  let ts = 1000;
  while (at + 3 <= input.length) {
    const flags = input[at]!;
    const len = (input[at + 1]! << 8) | input[at + 2]!;
    const end = Math.min(input.length, at + 3 + len);
    if (flags & 4) ts = (ts + 3000) >>> 0;
    each(input.subarray(at + 3, end), ts, (flags & 1) !== 0, flags & 2 ? 1 + (flags >> 3) : 0);
    at = end;
  }
}

/** fast-check: packet sequences from payload arbitraries. */
export function sequenceOf(payload: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc
    .array(fc.record({ payload, marker: fc.boolean(), lost: fc.integer({ min: 0, max: 9 }).map((x) => x === 0), nextTs: fc.boolean() }), { maxLength: 40 })
    .map(encodeSequence);
}

interface Emitted {
  payload: Uint8Array;
  ts: number;
  marker: boolean;
}

async function h264Payloads(file: Uint8Array, payloadBytes: number): Promise<Emitted[]> {
  const dir = mkdtempSync(join(tmpdir(), 'offcast-fuzz-seed-'));
  try {
    const path = join(dir, 'in.h264');
    writeFileSync(path, file);
    const reader = await openAnnexB(path);
    const track = reader.probe.tracks[0]!;
    const payloader = new H264Payloader(track.h264!, { payloadBytes, spread: 0 });
    const out: Emitted[] = [];
    const emit = (p: Uint8Array, ts: number, marker: boolean): void => void out.push({ payload: p.slice(), ts, marker });
    for await (const s of reader.samples()) payloader.push(s, emit);
    payloader.flush(emit);
    await reader.close();
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function aacPayloads(adts: Uint8Array, payloadBytes: number): Emitted[] {
  const { frames } = parseAdtsFrames(adts);
  const first = frames[0]!;
  const asc = new Uint8Array([(first.objectType << 3) | (first.sampleRateIndex >> 1), ((first.sampleRateIndex & 1) << 7) | (first.channelConfiguration << 3)]);
  const payloader = new AacPayloader(
    { audioSpecificConfig: asc, objectType: first.objectType, sampleRate: first.sampleRate, channels: first.channelConfiguration },
    { payloadBytes, spread: 0 },
  );
  const out: Emitted[] = [];
  const emit = (p: Uint8Array, ts: number, marker: boolean): void => void out.push({ payload: p.slice(), ts, marker });
  let pts = 0;
  for (const f of frames) {
    payloader.push({ track: 0, data: f.data, pts, dts: pts, duration: 1024, keyframe: true }, emit);
    pts += 1024;
  }
  payloader.flush(emit);
  return out;
}

function asSequence(emitted: Emitted[]): Uint8Array {
  let last = emitted[0]?.ts ?? 0;
  return encodeSequence(
    emitted.map((e) => {
      const nextTs = e.ts !== last;
      last = e.ts;
      return { payload: e.payload, marker: e.marker, lost: false, nextTs };
    }),
  );
}

let h264Cache: Promise<Emitted[][]> | undefined;
function h264Streams(): Promise<Emitted[][]> {
  h264Cache ??= Promise.all([
    h264Payloads(seedFile('tiny.h264'), 1200),
    h264Payloads(seedFile('tiny.h264'), 100),
    h264Payloads(fixture('fixtures/h264/baseline.h264').subarray(0, 6000), 1200),
  ]);
  return h264Cache;
}

/** H.264 packet sequences (single NAL, STAP-A, FU-A), whole and in short windows. */
export async function h264Sequences(): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (const s of await h264Streams()) {
    out.push(asSequence(s));
    for (let i = 0; i < s.length; i += 8) out.push(asSequence(s.slice(i, i + 12)));
  }
  return out;
}

/** AAC-hbr packet sequences (one AU per packet, several, fragmented). */
export function aacSequences(): Uint8Array[] {
  const adts = seedFile('tone.aac');
  const out: Uint8Array[] = [];
  for (const bytes of [1200, 200, 40]) {
    const s = aacPayloads(adts, bytes);
    out.push(asSequence(s));
    for (let i = 0; i < s.length; i += 6) out.push(asSequence(s.slice(i, i + 8)));
  }
  return out;
}

/** Whole RTP packets (fixed header + payload) of the H.264 streams. */
export async function rtpStream(): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  let seq = 1;
  for (const s of await h264Streams()) {
    for (const e of s) {
      out.push(concat([new Uint8Array([0x80, (e.marker ? 0x80 : 0) | 96]), u16be(seq++ & 0xffff), u32be(e.ts), u32be(0x11223344), e.payload]));
    }
  }
  return out;
}

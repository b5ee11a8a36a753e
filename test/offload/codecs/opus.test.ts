import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Sample } from '../../../storage/types.js';
import type { PacketEmit } from '../../../offload/codecs/types.js';
import {
  opusConfig,
  opusFrameCount,
  opusFrameSamples,
  opusIsStereo,
  opusPacketError,
  opusPacketSamples,
  parseOpusPacket,
  type OpusBandwidth,
  type OpusMode,
} from '../../../storage/opus/toc.js';
import { OpusPayloader } from '../../../offload/codecs/opus/payloader.js';
import { OpusDepacketizer } from '../../../offload/codecs/opus/depacketizer.js';
import { hasFfmpeg as hasFfmpegTool, skipUnless } from '../../helpers/tools.js';

const hasFfmpeg = hasFfmpegTool();

// ---------------------------------------------------------------------------
// TOC byte (RFC 6716 3.1, Table 2).
// ---------------------------------------------------------------------------

t.test('all 32 configs match RFC 6716 Table 2', async (t) => {
  // Rows as printed in the RFC: configs, mode, bandwidth, frame sizes in ms.
  const table: Array<[first: number, last: number, mode: OpusMode, bandwidth: OpusBandwidth, ms: number[]]> = [
    [0, 3, 'silk', 'nb', [10, 20, 40, 60]],
    [4, 7, 'silk', 'mb', [10, 20, 40, 60]],
    [8, 11, 'silk', 'wb', [10, 20, 40, 60]],
    [12, 13, 'hybrid', 'swb', [10, 20]],
    [14, 15, 'hybrid', 'fb', [10, 20]],
    [16, 19, 'celt', 'nb', [2.5, 5, 10, 20]],
    [20, 23, 'celt', 'wb', [2.5, 5, 10, 20]],
    [24, 27, 'celt', 'swb', [2.5, 5, 10, 20]],
    [28, 31, 'celt', 'fb', [2.5, 5, 10, 20]],
  ];
  let checked = 0;
  for (const [first, last, mode, bandwidth, ms] of table) {
    for (let config = first; config <= last; config++) {
      const frameSamples = ms[config - first] * 48;
      // The other TOC bits (stereo, code) do not change the config.
      for (const low of [0, 1, 2, 3, 4, 7]) {
        const toc = (config << 3) | low;
        t.same(opusConfig(toc), { config, mode, bandwidth, frameSamples }, `toc 0x${toc.toString(16)}`);
        t.equal(opusFrameSamples(toc), frameSamples);
      }
      checked++;
    }
  }
  t.equal(checked, 32);
  t.ok(Object.isFrozen(opusConfig(0)), 'config rows are shared and frozen');
});

t.test('stereo flag and frame count', async (t) => {
  t.equal(opusIsStereo(0x04), true);
  t.equal(opusIsStereo(0xfb), false);
  const cases: Array<[bytes: number[], frames: number, samples: number]> = [
    [[], -1, -1],
    [[0x00], 1, 480], // config 0: SILK NB 10 ms
    [[0xf9], 2, 1920], // config 31 (20 ms), stereo 0, code 1
    [[0x7a], 2, 1920], // config 15 (20 ms), code 2
    [[0x83], -1, -1], // code 3 without its count byte
    [[0x83, 0x05], 5, 600], // config 16 (2.5 ms), 5 frames
    [[0x83, 0xff], 63, 7560], // count byte only: 63 frames (invalid, R5, but countable)
  ];
  for (const [bytes, frames, samples] of cases) {
    const packet = Uint8Array.from(bytes);
    t.equal(opusFrameCount(packet), frames, `[${bytes}] frames`);
    t.equal(opusPacketSamples(packet), samples, `[${bytes}] samples`);
  }
});

// ---------------------------------------------------------------------------
// Packet framing and validity (RFC 6716 3.2, 3.4).
// ---------------------------------------------------------------------------

function packet(...parts: Array<number | number[] | Uint8Array>): Uint8Array {
  const bytes: number[] = [];
  for (const part of parts) {
    if (typeof part === 'number') bytes.push(part);
    else bytes.push(...part);
  }
  return Uint8Array.from(bytes);
}

function filler(length: number, value = 0xaa): Uint8Array {
  return new Uint8Array(length).fill(value);
}

t.test('valid packets parse into their frames', async (t) => {
  const cases: Array<{ name: string; bytes: Uint8Array; frameLengths: number[]; padding?: number; samples: number }> = [
    { name: 'code 0, TOC only (DTX)', bytes: packet(0x00), frameLengths: [0], samples: 480 },
    { name: 'code 0, 1275-byte frame', bytes: packet(0xfc, filler(1275)), frameLengths: [1275], samples: 960 },
    { name: 'code 1, TOC only', bytes: packet(0x01), frameLengths: [0, 0], samples: 960 },
    { name: 'code 1, two 3-byte frames', bytes: packet(0x09, filler(6)), frameLengths: [3, 3], samples: 1920 },
    { name: 'code 1, two 1275-byte frames', bytes: packet(0xfd, filler(2550)), frameLengths: [1275, 1275], samples: 1920 },
    { name: 'code 2, 1-byte length', bytes: packet(0x02, 3, filler(5)), frameLengths: [3, 2], samples: 960 },
    { name: 'code 2, empty frames', bytes: packet(0x02, 0), frameLengths: [0, 0], samples: 960 },
    { name: 'code 2, 2-byte length 252+4*1', bytes: packet(0x02, 252, 1, filler(257)), frameLengths: [256, 1], samples: 960 },
    { name: 'code 2, 2-byte length 1275', bytes: packet(0x02, 255, 255, filler(1275)), frameLengths: [1275, 0], samples: 960 },
    { name: 'code 3 CBR, 3 frames', bytes: packet(0x03, 0x03, filler(6)), frameLengths: [2, 2, 2], padding: 0, samples: 1440 },
    { name: 'code 3 CBR, 120 ms of 60 ms SILK', bytes: packet(0x1b, 0x02), frameLengths: [0, 0], padding: 0, samples: 5760 },
    { name: 'code 3 CBR, 48 x 2.5 ms', bytes: packet(0x83, 48), frameLengths: new Array(48).fill(0), padding: 0, samples: 5760 },
    {
      name: 'code 3 CBR with padding',
      bytes: packet(0x03, 0x42, 2, filler(4), 0, 0),
      frameLengths: [2, 2],
      padding: 3,
      samples: 960,
    },
    {
      name: 'code 3 CBR, padding length 255 chains',
      bytes: packet(0x03, 0x41, 255, 0, 0x11, filler(254, 0)),
      frameLengths: [1],
      padding: 256,
      samples: 480,
    },
    {
      name: 'code 3 CBR, padding 255 then 3',
      bytes: packet(0x03, 0x41, 255, 3, filler(2, 0x11), filler(257, 0)),
      frameLengths: [2],
      padding: 259,
      samples: 480,
    },
    { name: 'code 3 VBR, 1/2/3', bytes: packet(0x03, 0x83, 1, 2, filler(6)), frameLengths: [1, 2, 3], padding: 0, samples: 1440 },
    {
      name: 'code 3 VBR, 2-byte length',
      bytes: packet(0x03, 0x82, 252, 1, filler(256), filler(5)),
      frameLengths: [256, 5],
      padding: 0,
      samples: 960,
    },
    {
      name: 'code 3 VBR with padding',
      bytes: packet(0x03, 0xc2, 1, 2, filler(3), 0),
      frameLengths: [2, 1],
      padding: 2,
      samples: 960,
    },
    { name: 'code 3 VBR, 1 frame (no lengths)', bytes: packet(0x03, 0x81, filler(9)), frameLengths: [9], padding: 0, samples: 480 },
  ];
  for (const { name, bytes, frameLengths, padding = 0, samples } of cases) {
    t.equal(opusPacketError(bytes), null, `${name}: valid`);
    const info = parseOpusPacket(bytes);
    t.same(info.frameLengths, frameLengths, `${name}: frame lengths`);
    t.equal(info.padding, padding, `${name}: padding`);
    t.equal(info.samples, samples, `${name}: samples`);
    t.equal(info.code, bytes[0] & 3, `${name}: code`);
    t.equal(opusPacketSamples(bytes), samples, `${name}: samples from the first bytes`);
  }
});

t.test('malformed packets name the rule they break', async (t) => {
  const cases: Array<{ name: string; bytes: Uint8Array; rule: string }> = [
    { name: 'empty', bytes: packet(), rule: 'R1' },
    { name: 'code 0, 1276-byte frame', bytes: packet(0x00, filler(1276)), rule: 'R2' },
    { name: 'code 1, even length', bytes: packet(0x01, 1), rule: 'R3' },
    { name: 'code 1, 1276-byte frames', bytes: packet(0x01, filler(2552)), rule: 'R2' },
    { name: 'code 2, no length', bytes: packet(0x02), rule: 'R4' },
    { name: 'code 2, 2-byte length cut off', bytes: packet(0x02, 252), rule: 'R4' },
    { name: 'code 2, length beyond the packet', bytes: packet(0x02, 5, 1, 2), rule: 'R4' },
    { name: 'code 2, 2-byte length beyond the packet', bytes: packet(0x02, 252, 1, filler(255)), rule: 'R4' },
    { name: 'code 2, 1276-byte second frame', bytes: packet(0x02, 0, filler(1276)), rule: 'R2' },
    { name: 'code 3, no count byte', bytes: packet(0x03), rule: 'R6' },
    { name: 'code 3, zero frames', bytes: packet(0x03, 0x00), rule: 'R5' },
    { name: 'code 3 VBR, zero frames', bytes: packet(0x03, 0x80, 1, 2), rule: 'R5' },
    { name: 'code 3, 3 x 60 ms', bytes: packet(0x1b, 0x03), rule: 'R5' },
    { name: 'code 3, 49 x 2.5 ms', bytes: packet(0x83, 49), rule: 'R5' },
    { name: 'code 3 CBR, uneven split', bytes: packet(0x03, 0x03, filler(5)), rule: 'R6' },
    { name: 'code 3 CBR, padding length cut off', bytes: packet(0x03, 0x41), rule: 'R6' },
    { name: 'code 3 CBR, padding chain cut off', bytes: packet(0x03, 0x41, 255), rule: 'R6' },
    { name: 'code 3 CBR, padding beyond the packet', bytes: packet(0x03, 0x41, 10, 1), rule: 'R6' },
    { name: 'code 3 CBR, 1276-byte frame', bytes: packet(0x03, 0x01, filler(1276)), rule: 'R2' },
    { name: 'code 3 VBR, padding length cut off', bytes: packet(0x03, 0xc1), rule: 'R7' },
    { name: 'code 3 VBR, padding beyond the packet', bytes: packet(0x03, 0xc2, 200, 1), rule: 'R7' },
    { name: 'code 3 VBR, lengths beyond the packet', bytes: packet(0x03, 0x83, 5, 5, 1, 2, 3), rule: 'R7' },
    { name: 'code 3 VBR, length field cut off', bytes: packet(0x03, 0x83, 1), rule: 'R7' },
    { name: 'code 3 VBR, 2-byte length cut off', bytes: packet(0x03, 0x82, 252), rule: 'R7' },
    { name: 'code 3 VBR, lengths run into the padding', bytes: packet(0x03, 0xc2, 2, 3, 1, 1, 0, 0), rule: 'R7' },
    { name: 'code 3 VBR, 1276-byte last frame', bytes: packet(0x03, 0x82, 0, filler(1276)), rule: 'R2' },
  ];
  for (const { name, bytes, rule } of cases) {
    const error = opusPacketError(bytes);
    t.match(error, new RegExp(`^\\[${rule}\\] `), `${name}: ${error}`);
    t.throws(() => parseOpusPacket(bytes), { name: 'RangeError', message: `Opus packet: ${error}` });
  }
  t.equal(opusPacketError(packet(0x02, 5, 1, 2)), '[R4] code 2 first frame of 5 bytes exceeds the 2 bytes remaining');
  t.equal(opusPacketError(packet(0x1b, 0x03)), '[R5] code 3 packet of 3 frames holds 180 ms, more than 120 ms');
});

t.test('every truncation of valid code 2/3 packets is rejected or shorter, never thrown', async (t) => {
  const sources = [
    packet(0x02, 252, 1, filler(257)),
    packet(0x03, 0x83, 1, 2, filler(6)),
    packet(0x03, 0xc2, 1, 2, filler(3), 0),
    packet(0x03, 0x41, 255, 3, filler(2, 0x11), filler(257, 0)),
  ];
  let thrown = 0;
  let accepted = 0;
  for (const source of sources) {
    for (let length = 0; length < source.length; length++) {
      try {
        if (opusPacketError(source.subarray(0, length)) === null) accepted++;
      } catch {
        thrown++;
      }
    }
  }
  t.equal(thrown, 0);
  // Only prefixes that are themselves well formed pass (e.g. a code 2 packet cut
  // inside its second frame, which just makes that frame shorter).
  t.ok(accepted > 0 && accepted < 100, `${accepted} prefixes are well formed`);
});

// ---------------------------------------------------------------------------
// Payloader and depacketizer.
// ---------------------------------------------------------------------------

interface Emitted {
  payload: Uint8Array;
  rtpTs: number;
  marker: boolean;
  sendTs: number;
  sync: boolean;
}

function collector(): { emit: PacketEmit; packets: Emitted[] } {
  const packets: Emitted[] = [];
  const emit: PacketEmit = (payload, rtpTs, marker, sendTs, sync) => {
    packets.push({ payload: payload.slice(), rtpTs, marker, sendTs, sync });
  };
  return { emit, packets };
}

function sampleOf(data: Uint8Array, pts: number, duration: number): Sample {
  return { track: 0, data, pts, dts: pts, duration, keyframe: true };
}

t.test('payloader: one packet per payload, rtpTs = pts', async (t) => {
  const payloader = new OpusPayloader({ payloadBytes: 1200, spread: 0 });
  t.equal(payloader.clockRate, 48000);
  const { emit, packets } = collector();
  payloader.push(sampleOf(packet(0xfc, filler(10)), 312, 960), emit);
  payloader.push(sampleOf(packet(0xfc, filler(1199)), 1272, 960), emit);
  payloader.flush(emit);
  t.same(
    packets.map((p) => [p.payload.length, p.rtpTs, p.sendTs, p.marker, p.sync]),
    [
      [11, 312, 312, false, true],
      [1200, 1272, 1272, false, true],
    ],
  );
});

t.test('payloader: an Opus packet larger than payloadBytes is an error', async (t) => {
  const payloader = new OpusPayloader({ payloadBytes: 1200, spread: 0 });
  t.throws(() => payloader.push(sampleOf(filler(1201), 59232, 960), () => {}), {
    name: 'RangeError',
    message: 'Opus packet of 1201 bytes at 1.234 s exceeds rtp.payloadBytes (1200)',
  });
  t.throws(() => new OpusPayloader({ payloadBytes: 0, spread: 0 }), RangeError);
});

t.test('payloader: empty samples are skipped and counted', async (t) => {
  const payloader = new OpusPayloader({ payloadBytes: 1200, spread: 0 });
  const { emit, packets } = collector();
  payloader.push(sampleOf(new Uint8Array(0), 0, 960), emit);
  payloader.push(sampleOf(packet(0xfc), 960, 960), emit);
  t.equal(payloader.emptySkipped, 1);
  t.same(
    packets.map((p) => p.rtpTs),
    [960],
  );
});

t.test('depacketizer: malformed packets are counted and dropped; data is a copy', async (t) => {
  const depacketizer = new OpusDepacketizer();
  t.same(depacketizer.push(packet(), 0, false, 0), []);
  t.same(depacketizer.push(packet(0x01, 1), 960, false, 0), []);
  t.same(depacketizer.push(packet(0x03, 0x00), 1920, false, 2), []);
  t.same(depacketizer.stats, { malformed: 3, dropped: 0 });
  t.match(depacketizer.lastError, /^\[R5\]/);
  const payload = packet(0xfc, 1, 2, 3);
  const frames = depacketizer.push(payload, 0xffffff00, true, 5);
  payload.fill(0);
  t.same(frames, [{ rtpTs: 0xffffff00, data: packet(0xfc, 1, 2, 3), keyframe: true }]);
  t.same(depacketizer.flush(), []);
  t.same(depacketizer.stats, { malformed: 3, dropped: 0 });
});

// ---------------------------------------------------------------------------
// Real packets from libopus (via ffmpeg), read with a minimal Ogg page walk.
// ---------------------------------------------------------------------------

interface OggWalk {
  packets: Uint8Array[];
  /** Per page: its granule position and how many packets had ended by its end. */
  pages: Array<{ granule: bigint; packetsEnded: number }>;
}

function walkOgg(file: Uint8Array): OggWalk {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const packets: Uint8Array[] = [];
  const pages: OggWalk['pages'] = [];
  let parts: Uint8Array[] = [];
  let pos = 0;
  while (pos < file.length) {
    if (view.getUint32(pos, false) !== 0x4f676753) throw new TypeError(`no OggS at ${pos}`);
    const granule = view.getBigInt64(pos + 6, true);
    const segments = file[pos + 26];
    let body = pos + 27 + segments;
    let start = body;
    for (let i = 0; i < segments; i++) {
      const lace = file[pos + 27 + i];
      body += lace;
      if (lace < 255) {
        parts.push(file.subarray(start, body));
        packets.push(Buffer.concat(parts));
        parts = [];
        start = body;
      }
    }
    if (start < body) parts.push(file.subarray(start, body));
    pages.push({ granule, packetsEnded: packets.length });
    pos = body;
  }
  return { packets, pages };
}

t.test(
  'libopus packets: TOC durations match the Ogg granules; payloader -> depacketizer is exact',
  { skip: skipUnless(hasFfmpeg, 'ffmpeg not installed: no real Opus packets') },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'offcast-opus-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const cases = [
      { ms: 2.5, channels: 2, args: ['-application', 'lowdelay'] },
      { ms: 5, channels: 1, args: [] },
      { ms: 10, channels: 1, args: ['-application', 'voip', '-b:a', '12k'] },
      { ms: 20, channels: 2, args: [] },
      { ms: 20, channels: 1, args: ['-application', 'voip', '-b:a', '24k'] },
      { ms: 40, channels: 1, args: ['-application', 'voip', '-b:a', '12k'] },
      { ms: 60, channels: 2, args: ['-b:a', '128k'] },
      { ms: 120, channels: 1, args: ['-b:a', '32k'] },
    ];
    const modesSeen = new Set<string>();
    for (const { ms, channels, args } of cases) {
      const name = `${ms} ms, ${channels} ch${args.length ? ' ' + args.join(' ') : ''}`;
      const file = join(dir, `${ms}-${channels}-${args.length}.opus`);
      execFileSync('ffmpeg', [
        '-hide_banner',
        '-loglevel',
        'error',
        '-y',
        '-f',
        'lavfi',
        '-i',
        'sine=frequency=440:sample_rate=48000:duration=1',
        '-f',
        'lavfi',
        '-i',
        'anoisesrc=color=pink:amplitude=0.1:sample_rate=48000:duration=1:seed=7',
        '-filter_complex',
        'amix=inputs=2',
        '-ac',
        String(channels),
        '-c:a',
        'libopus',
        '-frame_duration',
        String(ms),
        ...args,
        '-page_duration',
        '100000', // 100 ms pages: many granules to check
        file,
      ]);
      const { packets, pages } = walkOgg(new Uint8Array(readFileSync(file)));
      t.equal(Buffer.from(packets[0].subarray(0, 8)).toString('latin1'), 'OpusHead', `${name}: OpusHead first`);
      const audio = packets.slice(2);
      t.ok(audio.length >= 1000 / ms, `${name}: ${audio.length} audio packets`);

      // Every packet is valid and lasts the requested frame duration.
      const problems: string[] = [];
      const cumulative = [0];
      for (const p of audio) {
        const error = opusPacketError(p);
        if (error !== null) problems.push(error);
        const info = parseOpusPacket(p);
        modesSeen.add(info.mode);
        if (info.samples !== ms * 48) problems.push(`packet of ${info.samples} samples`);
        if (channels === 1 && info.stereo) problems.push('stereo flag on a mono stream');
        cumulative.push(cumulative[cumulative.length - 1] + info.samples);
      }
      t.same(problems, [], `${name}: all packets valid, ${ms * 48} samples each`);

      // Each audio page's granule is the sample count of the packets ended so far
      // (RFC 7845 4); the last page may be trimmed, so it is left out.
      let granulesChecked = 0;
      let granulesWrong = 0;
      for (const page of pages.slice(0, -1)) {
        if (page.packetsEnded <= 2) continue;
        granulesChecked++;
        if (page.granule !== BigInt(cumulative[page.packetsEnded - 2])) granulesWrong++;
      }
      t.ok(granulesChecked >= 1, `${name}: ${granulesChecked} granules checked`);
      t.equal(granulesWrong, 0, `${name}: TOC durations add up to the granules`);

      // Round trip.
      const payloader = new OpusPayloader({ payloadBytes: 1200, spread: 0 });
      const depacketizer = new OpusDepacketizer();
      const { emit, packets: sent } = collector();
      audio.forEach((p, i) => payloader.push(sampleOf(p, cumulative[i], ms * 48), emit));
      payloader.flush(emit);
      t.equal(sent.length, audio.length, `${name}: one RTP payload per packet`);
      let mismatches = 0;
      sent.forEach((p, i) => {
        const frames = depacketizer.push(p.payload, p.rtpTs, p.marker, 0);
        if (
          frames.length !== 1 ||
          frames[0].rtpTs !== cumulative[i] ||
          p.sendTs !== cumulative[i] ||
          p.marker ||
          !p.sync ||
          !Buffer.from(frames[0].data).equals(audio[i])
        ) {
          mismatches++;
        }
      });
      t.equal(mismatches, 0, `${name}: payloads, timestamps and depacketized bytes are exact`);
      t.same(depacketizer.stats, { malformed: 0, dropped: 0 });

      // A budget below the largest packet stops at the first packet that does not fit.
      const largest = Math.max(...audio.map((p) => p.length));
      const first = audio.findIndex((p) => p.length === largest);
      const small = new OpusPayloader({ payloadBytes: largest - 1, spread: 0 });
      t.throws(
        () => audio.forEach((p, i) => small.push(sampleOf(p, cumulative[i], ms * 48), () => {})),
        {
          name: 'RangeError',
          message: `Opus packet of ${largest} bytes at ${(cumulative[first] / 48000).toFixed(3)} s exceeds rtp.payloadBytes (${largest - 1})`,
        },
        `${name}: oversized packet`,
      );
    }
    t.ok(modesSeen.has('silk'), `SILK packets seen (${[...modesSeen].join(', ')})`);
    t.ok(modesSeen.has('celt'), 'CELT packets seen');
  },
);

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import {
  adtsHeader,
  buildAudioSpecificConfig,
  parseAdtsFrames,
  parseAdtsHeader,
  parseAudioSpecificConfig,
  type AudioSpecificConfig,
} from '../../storage/aac.js';
import { openMp4 } from '../../storage/mp4.js';
import { hasFfmpeg as hasFfmpegTool, skipUnless } from '../helpers/tools.js';

const hasFfmpeg = hasFfmpegTool();
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));

t.test('parseAudioSpecificConfig', async (t) => {
  const cases: [string, string, AudioSpecificConfig][] = [
    [
      'AAC-LC 44.1 kHz stereo',
      '1210',
      { objectType: 2, coreObjectType: 2, sampleRate: 44100, sampleRateIndex: 4, channelConfiguration: 2, channels: 2, frameLength: 1024 },
    ],
    [
      'AAC-LC 48 kHz mono',
      '1188',
      { objectType: 2, coreObjectType: 2, sampleRate: 48000, sampleRateIndex: 3, channelConfiguration: 1, channels: 1, frameLength: 1024 },
    ],
    [
      "ffmpeg's LC with SBR sync extension",
      '121056e500',
      { objectType: 2, coreObjectType: 2, sampleRate: 44100, sampleRateIndex: 4, channelConfiguration: 2, channels: 2, frameLength: 1024 },
    ],
    [
      'explicit 24-bit frequency 50000 Hz',
      '178061a810',
      { objectType: 2, coreObjectType: 2, sampleRate: 50000, sampleRateIndex: 15, channelConfiguration: 2, channels: 2, frameLength: 1024 },
    ],
    [
      'escape object type 42 (USAC) 48 kHz stereo',
      'f94640',
      { objectType: 42, coreObjectType: 42, sampleRate: 48000, sampleRateIndex: 3, channelConfiguration: 2, channels: 2, frameLength: 1024 },
    ],
    [
      'HE-AAC explicit: 24 kHz core, 48 kHz SBR',
      '2b118800',
      { objectType: 5, coreObjectType: 2, sampleRate: 24000, sampleRateIndex: 6, channelConfiguration: 2, channels: 2, frameLength: 1024 },
    ],
    [
      'ER AAC-LD 480',
      'b98c',
      { objectType: 23, coreObjectType: 23, sampleRate: 48000, sampleRateIndex: 3, channelConfiguration: 1, channels: 1, frameLength: 480 },
    ],
    [
      'AAC-LC 960-sample frames',
      '1214',
      { objectType: 2, coreObjectType: 2, sampleRate: 44100, sampleRateIndex: 4, channelConfiguration: 2, channels: 2, frameLength: 960 },
    ],
    [
      '7.1 (channelConfiguration 7 = 8 channels)',
      '11b8',
      { objectType: 2, coreObjectType: 2, sampleRate: 48000, sampleRateIndex: 3, channelConfiguration: 7, channels: 8, frameLength: 1024 },
    ],
    [
      'PCE-defined channels',
      '1180',
      { objectType: 2, coreObjectType: 2, sampleRate: 48000, sampleRateIndex: 3, channelConfiguration: 0, channels: 0, frameLength: 1024 },
    ],
  ];
  for (const [name, bytes, want] of cases) t.same(parseAudioSpecificConfig(hex(bytes)), want, name);

  const bad: [string, Uint8Array, typeof TypeError | typeof RangeError, RegExp][] = [
    ['empty', new Uint8Array(0), RangeError, /needs more than its 0 bytes/],
    ['one byte', hex('12'), RangeError, /needs more than its 1 bytes/],
    ['object type 0', hex('0010'), TypeError, /audioObjectType 0/],
    ['reserved frequency index 13', hex('1690'), TypeError, /reserved samplingFrequencyIndex 13/],
    ['explicit frequency cut', hex('178061'), RangeError, /needs more than its 3 bytes/],
    ['explicit frequency 0', hex('1780000010'), TypeError, /explicit sampling frequency is 0/],
    ['HE-AAC cut in its extension', hex('2b11'), RangeError, /needs more/],
  ];
  for (const [name, bytes, type, message] of bad) t.throws(() => parseAudioSpecificConfig(bytes), { constructor: type, message }, name);
  t.same(parseAudioSpecificConfig(hex('12100000')), parseAudioSpecificConfig(hex('1210')), 'trailing bytes ignored');
});

t.test('buildAudioSpecificConfig', async (t) => {
  t.same(buildAudioSpecificConfig(2, 44100, 2), hex('1210'));
  t.same(buildAudioSpecificConfig(2, 48000, 1), hex('1188'));
  t.same(buildAudioSpecificConfig(2, 50000, 2), hex('178061a810'), 'explicit frequency');
  for (const [aot, rate, ch] of [
    [2, 8000, 1],
    [1, 96000, 6],
    [4, 7350, 7],
    [30, 12345, 15],
  ] as const) {
    const asc = parseAudioSpecificConfig(buildAudioSpecificConfig(aot, rate, ch));
    t.match(asc, { objectType: aot, sampleRate: rate, channelConfiguration: ch }, `round trip ${aot}/${rate}/${ch}`);
  }
  t.throws(() => buildAudioSpecificConfig(0, 48000, 2), RangeError);
  t.throws(() => buildAudioSpecificConfig(31, 48000, 2), RangeError);
  t.throws(() => buildAudioSpecificConfig(2, 0, 2), RangeError);
  t.throws(() => buildAudioSpecificConfig(2, 48000, 16), RangeError);
});

t.test('adtsHeader: byte layout', async (t) => {
  // LC (profile 1), 44.1 kHz (4), stereo, 371-byte AU -> frame_length 378 = 0x17a.
  const lc = parseAudioSpecificConfig(hex('1210'));
  t.same(adtsHeader(lc, 371), hex('fff150802f5ffc'));
  // 48 kHz (3), 7 channels config, AU 8184 (frame 8191 = 0x1fff, the maximum).
  const big = { coreObjectType: 2, sampleRateIndex: 3, channelConfiguration: 7 };
  t.same(adtsHeader(big, 8184), hex('fff14dc3fffffc'));
  // HE-AAC is written as its LC core.
  t.same(adtsHeader(parseAudioSpecificConfig(hex('2b118800')), 0), adtsHeader({ coreObjectType: 2, sampleRateIndex: 6, channelConfiguration: 2 }, 0));
  const out = new Uint8Array(20).fill(0xaa);
  t.equal(adtsHeader(lc, 10, out, 5), out, "writes into the caller's buffer");
  t.same(out.subarray(5, 12), adtsHeader(lc, 10));
  t.equal(out[4], 0xaa);
  t.equal(out[12], 0xaa);

  t.throws(() => adtsHeader(lc, 8185), RangeError, 'AU too long');
  t.throws(() => adtsHeader(lc, -1), RangeError);
  t.throws(() => adtsHeader({ coreObjectType: 42, sampleRateIndex: 3, channelConfiguration: 2 }, 10), RangeError, 'object type');
  t.throws(() => adtsHeader({ coreObjectType: 2, sampleRateIndex: 15, channelConfiguration: 2 }, 10), RangeError, 'explicit rate');
  t.throws(() => adtsHeader({ coreObjectType: 2, sampleRateIndex: 3, channelConfiguration: 8 }, 10), RangeError, 'channel config');
  t.throws(() => adtsHeader(lc, 10, new Uint8Array(10), 4), RangeError, 'no room');
});

t.test('ADTS round trips', async (t) => {
  const configs = ['1210', '1188', '1390', '1588', '11b8'];
  for (const c of configs) {
    const asc = parseAudioSpecificConfig(hex(c));
    const aus = [0, 1, 100, 1500, 8184].map((n, i) => Uint8Array.from({ length: n }, (_, k) => (k * 7 + i) & 0xff));
    const stream = new Uint8Array(aus.reduce((s, a) => s + 7 + a.length, 0));
    let pos = 0;
    for (const au of aus) {
      adtsHeader(asc, au.length, stream, pos);
      stream.set(au, pos + 7);
      pos += 7 + au.length;
    }
    const { frames, end } = parseAdtsFrames(stream);
    t.equal(end, stream.length, `${c}: all consumed`);
    t.same(
      frames.map((f) => [...f.data]),
      aus.map((a) => [...a]),
      `${c}: AUs back`,
    );
    t.match(frames[0], {
      offset: 0,
      objectType: 2,
      sampleRateIndex: asc.sampleRateIndex,
      sampleRate: asc.sampleRate,
      channelConfiguration: asc.channelConfiguration,
      headerLength: 7,
      rawDataBlocks: 1,
      frameLength: 7,
    });
    const cut = parseAdtsFrames(stream.subarray(0, stream.length - 1));
    t.equal(cut.frames.length, 4, `${c}: a cut last frame is left out`);
    t.equal(cut.end, stream.length - 7 - 8184);
  }
});

t.test('parseAdtsFrames / parseAdtsHeader negatives and CRC', async (t) => {
  const lc = parseAudioSpecificConfig(hex('1210'));
  const frame = (n: number): Uint8Array => {
    const f = new Uint8Array(7 + n);
    adtsHeader(lc, n, f, 0);
    return f;
  };
  const two = new Uint8Array([...frame(3), 0x00, ...frame(3)]);
  t.throws(() => parseAdtsFrames(two), { constructor: TypeError, message: /no syncword at byte 10/ }, 'lost sync');
  t.same(parseAdtsFrames(new Uint8Array(0)), { frames: [], end: 0 });
  t.same(parseAdtsFrames(frame(3).subarray(0, 5)), { frames: [], end: 0 }, 'header cut: nothing, end 0');
  t.throws(() => parseAdtsHeader(frame(3), 5), { constructor: RangeError, message: /header at byte 5 is cut \(5 bytes left\)/ }, 'header cut');
  t.throws(() => parseAdtsHeader(hex('fff9508000bffc00'), 0), { constructor: RangeError, message: /declares 5 bytes, less than its 7-byte header/ });
  t.throws(() => parseAdtsHeader(hex('fff7508000fffc'), 0), TypeError, 'layer bits set: not ADTS');
  // protection_absent 0: a 9-byte header (CRC), MPEG-2 ID bit set.
  const crc = hex('fff85080017ffc1234abcd');
  const h = parseAdtsHeader(crc, 0);
  t.match(h, { headerLength: 9, frameLength: 11, objectType: 2, sampleRate: 44100 });
  t.same([...parseAdtsFrames(crc).frames[0]!.data], [0xab, 0xcd]);
});

t.test("ADTS equals ffmpeg's adts muxer for every AU of an MP4", { skip: skipUnless(hasFfmpeg, 'ffmpeg not installed') }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'offcast-aac-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const mp4 = join(dir, 'a.mp4');
  execFileSync('ffmpeg', [
    '-hide_banner',
    '-loglevel',
    'error',
    '-y',
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=300:sample_rate=32000:duration=1.5',
    '-c:a',
    'aac',
    '-ac',
    '2',
    mp4,
  ]);
  const ffAdts = new Uint8Array(execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-i', mp4, '-c:a', 'copy', '-f', 'adts', '-']));
  const reader = await openMp4(mp4);
  t.teardown(() => reader.close());
  const asc = parseAudioSpecificConfig(reader.probe.tracks[0]!.aac!.audioSpecificConfig);
  const parts: number[] = [];
  let count = 0;
  for await (const s of reader.samples()) {
    parts.push(...adtsHeader(asc, s.data.length), ...s.data);
    count++;
  }
  t.ok(count > 40);
  t.equal(Buffer.compare(Buffer.from(parts), Buffer.from(ffAdts)), 0, 'byte-identical ADTS stream');
  const { frames, end } = parseAdtsFrames(ffAdts);
  t.equal(end, ffAdts.length);
  t.equal(frames.length, count);
});

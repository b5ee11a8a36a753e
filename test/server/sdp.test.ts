// SDP of play sessions: server/sdp.ts unit by unit, then the /sdp route, parsed
// with sdp-transform and handed to ffmpeg as a real receiver.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import sdpTransform from 'sdp-transform';
import type { Encoding } from '../../storage/types.js';
import type { TrackInfo } from '../../storage/types.js';
import { buildSdp, fmtp, rtpmap, staticPayloadType, type SdpTrack } from '../../server/sdp.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeWav } from '../helpers/media.js';
import { hasFfmpeg, NO_FFMPEG, run } from '../helpers/ffmpeg.js';
import { freePortPair } from '../helpers/play.js';
import { skipUnless } from '../helpers/tools.js';

const fixtures = new URL('../fixtures/audio/', import.meta.url);

function audioInfo(codec: string, clockRate: number, channels: number, extra: Partial<TrackInfo> = {}): TrackInfo {
  return { index: 0, kind: 'audio', codec, supported: true, clockRate, channels, durationMs: 1000, ...extra };
}

// A real SPS/PPS pair (x264 baseline 320x240) and an AAC-LC 44.1 kHz stereo config.
const SPS = Uint8Array.from(Buffer.from('6742c00d8c8d40a0fd00f08846a0', 'hex'));
const PPS = Uint8Array.from(Buffer.from('68ce3c80', 'hex'));
const h264Info: TrackInfo = {
  index: 0,
  kind: 'video',
  codec: 'h264',
  supported: true,
  clockRate: 90000,
  durationMs: 1000,
  h264: { sps: [SPS], pps: [PPS], profileLevelId: '42c00d', width: 320, height: 240 },
};
const aacInfo = audioInfo('aac', 44100, 2, { aac: { audioSpecificConfig: Uint8Array.of(0x12, 0x10), objectType: 2, sampleRate: 44100, channels: 2 } });

t.test('static payload types (RFC 3551 table 4)', async (t) => {
  const cases: [Encoding, number, number, number | null][] = [
    ['PCMU', 8000, 1, 0],
    ['PCMA', 8000, 1, 8],
    ['L16', 44100, 2, 10],
    ['L16', 44100, 1, 11],
    ['L16', 44100, 6, null],
    ['L16', 48000, 2, null],
    ['L16', 16000, 1, null],
    ['opus', 48000, 2, null],
    ['H264', 90000, 1, null],
    ['MPEG4-GENERIC', 44100, 2, null],
  ];
  for (const [enc, rate, ch, pt] of cases) t.equal(staticPayloadType(enc, rate, ch), pt, `${enc} ${rate} Hz ${ch} ch -> ${pt ?? 'dynamic'}`);
});

t.test('rtpmap per codec', async (t) => {
  const cases: [string, Parameters<typeof rtpmap>[0], ReturnType<typeof rtpmap>][] = [
    [
      'opus mono is still opus/48000/2 (RFC 7587)',
      { encoding: 'opus', clockRate: 48000, channels: 1, payloadType: 111 },
      { payload: 111, codec: 'opus', rate: 48000, encoding: 2 },
    ],
    ['opus stereo', { encoding: 'opus', clockRate: 48000, channels: 2, payloadType: 96 }, { payload: 96, codec: 'opus', rate: 48000, encoding: 2 }],
    ['L16 44.1k stereo', { encoding: 'L16', clockRate: 44100, channels: 2, payloadType: 10 }, { payload: 10, codec: 'L16', rate: 44100, encoding: 2 }],
    ['L16 44.1k mono has no channel count', { encoding: 'L16', clockRate: 44100, channels: 1, payloadType: 11 }, { payload: 11, codec: 'L16', rate: 44100 }],
    ['L16 48k stereo', { encoding: 'L16', clockRate: 48000, channels: 2, payloadType: 96 }, { payload: 96, codec: 'L16', rate: 48000, encoding: 2 }],
    ['PCMU', { encoding: 'PCMU', clockRate: 8000, channels: 1, payloadType: 0 }, { payload: 0, codec: 'PCMU', rate: 8000 }],
    ['PCMA', { encoding: 'PCMA', clockRate: 8000, channels: 1, payloadType: 8 }, { payload: 8, codec: 'PCMA', rate: 8000 }],
    ['H264', { encoding: 'H264', clockRate: 90000, payloadType: 96 }, { payload: 96, codec: 'H264', rate: 90000 }],
    [
      'AAC stereo',
      { encoding: 'MPEG4-GENERIC', clockRate: 44100, channels: 2, payloadType: 97 },
      { payload: 97, codec: 'MPEG4-GENERIC', rate: 44100, encoding: 2 },
    ],
    [
      'AAC mono keeps its channel count',
      { encoding: 'MPEG4-GENERIC', clockRate: 48000, channels: 1, payloadType: 97 },
      { payload: 97, codec: 'MPEG4-GENERIC', rate: 48000, encoding: 1 },
    ],
  ];
  for (const [name, input, want] of cases) t.same(rtpmap(input), want, name);
});

t.test('fmtp per codec', async (t) => {
  t.equal(fmtp({ encoding: 'opus', channels: 1, info: audioInfo('opus', 48000, 1) }), 'sprop-stereo=0', 'opus mono');
  t.equal(fmtp({ encoding: 'opus', channels: 2, info: audioInfo('opus', 48000, 2) }), 'sprop-stereo=1;stereo=1', 'opus stereo');
  t.equal(fmtp({ encoding: 'L16', channels: 2, info: audioInfo('pcm_s16le', 48000, 2) }), null, 'L16 has none');
  t.equal(fmtp({ encoding: 'PCMU', channels: 1, info: audioInfo('pcm_s16le', 8000, 1) }), null, 'PCMU has none');
  t.equal(
    fmtp({ encoding: 'H264', info: h264Info }),
    `packetization-mode=1;profile-level-id=42c00d;sprop-parameter-sets=${Buffer.from(SPS).toString('base64')},${Buffer.from(PPS).toString('base64')}`,
    'H.264: mode 1, profile-level-id and the parameter sets in base64',
  );
  t.equal(fmtp({ encoding: 'H264', info: { ...h264Info, h264: undefined } as TrackInfo }), 'packetization-mode=1', 'H.264 without parameter sets');
  t.equal(
    fmtp({ encoding: 'MPEG4-GENERIC', channels: 2, info: aacInfo }),
    'streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1210',
    'AAC-hbr (RFC 3640 3.3.6) with the AudioSpecificConfig in hex',
  );
});

/** Parses fmtp config text `a=b;c=d` into a map. */
function params(config: string): Record<string, string> {
  return Object.fromEntries(
    config.split(';').map((kv) => {
      const eq = kv.indexOf('=');
      return [kv.slice(0, eq).trim(), kv.slice(eq + 1).trim()];
    }),
  );
}

t.test('buildSdp: one document, every track', async (t) => {
  const tracks: SdpTrack[] = [
    { kind: 'video', encoding: 'H264', payloadType: 96, clockRate: 90000, port: 5004, info: h264Info },
    { kind: 'audio', encoding: 'MPEG4-GENERIC', payloadType: 97, clockRate: 44100, channels: 2, port: 5006, info: { ...aacInfo, index: 1 } },
    { kind: 'audio', encoding: 'opus', payloadType: 98, clockRate: 48000, channels: 2, port: 5008, info: audioInfo('opus', 48000, 2) },
    { kind: 'audio', encoding: 'L16', payloadType: 10, clockRate: 44100, channels: 2, port: 5010, info: audioInfo('pcm_s16le', 44100, 2) },
  ];
  const text = buildSdp({
    id: '3f2a9c1e-0b7d-4e8a-9c1d-2b3e4f5a6b7c',
    name: 'movie.mp4',
    destination: { address: '127.0.0.1', family: 4 },
    origin: '127.0.0.1',
    tracks,
  });
  t.ok(text.endsWith('\r\n'), 'CRLF line ends');
  t.ok(text.startsWith('v=0\r\n'), 'starts with v=0');
  const lines = text.split('\r\n').filter((l) => l !== '');
  t.ok(
    lines.every((l) => /^[a-z]=/.test(l)),
    'every line is type=value',
  );
  const doc = sdpTransform.parse(text);
  t.equal(doc.version, 0);
  t.match(doc.origin, { username: '-', sessionVersion: 1, netType: 'IN', ipVer: 4, address: '127.0.0.1' });
  t.equal(String(doc.origin!.sessionId), String(parseInt('3f2a9c1e0b7d', 16)), 'o= session id from the session id');
  t.equal(doc.name, 'offcast movie.mp4');
  t.same(doc.connection, { version: 4, ip: '127.0.0.1' }, 'c= is the destination');
  t.same(doc.timing, { start: 0, stop: 0 });
  t.equal(doc.media.length, 4);
  const [video, aac, opus, l16] = doc.media;
  t.match(video, { type: 'video', port: 5004, protocol: 'RTP/AVP', payloads: '96', rtcp: { port: 5005 } });
  t.same(video!.rtp, [{ payload: 96, codec: 'H264', rate: 90000 }]);
  const vp = params(video!.fmtp[0]!.config);
  t.equal(video!.fmtp[0]!.payload, 96);
  t.same(
    vp['sprop-parameter-sets']!.split(',').map((b) => Buffer.from(b, 'base64').toString('hex')),
    [Buffer.from(SPS).toString('hex'), Buffer.from(PPS).toString('hex')],
    'parameter sets decode back to the SPS and PPS',
  );
  t.equal(vp['profile-level-id'], '42c00d');
  t.equal(vp['packetization-mode'], '1');
  t.match(aac, { type: 'audio', port: 5006, payloads: '97', rtcp: { port: 5007 } });
  t.same(aac!.rtp, [{ payload: 97, codec: 'MPEG4-GENERIC', rate: 44100, encoding: 2 }]);
  t.match(params(aac!.fmtp[0]!.config), { mode: 'AAC-hbr', sizelength: '13', indexlength: '3', indexdeltalength: '3', config: '1210', streamtype: '5' });
  t.same(opus!.rtp, [{ payload: 98, codec: 'opus', rate: 48000, encoding: 2 }]);
  t.same(params(opus!.fmtp[0]!.config), { 'sprop-stereo': '1', stereo: '1' });
  t.match(opus, { port: 5008, rtcp: { port: 5009 } });
  t.same(l16!.rtp, [{ payload: 10, codec: 'L16', rate: 44100, encoding: 2 }]);
  t.same(l16!.fmtp, [], 'L16: no fmtp');
  t.equal((text.match(/^a=fmtp:/gm) ?? []).length, 3, 'three fmtp lines, none empty');
});

t.test('buildSdp: IPv6 destination', async (t) => {
  const text = buildSdp({
    id: 'abc',
    name: 'a.wav',
    destination: { address: '::1', family: 6 },
    origin: '::1',
    tracks: [{ kind: 'audio', encoding: 'PCMU', payloadType: 0, clockRate: 8000, channels: 1, port: 6000, info: audioInfo('pcm_s16le', 8000, 1) }],
  });
  const doc = sdpTransform.parse(text);
  t.same(doc.connection, { version: 6, ip: '::1' });
  t.match(doc.origin, { ipVer: 6, address: '::1' });
  t.match(text, /^c=IN IP6 ::1\r$/m);
  t.same(doc.media[0]!.rtp, [{ payload: 0, codec: 'PCMU', rate: 8000 }]);
});

// --- the route ---------------------------------------------------------------------

let server: TestServer;
t.before(async () => {
  server = await startServer();
  for (const [name, body] of [
    ['tone.wav', makeWav(16000, 2, 1)],
    ['cd.wav', makeWav(44100, 2, 1)],
    ['phone.wav', makeWav(8000, 1, 1)],
  ] as const) {
    const put = await server.api('PUT', `/v1/media/${name}`, body);
    if (put.status !== 201) throw new Error(`upload ${name}: ${put.status} ${put.text}`);
  }
  const { readFile } = await import('node:fs/promises');
  const opus = await server.api('PUT', '/v1/media/sine.opus', await readFile(new URL('sine-mono-2s.opus', fixtures)));
  if (opus.status !== 201) throw new Error(`upload sine.opus: ${opus.status} ${opus.text}`);
});
t.teardown(() => server?.stop());

t.test('GET /v1/sessions/:id/sdp describes the session', async (t) => {
  const cases: { media: string; codec?: string; rtp: { codec: string; rate: number; encoding?: number }; pt?: number; fmtp?: string }[] = [
    { media: 'tone.wav', rtp: { codec: 'L16', rate: 16000, encoding: 2 } },
    { media: 'cd.wav', rtp: { codec: 'L16', rate: 44100, encoding: 2 }, pt: 10 },
    { media: 'phone.wav', codec: 'PCMU', rtp: { codec: 'PCMU', rate: 8000 }, pt: 0 },
    { media: 'phone.wav', codec: 'PCMA', rtp: { codec: 'PCMA', rate: 8000 }, pt: 8 },
    { media: 'sine.opus', rtp: { codec: 'opus', rate: 48000, encoding: 2 }, fmtp: 'sprop-stereo=0' },
  ];
  for (const c of cases) {
    const port = 29980 + 2 * cases.indexOf(c); // below every test server’s local range; paused, nothing is sent
    const body: Record<string, unknown> = { mode: 'play', media: c.media, state: 'paused', destination: { host: '127.0.0.1', port } };
    if (c.codec !== undefined) body.codec = c.codec;
    const res = await server.api('POST', '/v1/sessions', body);
    t.equal(res.status, 201, `${c.media} ${c.codec ?? ''}: created (${res.text.slice(0, 200)})`);
    if (res.status !== 201) continue;
    const sdp = await server.api('GET', `/v1/sessions/${res.body.id}/sdp`);
    t.equal(sdp.status, 200);
    t.match(sdp.headers.get('content-type') ?? '', /^application\/sdp/, 'application/sdp');
    t.equal(sdp.text, res.body.sdp, 'the same text as the session’s sdp field');
    const doc = sdpTransform.parse(sdp.text);
    t.equal(doc.version, 0, 'v=0');
    t.same(doc.connection, { version: 4, ip: '127.0.0.1' }, 'c= is the destination');
    t.equal(doc.media.length, 1);
    const m = doc.media[0]!;
    t.equal(m.port, port, 'm= port is destination.port');
    t.equal(m.rtcp?.port, port + 1, 'a=rtcp is port + 1');
    const track = res.body.tracks[0];
    t.equal(String(m.payloads), String(track.payloadType), 'm= payload type is the session’s');
    if (c.pt !== undefined) t.equal(track.payloadType, c.pt, `static payload type ${c.pt}`);
    else t.ok(track.payloadType >= 96 && track.payloadType <= 127, 'dynamic payload type');
    t.same(m.rtp, [{ payload: track.payloadType, ...c.rtp }], `rtpmap ${c.rtp.codec}/${c.rtp.rate}${c.rtp.encoding ? '/' + c.rtp.encoding : ''}`);
    if (c.fmtp !== undefined) t.same(m.fmtp, [{ payload: track.payloadType, config: c.fmtp }]);
    else t.same(m.fmtp, []);
    await server.api('DELETE', `/v1/sessions/${res.body.id}`);
  }
});

t.test('ffmpeg accepts the SDP and decodes the stream', { skip: skipUnless(hasFfmpeg(), NO_FFMPEG) }, async (t) => {
  const cases: { media: string; codec?: string; decoder: RegExp }[] = [
    { media: 'tone.wav', decoder: /Audio: pcm_s16be, 16000 Hz, stereo/ },
    { media: 'phone.wav', codec: 'PCMU', decoder: /Audio: pcm_mulaw, 8000 Hz, mono/ },
    { media: 'sine.opus', decoder: /Audio: opus, 48000 Hz/ },
  ];
  for (const c of cases) {
    const port = await freePortPair();
    const body: Record<string, unknown> = { mode: 'play', media: c.media, loop: true, destination: { host: '127.0.0.1', port } };
    if (c.codec !== undefined) body.codec = c.codec;
    const res = await server.api('POST', '/v1/sessions', body);
    t.equal(res.status, 201, res.text.slice(0, 200));
    if (res.status !== 201) continue;
    const sdp = await server.api('GET', `/v1/sessions/${res.body.id}/sdp`);
    const file = path.join(server.dir, `${res.body.id}.sdp`);
    await writeFile(file, sdp.text);
    // The session loops, so ffmpeg gets packets whenever it starts; -t bounds its run.
    const r = await run('ffmpeg', ['-hide_banner', '-nostdin', '-protocol_whitelist', 'file,udp,rtp', '-i', file, '-t', '0.5', '-f', 'null', '-'], 20000);
    t.equal(r.code, 0, `${c.media}: ffmpeg exits 0${r.code === 0 ? '' : ': ' + r.stderr.slice(-800)}`);
    t.match(r.stderr, c.decoder, `${c.media}: ffmpeg sees ${c.decoder.source}`);
    t.notMatch(r.stderr, /error|invalid/i, `${c.media}: ffmpeg reports no errors`);
    await server.api('DELETE', `/v1/sessions/${res.body.id}`);
  }
});

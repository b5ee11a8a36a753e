// The packet cache layout: what goes in comes out, shared between views, with a small index.
import t from 'tap';
import { finishMedia, PacketTrackBuilder, MediaPackets, MARK_EVERY } from '../../offload/cache.js';

function fill(b: PacketTrackBuilder, n: number, video: boolean): Uint8Array[] {
  const payloads: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const len = video ? 1 + ((i * 37) % 1200) : 120 + (i % 40);
    const p = new Uint8Array(len).map((_, k) => (i + k) & 0xff);
    payloads.push(p);
    const frame = video ? Math.floor(i / 3) : i;
    const ts = video ? frame * 3600 + (frame % 3 === 1 ? 7200 : 0) : i * 960;
    const send = video ? frame * 3600 + (i % 3) * 100 : ts;
    b.emit(p, ts, video ? i % 3 === 2 : false, send, video ? i % 60 === 0 : true);
  }
  return payloads;
}

t.test('audio and video tracks round trip through one shared buffer', async (t) => {
  const audio = new PacketTrackBuilder(48000);
  const video = new PacketTrackBuilder(90000);
  const ap = fill(audio, 1000, false);
  const vp = fill(video, 900, true);
  audio.endTs = 1000 * 960;
  video.endTs = 300 * 3600;
  const m = finishMedia('k', [audio, video]);
  t.equal(m.tracks.length, 2);
  const [a, v] = m.tracks as [NonNullable<(typeof m.tracks)[0]>, NonNullable<(typeof m.tracks)[1]>];
  t.equal(a.count, 1000);
  t.equal(a.flags, null, 'audio keeps no flags array');
  t.equal(a.send, a.ts, 'audio sends at its timestamps');
  t.equal(a.syncs, null, 'every audio packet is a sync point');
  let off = 0;
  for (let i = 0; i < a.count; i++) {
    if (!Buffer.from(a.payload.subarray(off, off + a.len[i]!)).equals(Buffer.from(ap[i]!))) return t.fail(`audio payload ${i}`);
    if (a.ts[i] !== i * 960) return t.fail(`audio ts ${i}`);
    if (a.offsetOf(i) !== off) return t.fail(`audio offsetOf ${i}`);
    off += a.len[i]!;
  }
  t.pass('audio payloads, timestamps and offsets');
  t.equal(a.seekIndex(960 * 500 + 1), 501, 'audio seeks to the first packet at or after the time');
  off = 0;
  for (let i = 0; i < v.count; i++) {
    if (!Buffer.from(v.payload.subarray(off, off + v.len[i]!)).equals(Buffer.from(vp[i]!))) return t.fail(`video payload ${i}`);
    if (v.marker(i) !== (i % 3 === 2)) return t.fail(`marker ${i}`);
    off += v.len[i]!;
  }
  t.pass('video payloads and markers');
  t.same(
    Array.from(v.syncs!),
    [...Array(15).keys()].map((k) => k * 60),
    'sync points of the video track',
  );
  t.equal(v.seekIndex(v.ts[130]!), 120, 'video snaps back to the sync point at or before');
  // A second view over the same SharedArrayBuffer (as another worker gets it) reads the same.
  const again = new MediaPackets(m.sab, m.layout);
  t.equal(again.tracks[1]!.offsetOf(777), v.offsetOf(777));
  t.equal(again.tracks[0]!.payload.buffer, m.sab, 'no copy: views over the shared buffer');
  // Index overhead.
  const media = a.payloadBytes + v.payloadBytes;
  const overhead = (m.bytes - media) / media;
  t.ok(overhead < 0.05, `index overhead ${(overhead * 100).toFixed(2)}%`);
  const audioOnly = finishMedia('a', [
    (() => {
      const b = new PacketTrackBuilder(48000);
      fill(b, 1000, false);
      return b;
    })(),
  ]);
  const aOverhead = (audioOnly.bytes - audioOnly.tracks[0]!.payloadBytes) / audioOnly.tracks[0]!.payloadBytes;
  t.ok(aOverhead < 0.06, `audio index: 6 bytes per ~140-byte packet + marks (${(aOverhead * 100).toFixed(2)}%)`);
  t.equal(MARK_EVERY, 256);
});

t.test('send times never go backwards; bad input is refused', async (t) => {
  const b = new PacketTrackBuilder(90000);
  b.emit(new Uint8Array(10), 0, false, 100, true);
  b.emit(new Uint8Array(10), 3600, true, 50, false); // earlier send time: clamped
  const m = finishMedia('x', [b]);
  t.same(Array.from(m.tracks[0]!.send), [100, 100]);
  t.throws(() => b.emit(new Uint8Array(70000), 0, false, 0, true), RangeError);
  t.throws(() => b.emit(new Uint8Array(1), -1, false, 0, true), RangeError);
  t.throws(() => b.emit(new Uint8Array(1), 2 ** 32, false, 0, true), RangeError);
});

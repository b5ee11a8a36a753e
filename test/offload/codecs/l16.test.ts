import t from 'tap';
import type { Sample } from '../../../storage/types.js';
import type { PacketEmit } from '../../../offload/codecs/types.js';
import { L16Payloader, l16FramesPerPacket } from '../../../offload/codecs/l16/payloader.js';
import { L16Depacketizer } from '../../../offload/codecs/l16/depacketizer.js';

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

function sampleOf(data: Uint8Array, pts: number, frames: number): Sample {
  return { track: 0, data, pts, dts: pts, duration: frames, keyframe: true };
}

function randomBytes(length: number, seed: number): Uint8Array {
  let state = seed >>> 0 || 1;
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    out[i] = state & 0xff;
  }
  return out;
}

/** The input with the two bytes of every 16-bit sample swapped, written independently of the code under test. */
function bigEndianOf(pcmLE: Uint8Array): Uint8Array {
  const view = new DataView(pcmLE.buffer, pcmLE.byteOffset, pcmLE.byteLength);
  const out = new DataView(new ArrayBuffer(pcmLE.length));
  for (let i = 0; i < pcmLE.length; i += 2) out.setInt16(i, view.getInt16(i, true), false);
  return new Uint8Array(out.buffer);
}

t.test('frames per packet: 20 ms, capped by payloadBytes', async (t) => {
  const cases: Array<[clockRate: number, channels: number, payloadBytes: number, frames: number]> = [
    [8000, 1, 1200, 160],
    [8000, 1, 100, 50],
    [16000, 1, 160, 80],
    [16000, 2, 1200, 300],
    [44100, 1, 1200, 600],
    [44100, 2, 1200, 300],
    [48000, 2, 1200, 300], // 6.25 ms
    [48000, 1, 1920, 960],
    [11025, 1, 1200, 220], // 220.5 floored
    [22050, 2, 1764, 441],
    [48000, 6, 1200, 100],
    [8000, 2, 3, 0],
  ];
  for (const [clockRate, channels, payloadBytes, frames] of cases) {
    t.equal(l16FramesPerPacket(clockRate, channels, payloadBytes), frames, `${clockRate} Hz x${channels}, ${payloadBytes} bytes`);
  }
});

t.test('payloader -> depacketizer round trips', async (t) => {
  const cases: Array<{ clockRate: number; channels: number; payloadBytes: number; frames: number }> = [
    { clockRate: 8000, channels: 1, payloadBytes: 1200, frames: 160 },
    { clockRate: 8000, channels: 1, payloadBytes: 100, frames: 50 },
    { clockRate: 8000, channels: 2, payloadBytes: 160, frames: 40 },
    { clockRate: 16000, channels: 1, payloadBytes: 160, frames: 80 },
    { clockRate: 16000, channels: 2, payloadBytes: 1200, frames: 300 },
    { clockRate: 44100, channels: 1, payloadBytes: 1200, frames: 600 },
    { clockRate: 44100, channels: 2, payloadBytes: 1200, frames: 300 },
    { clockRate: 44100, channels: 2, payloadBytes: 100, frames: 25 },
    { clockRate: 48000, channels: 1, payloadBytes: 1200, frames: 600 },
    { clockRate: 48000, channels: 2, payloadBytes: 1200, frames: 300 },
    { clockRate: 48000, channels: 2, payloadBytes: 4000, frames: 960 },
    { clockRate: 11025, channels: 1, payloadBytes: 1200, frames: 220 },
    { clockRate: 11025, channels: 2, payloadBytes: 1200, frames: 220 },
  ];
  const blockPatterns = [[1, 7, 333], [1024], [4097, 2], [160]];
  const starts = [0, 48000 + 13];
  let seed = 1;
  for (const { clockRate, channels, payloadBytes, frames } of cases) {
    for (const blocks of blockPatterns) {
      for (const startPts of starts) {
        const frameBytes = 2 * channels;
        const total = 5 * frames + 17; // ends on a short packet
        const input = randomBytes(total * frameBytes, seed++);
        const name = `${clockRate} Hz x${channels}, payloadBytes ${payloadBytes}, blocks ${blocks.join('/')}, pts ${startPts}`;

        const payloader = new L16Payloader({ clockRate, channels }, { payloadBytes, spread: 0.5 });
        t.equal(payloader.clockRate, clockRate);
        t.equal(payloader.framesPerPacket, frames, `${name}: frames per packet`);
        const { emit, packets } = collector();
        let done = 0;
        for (let b = 0; done < total; b++) {
          const n = Math.min(blocks[b % blocks.length], total - done);
          payloader.push(sampleOf(input.subarray(done * frameBytes, (done + n) * frameBytes), startPts + done, n), emit);
          done += n;
        }
        payloader.flush(emit);

        const expected = bigEndianOf(input);
        let ok = packets.length === 6;
        for (let i = 0; ok && i < packets.length; i++) {
          const p = packets[i];
          const length = (i < 5 ? frames : 17) * frameBytes;
          const start = i * frames * frameBytes;
          ok =
            p.payload.length === length &&
            p.payload.length <= payloadBytes &&
            p.rtpTs === startPts + i * frames &&
            p.sendTs === p.rtpTs &&
            !p.marker &&
            p.sync &&
            Buffer.from(p.payload).equals(expected.subarray(start, start + length));
        }
        t.ok(ok, `${name}: 5 full packets and a short one, big-endian, exact timestamps`);

        const depacketizer = new L16Depacketizer({ channels });
        const out: Uint8Array[] = [];
        let tsOk = true;
        for (const p of packets) {
          const got = depacketizer.push(p.payload, p.rtpTs, p.marker, 0);
          if (got.length !== 1 || got[0].rtpTs !== p.rtpTs || !got[0].keyframe) tsOk = false;
          for (const frame of got) out.push(frame.data);
        }
        t.ok(tsOk, `${name}: one frame per packet with its rtpTs`);
        t.ok(Buffer.concat(out).equals(input), `${name}: depacketized PCM equals the input`);
        t.same(depacketizer.stats, { malformed: 0, dropped: 0 });
      }
    }
  }
});

t.test('byte order: little-endian in, network order out', async (t) => {
  const payloader = new L16Payloader({ clockRate: 8000, channels: 2 }, { payloadBytes: 1200, spread: 0 });
  const { emit, packets } = collector();
  // Frame 0: left 0x1234, right -2 (0xfffe); frame 1: left -32768, right 32767.
  payloader.push(sampleOf(Uint8Array.of(0x34, 0x12, 0xfe, 0xff, 0x00, 0x80, 0xff, 0x7f), 0, 2), emit);
  payloader.flush(emit);
  t.same(
    packets.map((p) => Array.from(p.payload)),
    [[0x12, 0x34, 0xff, 0xfe, 0x80, 0x00, 0x7f, 0xff]],
  );
  const [frame] = new L16Depacketizer({ channels: 2 }).push(packets[0].payload, 0, false, 0);
  t.same(Array.from(frame.data), [0x34, 0x12, 0xfe, 0xff, 0x00, 0x80, 0xff, 0x7f]);
});

t.test('input aligned to packets: flush emits nothing more', async (t) => {
  const payloader = new L16Payloader({ clockRate: 8000, channels: 1 }, { payloadBytes: 1200, spread: 0 });
  const { emit, packets } = collector();
  payloader.push(sampleOf(new Uint8Array(640), 0, 320), emit);
  t.same(
    packets.map((p) => [p.rtpTs, p.payload.length]),
    [
      [0, 320],
      [160, 320],
    ],
  );
  payloader.flush(emit);
  payloader.flush(emit);
  t.equal(packets.length, 2);
});

t.test('a jump in pts closes the current packet so timestamps stay exact', async (t) => {
  const payloader = new L16Payloader({ clockRate: 8000, channels: 1 }, { payloadBytes: 1200, spread: 0 });
  const { emit, packets } = collector();
  payloader.push(sampleOf(new Uint8Array(200).fill(1), 0, 100), emit);
  payloader.push(sampleOf(new Uint8Array(400).fill(2), 1000, 200), emit);
  payloader.push(sampleOf(new Uint8Array(2).fill(3), 1200, 1), emit); // continuous: joins the open packet
  payloader.flush(emit);
  t.same(
    packets.map((p) => [p.rtpTs, p.payload.length / 2, p.payload[0], p.payload[p.payload.length - 1]]),
    [
      [0, 100, 1, 1],
      [1000, 160, 2, 2],
      [1160, 41, 2, 3],
    ],
  );
});

t.test('11025 Hz: 220-frame packets, timestamps count frames exactly', async (t) => {
  const payloader = new L16Payloader({ clockRate: 11025, channels: 1 }, { payloadBytes: 1200, spread: 0 });
  const { emit, packets } = collector();
  payloader.push(sampleOf(new Uint8Array(2 * 11025), 0, 11025), emit);
  payloader.flush(emit);
  t.equal(packets.length, 51);
  t.equal(packets[50].rtpTs, 11000);
  t.equal(packets[50].payload.length, 50);
  t.ok(packets.every((p, i) => p.rtpTs === 220 * i));
});

t.test('payloader reuses one scratch buffer for full packets', async (t) => {
  const payloader = new L16Payloader({ clockRate: 48000, channels: 2 }, { payloadBytes: 1200, spread: 0 });
  const buffers = new Set<ArrayBufferLike>();
  payloader.push(sampleOf(new Uint8Array(4 * 3000), 0, 3000), (payload) => buffers.add(payload.buffer));
  t.equal(buffers.size, 1);
});

t.test('payloader rejects impossible formats and partial frames', async (t) => {
  const opts = { payloadBytes: 1200, spread: 0 };
  t.throws(() => new L16Payloader({ clockRate: 8000, channels: 2 }, { payloadBytes: 3, spread: 0 }), {
    name: 'RangeError',
    message: 'L16: rtp.payloadBytes (3) cannot hold one 2-channel frame of 4 bytes',
  });
  t.throws(() => new L16Payloader({ clockRate: 8000, channels: 0 }, opts), RangeError);
  t.throws(() => new L16Payloader({ clockRate: 8000, channels: 1.5 }, opts), RangeError);
  t.throws(() => new L16Payloader({ clockRate: 0, channels: 1 }, opts), RangeError);
  t.throws(() => new L16Payloader({ clockRate: 8000, channels: 1 }, { payloadBytes: NaN, spread: 0 }), RangeError);
  const payloader = new L16Payloader({ clockRate: 8000, channels: 2 }, opts);
  t.throws(() => payloader.push(sampleOf(new Uint8Array(6), 0, 1), () => {}), {
    name: 'RangeError',
    message: 'L16: sample at pts 0 has 6 bytes, not a whole number of 4-byte frames',
  });
  t.throws(() => new L16Depacketizer({ channels: 0 }), RangeError);
});

t.test('depacketizer: malformed payloads are counted and dropped, never thrown', async (t) => {
  const cases: Array<[channels: number, length: number]> = [
    [1, 0],
    [1, 1],
    [1, 3],
    [2, 2],
    [2, 6],
    [3, 4],
  ];
  for (const [channels, length] of cases) {
    const depacketizer = new L16Depacketizer({ channels });
    t.same(depacketizer.push(new Uint8Array(length), 0, false, 0), [], `${channels} ch, ${length} bytes dropped`);
    t.same(depacketizer.stats, { malformed: 1, dropped: 0 });
  }
});

t.test('depacketizer: data is a copy, rtpTs passes through, lostBefore changes nothing', async (t) => {
  const depacketizer = new L16Depacketizer({ channels: 1 });
  const payload = Uint8Array.of(0x01, 0x02, 0x03, 0x04);
  const got = depacketizer.push(payload, 0xfffffff0, false, 7);
  payload.fill(0);
  t.same(got, [{ rtpTs: 0xfffffff0, data: Uint8Array.of(0x02, 0x01, 0x04, 0x03), keyframe: true }]);
  t.not(got[0].data.buffer, payload.buffer);
  t.same(depacketizer.flush(), []);
});

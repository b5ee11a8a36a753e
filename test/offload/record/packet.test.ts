import t from 'tap';
import { classify, validateRtp, Kind, KIND_NAMES, Drop, DROP_REASONS, RtpHeader } from '../../../offload/record/packet.js';

function hex(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
}

interface RtpSpec {
  marker?: boolean;
  payloadType?: number;
  seq?: number;
  ts?: number;
  ssrc?: number;
  csrcs?: number[];
  /** Extension words (32-bit each) after the 4-byte extension header. */
  extWords?: number;
  payload?: number[];
  /** Padding bytes to append (the last holds the count), or explicit bytes. */
  padding?: number;
}

/** An RTP packet written independently of the code under test, byte by byte. */
function rtp(spec: RtpSpec): Uint8Array {
  const csrcs = spec.csrcs ?? [];
  const bytes: number[] = [];
  const hasExt = spec.extWords !== undefined;
  const padding = spec.padding ?? 0;
  bytes.push(0x80 | (padding > 0 ? 0x20 : 0) | (hasExt ? 0x10 : 0) | csrcs.length);
  bytes.push((spec.marker ? 0x80 : 0) | (spec.payloadType ?? 96));
  const seq = spec.seq ?? 0x1234;
  bytes.push(seq >> 8, seq & 0xff);
  const u32 = (v: number) => bytes.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
  u32(spec.ts ?? 0xdeadbeef);
  u32(spec.ssrc ?? 0x11223344);
  for (const c of csrcs) u32(c);
  if (hasExt) {
    bytes.push(0xbe, 0xde, 0, spec.extWords!);
    for (let i = 0; i < spec.extWords! * 4; i++) bytes.push(0xee);
  }
  for (const b of spec.payload ?? [1, 2, 3, 4, 5]) bytes.push(b);
  for (let i = 1; i < padding; i++) bytes.push(0);
  if (padding > 0) bytes.push(padding);
  return Uint8Array.from(bytes);
}

// RFC 5769 2.1 sample request: a STUN Binding request header.
const STUN_BINDING = hex('0001 0058 2112a442 b7e7a701bc34d686fa87dfae 8022 0010 5354554e2074657374 20636c69656e74');
// A DTLS 1.2 record carrying a ClientHello: content type 22, version fefd, epoch 0, seq 0, length, handshake type 1.
const DTLS_CLIENT_HELLO = hex('16 fefd 0000 000000000000 0075 01 000069 0000 000000000069 fefd');
// A ZRTP packet starts with 0x10 0x00 and the magic cookie 'ZRTP'.
const ZRTP_HELLO = hex('1000 0001 5a525450 11223344 505a 001d 48656c6c6f2020');
// TURN ChannelData, channel 0x4000, length 4.
const TURN_CHANNEL = hex('4000 0004 01020304');
// RTCP SR (PT 200): V=2, RC=0, length 6 words, SSRC, NTP, RTP ts, counts.
const RTCP_SR = hex('80c8 0006 11223344 e8d1a3c0 80000000 00001000 0000000a 00000640');
const RTCP_RR = hex('81c9 0007 11223344 55667788 05000003 0001ffff 00000010 00000000 00000000');

t.test('classify: RFC 7983 first-byte ranges and RFC 5761 RTP/RTCP split', async (t) => {
  const cases: Array<[name: string, bytes: Uint8Array, kind: number]> = [
    ['STUN binding request', STUN_BINDING, Kind.Stun],
    ['first byte 3', hex('03 00'), Kind.Stun],
    ['first byte 4', hex('04 00'), Kind.Garbage],
    ['first byte 15', hex('0f 00'), Kind.Garbage],
    ['ZRTP', ZRTP_HELLO, Kind.Zrtp],
    ['first byte 19', hex('13 00'), Kind.Zrtp],
    ['DTLS ClientHello', DTLS_CLIENT_HELLO, Kind.Dtls],
    ['first byte 63', hex('3f 00'), Kind.Dtls],
    ['TURN channel data', TURN_CHANNEL, Kind.Turn],
    ['first byte 79', hex('4f 00'), Kind.Turn],
    ['first byte 80', hex('50 00'), Kind.Garbage],
    ['first byte 127', hex('7f 00'), Kind.Garbage],
    ['RTCP SR', RTCP_SR, Kind.Rtcp],
    ['RTCP RR', RTCP_RR, Kind.Rtcp],
    ['second byte 192 (RTCP FIR range start)', hex('80c0 0001'), Kind.Rtcp],
    ['second byte 223 (PT 95 + marker)', hex('80df 0001'), Kind.Rtcp],
    ['second byte 191 (PT 63 + marker)', hex('80bf 0001'), Kind.Rtp],
    ['second byte 224 (PT 96 + marker)', hex('80e0 0001'), Kind.Rtp],
    ['RTP PT 96', rtp({}), Kind.Rtp],
    ['RTP PT 0', rtp({ payloadType: 0 }), Kind.Rtp],
    ['first byte 191', hex('bf 60'), Kind.Rtp],
    ['first byte 192', hex('c0 60'), Kind.Garbage],
    ['first byte 255', hex('ff 60'), Kind.Garbage],
    ['one RTP-range byte', hex('80'), Kind.Rtp],
    ['empty', new Uint8Array(0), Kind.Garbage],
  ];
  for (const [name, bytes, kind] of cases) {
    t.equal(classify(bytes, bytes.length), kind, `${name}: ${KIND_NAMES[kind]}`);
  }
  // len, not the buffer size, decides: a receive buffer larger than the datagram.
  const big = new Uint8Array(64);
  big.set(hex('80c8'), 0);
  t.equal(classify(big, 1), Kind.Rtp, 'a 1-byte datagram in a larger buffer is not read past len');
  t.equal(classify(big, 0), Kind.Garbage, 'len 0');
  t.equal(classify(hex('80c8'), 100), Kind.Rtcp, 'len past the buffer is clamped');
});

t.test('validateRtp: valid packets fill every field', async (t) => {
  const cases: Array<[name: string, bytes: Uint8Array, expected: Omit<RtpHeader, never>]> = [
    [
      'plain, marker, PT 111',
      rtp({ marker: true, payloadType: 111, seq: 65535, ts: 0xffffffff, ssrc: 0xfedcba98, payload: [9, 8, 7] }),
      { marker: true, payloadType: 111, seq: 65535, ts: 0xffffffff, ssrc: 0xfedcba98, payloadOffset: 12, payloadLength: 3, csrcCount: 0, hasExtension: false },
    ],
    [
      'two CSRCs',
      rtp({ csrcs: [1, 2], seq: 7, ts: 160, ssrc: 1 }),
      { marker: false, payloadType: 96, seq: 7, ts: 160, ssrc: 1, payloadOffset: 20, payloadLength: 5, csrcCount: 2, hasExtension: false },
    ],
    [
      '15 CSRCs and an extension of 3 words',
      rtp({ csrcs: Array.from({ length: 15 }, (_, i) => i), extWords: 3 }),
      {
        marker: false,
        payloadType: 96,
        seq: 0x1234,
        ts: 0xdeadbeef,
        ssrc: 0x11223344,
        payloadOffset: 12 + 60 + 4 + 12,
        payloadLength: 5,
        csrcCount: 15,
        hasExtension: true,
      },
    ],
    [
      'empty extension (length 0)',
      rtp({ extWords: 0 }),
      { marker: false, payloadType: 96, seq: 0x1234, ts: 0xdeadbeef, ssrc: 0x11223344, payloadOffset: 16, payloadLength: 5, csrcCount: 0, hasExtension: true },
    ],
    [
      'padding 4',
      rtp({ padding: 4 }),
      { marker: false, payloadType: 96, seq: 0x1234, ts: 0xdeadbeef, ssrc: 0x11223344, payloadOffset: 12, payloadLength: 5, csrcCount: 0, hasExtension: false },
    ],
    [
      'CSRC + extension + padding',
      rtp({ csrcs: [0xaabbccdd], extWords: 1, padding: 3, payload: [1, 2, 3, 4, 5, 6, 7, 8] }),
      { marker: false, payloadType: 96, seq: 0x1234, ts: 0xdeadbeef, ssrc: 0x11223344, payloadOffset: 24, payloadLength: 8, csrcCount: 1, hasExtension: true },
    ],
    [
      'padding is the whole payload',
      rtp({ payload: [], padding: 4 }),
      { marker: false, payloadType: 96, seq: 0x1234, ts: 0xdeadbeef, ssrc: 0x11223344, payloadOffset: 12, payloadLength: 0, csrcCount: 0, hasExtension: false },
    ],
    [
      'header only, no payload',
      rtp({ payload: [] }),
      { marker: false, payloadType: 96, seq: 0x1234, ts: 0xdeadbeef, ssrc: 0x11223344, payloadOffset: 12, payloadLength: 0, csrcCount: 0, hasExtension: false },
    ],
  ];
  const out = new RtpHeader();
  for (const [name, bytes, expected] of cases) {
    t.equal(validateRtp(bytes, bytes.length, out), Drop.None, `${name}: valid`);
    t.strictSame({ ...out }, expected, `${name}: fields`);
  }
});

t.test('validateRtp: every drop reason', async (t) => {
  const valid = rtp({});
  const withCount = (bytes: Uint8Array, last: number) => {
    const copy = bytes.slice();
    copy[copy.length - 1] = last;
    return copy;
  };
  const cases: Array<[name: string, bytes: Uint8Array, reason: string]> = [
    ['empty', new Uint8Array(0), 'short'],
    ['one byte', hex('80'), 'short'],
    ['11 bytes', valid.subarray(0, 11), 'short'],
    ['version 3', hex('c060 0001 00000000 00000001'), 'version'],
    ['first byte 0xff', hex('ff60 0001 00000000 00000001'), 'version'],
    ['padding count 0', withCount(rtp({ padding: 4 }), 0), 'padding'],
    ['padding count past the payload', withCount(rtp({ padding: 4 }), 10), 'padding'],
    ['padding count 1 with no payload and P set', withCount(rtp({ payload: [], padding: 1 }), 2), 'padding'],
    ['padding count larger than the whole packet', withCount(rtp({ padding: 1 }), 255), 'padding'],
    ['CSRC list past the end', rtp({ csrcs: [1, 2, 3], payload: [] }).subarray(0, 12 + 8), 'csrc'],
    ['CC 15 on a 12-byte packet', hex('8f60 0001 00000000 00000001'), 'csrc'],
    ['extension header cut', rtp({ extWords: 0, payload: [] }).subarray(0, 14), 'extension'],
    ['extension length past the end', rtp({ extWords: 2, payload: [] }).subarray(0, 16 + 4), 'extension'],
    ['RTCP SR', RTCP_SR, 'rtcp'],
    ['RTCP RR', RTCP_RR, 'rtcp'],
    ['RTCP 8-byte RR with no blocks', hex('80c9 0001 11223344'), 'rtcp'],
    ['STUN', STUN_BINDING, 'stun'],
    ['DTLS', DTLS_CLIENT_HELLO, 'dtls'],
    ['ZRTP', ZRTP_HELLO, 'zrtp'],
    ['TURN', TURN_CHANNEL, 'turn'],
    ['first byte 0x05', hex('0560 0001 00000000 00000001'), 'garbage'],
    ['first byte 0x60', hex('6060 0001 00000000 00000001'), 'garbage'],
  ];
  const out = new RtpHeader();
  out.seq = 4242;
  for (const [name, bytes, reason] of cases) {
    const code = validateRtp(bytes, bytes.length, out);
    t.equal(DROP_REASONS[code], reason, name);
  }
  t.equal(out.seq, 4242, 'a refused packet leaves the header untouched');
  t.equal(DROP_REASONS.length, Object.keys(Drop).length, 'one name per drop code');
  for (const [key, value] of Object.entries(Drop)) t.equal(DROP_REASONS[value], key.toLowerCase(), `name of Drop.${key}`);
});

t.test('validateRtp: len inside a larger receive buffer', async (t) => {
  const packet = rtp({ padding: 2, payload: [1, 2, 3] });
  const buf = new Uint8Array(1500).fill(0xff);
  buf.set(packet, 0);
  const out = new RtpHeader();
  t.equal(validateRtp(buf, packet.length, out), Drop.None, 'padding count read at len - 1, not at the buffer end');
  t.equal(out.payloadLength, 3);
  t.equal(validateRtp(buf, 11, out), Drop.Short, 'short by len');
  t.equal(validateRtp(packet, 4096, out), Drop.None, 'len past the buffer is clamped');
  t.equal(out.payloadLength, 3);
});

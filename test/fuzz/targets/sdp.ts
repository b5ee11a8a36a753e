/** A record session's sender SDP (server/recordRequest.ts fromSdp): answers a RecordRequest or an HttpError (400/415). */
import fc from 'fast-check';
import { fromSdp } from '../../../server/recordRequest.js';
import { bytesOf, isA, seedFile, text, type Target } from '../lib.js';

const line = fc.oneof(
  fc.constantFrom('v=0', 'o=- 0 0 IN IP4 127.0.0.1', 's=x', 't=0 0', 'c=IN IP4 127.0.0.1', 'c=IN IP6 ::1', 'a=recvonly', 'a=rtcp-mux', 'b=AS:34'),
  fc
    .tuple(
      fc.constantFrom('audio', 'video', 'application', 'text', ''),
      fc.integer({ min: 0, max: 70000 }),
      fc.constantFrom('RTP/AVP', 'RTP/SAVPF', 'UDP', ''),
      fc.array(fc.integer({ min: -1, max: 300 }), { maxLength: 4 }),
    )
    .map(([t, port, proto, pts]) => `m=${t} ${port} ${proto} ${pts.join(' ')}`),
  fc
    .tuple(
      fc.integer({ min: -1, max: 300 }),
      fc.constantFrom('H264', 'opus', 'PCMU', 'PCMA', 'L16', 'MPEG4-GENERIC', 'mpeg4-generic', 'VP8', '', 'h264'),
      fc.constantFrom('', '/90000', '/48000', '/48000/2', '/8000', '/44100/2', '/0', '/-1', '/1e9', '/x', '/8000/300'),
    )
    .map(([pt, codec, rate]) => `a=rtpmap:${pt} ${codec}${rate}`),
  fc
    .tuple(
      fc.integer({ min: -1, max: 300 }),
      fc.array(
        fc.constantFrom(
          'packetization-mode=1',
          'packetization-mode=2',
          'mode=AAC-hbr',
          'sizelength=13',
          'sizelength=6',
          'indexlength=3',
          'indexlength=99',
          'config=1190',
          'config=ffff',
          'config=0000',
          'config=',
          'sprop-parameter-sets=Z2QACqzZRHsBEAAAAwAQAAADAUDxIllg,aO+Pyw==',
          'sprop-parameter-sets=,,',
          'sprop-stereo=1',
          '=',
          ';;',
          'a=b=c',
        ),
        { maxLength: 6 },
      ),
    )
    .map(([pt, params]) => `a=fmtp:${pt} ${params.join(';')}`),
  fc.string({ maxLength: 40 }),
);

const seeds = ['h264-aac.sdp', 'opus.sdp', 'pcmu.sdp', 'l16.sdp'].map(seedFile);

export const target: Target = {
  name: 'sdp',
  seeds: () => seeds,
  arbitrary: fc.array(line, { maxLength: 24 }).chain((lines) => fc.constantFrom('\r\n', '\n').map((eol) => text(lines.join(eol) + eol))),
  run(input) {
    return bytesOf(fromSdp('fuzz', Buffer.from(input).toString('utf8')));
  },
  expected: (err) => isA(err, 'HttpError'),
};

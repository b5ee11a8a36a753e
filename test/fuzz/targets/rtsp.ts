/**
 * An RTSP connection's bytes (offload/rtsp/parser.ts), fed in segments of
 * input-chosen sizes, and each request's headers through the control plane's
 * parsers of them: Transport, Range, the request URI and Authorization
 * (server/rtsp/), and an ANNOUNCE's SDP through the record request's checks and
 * the publisher's control names. The parser answers requests and frames or
 * RtspParseError; Range answers or RtspError; the SDP answers or HttpError
 * 400/415; the others never throw.
 */
import fc from 'fast-check';
import { RtspParser, RtspParseError, type RtspRequest } from '../../../offload/rtsp/parser.js';
import { chooseTransport } from '../../../server/rtsp/transport.js';
import { parseRange } from '../../../server/rtsp/reader.js';
import { parseStreamPath, parseTarget } from '../../../server/rtsp/url.js';
import { announcedControls } from '../../../server/rtsp/publish.js';
import { fromSdp } from '../../../server/recordRequest.js';
import { HttpError } from '../../../server/errors.js';
import { parseAuthParams } from '../../../server/rtsp/auth.js';
import { RtspError } from '../../../server/rtsp/messages.js';
import { concat, rawBytes, text, type Target } from '../lib.js';

const enc = new TextEncoder();

const SEEDS = [
  'OPTIONS rtsp://127.0.0.1:8554/a.wav RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: Lavf59.27.100\r\n\r\n',
  'DESCRIBE rtsp://127.0.0.1:8554/clip.mp4 RTSP/1.0\r\nAccept: application/sdp\r\nCSeq: 2\r\n\r\n',
  'SETUP rtsp://127.0.0.1:8554/clip.mp4/trackID=0 RTSP/1.0\r\nTransport: RTP/AVP/UDP;unicast;client_port=5000-5001\r\nCSeq: 3\r\n\r\n',
  'SETUP rtsp://127.0.0.1:8554/clip.mp4/trackID=1 RTSP/1.0\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3\r\nCSeq: 4\r\nSession: 0123456789ABCDEF\r\n\r\n',
  'PLAY rtsp://127.0.0.1:8554/clip.mp4/ RTSP/1.0\r\nRange: npt=2.500-\r\nCSeq: 5\r\nSession: 0123456789ABCDEF\r\n\r\n',
  'GET_PARAMETER rtsp://127.0.0.1:8554/clip.mp4/ RTSP/1.0\r\nCSeq: 6\r\nSession: 0123456789ABCDEF;timeout=60\r\nContent-Length: 9\r\n\r\nposition\n',
  'DESCRIBE rtsp://h/x RTSP/1.0\r\nCSeq: 7\r\nAuthorization: Digest username="u", realm="offcast", nonce="abc", uri="rtsp://h/x", response="0123456789abcdef0123456789abcdef"\r\n\r\n',
  'PLAY rtsp://h/x RTSP/1.0\nCSeq: 8\nRange: npt=0:01:02.5-0:02:00\nAuthorization: Basic dTp0b2tlbg==\n\n',
  announce(
    'v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\na=tool:libavformat 59.27.100\r\n' +
      'm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QADazZQUH7ARAAAAMAEAAAAwMo8UKZYA==,aOvjyyLA; profile-level-id=64000D\r\na=control:streamid=0\r\n' +
      'm=audio 0 RTP/AVP 97\r\nb=AS:96\r\na=rtpmap:97 MPEG4-GENERIC/48000/1\r\na=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3; config=1188\r\na=control:streamid=1\r\n',
  ),
  'RECORD rtsp://127.0.0.1:8554/cam1 RTSP/1.0\r\nCSeq: 10\r\nSession: 0123456789ABCDEF\r\nRange: npt=0.000-\r\n\r\n',
].map((s) => enc.encode(s));

/** A publisher's ANNOUNCE (ffmpeg's, -f rtsp) with `sdp` as its body. */
function announce(sdp: string): string {
  return `ANNOUNCE rtsp://127.0.0.1:8554/cam1 RTSP/1.0\r\nContent-Type: application/sdp\r\nCSeq: 9\r\nContent-Length: ${sdp.length}\r\n\r\n${sdp}`;
}

const frame = fc
  .tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 300 }), fc.integer({ min: -2, max: 2 }))
  .map(([ch, data, lie]) => concat([new Uint8Array([0x24, ch, ((data.length + lie) >> 8) & 0xff, (data.length + lie) & 0xff]), data]));

const header = fc.oneof(
  fc.constantFrom('CSeq: 1', 'CSeq: x', 'Content-Length: 4', 'Content-Length: 99999999', 'Content-Length: -1', 'Session: ABC;timeout=60', ' folded', ':', 'X'),
  fc
    .constantFrom(
      'RTP/AVP;unicast;client_port=0-1',
      'RTP/AVP/TCP;interleaved=254-255',
      'RTP/AVP;multicast',
      'RTP/SAVP;unicast',
      'RTP/AVP;client_port=65535-65536,RTP/AVP/TCP',
    )
    .map((v) => `Transport: ${v}`),
  fc.constantFrom('npt=now-', 'npt=-', 'npt=1e9-', 'npt=99:99:99.9-', 'clock=x', 'npt=.5-', 'npt=0-1;time=x').map((v) => `Range: ${v}`),
  fc.string({ maxLength: 40 }).map((v) => `Authorization: Digest ${v}`),
  fc.string({ maxLength: 60 }),
);

const request = fc
  .tuple(
    fc.constantFrom('OPTIONS', 'DESCRIBE', 'SETUP', 'PLAY', 'PAUSE', 'TEARDOWN', 'GET_PARAMETER', 'ANNOUNCE', 'X', ''),
    fc.oneof(
      fc.constantFrom('*', 'rtsp://127.0.0.1:8554/a', 'rtsp://[::1]:1/a/trackID=9', '/a/trackID=0', 'rtsp://h/%zz', 'http://h/a', 'rtsp://h/a/b/c'),
      fc.string({ maxLength: 30 }),
    ),
    fc.constantFrom('RTSP/1.0', 'RTSP/2.0', 'HTTP/1.1', 'RTSP/1', ''),
    fc.array(header, { maxLength: 8 }),
    fc.constantFrom('\r\n', '\n'),
    fc.string({ maxLength: 20 }),
  )
  .map(([m, uri, v, hs, eol, body]) => text(`${m} ${uri} ${v}${eol}${hs.join(eol)}${eol}${eol}${body}`));

export const target: Target = {
  name: 'rtsp',
  seeds: () => [...SEEDS, concat(SEEDS)],
  arbitrary: fc.oneof(fc.array(fc.oneof(request, frame), { minLength: 1, maxLength: 6 }).map(concat), rawBytes),
  run(input) {
    let produced = 0;
    const requests: RtspRequest[] = [];
    const parser = new RtspParser(
      {
        request(r) {
          requests.push(r);
          produced += r.body.length + r.method.length + r.uri.length;
        },
        frame(_ch, buf, off, len) {
          if (off < 0 || len < 0 || off + len > buf.length) throw new Error(`frame ${off}+${len} outside its ${buf.length}-byte buffer`);
          produced += 0;
        },
      },
      { requestLine: 4096, head: 16384, headerCount: 64, body: 65536 },
    );
    // Segments of sizes the input chooses (its first byte), so messages split anywhere.
    const step = input.length === 0 ? 1 : 1 + (input[0]! % 97);
    try {
      for (let at = 0; at < input.length; at += step) parser.feed(Buffer.from(input.subarray(at, Math.min(input.length, at + step))));
    } catch (err) {
      if (!(err instanceof RtspParseError) || ![400, 413, 505].includes(err.status)) throw err;
    }
    for (const r of requests) {
      for (const [k, v] of r.headers) produced += k.length + v.length;
      const transport = r.headers.get('transport');
      if (transport !== undefined) chooseTransport(transport);
      parseTarget(r.uri);
      const path = parseStreamPath(r.uri);
      if (r.method === 'ANNOUNCE' && path !== null) {
        // A publisher's SDP: refused with 400/415 (the reason), or its tracks' control names.
        try {
          fromSdp(path.name, r.body.toString('utf8'));
          announcedControls(r.body.toString('utf8'));
        } catch (err) {
          if (!(err instanceof HttpError) || ![400, 415].includes(err.statusCode)) throw err;
        }
      }
      const auth = r.headers.get('authorization');
      if (auth !== undefined) parseAuthParams(auth);
      try {
        parseRange(r.headers.get('range'));
      } catch (err) {
        if (!(err instanceof RtspError) || err.status !== 457) throw err;
      }
    }
    return produced;
  },
  expected: () => false,
};

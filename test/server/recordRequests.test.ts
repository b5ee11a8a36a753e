// What a record (and live) request may ask, refused with a clear 4xx and nothing
// allocated: malformed SDP and JSON tracks, bad AAC configs, names that could
// escape the recordings folder, live-relay mistakes, cross-origin requests
// (issue 9: items 6, 8, 13, the H.264 warning, and the missing tests of §4).
import t, { type Test } from 'tap';
import { startServer, type ApiResponse, type TestServer } from '../helpers/server.js';
import type { ApiBody } from '../helpers/apiTypes.js';

function isError(t: Test, res: { status: number; body: ApiBody; text: string }, status: number, code: string | RegExp, message?: RegExp, what = ''): void {
  const label = what === '' ? '' : `${what}: `;
  t.equal(res.status, status, `${label}status ${status} (${res.text.slice(0, 300)})`);
  t.equal(res.body?.statusCode, status, `${label}statusCode in the body`);
  t.match(res.body?.code, code, `${label}code ${String(code)}`);
  if (message !== undefined) t.match(res.body?.message, message, `${label}message says ${String(message)}`);
}

const sdpHead = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n';
const opusM = (port: number, pt = 97): string => `m=audio ${port} RTP/AVP ${pt}\r\na=rtpmap:${pt} opus/48000/2\r\n`;

function postSdp(server: TestServer, name: string, sdp: string, type = 'application/sdp'): Promise<ApiResponse> {
  return server.api('POST', `/v1/sessions?name=${encodeURIComponent(name)}`, sdp, { 'content-type': type });
}

function postJson(server: TestServer, name: string, tracks: unknown[]): Promise<ApiResponse> {
  return server.api('POST', '/v1/sessions', { mode: 'record', name, tracks });
}

t.test('record requests that cannot be recorded: 4xx, nothing allocated', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  const free = server.ports.free;
  const sdpCases: [string, string, number, string, RegExp][] = [
    ['no m= lines', sdpHead, 400, 'OFFCAST_BAD_REQUEST', /no m= lines/],
    ['9 m= lines', sdpHead + Array.from({ length: 9 }, (_, i) => opusM(5000 + 2 * i)).join(''), 400, 'OFFCAST_BAD_REQUEST', /9 m= lines.*at most 8/],
    ['1000 m= lines', sdpHead + Array.from({ length: 1000 }, (_, i) => opusM(5000 + 2 * i)).join(''), 400, 'OFFCAST_BAD_REQUEST', /1000 m= lines/],
    ['missing rtpmap', sdpHead + 'm=audio 5000 RTP/AVP 97\r\n', 400, 'OFFCAST_BAD_REQUEST', /payload type 97 has no rtpmap/],
    ['opus at 1 Hz', sdpHead + 'm=audio 5000 RTP/AVP 97\r\na=rtpmap:97 opus/1/2\r\n', 400, 'OFFCAST_BAD_REQUEST', /48000 Hz clock/],
    ['L16 at 4 GHz', sdpHead + 'm=audio 5000 RTP/AVP 97\r\na=rtpmap:97 L16/4000000000\r\n', 400, 'OFFCAST_BAD_REQUEST', /clock rate/],
    ['H.264 at 0 Hz', sdpHead + 'm=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/0\r\n', 400, 'OFFCAST_BAD_REQUEST', /90000 Hz clock/],
    ['a payload type listed twice', sdpHead + 'm=audio 5000 RTP/AVP 97 97\r\na=rtpmap:97 opus/48000/2\r\n', 400, 'OFFCAST_BAD_REQUEST', /twice/],
    [
      'two rtpmaps for one payload type',
      sdpHead + 'm=audio 5000 RTP/AVP 97\r\na=rtpmap:97 opus/48000/2\r\na=rtpmap:97 PCMU/8000\r\n',
      400,
      'OFFCAST_BAD_REQUEST',
      /two rtpmap/,
    ],
    ['an unknown codec', sdpHead + 'm=audio 5000 RTP/AVP 97\r\na=rtpmap:97 speex/16000\r\n', 415, 'OFFCAST_UNSUPPORTED_CODEC', /speex/],
    ['a payload type out of range', sdpHead + 'm=audio 5000 RTP/AVP 300\r\na=rtpmap:300 opus/48000/2\r\n', 400, 'OFFCAST_BAD_REQUEST', /0-127/],
    ['an application m= line', sdpHead + 'm=application 5000 RTP/AVP 97\r\na=rtpmap:97 opus/48000/2\r\n', 400, 'OFFCAST_BAD_REQUEST', /application/],
  ];
  for (const pt of [72, 73, 74, 75, 76]) {
    sdpCases.push([
      `payload type ${pt}`,
      sdpHead + `m=audio 5000 RTP/AVP ${pt}\r\na=rtpmap:${pt} opus/48000/2\r\n`,
      400,
      'OFFCAST_BAD_REQUEST',
      /72-76 collide with RTCP/,
    ]);
  }
  for (const [what, sdp, status, code, message] of sdpCases) isError(t, await postSdp(server, 'bad', sdp), status, code, message, `SDP, ${what}`);

  const jsonCases: [string, unknown[], number, string | RegExp, RegExp | undefined][] = [
    ['no tracks', [], 400, 'OFFCAST_BAD_REQUEST', undefined],
    ['9 tracks', Array.from({ length: 9 }, () => ({ kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000 })), 400, 'OFFCAST_BAD_REQUEST', /8/],
    ['an unknown codec', [{ kind: 'audio', codec: 'speex', payloadType: 97, clockRate: 16000 }], 415, 'OFFCAST_UNSUPPORTED_CODEC', /speex/],
    ['an absurd clock rate', [{ kind: 'audio', codec: 'opus', payloadType: 97, clockRate: 199999 }], 400, 'OFFCAST_BAD_REQUEST', /48000/],
    ['payload type 74', [{ kind: 'audio', codec: 'opus', payloadType: 74, clockRate: 48000 }], 400, 'OFFCAST_BAD_REQUEST', /RTCP/],
  ];
  for (const [what, tracks, status, code, message] of jsonCases) isError(t, await postJson(server, 'bad', tracks), status, code, message, `JSON, ${what}`);

  // SDP only as application/sdp: text/plain is what a page on any origin may send without a preflight.
  isError(t, await postSdp(server, 'plain', sdpHead + opusM(5000), 'text/plain'), 415, /^OFFCAST_/, undefined, 'SDP as text/plain');
  const eight = await postSdp(server, 'eight', sdpHead + Array.from({ length: 8 }, (_, i) => opusM(5000 + 2 * i)).join(''));
  t.equal(eight.status, 201, `8 m= lines are fine (${eight.text.slice(0, 200)})`);
  t.equal(eight.body.tracks.length, 8);
  await server.api('DELETE', `/v1/sessions/${eight.body.id}`);
  t.equal(server.ports.free, free, 'no port held');
  t.same((await server.api('GET', '/v1/sessions')).body.sessions, [], 'no session');
});

t.test('AAC fmtp the recorder cannot use: 400/415 at the request, not 500 from the offload', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  const aac = (fmtp: string) => [{ kind: 'audio', codec: 'mpeg4-generic', payloadType: 96, clockRate: 44100, channels: 2, fmtp }];
  const base = 'streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3';
  const cases: [string, string, number, RegExp][] = [
    ['config=ffff (escape object type, cut short)', `${base};config=ffff`, 400, /AudioSpecificConfig/],
    ['config=0000 (null object type)', `${base};config=0000`, 400, /AudioSpecificConfig/],
    ['config=1 nibble short', `${base};config=12100`, 400, /config/],
    ['a reserved frequency index', `${base};config=16a0`, 400, /AudioSpecificConfig/],
    ['channelConfiguration 8 (ADTS has 0..7)', `${base};config=1240`, 415, /ADTS/],
    ['indexlength=99', 'streamtype=5;mode=AAC-hbr;sizelength=13;indexlength=99;indexdeltalength=3;config=1210', 415, /indexlength must be 3/],
    ['indexdeltalength=0', 'streamtype=5;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=0;config=1210', 415, /indexdeltalength must be 3/],
  ];
  for (const [what, fmtp, status, message] of cases) {
    const json = await postJson(server, 'aac', aac(fmtp));
    isError(t, json, status, status === 400 ? 'OFFCAST_BAD_REQUEST' : 'OFFCAST_UNSUPPORTED_CODEC', message, `JSON, ${what}`);
    const sdp = await postSdp(server, 'aac', sdpHead + `m=audio 5000 RTP/AVP 96\r\na=rtpmap:96 mpeg4-generic/44100/2\r\na=fmtp:96 ${fmtp}\r\n`);
    isError(t, sdp, status, status === 400 ? 'OFFCAST_BAD_REQUEST' : 'OFFCAST_UNSUPPORTED_CODEC', message, `SDP, ${what}`);
  }
  const ok = await postJson(server, 'aac-ok', aac(`${base};config=1210`));
  t.equal(ok.status, 201, `AAC-LC 44.1 kHz stereo records (${ok.text.slice(0, 200)})`);
  await server.api('DELETE', `/v1/sessions/${ok.body.id}`);
});

/** RTSP OPTIONS and DESCRIBE over a real TCP connection: the listener in the offload, the answers from the control plane. */
import t from 'tap';
import { startServer } from '../../helpers/server.js';
import { makeWav } from '../../helpers/media.js';
import { RawRtsp } from '../../helpers/rtsp.js';

const server = await startServer({}, { rtspPort: 0 });
t.teardown(() => server.stop());
const port = server.rtsp!.port!;
await server.api('PUT', '/v1/media/tone.wav', makeWav(48000, 2, 1));

t.test('OPTIONS lists the methods', async (t) => {
  const c = await RawRtsp.connect(port);
  t.teardown(() => c.close());
  const r = await c.request('OPTIONS', `rtsp://127.0.0.1:${port}/tone.wav`);
  t.equal(r.status, 200);
  t.equal(r.headers.cseq, '1');
  t.same(
    r.headers.public!.split(',').map((m) => m.trim()),
    ['OPTIONS', 'DESCRIBE', 'SETUP', 'PLAY', 'PAUSE', 'TEARDOWN', 'GET_PARAMETER', 'SET_PARAMETER', 'ANNOUNCE', 'RECORD'],
  );
  const star = await c.request('OPTIONS', '*');
  t.equal(star.status, 200, 'OPTIONS * too');
});

t.test('DESCRIBE answers the SDP with a control URL per track and the Content-Base', async (t) => {
  const c = await RawRtsp.connect(port);
  t.teardown(() => c.close());
  const r = await c.request('DESCRIBE', `rtsp://127.0.0.1:${port}/tone.wav`, { Accept: 'application/sdp' });
  t.equal(r.status, 200);
  t.equal(r.headers['content-type'], 'application/sdp');
  t.equal(r.headers['content-base'], `rtsp://127.0.0.1:${port}/tone.wav/`);
  const lines = r.body.split('\r\n');
  t.ok(lines.includes('m=audio 0 RTP/AVP 96'), r.body);
  t.ok(lines.includes('a=rtpmap:96 L16/48000/2'), r.body);
  t.ok(lines.includes('a=control:trackID=0'), r.body);
  t.ok(lines.includes('a=control:*'), r.body);
  t.ok(lines.includes('a=range:npt=0-1.000'), r.body);
  t.ok(lines.includes('c=IN IP4 0.0.0.0'), r.body);
});

t.test('DESCRIBE of an unknown name is 404, a request without CSeq 400', async (t) => {
  const c = await RawRtsp.connect(port);
  t.teardown(() => c.close());
  const r = await c.request('DESCRIBE', `rtsp://127.0.0.1:${port}/nothing.wav`);
  t.equal(r.status, 404);
  c.write('DESCRIBE rtsp://127.0.0.1/tone.wav RTSP/1.0\r\n\r\n');
  const r2 = await c.response(1);
  t.equal(r2.status, 400);
  t.notOk('cseq' in r2.headers);
});

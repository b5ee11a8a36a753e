/**
 * RTSP authentication with api.token set: Digest (RFC 2617 MD5, with and
 * without qop) and Basic, right and wrong, the 401 challenge. The expected
 * digests are computed here with node:crypto, independently of the server.
 */
import t from 'tap';
import { startServer } from '../../helpers/server.js';
import { makeWav, wavData } from '../../helpers/media.js';
import { RawRtsp, digestResponse } from '../../helpers/rtsp.js';
import { hasFfmpeg, NO_FFMPEG, run } from '../../helpers/ffmpeg.js';
import { skipUnless } from '../../helpers/tools.js';

const TOKEN = 's3cret-token';
const server = await startServer({ 'api.token': TOKEN }, { rtspPort: 0 });
t.teardown(() => server.stop());
const port = server.rtsp!.port!;
const url = `rtsp://127.0.0.1:${port}/tone.wav`;
const wav = makeWav(8000, 1, 1);
await server.api('PUT', '/v1/media/tone.wav', wav, { authorization: `Bearer ${TOKEN}` });

const c = await RawRtsp.connect(port);
t.teardown(() => c.close());

/** The Digest challenge's parameters. */
async function challenge(): Promise<{ realm: string; nonce: string }> {
  const r = await c.request('DESCRIBE', url);
  const digest = r.all['www-authenticate']!.find((v) => v.startsWith('Digest '))!;
  return { realm: /realm="([^"]*)"/.exec(digest)![1]!, nonce: /nonce="([^"]*)"/.exec(digest)![1]! };
}

t.test('without credentials: 401 with a Digest and a Basic challenge; OPTIONS needs none', async (t) => {
  t.equal((await c.request('OPTIONS', url)).status, 200);
  const r = await c.request('DESCRIBE', url);
  t.equal(r.status, 401);
  const challenges = r.all['www-authenticate']!;
  t.equal(challenges.length, 2);
  t.match(challenges[0], /^Digest realm="offcast", nonce="[0-9a-f]{56}", algorithm=MD5$/);
  t.equal(challenges[1], 'Basic realm="offcast"');
  t.equal(r.body, '', 'no SDP');
  t.equal((await c.request('SETUP', `${url}/trackID=0`, { Transport: 'RTP/AVP/TCP;unicast' })).status, 401, 'SETUP too');
});

t.test('Digest with the token as the password: 200; a wrong password, nonce or realm: 401', async (t) => {
  const { realm, nonce } = await challenge();
  t.equal(realm, 'offcast');
  const header = (p: { password?: string; nonce?: string; realm?: string; uri?: string; method?: string }): string => {
    const uri = p.uri ?? url;
    const response = digestResponse({
      user: 'viewer',
      realm: p.realm ?? realm,
      password: p.password ?? TOKEN,
      method: p.method ?? 'DESCRIBE',
      uri,
      nonce: p.nonce ?? nonce,
    });
    return `Digest username="viewer", realm="${p.realm ?? realm}", nonce="${p.nonce ?? nonce}", uri="${uri}", response="${response}"`;
  };
  const ok = await c.request('DESCRIBE', url, { Authorization: header({}) });
  t.equal(ok.status, 200, 'right: 200');
  t.match(ok.body, /a=control:trackID=0/);
  t.equal((await c.request('DESCRIBE', url, { Authorization: header({ password: 'wrong' }) })).status, 401, 'wrong password: 401');
  t.equal((await c.request('DESCRIBE', url, { Authorization: header({ method: 'SETUP' }) })).status, 401, 'digest of another method: 401');
  const forged = nonce.slice(0, 24) + '0'.repeat(32);
  t.equal((await c.request('DESCRIBE', url, { Authorization: header({ nonce: forged }) })).status, 401, 'a nonce we did not issue: 401');
  t.equal((await c.request('DESCRIBE', url, { Authorization: header({ realm: 'other' }) })).status, 401, 'another realm: 401');
  // qop=auth (RFC 2617 3.2.2.1), as some cameras and players send it.
  const qop = { nc: '00000001', cnonce: 'abcdef0123' };
  const withQop = digestResponse({ user: 'viewer', realm, password: TOKEN, method: 'DESCRIBE', uri: url, nonce, qop });
  const r = await c.request('DESCRIBE', url, {
    Authorization: `Digest username="viewer", realm="${realm}", nonce="${nonce}", uri="${url}", qop=auth, nc=${qop.nc}, cnonce="${qop.cnonce}", response="${withQop}"`,
  });
  t.equal(r.status, 200, 'qop=auth: 200');
});

t.test('Basic with the token as the password: 200; wrong: 401', async (t) => {
  const basic = (user: string, pass: string): string => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
  t.equal((await c.request('DESCRIBE', url, { Authorization: basic('anyone', TOKEN) })).status, 200);
  t.equal((await c.request('DESCRIBE', url, { Authorization: basic('anyone', 'nope') })).status, 401);
  t.equal((await c.request('DESCRIBE', url, { Authorization: `Bearer ${TOKEN}` })).status, 401, 'a bearer token is HTTP’s, not RTSP’s');
});

t.test('ffmpeg with the token in the URL: Digest as ffmpeg computes it; a wrong one gets 401', { skip: skipUnless(hasFfmpeg(), NO_FFMPEG) }, async (t) => {
  const ok = await run(
    'ffmpeg',
    ['-hide_banner', '-nostdin', '-loglevel', 'error', '-i', `rtsp://viewer:${TOKEN}@127.0.0.1:${port}/tone.wav`, '-f', 's16le', '-'],
    30000,
  );
  t.equal(ok.code, 0, `ffmpeg read the stream (${ok.stderr.trim()})`);
  t.ok(ok.stdout.equals(wavData(wav)), 'the samples of the source, exactly');
  const bad = await run(
    'ffmpeg',
    ['-hide_banner', '-nostdin', '-loglevel', 'error', '-i', `rtsp://viewer:wrong@127.0.0.1:${port}/tone.wav`, '-f', 'wav', '-'],
    30000,
  );
  t.not(bad.code, 0, 'a wrong token: ffmpeg fails');
  t.match(bad.stderr, /401 Unauthorized/);
});

// destinations.allow over real UDP: a custom list sends where it allows and
// refuses (403, nothing set up) elsewhere, for play and live-relay sessions,
// with hostnames, IPv6 and IPv4-mapped IPv6 destinations.
import t, { type Test } from 'tap';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeWav } from '../helpers/media.js';
import { RtpSink } from '../helpers/rtp.js';
import { TestSender, payloadFor, rtpPacket } from '../helpers/sender.js';
import type { ApiBody } from '../helpers/apiTypes.js';

/** Only 127.0.0.3, 127.0.0.4 (a bare address) and ::1: not 127.0.0.1, not the default 127.0.0.0/8. */
const ALLOW = ['127.0.0.3/32', '127.0.0.4', '::1/128'];

let server: TestServer;
t.before(async () => {
  server = await startServer({ 'destinations.allow': ALLOW });
  const put = await server.api('PUT', '/v1/media/tone.wav', makeWav(8000, 1, 1));
  if (put.status !== 201) throw new Error(put.text);
});
t.teardown(() => server.stop());

async function play(host: string, port: number): Promise<{ status: number; body: ApiBody; text: string }> {
  return server.api('POST', '/v1/sessions', { mode: 'play', media: 'tone.wav', destination: { host, port } });
}

/** A 403 that set nothing up: no session, no port, no cache entry. */
async function refused(t: Test, what: string, create: () => Promise<{ status: number; body: ApiBody }>): Promise<void> {
  const before = { sessions: (await server.api('GET', '/v1/sessions')).body.sessions.length, ports: server.ports.free, cache: server.cache.size };
  const res = await create();
  t.equal(res.status, 403, `${what}: 403`);
  t.equal(res.body?.code, 'OFFCAST_DESTINATION_FORBIDDEN', `${what}: the error code`);
  const after = { sessions: (await server.api('GET', '/v1/sessions')).body.sessions.length, ports: server.ports.free, cache: server.cache.size };
  t.same(after, before, `${what}: no session, port or media set up`);
}

t.test('a custom list: play sessions send to what it allows, and only there', async (t) => {
  for (const [host, family] of [
    ['127.0.0.3', 4],
    ['127.0.0.4', 4],
    ['::1', 6],
  ] as const) {
    const sink = await RtpSink.open(family, host);
    t.teardown(() => sink.close());
    const res = await play(host, sink.port);
    t.equal(res.status, 201, `${host}: ${res.text.slice(0, 200)}`);
    await sink.waitFor(5, 5000);
    t.ok(sink.packets.length >= 5 && sink.packets.every((p) => p.ssrc === res.body.tracks[0].ssrc), `${host}: the session's packets arrive there`);
    t.equal((await server.api('DELETE', `/v1/sessions/${res.body.id}`)).status, 200);
  }
  for (const host of ['127.0.0.1', '127.0.0.2', '127.0.0.5', '10.0.0.3', '::2', 'fe80::1']) await refused(t, host, () => play(host, 29998));
});

t.test('hostnames are checked by the address they resolve to', async (t) => {
  // localhost resolves to 127.0.0.1 (or ::1 with some resolvers: then it is allowed and sends).
  const { lookup } = await import('node:dns/promises');
  const local = await lookup('localhost', { verbatim: false });
  if (local.address === '127.0.0.1') await refused(t, 'localhost (127.0.0.1)', () => play('localhost', 29998));
  else t.comment(`localhost resolves to ${local.address} here`);
  const res = await play('no-such-host.invalid', 29998);
  t.equal(res.status, 400, 'a name that does not resolve: 400');
  t.match(res.body?.message, /does not resolve/);

  // With localhost's address allowed, a session named by host name sends there.
  const open = await startServer({ 'destinations.allow': [`${local.address}/${local.family === 4 ? 32 : 128}`] });
  t.teardown(() => open.stop());
  t.equal((await open.api('PUT', '/v1/media/tone.wav', makeWav(8000, 1, 1))).status, 201);
  const sink = await RtpSink.open(local.family === 6 ? 6 : 4, local.address);
  t.teardown(() => sink.close());
  const ok = await open.api('POST', '/v1/sessions', { mode: 'play', media: 'tone.wav', destination: { host: 'localhost', port: sink.port } });
  t.equal(ok.status, 201, ok.text);
  await sink.waitFor(3, 5000);
  t.ok(sink.packets.length >= 3, `packets reach localhost (${local.address})`);
  const other = await open.api('POST', '/v1/sessions', {
    mode: 'play',
    media: 'tone.wav',
    destination: { host: local.family === 4 ? '127.0.0.9' : '127.0.0.1', port: 29998 },
  });
  t.equal(other.status, 403, 'another loopback address is still refused');
});

t.test('IPv4-mapped IPv6 destinations are judged and reached as the IPv4 address they carry', async (t) => {
  const sink = await RtpSink.open(4, '127.0.0.3');
  t.teardown(() => sink.close());
  const res = await play('::ffff:127.0.0.3', sink.port);
  t.equal(res.status, 201, res.text);
  await sink.waitFor(3, 5000);
  t.ok(sink.packets.length >= 3, 'packets for ::ffff:127.0.0.3 arrive at 127.0.0.3');
  t.equal((await server.api('DELETE', `/v1/sessions/${res.body.id}`)).status, 200);
  for (const host of ['::ffff:127.0.0.1', '::ffff:10.0.0.3', '::FFFF:127.0.0.2', '::ffff:7f00:1']) await refused(t, host, () => play(host, 29998));
});

t.test('live-relay destinations follow the same list', async (t) => {
  const rec = await server.api('POST', '/v1/sessions', {
    mode: 'record',
    name: 'feed',
    tracks: [{ kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000 }],
  });
  t.equal(rec.status, 201, rec.text);
  const live = (host: string, port: number) => server.api('POST', '/v1/sessions', { mode: 'play', live: rec.body.id, destination: { host, port } });
  for (const host of ['127.0.0.1', '10.0.0.3', '::ffff:127.0.0.1', '::2', 'localhost']) await refused(t, `live to ${host}`, () => live(host, 29998));
  const sinks = [await RtpSink.open(4, '127.0.0.3'), await RtpSink.open(6), await RtpSink.open(4, '127.0.0.4')];
  t.teardown(() => sinks.forEach((s) => s.close()));
  const hosts = ['127.0.0.3', '::1', '::ffff:127.0.0.4'];
  const views: ApiBody[] = [];
  for (const [k, host] of hosts.entries()) {
    const v = await live(host, sinks[k]!.port);
    t.equal(v.status, 201, `live to ${host}: ${v.text.slice(0, 200)}`);
    views.push(v.body);
  }
  const tx = await TestSender.open();
  t.teardown(() => tx.close());
  for (let i = 0; i < 10; i++) await tx.send(rtpPacket(0, 500 + i, i * 160, 77, payloadFor(i, 160)), rec.body.tracks[0].port);
  await Promise.all(sinks.map((s) => s.waitFor(10, 5000)));
  for (const [k, host] of hosts.entries()) {
    const got = sinks[k]!.packets;
    t.equal(got.length, 10, `live to ${host}: every packet relayed`);
    t.ok(
      got.every((p, i) => p.payload.equals(payloadFor(i, 160)) && p.ssrc === views[k].tracks[0].ssrc),
      `live to ${host}: as sent, with the subscriber’s SSRC`,
    );
  }
  t.equal((await server.api('DELETE', `/v1/sessions/${rec.body.id}`)).status, 200);
});

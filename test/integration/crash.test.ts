// Crash recovery: kill -9 the server while it records (a record session over
// HTTP and UDP, or one an RTSP client publishes over TCP), start it again, and
// find the recording finished: every file parses, at most about 1 s is lost.
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestSender, rtpPacket, payloadFor, sleep } from '../helpers/sender.js';
import { randomPortBlock } from '../helpers/server.js';
import { readRtpdumpRef } from '../helpers/rtpdump-ref.js';
import { RawRtsp, sessionId } from '../helpers/rtsp.js';
import { openWav } from '../../storage/wav.js';
import type { ApiBody } from '../helpers/apiTypes.js';

const main = fileURLToPath(new URL('../../server/main.ts', import.meta.url));

async function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function startProcess(env: Record<string, string>): ChildProcess {
  // The child runs the TypeScript sources with the same loader as this test.
  return spawn(process.execPath, [...process.execArgv, main], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
}

async function waitHealthy(url: string, child: ChildProcess): Promise<void> {
  // The child compiles the TypeScript sources as it loads: on a loaded machine that takes well over 30 s.
  for (const end = Date.now() + 120000; Date.now() < end;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error('server did not come up');
}

/** Where the child serves, for the feed to reach it. */
interface Child {
  url: string;
  rtspPort: number;
}

/**
 * Starts the server, lets `feed` record `name` (it answers how many packets it
 * sent, 20 ms apart in real time), kills the server with SIGKILL, starts it
 * again and checks the recording was recovered: every file parses, at most
 * about 1 s is lost, what survived is the first packets intact.
 */
async function crashAndRecover(t: Test, name: string, feed: (child: Child) => Promise<number>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'offcast-crash-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const httpPort = await freeTcpPort();
  const rtspPort = await freeTcpPort();
  const base = randomPortBlock(100);
  const env = {
    OFFCAST_HTTP_PORT: String(httpPort),
    // A port of its own: parallel test files must not fight over 8554.
    OFFCAST_RTSP_PORT: String(rtspPort),
    OFFCAST_MEDIA_ROOT: path.join(dir, 'media'),
    OFFCAST_RECORDINGS_ROOT: path.join(dir, 'recordings'),
    OFFCAST_RTP_PORT_MIN: String(base),
    OFFCAST_RTP_PORT_MAX: String(base + 99),
    OFFCAST_LOG_LEVEL: 'warn',
  };
  const url = `http://127.0.0.1:${httpPort}`;
  let child = startProcess(env);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  await waitHealthy(url, child);

  const sent = await feed({ url, rtspPort });
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const left = await readdir(path.join(dir, 'recordings', name));
  t.ok(
    left.some((f) => f.endsWith('.part')),
    `the crash left unfinished files (${left.join(', ')})`,
  );

  child = startProcess(env);
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  await waitHealthy(url, child);
  const m = (await (await fetch(`${url}/v1/recordings/${name}`)).json()) as ApiBody;
  t.equal(m.state, 'finished', 'the recording is finalized at start-up');
  t.equal(m.recovered, true);
  t.equal(m.reason, 'recovered');
  const files = await readdir(path.join(dir, 'recordings', name));
  t.notOk(
    files.some((f) => f.endsWith('.part')),
    `no temporary names left (${files.join(', ')})`,
  );

  const dump = readRtpdumpRef(await readFile(path.join(dir, 'recordings', name, 'track0.rtpdump')));
  t.equal(dump.truncated, false, 'the rtpdump parses to its end');
  const rtp = dump.records.filter((r) => !r.rtcp);
  t.ok(rtp.length >= sent - 50 - 5, `${rtp.length} of ${sent} packets survived: at most ~1 s lost`);
  t.ok(
    rtp.every((r, i) => Buffer.from(r.data).subarray(12).equals(payloadFor(i, 160))),
    'what survived is the first packets, intact and in order',
  );
  const wav = await openWav(path.join(dir, 'recordings', name, 'track0.wav'));
  let bytes = 0;
  for await (const s of wav.samples()) bytes += s.data.length;
  await wav.close();
  t.equal(bytes, rtp.length * 160, 'the playable file was rebuilt from the rtpdump and parses');
  t.equal(m.tracks[0].packets, rtp.length, 'the manifest counts what was recovered');

  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  t.notMatch(stderr, /Error|TypeError|uncaught/i, 'no errors on stderr');
}

/** 3 s of 20 ms PCMU packets in real time, each handed to `send`. */
async function pace(send: (packet: Buffer) => Promise<void> | void): Promise<number> {
  const sent = 150;
  const start = performance.now();
  for (let i = 0; i < sent; i++) {
    await send(rtpPacket(0, 100 + i, i * 160, 0xc0ffee, payloadFor(i, 160)));
    const wait = start + (i + 1) * 20 - performance.now();
    if (wait > 0) await sleep(wait);
  }
  return sent;
}

t.test('kill -9 during a recording, restart: recovered, every file parses, at most ~1 s lost', async (t) => {
  await crashAndRecover(t, 'crashed', async ({ url }) => {
    const res = await fetch(`${url}/v1/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ mode: 'record', name: 'crashed', tracks: [{ kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000 }] }),
    });
    const session = (await res.json()) as ApiBody;
    t.equal(res.status, 201, JSON.stringify(session));
    const port: number = session.tracks[0].port;
    const tx = await TestSender.open();
    t.teardown(() => tx.close());
    return pace((p) => tx.send(p, port));
  });
});

t.test('kill -9 while an RTSP client publishes over TCP, restart: recovered the same way', async (t) => {
  await crashAndRecover(t, 'published', async ({ rtspPort }) => {
    const c = await RawRtsp.connect(rtspPort);
    t.teardown(() => c.close());
    const sdp = 'v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\na=control:streamid=0\r\n';
    const url = `rtsp://127.0.0.1:${rtspPort}/published`;
    const a = await c.request('ANNOUNCE', url, { 'Content-Type': 'application/sdp' }, sdp);
    t.equal(a.status, 200, `ANNOUNCE: ${a.body}`);
    const s = await c.request('SETUP', `${url}/streamid=0`, { Transport: 'RTP/AVP/TCP;unicast;interleaved=0-1;mode=record', Session: sessionId(a) });
    t.equal(s.status, 200, 'SETUP');
    t.equal((await c.request('RECORD', url, { Session: sessionId(a) })).status, 200, 'RECORD');
    return pace((p) => {
      c.write(Buffer.concat([Buffer.from([0x24, 0, p.length >> 8, p.length & 0xff]), p]));
    });
  });
});

// A stream that opens with a large keyframe: every packet of it arrives before the
// control plane has latched the flow (slow path), and every one must be recorded.
import t from 'tap';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { startServer, type TestServer } from '../helpers/server.js';
import { rtpPacket, sleep } from '../helpers/sender.js';
import type { ApiTrackStats } from '../helpers/apiTypes.js';

const SPROP = 'Z0IAHpWoKA9k,aM48gA==';
const FRAGMENTS = 1000;
const FRAGMENT_BYTES = 1100;
const RUNS = 20;

let server: TestServer;
t.before(async () => {
  server = await startServer({ 'record.idleTimeoutMs': 30000 });
});
t.teardown(() => server.stop());

/** The IDR NAL and its FU-A packets (RFC 6184 5.8), built by hand: the recorder's code is not the reference. */
function keyframe(ssrc: number): { nal: Buffer; packets: Buffer[] } {
  const nal = Buffer.concat([Buffer.from([0x65]), randomBytes(FRAGMENTS * FRAGMENT_BYTES)]);
  const body = nal.subarray(1);
  const packets: Buffer[] = [];
  for (let i = 0; i < FRAGMENTS; i++) {
    const start = i === 0 ? 0x80 : 0;
    const end = i === FRAGMENTS - 1 ? 0x40 : 0;
    const payload = Buffer.concat([Buffer.from([(nal[0]! & 0x60) | 28, start | end | 5]), body.subarray(i * FRAGMENT_BYTES, (i + 1) * FRAGMENT_BYTES)]);
    packets.push(rtpPacket(96, (1000 + i) & 0xffff, 90000, ssrc, payload, i === FRAGMENTS - 1));
  }
  return { nal, packets };
}

/** The kernel's count of datagrams dropped for a full receive buffer (all UDP sockets). */
async function rcvbufErrors(): Promise<number> {
  const snmp = await readFile('/proc/net/snmp', 'utf8');
  const [names, values] = snmp.split('\n').filter((l) => l.startsWith('Udp:'));
  const i = names!.split(/\s+/).indexOf('RcvbufErrors');
  return Number(values!.split(/\s+/)[i]);
}

t.test(`a ${FRAGMENTS}-packet keyframe at line rate, as a stream's first packets, is recorded whole (${RUNS} runs)`, async (t) => {
  let complete = 0;
  for (let run = 0; run < RUNS; run++) {
    const name = `burst${run}`;
    const res = await server.api('POST', '/v1/sessions', {
      mode: 'record',
      name,
      tracks: [{ kind: 'video', codec: 'H264', payloadType: 96, clockRate: 90000, fmtp: `packetization-mode=1;sprop-parameter-sets=${SPROP}` }],
    });
    t.equal(res.status, 201, res.text);
    const { nal, packets } = keyframe(0x1000 + run);
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    await new Promise<void>((r) => sock.connect(res.body.tracks[0].port, '127.0.0.1', () => r()));
    const kernelDropsBefore = await rcvbufErrors();
    // One synchronous loop: the packets leave as fast as the socket takes them.
    for (const p of packets) sock.send(p);
    let stats!: ApiTrackStats;
    for (let i = 0; i < 250; i++) {
      stats = (await server.api('GET', `/v1/sessions/${res.body.id}`)).body.tracks[0].stats;
      if (stats.packets + Object.values(stats.drops as Record<string, number>).reduce((a, b) => a + b, 0) >= FRAGMENTS) break;
      await sleep(20);
    }
    sock.close();
    const kernelDrops = (await rcvbufErrors()) - kernelDropsBefore;
    const del = await server.api('DELETE', `/v1/sessions/${res.body.id}`);
    t.equal(del.status, 200, del.text);
    const file = await readFile(path.join(server.dir, 'recordings', name, 'track0.h264'));
    const sps = Buffer.from(SPROP.split(',')[0]!, 'base64');
    const pps = Buffer.from(SPROP.split(',')[1]!, 'base64');
    const sc = Buffer.from([0, 0, 0, 1]);
    const expected = Buffer.concat([sc, sps, sc, pps, sc, nal]);
    const ok = stats.packets === FRAGMENTS && file.equals(expected);
    if (ok) complete++;
    else
      t.fail(
        `run ${run}: ${stats.packets}/${FRAGMENTS} packets recorded, drops ${JSON.stringify(stats.drops)}, kernel drops ${kernelDrops}, file ${file.length} of ${expected.length} bytes`,
      );
  }
  t.equal(complete, RUNS, `every run recorded all ${FRAGMENTS} packets and the NAL byte for byte`);
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  t.notMatch(metrics, /offcast_record_drops_total\{reason="pending-full"\} [1-9]/, 'no hold-full drops');
});

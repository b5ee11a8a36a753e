// The slow-path hold's time limit (record.holdMs): a new flow's packets wait in the
// offload while the control plane decides; those held longer than the limit are
// dropped and counted ('hold-timeout'), and once the flow is installed the later
// packets are recorded. A real worker thread (offload/worker.ts) driven over the
// channel, the test playing the control plane: it holds its decision until the
// worker has counted the drops (no fixed sleep), then installs the flow.
import t from 'tap';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { FlowHeader, Method, Requests, WorkerInit, WorkerMessage } from '../../../offload/channel.js';
import { waitUntil } from '../../helpers/ready.js';
import { payloadFor, rtpPacket } from '../../helpers/sender.js';

const dir = mkdtempSync(join(tmpdir(), 'offcast-hold-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const HOLD_MS = 40;
const SSRC = 0x5eed;
const PAYLOAD = 160; // 20 ms of PCMU
const HELD = 5;
const LATER = 5;

/** A worker and a minimal channel client for it; flow.new notifications are collected, not answered. */
class TestWorker {
  readonly worker: Worker;
  readonly flows: FlowHeader[] = [];
  private nextId = 0;
  private readonly waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  readonly ready: Promise<void>;

  constructor() {
    const init: WorkerInit = { index: 0, nativeSend: false, bindHost: '127.0.0.1', rtcpIntervalMs: 1000, peers: [null] };
    this.worker = new Worker(new URL('../../../offload/worker.ts', import.meta.url), { workerData: init, execArgv: process.execArgv });
    this.ready = new Promise((resolve) => {
      this.worker.on('message', (msg: WorkerMessage) => {
        if (msg.kind === 'ready') resolve();
        else if (msg.kind === 'notification') {
          if (msg.event === 'flow.new') this.flows.push(msg.data);
        } else {
          const w = this.waiting.get(msg.id);
          this.waiting.delete(msg.id);
          if (msg.ok) w?.resolve(msg.result);
          else w?.reject(new Error(msg.error.message));
        }
      });
    });
  }

  request<M extends Method>(method: M, params: Requests[M]['params']): Promise<Requests[M]['result']> {
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ kind: 'request', id, method, params });
    });
  }
}

t.test(`packets held past record.holdMs (${HOLD_MS} ms) for an undecided flow are dropped and counted; later ones are recorded`, async (t) => {
  const w = new TestWorker();
  t.teardown(() => w.worker.terminate());
  await w.ready;
  const sessionId = 'hold';
  const params = (localPort: number): Requests['record.create']['params'] => ({
    sessionId,
    name: 'hold',
    dir: join(dir, 'hold'),
    tracks: [{ kind: 'audio', encoding: 'PCMU', payloadType: 0, clockRate: 8000, fmtp: {}, localPort, ssrc: 1 }],
    rtcpMux: false,
    idleTimeoutMs: 60000,
    maxDurationMs: 120000,
    reorderPackets: 64,
    reorderMs: 100,
    holdMs: HOLD_MS,
    flushMs: 100,
    cname: 'hold-test',
  });
  // A free even port pair: try a few at random in a range the server's tests do not use.
  let port = 0;
  for (let attempt = 0; attempt < 20 && port === 0; attempt++) {
    const candidate = 41000 + 2 * Math.floor(Math.random() * 4000);
    try {
      await w.request('record.create', params(candidate));
      port = candidate;
    } catch {
      // in use: another
    }
  }
  t.not(port, 0, 'the record session was created');

  const sock = dgram.createSocket('udp4');
  t.teardown(() => sock.close());
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  await new Promise<void>((r) => sock.connect(port, '127.0.0.1', () => r()));
  const packet = (seq: number): Buffer => rtpPacket(0, seq, seq * PAYLOAD, SSRC, payloadFor(seq, PAYLOAD));
  const stats = async () => (await w.request('record.stats', { sessionIds: [sessionId] }))[0]!.tracks[0]!;

  // The flow's first packets: the worker asks the control plane (us) once and holds them.
  for (let seq = 1; seq <= HELD; seq++) sock.send(packet(seq));
  await waitUntil(() => w.flows.length > 0, 5000, 'the slow-path query');
  t.equal(w.flows.length, 1, 'one query for the flow');
  t.match(w.flows[0], { sessionId, track: 0, address: '127.0.0.1', ssrc: SSRC, payloadType: 0 });
  // No answer: the worker drops what it held once it is older than holdMs.
  await waitUntil(async () => ((await stats()).drops['hold-timeout'] ?? 0) >= HELD, 5000, 'the held packets to be dropped');
  const afterHold = await stats();
  t.equal(afterHold.drops['hold-timeout'], HELD, 'every held packet dropped and counted as hold-timeout');
  t.equal(afterHold.drops['slow-path-timeout'], undefined, 'not as an expired query: the query is still out');
  t.equal(afterHold.packets, 0, 'nothing recorded yet');

  // The decision comes late: the flow latches, nothing is left to release, later packets are recorded.
  const flow = w.flows[0]!;
  const installed = await w.request('flow.install', { sessionId, track: 0, address: flow.address, port: flow.port, ssrc: flow.ssrc });
  t.same(installed, { installed: true, released: 0 }, 'installed, nothing held any more');
  for (let seq = HELD + 1; seq <= HELD + LATER; seq++) sock.send(packet(seq));
  await waitUntil(async () => (await stats()).packets >= LATER, 5000, 'the later packets to be recorded');
  const after = await stats();
  t.equal(after.packets, LATER, 'the later packets recorded');
  t.equal(after.drops['hold-timeout'], HELD, 'no more hold-timeout drops');

  await w.request('record.end', { sessionId, reason: 'test' });
  const wav = readFileSync(join(dir, 'hold', 'track0.wav'));
  const expected = Buffer.concat(Array.from({ length: LATER }, (_, i) => payloadFor(HELD + 1 + i, PAYLOAD)));
  t.ok(wav.subarray(wav.length - expected.length).equals(expected), 'the file ends with the later packets, byte-exact');
  t.equal(wav.indexOf(payloadFor(1, PAYLOAD)), -1, 'and holds none of the dropped ones');
});

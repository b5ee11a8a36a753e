// The native pacing engine under churn: while PLAYING sessions play (default 2000, looping,
// paced by the engine's thread), up to CYCLES more (default 10,000) are created, seeked,
// paused, resumed and deleted, 8 at a time, through the API. Afterwards: the worker never
// crashed, no descriptor or port is left, and no deleted session sent a packet after its
// delete (each one's receiver count is at most the packets its final stats counted, which
// the engine's thread fixes when it acknowledges the close). Bounded in time: on a loaded
// machine the cycles stop at OFFCAST_RACE_MS (default 90 s), and at least 1000 must run.
// Scale: OFFCAST_RACE_PLAYING, OFFCAST_RACE_CYCLES, OFFCAST_RACE_MS.
import t from 'tap';
import dgram from 'node:dgram';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeWav } from '../helpers/media.js';
import { waitFor } from '../helpers/ready.js';
import { hasPython, skipFile } from '../helpers/tools.js';
import { engineAddon } from '../../offload/native/index.js';
import type { ApiBody } from '../helpers/apiTypes.js';

const PLAYING = Number(process.env.OFFCAST_RACE_PLAYING ?? 2000);
const CYCLES = Number(process.env.OFFCAST_RACE_CYCLES ?? 10000);
const MAX_MS = Number(process.env.OFFCAST_RACE_MS ?? 90000);
const MIN_CYCLES = Math.min(CYCLES, 1000);
const PARALLEL = 8;

const fds = (): number => readdirSync('/proc/self/fd').length;

if (engineAddon() === null) skipFile('the native engine is not built (npm install builds it)');
else if (!hasPython()) skipFile('python3 is needed for the non-reading sink');
else {
  let server: TestServer;
  let quiet: ChildProcess;
  let quietPort = 0;
  /** Packets received per SSRC from the churned sessions. */
  const received = new Map<number, number>();
  let rx: dgram.Socket;

  /** RTP destinations are even ports: a socket on one (odd picks of the kernel are held, then given back). */
  const evenSocket = async (): Promise<dgram.Socket> => {
    const odd: dgram.Socket[] = [];
    for (;;) {
      const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
      await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
      if (sock.address().port % 2 === 0) {
        for (const o of odd) o.close();
        return sock;
      }
      odd.push(sock);
    }
  };

  const inject = async (
    method: 'POST' | 'DELETE' | 'PATCH' | 'GET',
    url: string,
    payload?: unknown,
  ): Promise<{ status: number; body: ApiBody; text: string }> => {
    const res = await server.app.inject({ method, url, payload: payload as object | undefined });
    return {
      status: res.statusCode,
      body: res.body === '' || !String(res.headers['content-type'] ?? '').includes('json') ? undefined : JSON.parse(res.body),
      text: res.body,
    };
  };

  t.before(async () => {
    // Its thousands of ports come from below 30000: the other test files' blocks (randomPortBlock)
    // and the kernel's ephemeral ports live above, and a parallel test must not find its ports taken.
    const span = 2 * (PLAYING + 200);
    if (span > 9998) throw new Error(`OFFCAST_RACE_PLAYING=${PLAYING} needs more than the 20000-29999 range`);
    const base = 20000 + 2 * Math.floor((Math.random() * (9998 - span)) / 2);
    server = await startServer({ 'limits.maxSessions': PLAYING + 100, 'rtp.portMin': base, 'rtp.portMax': base + span - 1 });
    const put = await server.api('PUT', '/v1/media/tone.wav', makeWav(8000, 1, 1));
    if (put.status !== 201) throw new Error(put.text);
    rx = await evenSocket();
    rx.on('message', (msg) => {
      if (msg.length >= 12) {
        const ssrc = msg.readUInt32BE(8);
        received.set(ssrc, (received.get(ssrc) ?? 0) + 1);
      }
    });
    // The playing sessions' destination: a socket that never reads (the kernel drops what overflows).
    quiet = spawn(
      'python3',
      [
        '-c',
        'import socket,sys\nwhile True:\n  s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n  s.bind(("127.0.0.1",0))\n  if s.getsockname()[1]%2==0: break\n  s.close()\nprint(s.getsockname()[1],flush=True)\nsys.stdin.read()',
      ],
      {
        stdio: ['pipe', 'pipe', 'inherit'],
      },
    );
    quietPort = await new Promise<number>((resolve, reject) => {
      quiet.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
      quiet.once('exit', () => reject(new Error('the quiet sink exited')));
    });
  });
  t.teardown(async () => {
    rx?.close();
    quiet?.kill();
    await server?.stop();
  });

  /** One churned session: create (playing), then seek / pause / resume / delete in a mix; returns an error or null. */
  async function cycle(i: number, finals: Map<number, number>): Promise<string | null> {
    const c = await inject('POST', '/v1/sessions', {
      mode: 'play',
      media: 'tone.wav',
      loop: true,
      destination: { host: '127.0.0.1', port: rx.address().port },
    });
    if (c.status !== 201) return `${i}: create ${c.status} ${c.text}`;
    const id = c.body.id as string;
    const steps: unknown[] = [
      [],
      [{ positionMs: (i * 37) % 900 }],
      [{ state: 'paused' }],
      [{ positionMs: 500 }, { state: 'paused' }, { state: 'playing' }],
      [{ state: 'paused' }, { positionMs: 100 }, { state: 'playing' }, { positionMs: 800 }],
    ][((i % 5) + 5) % 5]!;
    for (const body of steps as object[]) {
      const u = await inject('PATCH', `/v1/sessions/${id}`, body);
      if (u.status !== 200) return `${i}: update ${JSON.stringify(body)} ${u.status} ${u.text}`;
    }
    const d = await inject('DELETE', `/v1/sessions/${id}`);
    if (d.status !== 200) return `${i}: delete ${d.status} ${d.text}`;
    finals.set(c.body.tracks[0].ssrc as number, d.body.tracks[0].stats.packets as number);
    return null;
  }

  t.test(
    `${PLAYING} sessions play while up to ${CYCLES} others are created, seeked, paused and deleted: no crash, no leak, no packet after close`,
    async (t) => {
      const finals = new Map<number, number>();
      t.equal(await cycle(-1, finals), null, 'warm-up cycle');
      const before = { fds: fds(), ports: server.ports.free };

      // The playing load.
      const playing: string[] = [];
      const errors: string[] = [];
      let n = 0;
      await Promise.all(
        Array.from({ length: PARALLEL }, async () => {
          while (n < PLAYING) {
            n++;
            const c = await inject('POST', '/v1/sessions', {
              mode: 'play',
              media: 'tone.wav',
              loop: true,
              destination: { host: '127.0.0.1', port: quietPort },
            });
            if (c.status === 201) playing.push(c.body.id as string);
            else if (errors.length < 10) errors.push(`playing: ${c.status} ${c.text}`);
          }
        }),
      );
      t.same(errors, [], `${playing.length} sessions playing`);
      const metrics = (await inject('GET', '/metrics')).text;
      t.match(metrics, /^offcast_offload_native_engine 1$/m, 'the native engine paces them');
      const inEngine = Number(/^offcast_engine_tracks (\d+)$/m.exec(metrics)?.[1] ?? -1);
      t.ok(inEngine >= PLAYING, `${inEngine} tracks in the engine`);

      // The churn.
      const started = performance.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: PARALLEL }, async () => {
          while (next < CYCLES && performance.now() - started < MAX_MS) {
            const err = await cycle(next++, finals);
            if (err !== null && errors.length < 20) errors.push(err);
          }
        }),
      );
      const took = performance.now() - started;
      t.same(errors, [], 'every create, update and delete answered as it should');
      t.ok(next >= MIN_CYCLES, `${next} cycles ran in ${(took / 1000).toFixed(1)} s (${CYCLES} wanted, ${MIN_CYCLES} at least within ${MAX_MS / 1000} s)`);
      t.equal(server.offload.restarts, 0, 'the worker never crashed');
      const stillPlaying = await inject('GET', `/v1/sessions/${playing[0]}`);
      t.equal(stillPlaying.body.state, 'playing', 'the playing sessions still play');

      // No packet after close: what arrives (late arrivals included) never exceeds what was counted at the close.
      await new Promise((r) => setTimeout(r, 300));
      let over = 0;
      let total = 0;
      for (const [ssrc, counted] of finals) {
        const got = received.get(ssrc) ?? 0;
        total += got;
        if (got > counted) over++;
      }
      t.equal(over, 0, `no session sent more than its final count (${finals.size} sessions, ${total} packets received)`);
      t.ok(total > 0, 'the churned sessions did send');

      for (const id of playing) await inject('DELETE', `/v1/sessions/${id}`);
      await waitFor(() => fds() <= before.fds, 15000, 50);
      t.ok(fds() <= before.fds, `file descriptors: ${before.fds} before, ${fds()} after`);
      t.equal(server.ports.free + server.ports.quarantined, before.ports, `every port back in the pool (${server.ports.quarantined} quarantined)`);
      const after = (await inject('GET', '/metrics')).text;
      t.match(after, /^offcast_engine_tracks 0$/m, 'no track left in the engine');
    },
  );
}

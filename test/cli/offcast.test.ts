// The `offcast` command as its users run it: the real bin/offcast.mjs in a
// child process, against a real server, with a real UDP receiver.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../helpers/server.js';
import { makeWav } from '../helpers/media.js';
import { RtpSink } from '../helpers/rtp.js';
import { rtpPacket, TestSender } from '../helpers/sender.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = path.join(root, 'bin', 'offcast.mjs');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function offcast(args: string[], env: Record<string, string | undefined> = {}, timeoutMs = 240_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const childEnv: Record<string, string | undefined> = { ...process.env, OFFCAST_API_TOKEN: undefined, OFFCAST_SERVER: undefined, ...env };
    for (const k of Object.keys(childEnv)) if (childEnv[k] === undefined) delete childEnv[k];
    // No tap loader: the binary runs as it does for a user.
    const child = spawn(process.execPath, [bin, ...args], { cwd: root, env: childEnv as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// The first run of bin/offcast.mjs may compile the sources (about a minute on a loaded machine): more than tap's default budget.
t.setTimeout(600_000);

const pkg = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> };

t.test('package.json names the binary, and it runs (compiling on first use)', async (t) => {
  t.equal(pkg.bin.offcast, 'bin/offcast.mjs');
  const r = await offcast(['--version']);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout.trim(), pkg.version);
  const help = await offcast(['--help']);
  for (const c of ['serve', 'media', 'play', 'record', 'sessions', 'stop', 'seek', 'pause', 'resume', 'recordings'])
    t.match(help.stdout, new RegExp(`^  ${c}\\b`, 'm'), `help lists ${c}`);
});

t.test('upload, play to a receiver, list, control, stop, delete', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  const env = { OFFCAST_SERVER: server.url };
  const wav = makeWav(48000, 2, 2);
  const file = path.join(server.dir, 'tone.wav');
  await writeFile(file, wav);

  const put = await offcast(['media', 'put', file], env);
  t.equal(put.code, 0, put.stderr);
  t.match(put.stdout, /^tone\.wav: wav, /, 'prints the probe');
  t.match(put.stdout, /TRACK\s+KIND\s+CODEC/);
  t.match(put.stdout, /^0\s+audio\s+\S+\s+48000\s+2 ch\s+yes$/m);
  const named = await offcast(['media', 'put', file, '--name', 'copy.wav', '--json'], env);
  t.equal(named.code, 0, named.stderr);
  t.equal(JSON.parse(named.stdout).bytes, wav.length, 'the whole file arrived');

  if (spawnSync('script', ['--version']).status === 0) {
    // On a terminal (a pseudo-terminal from util-linux script), the upload shows a progress bar.
    const cmd = [process.execPath, bin, 'media', 'put', file, '--name', 'tty.wav'].map((a) => JSON.stringify(a)).join(' ');
    // Not spawnSync: the server runs in this process and must keep answering.
    const tty = await new Promise<{ status: number | null; stdout: string }>((resolve, reject) => {
      const child = spawn('script', ['-qfec', cmd, '/dev/null'], { cwd: root, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'inherit'] });
      let stdout = '';
      child.stdout.on('data', (d) => (stdout += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
      child.on('error', reject);
      child.on('close', (status) => {
        clearTimeout(timer);
        resolve({ status, stdout });
      });
    });
    t.equal(tty.status, 0, tty.stdout);
    t.match(tty.stdout, /\[#{24}\] 100% 375 KiB \/ 375 KiB  \S+ \S+\/s  ETA 0s/, 'a progress bar with bytes, rate and ETA');
    t.match(tty.stdout, /\[#*-+\] +\d+% /, 'redrawn while it runs');
    t.match(tty.stdout, /^tty\.wav: wav, /m, 'then the probe');
    t.equal((await offcast(['media', 'rm', 'tty.wav'], env)).code, 0);
  } else t.comment('util-linux script is missing: the progress bar on a terminal is not checked');

  const ls = await offcast(['media', 'ls', '--json'], env);
  t.same(
    JSON.parse(ls.stdout)
      .map((m: { name: string }) => m.name)
      .sort(),
    ['copy.wav', 'tone.wav'],
  );
  const lsTable = await offcast(['media', 'ls'], env);
  t.match(lsTable.stdout, /^NAME\s+SIZE\s+MODIFIED/);
  t.match(lsTable.stdout, /^tone\.wav\s+/m);

  const sink = await RtpSink.open();
  t.teardown(() => sink.close());
  const sdp = path.join(server.dir, 's.sdp');
  const play = await offcast(['play', 'tone.wav', '--to', `127.0.0.1:${sink.port}`, '--loop', '--sdp', sdp], env);
  t.equal(play.code, 0, play.stderr);
  const id = play.stdout.trim();
  t.match(id, /^[0-9a-f-]{36}$/, 'prints the session id alone');
  await sink.waitFor(50, 20000);
  t.ok(sink.packets.length >= 50, 'the receiver gets packets');
  const sdpText = await readFile(sdp, 'utf8');
  t.match(sdpText, new RegExp(`^m=audio ${sink.port} RTP/AVP \\d+`, 'm'), 'the SDP names the destination port');

  const list = await offcast(['sessions', '--json'], env);
  const s = JSON.parse(list.stdout).find((x: { id: string }) => x.id === id);
  t.equal(s.state, 'playing');
  t.ok(s.tracks[0].stats.packets > 0);
  // Per-session send lateness: one sample per packet this session sent (read in the same snapshot), in the worker's buckets.
  const late = s.tracks[0].stats.lateness;
  t.equal(late.count, s.tracks[0].stats.packets, 'one lateness sample per packet sent');
  t.equal(
    late.counts.reduce((a: number, b: number) => a + b, 0),
    late.count,
    'the bucket counts add up',
  );
  t.equal(late.counts.length, late.buckets.length + 1);
  const again = JSON.parse((await offcast(['sessions', '--json'], env)).stdout).find((x: { id: string }) => x.id === id);
  t.ok(again.tracks[0].stats.lateness.count > late.count, 'and it rises as the session plays');
  t.equal(again.tracks[0].stats.lateness.count, again.tracks[0].stats.packets);
  const tableRun = await offcast(['sessions'], env);
  t.match(tableRun.stdout, /^ID\s+MODE\s+MEDIA\s+PEER\s+STATE\s+POSITION\s+PKT\/S\s+BITRATE\s+LOSS\s+JITTER\s+LATE P99$/m);
  const row = tableRun.stdout.split('\n').find((l) => l.startsWith(id));
  t.ok(row, 'the session is listed');
  t.match(row!, new RegExp(`^${id}\\s+play\\s+tone\\.wav\\s+127\\.0\\.0\\.1:${sink.port}\\s+playing\\s+\\d+:\\d\\d\\.\\d\\s+(\\d+)\\s+`));
  // 48 kHz stereo L16 in 1200-byte payloads is ~160 packets/s: the lifetime average is in that range.
  const pps = Number(/playing\s+\S+\s+(\d+)/.exec(row!)![1]);
  t.ok(pps > 50 && pps < 400, `packets/s ${pps}`);
  // This session's p99 send lateness, a bucket bound of its own histogram.
  const bound = /(≤ (\S+) ms|> 1000 ms)$/.exec(row!);
  t.ok(bound, `the row ends with this session's lateness p99: ${row}`);
  if (bound?.[2] !== undefined) t.ok(late.buckets.includes(Number(bound[2])), 'a bucket bound');

  const watch = await offcast(['sessions', '--watch', '--count', '2', '--interval', '300'], env);
  t.equal(watch.code, 0, watch.stderr);
  t.equal(watch.stdout.match(/^ID\s+MODE/gm)?.length, 2, 'two refreshes, then it ends');
  // The second refresh shows the sends since the first: still a p99 of this session.
  const rows = watch.stdout.split('\n').filter((l) => l.startsWith(id));
  t.equal(rows.length, 2);
  t.match(rows[1]!, /(≤ \S+ ms|> 1000 ms)$/, 'lateness p99 of the interval');

  const pause = await offcast(['pause', id], env);
  t.match(pause.stdout, new RegExp(`^${id} paused`));
  const seek = await offcast(['seek', id, '1000'], env);
  t.match(seek.stdout, new RegExp(`^${id} paused at 0:01\\.0`));
  const resume = await offcast(['resume', id], env);
  t.match(resume.stdout, new RegExp(`^${id} playing`));

  const stop = await offcast(['stop', id], env);
  t.equal(stop.code, 0, stop.stderr);
  t.match(stop.stdout, new RegExp(`^stopped ${id}: \\d+ packets sent`));
  const after = JSON.parse((await offcast(['sessions', '--json'], env)).stdout).find((x: { id: string }) => x.id === id);
  t.ok(after === undefined || after.state === 'ended', 'the session has ended');

  const rm = await offcast(['media', 'rm', 'copy.wav'], env);
  t.equal(rm.code, 0, rm.stderr);
  t.same(
    JSON.parse((await offcast(['media', 'ls', '--json'], env)).stdout).map((m: { name: string }) => m.name),
    ['tone.wav'],
  );
});

t.test('record from a sender, then list and download the recording', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  const env = { OFFCAST_SERVER: server.url };
  const rec = await offcast(['record', 'take1', '--track', 'audio:PCMU:0:8000', '--source', '127.0.0.1'], env);
  t.equal(rec.code, 0, rec.stderr);
  const [id, ...rest] = rec.stdout.split('\n');
  const port = Number(/^0\s+audio\s+PCMU\s+0\s+127\.0\.0\.1:(\d+)$/m.exec(rest.join('\n'))?.[1]);
  t.ok(port > 0, `prints where to send: ${rec.stdout}`);
  const sender = await TestSender.open();
  t.teardown(() => sender.close());
  const payload = Buffer.alloc(160, 0x55);
  for (let seq = 0; seq < 50; seq++) await sender.send(rtpPacket(0, seq, seq * 160, 0x1234, payload), port);
  // Wait until the server counted them (readiness, not a fixed sleep).
  for (let i = 0; i < 200; i++) {
    const s = (await server.api('GET', `/v1/sessions/${id}`)).body;
    if ((s?.tracks?.[0]?.stats?.packets ?? 0) >= 50) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const stop = await offcast(['stop', id!], env);
  t.equal(stop.code, 0, stop.stderr);
  t.match(stop.stdout, /recording take1/);
  t.match(stop.stdout, /^0\s+\S+\s+50$/m, '50 packets recorded');

  const ls = await offcast(['recordings', 'ls'], env);
  t.match(ls.stdout, /^take1\s+finished\s+/m);
  const info = await offcast(['recordings', 'get', 'take1'], env);
  t.match(info.stdout, /^take1: finished/);
  const out = path.join(server.dir, 'take1.wav');
  const get = await offcast(['recordings', 'get', 'take1', '0', '-o', out], env);
  t.equal(get.code, 0, get.stderr);
  const head = await readFile(out);
  t.equal(head.subarray(0, 4).toString(), 'RIFF', 'a playable WAV');
  t.equal((await stat(out)).size, head.length);
  t.ok(head.length >= 44 + 50 * 160, `holds the 50 × 160 recorded samples (${head.length} bytes)`);
});

t.test('errors are one line with the API message and a non-zero exit', async (t) => {
  const server = await startServer({ 'api.token': 'tok', 'limits.uploadBytes': 4096 });
  t.teardown(() => server.stop());
  const env = { OFFCAST_SERVER: server.url, OFFCAST_API_TOKEN: 'tok' };
  const oneLine = (r: Run, re: RegExp, code = 1): void => {
    t.equal(r.code, code, `exit ${code}: ${r.stderr.trim()}`);
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    t.match(r.stderr.trim(), re);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack');
  };
  oneLine(await offcast(['play', 'nosuch.wav', '--to', '127.0.0.1:5004'], env), /^offcast: 404 OFFCAST_MEDIA_NOT_FOUND: no media named "nosuch\.wav"$/);
  oneLine(await offcast(['sessions'], { OFFCAST_SERVER: server.url }), /^offcast: 401 OFFCAST_UNAUTHORIZED: /);
  oneLine(await offcast(['stop', 'nosuch'], env), /^offcast: 404 OFFCAST_SESSION_NOT_FOUND: /);
  oneLine(await offcast(['play', 'x.wav', '--to', 'nowhere'], env), /^offcast: --to wants HOST:PORT/, 2);
  oneLine(await offcast(['play', 'x.wav', '--to', '10.0.0.1:5004'], env), /^offcast: 404 |^offcast: 403 /);
  oneLine(await offcast(['record', 'r1'], env), /^offcast: record needs either --sdp FILE or --track/, 2);
  oneLine(await offcast(['record', 'r1', '--track', 'audio:opus'], env), /^offcast: --track wants kind:codec:pt:clock/, 2);
  oneLine(await offcast(['seek', 'x', 'soon'], env), /^offcast: seek wants a position in milliseconds/, 2);
  const big = path.join(server.dir, 'big.wav');
  await writeFile(big, makeWav(8000, 1, 1));
  oneLine(await offcast(['media', 'put', big], env), /^offcast: 413 OFFCAST_UPLOAD_TOO_LARGE: upload exceeds limits\.uploadBytes \(4096 bytes\)$/);
  oneLine(await offcast(['media', 'put', path.join(server.dir, 'missing.wav')], env), /^offcast: cannot read .*missing\.wav: ENOENT$/);
  const closed = await closedPort();
  oneLine(
    await offcast(['media', 'ls'], { OFFCAST_SERVER: `http://127.0.0.1:${closed}` }),
    new RegExp(`^offcast: cannot reach http://127\\.0\\.0\\.1:${closed}: ECONNREFUSED$`),
  );
  oneLine(await offcast(['media', 'ls', '--server', 'not a url'], env), /^offcast: --server "not a url" is not a URL/, 2);
  const unknown = await offcast(['frobnicate'], env);
  t.not(unknown.code, 0, 'an unknown command fails');
  t.match(unknown.stderr, /unknown command 'frobnicate'/);
  t.equal((await offcast(['media', 'ls', '--json'], env)).code, 0, 'with the token it works');
});

t.test('offcast serve runs the server as npm start does', async (t) => {
  const dir = await startServerDir();
  const child = spawn(process.execPath, [bin, 'serve'], {
    cwd: root,
    env: {
      ...process.env,
      OFFCAST_HTTP_PORT: '0',
      // No RTSP listener: parallel test files must not fight over port 8554.
      OFFCAST_RTSP_PORT: '0',
      OFFCAST_MEDIA_ROOT: path.join(dir, 'media'),
      OFFCAST_RECORDINGS_ROOT: path.join(dir, 'recordings'),
      OFFCAST_LOG_FORMAT: 'json',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let logs = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listen line in: ${logs}`)), 240_000);
    child.stdout.on('data', (d) => {
      logs += d;
      const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(logs);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.stderr.on('data', (d) => (logs += d));
  });
  const ls = await offcast(['media', 'ls', '--json', '--server', url]);
  t.ok(
    JSON.parse(ls.stdout).some((m: { name: string }) => m.name === 'sample.wav'),
    'the served library has the sample',
  );
  const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM stops it cleanly');
});

/** A TCP port nothing listens on (it was just free). */
async function closedPort(): Promise<number> {
  const net = await import('node:net');
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

async function startServerDir(): Promise<string> {
  const { mkdtemp } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const dir = await mkdtemp(path.join(tmpdir(), 'offcast-serve-'));
  t.teardown(async () => (await import('node:fs/promises')).rm(dir, { recursive: true, force: true }));
  return dir;
}

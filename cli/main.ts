/**
 * `offcast`: the command line for an offcast server (and `offcast serve` to run one).
 * It speaks the public HTTP API only; run it through bin/offcast.mjs.
 */
import { Command, Option } from 'commander';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { ApiClient, CliError } from './client.js';
import { bitrate, bytes, clock, table } from './format.js';
import { delta, latenessText, sessionLateness, type Lateness } from './metrics.js';
import { ProgressBar } from './progress.js';

const DEFAULT_SERVER = 'http://127.0.0.1:8080';

interface Globals {
  server?: string;
}

function client(cmd: Command): ApiClient {
  const g = cmd.optsWithGlobals<Globals>();
  return new ApiClient(g.server ?? process.env.OFFCAST_SERVER ?? DEFAULT_SERVER, process.env.OFFCAST_API_TOKEN);
}

const out = (s: string): void => void process.stdout.write(s);
const printJson = (v: unknown): void => out(JSON.stringify(v, null, 2) + '\n');

function intArg(what: string, min = 0) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new CliError(`${what} must be an integer ≥ ${min}, not ${JSON.stringify(v)}`, 2);
    return n;
  };
}

/** `127.0.0.1:5004`, `[::1]:5004` -> host and port. */
export function hostPort(v: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(v);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) throw new CliError(`--to wants HOST:PORT (e.g. 127.0.0.1:5004), not ${JSON.stringify(v)}`, 2);
  return { host: (m[1] ?? m[2])!, port };
}

/** `audio:opus:97:48000:2` -> a record track. */
export function trackSpec(v: string, prev: unknown[] = []): unknown[] {
  const parts = v.split(':');
  const [kind, codec, pt, clockRate, channels] = parts;
  const num = (s: string | undefined): number => (s !== undefined && /^\d+$/.test(s) ? Number(s) : NaN);
  if (
    parts.length < 4 ||
    parts.length > 5 ||
    (kind !== 'audio' && kind !== 'video') ||
    !codec ||
    Number.isNaN(num(pt)) ||
    Number.isNaN(num(clockRate)) ||
    (channels !== undefined && Number.isNaN(num(channels)))
  ) {
    throw new CliError(`--track wants kind:codec:pt:clock[:channels] (e.g. audio:opus:97:48000:2), not ${JSON.stringify(v)}`, 2);
  }
  const t: Record<string, unknown> = { kind, codec, payloadType: num(pt), clockRate: num(clockRate) };
  if (channels !== undefined) t.channels = num(channels);
  return [...prev, t];
}

// ---- views of the API's JSON --------------------------------------------------------------

interface Probe {
  name: string;
  format: string;
  bytes: number;
  durationMs: number;
  tracks: {
    index: number;
    kind: string;
    codec: string;
    supported: boolean;
    clockRate: number;
    channels?: number;
    width?: number;
    height?: number;
    frameRate?: number;
  }[];
}

interface TrackStats {
  packets?: number;
  octets?: number;
  bytes?: number;
  lost?: number;
  jitterMs?: number;
  rtcp?: { fractionLost: number; jitterMs: number } | null;
  lateness?: Lateness;
}

interface Session {
  id: string;
  mode: 'play' | 'record';
  state: string;
  media?: string;
  live?: string;
  name?: string;
  destination?: { host: string; port: number };
  positionMs?: number;
  durationMs?: number;
  createdAt: string;
  sdp?: string;
  tracks: { index: number; kind: string; codec: string; payloadType: number; port?: number; stats?: TrackStats }[];
  recording?: unknown;
}

function probeText(p: Probe): string {
  const head = `${p.name}: ${p.format}, ${bytes(p.bytes)}, ${clock(p.durationMs)}\n`;
  const rows = p.tracks.map((t) => [
    String(t.index),
    t.kind,
    t.codec,
    String(t.clockRate),
    t.kind === 'video' ? `${t.width ?? '?'}x${t.height ?? '?'}${t.frameRate ? ` @${t.frameRate}` : ''}` : t.channels !== undefined ? `${t.channels} ch` : '',
    t.supported ? 'yes' : 'no',
  ]);
  return head + table(['TRACK', 'KIND', 'CODEC', 'CLOCK', 'FORMAT', 'PLAYABLE'], rows);
}

/** Totals of a session's tracks: packets, bytes, loss (0..1 or null), jitter ms (or null). */
function totals(s: Session): { packets: number; bytes: number; loss: number | null; jitterMs: number | null } {
  let packets = 0;
  let octets = 0;
  let loss: number | null = null;
  let jitter: number | null = null;
  let lost = 0;
  for (const t of s.tracks) {
    const st = t.stats ?? {};
    packets += st.packets ?? 0;
    octets += st.octets ?? st.bytes ?? 0;
    if (st.rtcp) {
      loss = Math.max(loss ?? 0, st.rtcp.fractionLost);
      jitter = Math.max(jitter ?? 0, st.rtcp.jitterMs);
    }
    if (st.lost !== undefined) lost += st.lost;
    if (st.jitterMs !== undefined) jitter = Math.max(jitter ?? 0, st.jitterMs);
  }
  if (s.mode === 'record' && packets + lost > 0) loss = lost / (packets + lost);
  return { packets, bytes: octets, loss, jitterMs: jitter };
}

interface Sample {
  at: number;
  packets: number;
  bytes: number;
  /** Cumulative send lateness at that look (play sessions). */
  late: Lateness | null;
}

/** One table of sessions; rates over the time since `before` (or over the session's life). */
function sessionsTable(list: Session[], before: Map<string, Sample>, now: number): { text: string; samples: Map<string, Sample> } {
  const samples = new Map<string, Sample>();
  const rows = list.map((s) => {
    const t = totals(s);
    const late = sessionLateness(s.tracks);
    samples.set(s.id, { at: now, packets: t.packets, bytes: t.bytes, late });
    const prev = before.get(s.id) ?? { at: Date.parse(s.createdAt), packets: 0, bytes: 0, late: null };
    const dt = Math.max(0.001, (now - prev.at) / 1000);
    const live = s.state === 'playing' || s.state === 'recording';
    const pps = live ? (t.packets - prev.packets) / dt : 0;
    const bps = live ? ((t.bytes - prev.bytes) * 8) / dt : 0;
    return [
      s.id,
      s.mode,
      s.media ?? s.name ?? (s.live ? `live:${s.live.slice(0, 8)}` : ''),
      s.mode === 'play' && s.destination ? `${s.destination.host}:${s.destination.port}` : s.tracks.map((k) => k.port).join(','),
      s.state,
      s.positionMs !== undefined ? clock(s.positionMs) : s.durationMs !== undefined ? clock(s.durationMs) : '',
      Math.round(Math.max(0, pps)).toString(),
      bitrate(Math.max(0, bps)),
      t.loss === null ? '-' : `${(t.loss * 100).toFixed(1)}%`,
      t.jitterMs === null ? '-' : `${t.jitterMs.toFixed(1)} ms`,
      // This session's sends since the last look (or since it started).
      late === null ? '-' : latenessText(delta(late, prev.late), 0.99),
    ];
  });
  const text = table(['ID', 'MODE', 'MEDIA', 'PEER', 'STATE', 'POSITION', 'PKT/S', 'BITRATE', 'LOSS', 'JITTER', 'LATE P99'], rows);
  return { text, samples };
}

// ---- the program ----------------------------------------------------------------------------

export function program(version: string): Command {
  const p = new Command('offcast')
    .description('command line for an offcast server (UDP/RTP media streaming)')
    .version(version)
    .addOption(new Option('--server <url>', `the server (env OFFCAST_SERVER, default ${DEFAULT_SERVER}); the token comes from OFFCAST_API_TOKEN`))
    .showHelpAfterError()
    .configureOutput({ outputError: (s, write) => write(s.startsWith('error:') ? `offcast: ${s}` : s) });

  p.command('serve')
    .description('run the server, as `npm start` does')
    .option('--config <file>', 'JSON config file (same as OFFCAST_CONFIG)')
    .action(async (o: { config?: string }) => {
      if (o.config !== undefined) process.env.OFFCAST_CONFIG = path.resolve(o.config);
      // main.ts reads the config and starts on import.
      await import('../server/main.js');
    });

  const media = p.command('media').description('the media library');
  media
    .command('put')
    .description('upload a media file (progress on a terminal), then print its probe')
    .argument('<file>')
    .option('--name <name>', 'name in the library (default: the file name)')
    .option('--json', 'print the probe as JSON')
    .action(async (file: string, o: { name?: string; json?: boolean }, cmd: Command) => {
      const api = client(cmd);
      const size = await stat(file).then(
        (s) => s.size,
        (e: unknown) => {
          const err = e as NodeJS.ErrnoException;
          throw new CliError(`cannot read ${file}: ${err.code ?? err.message}`);
        },
      );
      const name = o.name ?? path.basename(file);
      const bar = process.stderr.isTTY ? new ProgressBar(size, process.stderr) : null;
      const counted = createReadStream(file).pipe(
        new Transform({
          transform(chunk: Buffer, _enc, cb) {
            bar?.add(chunk.length);
            cb(null, chunk);
          },
        }),
      );
      const body = Readable.toWeb(counted) as ReadableStream<Uint8Array>;
      try {
        const probe = await api.json<Probe>('PUT', `/v1/media/${encodeURIComponent(name)}`, {
          body,
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
        });
        bar?.finish();
        if (o.json) printJson(probe);
        else out(probeText(probe));
      } catch (err) {
        if (bar) process.stderr.write('\n');
        throw err;
      }
    });
  media
    .command('ls')
    .description('list the media library')
    .option('--json', 'JSON output')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      const { media: list } = await client(cmd).json<{ media: { name: string; bytes: number; modified: string; recording?: boolean }[] }>('GET', '/v1/media');
      if (o.json) return printJson(list);
      out(
        table(
          ['NAME', 'SIZE', 'MODIFIED', 'KIND'],
          list.map((m) => [m.name, bytes(m.bytes), m.modified, m.recording ? 'recording' : 'file']),
        ),
      );
    });
  media
    .command('rm')
    .description('delete a media file')
    .argument('<name>')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      await client(cmd).request('DELETE', `/v1/media/${encodeURIComponent(name)}`);
      out(`deleted ${name}\n`);
    });
  media
    .command('probe')
    .description('print the probe of a media file')
    .argument('<name>')
    .option('--json', 'JSON output')
    .action(async (name: string, o: { json?: boolean }, cmd: Command) => {
      const probe = await client(cmd).json<Probe>('GET', `/v1/media/${encodeURIComponent(name)}`);
      if (o.json) printJson(probe);
      else out(probeText(probe));
    });

  p.command('play')
    .description('start a play session; prints its id (and writes its SDP with --sdp)')
    .argument('<media>', 'a media name in the library')
    .requiredOption('--to <host:port>', 'RTP destination (RTCP goes to port+1)', hostPort)
    .option('--loop', 'restart at the end, seamlessly')
    .option('--paused', 'create it paused')
    .option('--start <ms>', 'start position', intArg('--start'))
    .addOption(new Option('--codec <codec>', 'send PCM audio as').choices(['L16', 'PCMU', 'PCMA']))
    .option('--speed <x>', 'a multiple of real time, or "max"')
    .option('--sdp <file>', 'write the session SDP here (for ffplay, VLC, GStreamer)')
    .option('--json', 'print the session as JSON')
    .action(
      async (
        mediaName: string,
        o: {
          to: { host: string; port: number };
          loop?: boolean;
          paused?: boolean;
          start?: number;
          codec?: string;
          speed?: string;
          sdp?: string;
          json?: boolean;
        },
        cmd: Command,
      ) => {
        const body: Record<string, unknown> = { mode: 'play', media: mediaName, destination: o.to };
        if (o.loop) body.loop = true;
        if (o.paused) body.state = 'paused';
        if (o.start !== undefined) body.startMs = o.start;
        if (o.codec !== undefined) body.codec = o.codec;
        if (o.speed !== undefined) body.speed = o.speed === 'max' ? 'max' : Number(o.speed);
        const s = await client(cmd).json<Session>('POST', '/v1/sessions', { json: body });
        if (o.sdp !== undefined && s.sdp !== undefined) await writeFile(o.sdp, s.sdp);
        if (o.json) return printJson(s);
        out(`${s.id}\n`);
        process.stderr.write(`playing ${mediaName} to ${o.to.host}:${o.to.port}${o.sdp ? `; SDP in ${o.sdp}` : ''}\n`);
      },
    );

  p.command('record')
    .description('start a record session; prints where to send each track')
    .argument('<name>', 'name of the recording')
    .option('--sdp <file>', 'the sender’s SDP (e.g. ffmpeg -sdp_file)')
    .option('--track <kind:codec:pt:clock[:channels]>', 'a track (repeat for more), e.g. audio:opus:97:48000:2', trackSpec)
    .option('--source <host>', 'accept packets from this host only')
    .option('--json', 'print the session as JSON')
    .action(async (name: string, o: { sdp?: string; track?: unknown[]; source?: string; json?: boolean }, cmd: Command) => {
      const api = client(cmd);
      if ((o.sdp === undefined) === (o.track === undefined)) throw new CliError('record needs either --sdp FILE or --track kind:codec:pt:clock[:channels]', 2);
      let s: Session;
      if (o.sdp !== undefined) {
        if (o.source !== undefined) throw new CliError('--source goes with --track (with --sdp, the SDP names the source)', 2);
        const sdp = await readFile(o.sdp, 'utf8').catch((e: unknown) => {
          const err = e as NodeJS.ErrnoException;
          throw new CliError(`cannot read ${o.sdp}: ${err.code ?? err.message}`);
        });
        s = await api.json<Session>('POST', '/v1/sessions', { body: sdp, headers: { 'content-type': 'application/sdp' }, query: { name } });
      } else {
        const body: Record<string, unknown> = { mode: 'record', name, tracks: o.track };
        if (o.source !== undefined) body.source = { host: o.source };
        s = await api.json<Session>('POST', '/v1/sessions', { json: body });
      }
      if (o.json) return printJson(s);
      out(`${s.id}\n`);
      out(
        table(
          ['TRACK', 'KIND', 'CODEC', 'PT', 'SEND TO'],
          s.tracks.map((t) => [String(t.index), t.kind, t.codec, String(t.payloadType), `${api.host}:${t.port}`]),
        ),
      );
    });

  p.command('sessions')
    .description('sessions with live statistics')
    .option('--watch', 'refresh until interrupted')
    .option('--interval <ms>', 'refresh interval with --watch', intArg('--interval', 100), 1000)
    .option('--count <n>', 'stop after n refreshes with --watch', intArg('--count', 1))
    .option('--json', 'JSON output (one document per refresh with --watch)')
    .action(async (o: { watch?: boolean; interval: number; count?: number; json?: boolean }, cmd: Command) => {
      const api = client(cmd);
      let samples = new Map<string, Sample>();
      const clear = process.stdout.isTTY && o.watch && !o.json;
      for (let n = 1; ; n++) {
        const { sessions: list } = await api.json<{ sessions: Session[] }>('GET', '/v1/sessions');
        if (o.json) printJson(list);
        else {
          const t = sessionsTable(list, samples, Date.now());
          samples = t.samples;
          if (clear) out('\x1b[H\x1b[2J');
          out(t.text + (o.watch && !clear ? '\n' : ''));
        }
        if (!o.watch || (o.count !== undefined && n >= o.count)) break;
        await new Promise((r) => setTimeout(r, o.interval));
      }
    });

  const control = (verb: string, description: string, body: (arg?: string) => Record<string, unknown>, extra?: string): void => {
    const c = p.command(verb).description(description).argument('<id>', 'session id');
    if (extra !== undefined) c.argument(extra);
    c.action(async (id: string, ...rest: unknown[]) => {
      const cmd = rest[rest.length - 1] as Command;
      const arg = extra !== undefined ? (rest[0] as string) : undefined;
      const s = await client(cmd).json<Session>('PATCH', `/v1/sessions/${encodeURIComponent(id)}`, { json: body(arg) });
      out(`${s.id} ${s.state}${s.positionMs !== undefined ? ' at ' + clock(s.positionMs) : ''}\n`);
    });
  };
  control('pause', 'pause a play session', () => ({ state: 'paused' }));
  control('resume', 'resume a paused play session', () => ({ state: 'playing' }));
  control(
    'seek',
    'move a play session to a position',
    (ms) => {
      const n = Number(ms);
      if (!Number.isFinite(n) || n < 0) throw new CliError(`seek wants a position in milliseconds, not ${JSON.stringify(ms)}`, 2);
      return { positionMs: n };
    },
    '<ms>',
  );

  p.command('stop')
    .description('end a session (a record session finishes its recording)')
    .argument('<id>')
    .option('--json', 'print the answer as JSON')
    .action(async (id: string, o: { json?: boolean }, cmd: Command) => {
      const r = await client(cmd).json<
        Session | { recording: { name: string; durationMs: number; tracks: { index: number; file: string; packets: number }[] } }
      >('DELETE', `/v1/sessions/${encodeURIComponent(id)}`);
      if (o.json) return printJson(r);
      if ('recording' in r && r.recording !== undefined && 'tracks' in (r.recording as object)) {
        const rec = (r as { recording: { name: string; durationMs: number; tracks: { index: number; file: string; packets: number }[] } }).recording;
        out(`stopped ${id}: recording ${rec.name}, ${clock(rec.durationMs)}\n`);
        out(
          table(
            ['TRACK', 'FILE', 'PACKETS'],
            rec.tracks.map((t) => [String(t.index), t.file, String(t.packets)]),
          ),
        );
      } else {
        const s = r as Session;
        out(`stopped ${id}: ${totals(s).packets} packets sent\n`);
      }
    });

  const recordings = p.command('recordings').description('recordings on disk');
  recordings
    .command('ls')
    .description('list recordings')
    .option('--json', 'JSON output')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      const { recordings: list } = await client(cmd).json<{
        recordings: { name: string; state: string; durationMs: number; createdAt: string; tracks: { codec: string }[] }[];
      }>('GET', '/v1/recordings');
      if (o.json) return printJson(list);
      out(
        table(
          ['NAME', 'STATE', 'DURATION', 'TRACKS', 'CREATED'],
          list.map((r) => [r.name, r.state, clock(r.durationMs), r.tracks.map((t) => t.codec).join('+'), r.createdAt]),
        ),
      );
    });
  recordings
    .command('get')
    .description('show a recording, or download one of its tracks')
    .argument('<name>')
    .argument('[track]', 'track index to download')
    .option('-o, --output <file>', 'where to write the track ("-" for stdout; default: the server’s file name)')
    .option('--rtpdump', 'the raw capture (rtpdump) instead of the playable file')
    .option('--json', 'print the manifest as JSON')
    .action(async (name: string, track: string | undefined, o: { output?: string; rtpdump?: boolean; json?: boolean }, cmd: Command) => {
      const api = client(cmd);
      if (track === undefined) {
        const m = await api.json<{
          name: string;
          state: string;
          durationMs: number;
          tracks: { index: number; kind: string; codec: string; file: string; packets: number; lost: number }[];
        }>('GET', `/v1/recordings/${encodeURIComponent(name)}`);
        if (o.json) return printJson(m);
        out(`${m.name}: ${m.state}, ${clock(m.durationMs)}\n`);
        out(
          table(
            ['TRACK', 'KIND', 'CODEC', 'FILE', 'PACKETS', 'LOST'],
            m.tracks.map((t) => [String(t.index), t.kind, t.codec, t.file, String(t.packets), String(t.lost)]),
          ),
        );
        return;
      }
      if (!/^\d+$/.test(track)) throw new CliError(`track must be an index (0, 1, …), not ${JSON.stringify(track)}`, 2);
      const res = await api.request('GET', `/v1/recordings/${encodeURIComponent(name)}/tracks/${track}${o.rtpdump ? '/rtpdump' : ''}`);
      const served = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1];
      const file = o.output ?? path.basename(served ?? `${name}-${track}`);
      const body = Readable.fromWeb(res.body as WebReadableStream<Uint8Array>);
      if (file === '-') await pipeline(body, process.stdout);
      else {
        await pipeline(body, createWriteStream(file));
        process.stderr.write(`wrote ${file} (${res.headers.get('content-type')})\n`);
      }
    });
  recordings
    .command('rm')
    .description('delete a recording')
    .argument('<name>')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      await client(cmd).request('DELETE', `/v1/recordings/${encodeURIComponent(name)}`);
      out(`deleted ${name}\n`);
    });
  return p;
}

export async function run(argv: string[], opts: { version: string }): Promise<void> {
  try {
    await program(opts.version).parseAsync(argv);
  } catch (err) {
    if (err instanceof CliError) {
      process.stderr.write(`offcast: ${err.message}\n`);
      process.exitCode = err.exitCode;
      return;
    }
    throw err;
  }
}

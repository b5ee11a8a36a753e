// A hostile moov: boxes offcast never reads (udta, meta, fragments, sample groups,
// sub-samples, a stray size table), placed where the reader does not look, each
// declaring about 2^32 entries. The probe must answer a typed error or the file's
// real content, within a time bound and a heap cap: it runs in a child process with
// --max-old-space-size, so a V8 fatal error there (heap exhausted, or an array grown
// past V8's limit, which ends a whole process, workers included) fails this test
// instead of ending the runner. The files are built here from bytes (not with offcast's code); what
// they hold is what the probe must report.
//
// Before the moov parser of storage/mp4moov.ts, mp4box parsed every box anywhere in
// moov: a 'trun' without per-sample fields looped 2^32 times per box, and the tables
// that read one entry at a time read on past their own box to the end of the moov,
// growing JavaScript arrays past any heap (an 8-bit 'stz2' one entry a byte).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fork, type ChildProcess } from 'node:child_process';
import t from 'tap';

const dir = mkdtempSync(join(tmpdir(), 'offcast-mp4-hostile-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** Heap cap of the probing process; the fillers below hold more entries than fit in it. */
const HEAP_MB = 96;
/** Bytes behind the stray tables: with one array element (8 bytes) or object per entry, far more than HEAP_MB. */
const FILLER = 48 * 1024 * 1024;
/** Generous for a loaded machine: the probe of these files takes milliseconds. */
const TIME_BOUND_MS = 15_000;

// --- an MP4 from bytes ---------------------------------------------------------------

const u8 = (...bytes: number[]): Buffer => Buffer.from(bytes);
function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}
function box(type: string, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([u32(8 + body.length), Buffer.from(type, 'latin1'), body]);
}
function full(type: string, version: number, flags: number, ...parts: Buffer[]): Buffer {
  return box(type, u8(version, (flags >> 16) & 255, (flags >> 8) & 255, flags & 255), ...parts);
}
/** A 'free' box of `bytes` bytes in all (its content 0x01: no zero a string could stop at). */
function free(bytes: number): Buffer {
  const b = Buffer.alloc(bytes, 1);
  b.writeUInt32BE(bytes, 0);
  b.write('free', 4, 'latin1');
  return b;
}

/** Where stray boxes go. */
interface Strays {
  moov?: Buffer[];
  trak?: Buffer[];
  /** Children of the mp4a sample entry, after its esds. */
  entry?: Buffer[];
}

const SAMPLES = 4;
const SAMPLE_BYTES = 10;
const RATE = 44100;
/** AudioSpecificConfig: AAC-LC (2), 44.1 kHz (index 4), 2 channels. */
const ASC = u8(0x12, 0x10);

/**
 * ftyp, moov, mdat: one AAC-LC track of 4 samples of 10 bytes, 1024 ticks each at
 * 44.1 kHz, in one chunk at the start of mdat's payload.
 */
function mp4(strays: Strays): Buffer {
  const ftyp = box('ftyp', Buffer.from('isom', 'latin1'), u32(512), Buffer.from('isomiso2mp41', 'latin1'));
  const dsi = Buffer.concat([u8(0x05, ASC.length), ASC]);
  const dcd = Buffer.concat([u8(0x04, 13 + dsi.length, 0x40, 0x15), u8(0, 0, 0), u32(128000), u32(128000), dsi]);
  const sl = u8(0x06, 0x01, 0x02);
  const es = Buffer.concat([u8(0x03, 3 + dcd.length + sl.length), u16(1), u8(0), dcd, sl]);
  const mp4a = box(
    'mp4a',
    Buffer.alloc(6),
    u16(1), // data_reference_index
    Buffer.alloc(8), // version, revision, vendor
    u16(2), // channel_count
    u16(16), // sample_size
    Buffer.alloc(4),
    u32(RATE * 65536),
    full('esds', 0, 0, es),
    ...(strays.entry ?? []),
  );
  const build = (chunkOffset: number): Buffer => {
    const stbl = box(
      'stbl',
      full('stsd', 0, 0, u32(1), mp4a),
      full('stts', 0, 0, u32(1), u32(SAMPLES), u32(1024)),
      full('stsc', 0, 0, u32(1), u32(1), u32(SAMPLES), u32(1)),
      full('stsz', 0, 0, u32(0), u32(SAMPLES), ...Array.from({ length: SAMPLES }, () => u32(SAMPLE_BYTES))),
      full('stco', 0, 0, u32(1), u32(chunkOffset)),
    );
    const matrix = Buffer.concat([u32(0x10000), u32(0), u32(0), u32(0), u32(0x10000), u32(0), u32(0), u32(0), u32(0x40000000)]);
    const tkhd = full('tkhd', 0, 3, u32(0), u32(0), u32(1), u32(0), u32(93), Buffer.alloc(8), u16(0), u16(0), u16(0x100), u16(0), matrix, u32(0), u32(0));
    const mdhd = full('mdhd', 0, 0, u32(0), u32(0), u32(RATE), u32(SAMPLES * 1024), u16(0x55c4), u16(0));
    const hdlr = full('hdlr', 0, 0, u32(0), Buffer.from('soun', 'latin1'), Buffer.alloc(12), Buffer.from('SoundHandler\0', 'latin1'));
    const trak = box('trak', tkhd, box('mdia', mdhd, hdlr, box('minf', stbl)), ...(strays.trak ?? []));
    const mvhd = full('mvhd', 0, 0, u32(0), u32(0), u32(1000), u32(93), u32(0x10000), u16(0x100), Buffer.alloc(10), matrix, Buffer.alloc(24), u32(2));
    return box('moov', mvhd, trak, ...(strays.moov ?? []));
  };
  const moovBytes = build(0).length;
  const samples = Buffer.alloc(SAMPLES * SAMPLE_BYTES, 0x21);
  return Buffer.concat([ftyp, build(ftyp.length + moovBytes + 8), box('mdat', samples)]);
}

// --- the probe, in a worker with a heap cap and a time bound ----------------------------

interface Outcome {
  probe?: { format: string; tracks: { kind: string; codec: string; clockRate: number; channels?: number }[] };
  samples?: number;
  error?: string;
  message?: string;
}

/** One probing process, replaced when a probe ends it (a V8 fatal error in it, or a timeout). */
let child: ChildProcess | undefined;

async function startChild(): Promise<ChildProcess> {
  const c = fork(new URL('./mp4-probe.child.ts', import.meta.url), {
    execArgv: [...process.execArgv, `--max-old-space-size=${HEAP_MB}`],
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  c.stderr!.resume(); // a fatal error's report: not this test's output
  await new Promise<void>((resolve, reject) => {
    c.once('message', () => resolve());
    c.once('error', reject);
    c.once('exit', (code, signal) => reject(new Error(`the probe process exited (${code ?? signal}) while loading`)));
  });
  return c;
}

t.teardown(() => child?.kill('SIGKILL'));

/** Probes `path` in the child: its answer, or why there was none. The time bound starts once the child is loaded. */
async function probeBounded(path: string): Promise<Outcome | string> {
  const w = (child ??= await startChild());
  const out = await new Promise<Outcome | string>((resolve) => {
    const done = (value: Outcome | string): void => {
      clearTimeout(timer);
      w.off('message', onMessage);
      w.off('error', onError);
      w.off('exit', onExit);
      resolve(value);
    };
    const onMessage = (m: Outcome): void => done(m);
    const onError = (err: Error): void => done(`the probe process failed: ${err.message}`);
    const onExit = (code: number | null, signal: string | null): void => done(`the probe process died (${code ?? signal}) without an answer`);
    const timer = setTimeout(() => done(`no answer within ${TIME_BOUND_MS} ms`), TIME_BOUND_MS);
    w.on('message', onMessage);
    w.on('error', onError);
    w.on('exit', onExit);
    w.send(path);
  });
  if (typeof out === 'string') {
    child = undefined;
    w.kill('SIGKILL');
  }
  return out;
}

// --- the stray boxes ------------------------------------------------------------------

const HUGE = 0xfffffff0;

const cases: Record<string, Strays> = {
  // One entry per byte, read on past the box's end through the filler.
  "an 8-bit 'stz2' in moov/udta": { moov: [box('udta', full('stz2', 0, 0, u8(0, 0, 0, 8), u32(HUGE)), free(FILLER))] },
  // default_sample_info_size 0: one byte per sample.
  "a 'saiz' in trak/udta/meta": { trak: [box('udta', full('meta', 0, 0, full('saiz', 0, 0, u8(0), u32(HUGE)), free(FILLER)))] },
  // An object per 8 bytes.
  "an 'sbgp' in the sample entry": { entry: [full('sbgp', 0, 0, Buffer.from('roll', 'latin1'), u32(HUGE)), free(FILLER)] },
  // An object (with its own array) per 6 bytes.
  "a 'subs' in moov/meta": { moov: [full('meta', 0, 0, full('subs', 0, 0, u32(HUGE)), free(FILLER))] },
  // No per-sample fields: nothing read, 2^32 turns of the loop per box.
  "'trun's without sample fields, after a 'tfhd', in moov/udta": {
    moov: [box('udta', full('tfhd', 0, 0, u32(1)), ...Array.from({ length: 4 }, () => full('trun', 0, 0, u32(0xffffffff), u32(0))))],
  },
  // As many entries as bytes, four arrays of them.
  "a large 'sdtp' in trak/udta": { trak: [box('udta', full('sdtp', 0, 0, Buffer.alloc(FILLER, 0x11)))] },
  // Two arrays, an entry per 8 bytes.
  "a 'ctts' in moov/udta": { moov: [box('udta', full('ctts', 0, 0, u32(HUGE)), free(FILLER))] },
  // One entry per 4 bytes.
  "a variable-size 'stsz' in the sample entry": { entry: [full('stsz', 0, 0, u32(0), u32(HUGE)), free(FILLER)] },
  // One entry per declared sample, no bytes read at all.
  "a constant-size 'stsz' in the sample entry": { entry: [full('stsz', 0, 0, u32(1), u32(HUGE))] },
};

t.test('the reference file opens and reads through', async (t) => {
  const path = join(dir, 'plain.mp4');
  writeFileSync(path, mp4({}));
  const out = await probeBounded(path);
  t.match(out, { probe: { format: 'mp4', tracks: [{ kind: 'audio', codec: 'aac', clockRate: RATE, channels: 2 }] }, samples: SAMPLES });
});

for (const [name, strays] of Object.entries(cases)) {
  t.test(`${name}: the probe answers within bounds`, async (t) => {
    const path = join(dir, 'stray.mp4');
    writeFileSync(path, mp4(strays));
    const started = Date.now();
    const out = await probeBounded(path);
    t.teardown(() => rmSync(path, { force: true }));
    if (typeof out === 'string') {
      t.fail(out);
      return;
    }
    t.ok(Date.now() - started < TIME_BOUND_MS, 'within the time bound');
    if (out.error !== undefined) {
      t.match(out.error, /^(CorruptMediaError|UnsupportedMediaError)$/, `a typed error: ${out.error}: ${out.message}`);
    } else {
      // The strays are outside what the reader reads: the file's real content.
      t.match(out.probe, { tracks: [{ kind: 'audio', codec: 'aac', clockRate: RATE, channels: 2 }] });
      t.equal(out.probe?.tracks.length, 1);
      t.equal(out.samples, SAMPLES);
    }
  });
}

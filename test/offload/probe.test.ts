// media.probe in the offload: the probe of a play keeps its opened reader for the
// load that follows (the file is not opened and parsed again), uploads are read
// through and refused when empty, and kept readers are closed when not taken.
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import type { CacheLoadParams } from '../../offload/channel.js';
import { OffloadError } from '../../offload/channel.js';
import { loadMediaPackets } from '../../offload/load.js';
import { probeFile, ProbedReaders } from '../../offload/probe.js';
import { makeWav } from '../helpers/media.js';

const dir = await mkdtemp(path.join(tmpdir(), 'offcast-probe-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

function loadParams(file: string, probed?: string): CacheLoadParams {
  const p: CacheLoadParams = { key: `k-${Math.random()}`, path: file, format: 'wav', tracks: [{ source: 0, encoding: 'L16' }], payloadBytes: 1200, spread: 0 };
  if (probed !== undefined) p.probed = probed;
  return p;
}

t.test('a probe kept for its load: the load reads through the kept reader, without opening the file again', async (t) => {
  const file = path.join(dir, 'kept.wav');
  // 1 s of 8 kHz mono: 50 packets of 20 ms.
  await writeFile(file, makeWav(8000, 1, 1));
  const kept = new ProbedReaders();
  const probe = await probeFile({ path: file, validate: false, keep: 'kept' }, kept);
  t.match(probe, { format: 'wav', tracks: [{ codec: 'pcm_s16le', clockRate: 8000 }] });
  t.equal(kept.size, 1, 'the reader is kept');
  // The file is gone: only a kept (open) reader can still load it.
  await unlink(file);
  const entry = await loadMediaPackets(loadParams(file), kept.take('kept'));
  t.equal(entry.info(0).tracks[0]!.packets, 50, 'all 50 packets loaded through the kept reader');
  t.equal(kept.size, 0, 'the reader was taken');
  await t.rejects(loadMediaPackets(loadParams(file)), { code: 'OFFCAST_MEDIA_NOT_FOUND' }, 'without it, the load would open the (missing) file');
});

t.test('a kept reader nobody takes is replaced under its key and bounded in number', async (t) => {
  const kept = new ProbedReaders();
  const file = path.join(dir, 'many.wav');
  await writeFile(file, makeWav(8000, 1, 0.2));
  for (let i = 0; i < 20; i++) await probeFile({ path: file, validate: false, keep: `k${i % 12}` }, kept);
  t.ok(kept.size <= 8, `at most 8 readers kept (${kept.size})`);
  t.equal(kept.take('nothing'), undefined, 'an unknown key gives nothing');
});

t.test('validation reads an upload through: empty media is refused with 422, a good file passes', async (t) => {
  const kept = new ProbedReaders();
  const good = path.join(dir, 'good.wav');
  await writeFile(good, makeWav(8000, 1, 0.1));
  t.match(await probeFile({ path: good, validate: true }, kept), { format: 'wav' });
  const empty = path.join(dir, 'empty.wav');
  const wav = makeWav(8000, 1, 0.1).subarray(0, 44);
  wav.writeUInt32LE(36, 4);
  wav.writeUInt32LE(0, 40);
  await writeFile(empty, wav);
  const err = await probeFile({ path: empty, validate: true }, kept).catch((e: unknown) => e);
  t.type(err, OffloadError);
  t.match(err, { statusCode: 422, code: 'OFFCAST_CORRUPT_MEDIA', message: /no samples/ });
  t.match(await probeFile({ path: empty, validate: false }, kept), { format: 'wav' }, 'without validation the probe alone answers');
  t.equal(kept.size, 0, 'nothing kept without a key');
});

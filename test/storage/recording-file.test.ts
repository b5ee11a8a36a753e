import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { DEFAULT_MAX_BUFFERED_BYTES, DiskTooSlowError, DurableFile } from '../../storage/recording/file.js';
import { missingTool, skipUnless } from '../helpers/tools.js';

const dir = mkdtempSync(join(tmpdir(), 'offcast-durable-'));
/** The tmpfs mounted for the ENOSPC test, unmounted before the directory is removed. */
let mounted: string | null = null;
t.teardown(() => {
  if (mounted !== null) spawnSync('umount', [mounted]);
  rmSync(dir, { recursive: true, force: true });
});

let fileCount = 0;
function newPath(): string {
  return join(dir, `rec-${++fileCount}.bin`);
}

/** Deterministic bytes. */
function bytes(n: number, seed: number): Uint8Array {
  let x = seed >>> 0;
  return Uint8Array.from({ length: n }, () => {
    x = (x * 1664525 + 1013904223) >>> 0;
    return x >>> 24;
  });
}

function concat(parts: Uint8Array[]): Buffer {
  return Buffer.concat(parts);
}

t.test('create: opens <final>.part exclusively', async (t) => {
  const path = newPath();
  const f = await DurableFile.create(path);
  t.equal(f.partPath, `${path}.part`);
  t.ok(existsSync(f.partPath), '.part exists');
  t.notOk(existsSync(path), 'final name not yet');
  await t.rejects(DurableFile.create(path), { code: 'EEXIST' }, 'a second recording cannot take the same file');
  t.same([f.bytesWritten, f.bytesBuffered, f.error], [0, 0, null]);
  await t.rejects(DurableFile.create(path, { maxBufferedBytes: 0 }), RangeError);
  await f.discard();
  t.notOk(existsSync(f.partPath), 'discard removes the .part');
  await f.discard();
  t.equal(DEFAULT_MAX_BUFFERED_BYTES, 16 * 1024 * 1024);
});

t.test('write buffers copies; flush makes them visible on disk while open', async (t) => {
  const f = await DurableFile.create(newPath());
  const a = bytes(1000, 1);
  const b = bytes(333, 2);
  t.equal(f.write([a, b]), true);
  const originalA = a.slice();
  a.fill(0); // the caller reuses its buffer: what was written must not change
  t.same([f.bytesBuffered, f.bytesWritten], [1333, 0]);
  t.equal(readFileSync(f.partPath).length, 0, 'nothing on disk before flush');
  await f.flush();
  t.same([f.bytesBuffered, f.bytesWritten], [0, 1333]);
  t.same(readFileSync(f.partPath), concat([originalA, b]), 'flushed bytes readable by another reader');
  // Across block boundaries (64 KiB blocks), in odd-sized chunks.
  const big = bytes(700_001, 3);
  for (let at = 0; at < big.length; at += 9_999) f.write([big.subarray(at, Math.min(big.length, at + 9_999))]);
  f.write([]);
  await f.flush();
  await f.flush();
  t.same(readFileSync(f.partPath), concat([originalA, b, big]));
  await f.discard();
});

t.test('concurrent flushes join; each covers the bytes written before it', async (t) => {
  const f = await DurableFile.create(newPath());
  const parts = [bytes(300_000, 4), bytes(5, 5), bytes(400_000, 6)];
  f.write([parts[0]!]);
  const p1 = f.flush();
  f.write([parts[1]!]);
  const p2 = f.flush();
  f.write([parts[2]!]);
  const p3 = f.flush();
  await p1;
  t.ok(f.bytesWritten >= 300_000, 'first flush: its bytes are on disk');
  await p2;
  t.ok(f.bytesWritten >= 300_005, 'second flush: its bytes are on disk');
  await p3;
  t.equal(f.bytesWritten, 700_005);
  t.same(readFileSync(f.partPath), concat(parts));
  await f.discard();
});

t.test('finalize: patches, rename, idempotent; nothing after it', async (t) => {
  const path = newPath();
  const f = await DurableFile.create(path);
  f.write([new Uint8Array(8), bytes(100, 7)]);
  await f.flush();
  f.write([bytes(50, 8)]); // buffered: finalize flushes it
  const patch = { offset: 2, bytes: Uint8Array.of(0xaa, 0xbb, 0xcc) };
  const done = f.finalize([patch]);
  t.equal(f.finalize([]), done, 'a second call returns the same outcome');
  t.equal(f.write([bytes(1, 9)]), false, 'writes after finalize are refused');
  await done;
  t.notOk(existsSync(`${path}.part`), '.part renamed');
  const expected = concat([new Uint8Array(8), bytes(100, 7), bytes(50, 8)]);
  expected.set(patch.bytes, 2);
  t.same(readFileSync(path), expected, 'final file: data and patch');
  await f.abort();
  await f.discard();
  t.ok(existsSync(path), 'abort/discard after finalize leave the final file');
  await t.rejects(f.flush(), { name: 'InvalidStateError' });
  t.equal(f.error, null);
});

t.test('finalize: a patch outside the file fails it and keeps the .part', async (t) => {
  const path = newPath();
  const f = await DurableFile.create(path);
  f.write([bytes(10, 1)]);
  await t.rejects(f.finalize([{ offset: 8, bytes: new Uint8Array(3) }]), { name: 'RangeError', message: /outside the 10 bytes written/ });
  t.ok(f.error instanceof RangeError);
  t.ok(existsSync(`${path}.part`));
  t.notOk(existsSync(path));
  t.same(readFileSync(`${path}.part`), Buffer.from(bytes(10, 1)), 'data flushed before the patch was refused');
  await f.discard();
  t.notOk(existsSync(`${path}.part`));
});

t.test('abort: like a crash, the .part keeps what was flushed', async (t) => {
  const path = newPath();
  const f = await DurableFile.create(path);
  f.write([bytes(1000, 1)]);
  await f.flush();
  f.write([bytes(500, 2)]); // never flushed
  await f.abort();
  await f.abort();
  t.same(readFileSync(`${path}.part`), Buffer.from(bytes(1000, 1)));
  t.notOk(existsSync(path));
  t.equal(f.write([bytes(1, 1)]), false);
  await t.rejects(f.flush(), { name: 'InvalidStateError' });
  await t.rejects(f.finalize([]), { name: 'InvalidStateError' });
  t.equal(f.bytesBuffered, 0, 'buffer released');
});

t.test('the buffer is bounded: past maxBufferedBytes the file fails', async (t) => {
  const f = await DurableFile.create(newPath(), { maxBufferedBytes: 1000 });
  t.equal(f.write([bytes(600, 1)]), true);
  t.equal(f.write([bytes(300, 2), bytes(300, 3)]), false, 'refused, no throw');
  t.ok(f.error instanceof DiskTooSlowError);
  t.equal(f.error!.message, 'disk too slow: 1200 bytes pending');
  t.equal((f.error as DiskTooSlowError).pendingBytes, 1200);
  t.equal(f.bytesBuffered, 0, 'memory released');
  t.equal(f.write([bytes(1, 1)]), false, 'later writes refused');
  await t.rejects(f.flush(), DiskTooSlowError);
  await t.rejects(f.finalize([]), DiskTooSlowError);
  await f.abort();
  t.equal(readFileSync(f.partPath).length, 0, 'nothing was flushed');
  await f.discard();
});

t.test('rename fails (the final name is a non-empty directory): error, .part kept', async (t) => {
  const path = newPath();
  mkdirSync(path);
  writeFileSync(join(path, 'x'), 'x');
  const f = await DurableFile.create(path);
  f.write([bytes(100, 1)]);
  const err = await f.finalize([]).then(
    () => null,
    (e: NodeJS.ErrnoException) => e,
  );
  t.ok(err && ['EISDIR', 'ENOTEMPTY', 'EEXIST'].includes(err.code!), `rename rejected (${err?.code})`);
  t.equal(f.error, err, 'error set');
  t.same(readFileSync(`${path}.part`), Buffer.from(bytes(100, 1)), 'data synced in the .part');
  await f.abort();
  t.ok(existsSync(`${path}.part`));
});

/** A 64 KiB tmpfs to fill up, or why there is none (mounting needs root). */
function tinyTmpfs(): { mnt: string; skip: false } | { skip: string } {
  const mnt = join(dir, 'tiny');
  mkdirSync(mnt);
  const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt], { encoding: 'utf8' });
  if (mount.status !== 0) {
    return { skip: `cannot mount a tmpfs here (needs root): ${(mount.stderr || mount.error?.message || '').trim()}` };
  }
  mounted = mnt;
  return { mnt, skip: false };
}
const tiny = tinyTmpfs();

t.test('disk full (ENOSPC) on a 64 KiB tmpfs', { skip: tiny.skip === false ? false : missingTool(tiny.skip) }, async (t) => {
  const mnt = (tiny as { mnt: string }).mnt;
  const f = await DurableFile.create(join(mnt, 'rec.wav'));
  const data = bytes(200 * 1024, 1);
  t.equal(f.write([data]), true);
  await t.rejects(f.flush(), { code: 'ENOSPC' });
  t.equal((f.error as NodeJS.ErrnoException).code, 'ENOSPC');
  t.ok(f.bytesWritten > 0 && f.bytesWritten <= 64 * 1024, `${f.bytesWritten} bytes fit before the disk filled`);
  t.equal(f.bytesBuffered, 0);
  t.equal(f.write([data]), false, 'later writes refused');
  await t.rejects(f.finalize([]), { code: 'ENOSPC' });
  await f.abort();
  const kept = readFileSync(f.partPath);
  t.equal(kept.length, f.bytesWritten, 'the .part holds what was written');
  t.same(kept, Buffer.from(data.subarray(0, kept.length)));
});

// Only the TypeScript loader: the child is not a tap test.
const loader = process.execArgv.filter((a) => a.includes('typescript'));
const canLimit = spawnSync('sh', ['-c', 'ulimit -f 128'], { stdio: 'ignore' }).status === 0 && loader.length > 0;

t.test(
  'file size limit (EFBIG, `ulimit -f`): a disk error without root',
  { skip: skipUnless(canLimit, "needs sh with ulimit and tap's TypeScript loader") },
  async (t) => {
    const child = fileURLToPath(new URL('../fixtures/recording/disk-error-child.ts', import.meta.url));
    const path = newPath();
    // `ulimit -f 128`: 128 blocks of 512 bytes in dash, of 1024 in bash; either is < 256 KiB.
    // tap's own NODE_OPTIONS loaders write files of their own: keep them out of the child.
    // The TypeScript compiler's code cache (v8-compile-cache) is written to disk too.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('_TAPJS')));
    env.DISABLE_V8_COMPILE_CACHE = '1';
    const r = spawnSync('sh', ['-c', 'ulimit -f 128 && exec "$@"', 'sh', process.execPath, ...loader, child, path], { env, encoding: 'utf8', timeout: 60000 });
    t.equal(r.status, 0, `child exits 0 ${r.signal ?? ''} ${r.stderr}`);
    const report = JSON.parse(r.stdout) as Record<string, unknown>;
    t.same(
      { ...report, bytesWritten: typeof report.bytesWritten },
      { flush: 'EFBIG', error: 'EFBIG', bytesWritten: 'number', bytesBuffered: 0, writeAfter: false, finalize: 'EFBIG', partSize: report.bytesWritten },
    );
    t.ok((report.bytesWritten as number) > 0 && (report.bytesWritten as number) < 256 * 1024, `short write of ${String(report.bytesWritten)} bytes kept`);
  },
);

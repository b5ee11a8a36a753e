import { mkdirSync, mkdtempSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { CorruptMediaError } from '../../storage/errors.js';
import { isTempMediaName, isValidMediaName, listMedia, MEDIA_NAME_RE, resolveExistingMediaPath, resolveMediaPath } from '../../storage/library.js';
import { detectFormat, openMedia, probeMedia, registerReader, type OpenOptions } from '../../storage/open.js';
import type { MediaReader } from '../../storage/types.js';

const fixtures = fileURLToPath(new URL('../fixtures/audio/', import.meta.url));
const base = mkdtempSync(join(tmpdir(), 'offcast-lib-'));
t.teardown(() => rmSync(base, { recursive: true, force: true }));
const root = join(base, 'media');
const outside = join(base, 'outside');
mkdirSync(root);
mkdirSync(outside);

t.test('media names', async (t) => {
  const table: [string, boolean][] = [
    ['song.wav', true],
    ['a', true],
    ['0', true],
    ['A-b_c.d.opus', true],
    ['x'.repeat(128), true],
    ['x'.repeat(129), false],
    ['', false],
    ['.', false],
    ['..', false],
    ['../x', false],
    ['..%2fx', false],
    ['a/b', false],
    ['a\\b', false],
    ['/etc/passwd', false],
    ['%2e%2e', false],
    ['.hidden', false],
    ['-rf', false],
    ['_x', false],
    ['a b', false],
    ['a\0b', false],
    ['a\nb', false],
    ['song.wav\n', false],
    ['caf\u00e9.wav', false],
    ['\u0430.wav', false], // Cyrillic a
    ['\uff0e\uff0e', false], // fullwidth dots
    ['C:x', false],
  ];
  for (const [name, valid] of table) {
    t.equal(isValidMediaName(name), valid, `${JSON.stringify(name)} ${valid ? 'valid' : 'invalid'}`);
    if (valid) t.equal(resolveMediaPath(root, name), join(resolve(root), name));
    else t.throws(() => resolveMediaPath(root, name), RangeError, `resolve ${JSON.stringify(name)} throws`);
  }
  t.equal(MEDIA_NAME_RE.test('..'), false);
  t.equal(isValidMediaName(42 as unknown as string), false, 'non-string');
});

t.test('resolveMediaPath keeps paths inside a relative or trailing-slash root', async (t) => {
  const rel = 'some/dir/';
  t.equal(resolveMediaPath(rel, 'x.wav'), resolve('some/dir', 'x.wav'));
  t.equal(resolveMediaPath('/', 'x.wav'), '/x.wav');
});

t.test('resolveExistingMediaPath follows symlinks and refuses ones leading out', async (t) => {
  writeFileSync(join(root, 'real.wav'), 'x');
  writeFileSync(join(outside, 'secret.wav'), 'top secret');
  symlinkSync(join(root, 'real.wav'), join(root, 'alias.wav'));
  symlinkSync(join(outside, 'secret.wav'), join(root, 'escape.wav'));
  symlinkSync('../outside/secret.wav', join(root, 'escape-rel.wav'));
  symlinkSync(outside, join(root, 'dirlink'));
  const realRoot = realpathSync(root);
  t.equal(await resolveExistingMediaPath(root, 'real.wav'), join(realRoot, 'real.wav'));
  t.equal(await resolveExistingMediaPath(root, 'alias.wav'), join(realRoot, 'real.wav'));
  await t.rejects(resolveExistingMediaPath(root, 'escape.wav'), { name: 'RangeError', message: /links outside the library/ });
  await t.rejects(resolveExistingMediaPath(root, 'escape-rel.wav'), RangeError);
  await t.rejects(resolveExistingMediaPath(root, 'dirlink'), RangeError);
  await t.rejects(resolveExistingMediaPath(root, 'missing.wav'), { code: 'ENOENT' });
  await t.rejects(resolveExistingMediaPath(root, '../outside/secret.wav'), RangeError);
  // The root itself reached through a symlink is fine.
  const rootLink = join(base, 'media-link');
  symlinkSync(root, rootLink);
  t.equal(await resolveExistingMediaPath(rootLink, 'real.wav'), join(realRoot, 'real.wav'));
});

function bytes(...parts: (string | number[])[]): Uint8Array {
  return Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));
}

t.test('detectFormat', async (t) => {
  const table: [string, Uint8Array, string | null][] = [
    ['WAV', bytes('RIFF', [0x24, 0, 0, 0], 'WAVEfmt '), 'wav'],
    ['RIFF AVI', bytes('RIFF', [0x24, 0, 0, 0], 'AVI LIST'), null],
    ['RIFF cut before form', bytes('RIFF', [0x24, 0, 0, 0], 'WAV'), null],
    ['Ogg', bytes('OggS', [0, 2]), 'ogg'],
    ['Ogg, capture only', bytes('OggS'), 'ogg'],
    ['MP4 ftyp', bytes([0, 0, 0, 0x20], 'ftypisom', [0, 0, 2, 0]), 'mp4'],
    ['MP4 moov first', bytes([0, 0, 0x10, 0], 'moov'), 'mp4'],
    ['MP4 mdat, 64-bit size', bytes([0, 0, 0, 1], 'mdat', [0, 0, 0, 0, 0, 0, 0x10, 0]), 'mp4'],
    ['MP4 mdat to end of file', bytes([0, 0, 0, 0], 'mdat'), 'mp4'],
    ['MP4 free', bytes([0, 0, 0, 8], 'free'), 'mp4'],
    ['MP4 wide', bytes([0, 0, 0, 8], 'wide', [0, 0, 0, 0], 'mdat'), 'mp4'],
    ['box of impossible size', bytes([0, 0, 0, 4], 'moov'), null],
    ['unknown box type', bytes([0, 0, 0, 0x10], 'abcd'), null],
    ['H.264 4-byte start code, SPS', bytes([0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e]), 'h264'],
    ['H.264 3-byte start code, AUD', bytes([0, 0, 1, 0x09, 0xf0]), 'h264'],
    ['H.264 slice (type 1)', bytes([0, 0, 0, 1, 0x21]), 'h264'],
    ['H.264 type 23', bytes([0, 0, 1, 0x17]), 'h264'],
    ['NAL type 0', bytes([0, 0, 0, 1, 0x00]), null],
    ['NAL type 24', bytes([0, 0, 0, 1, 0x18]), null],
    ['forbidden bit set', bytes([0, 0, 0, 1, 0xe7]), null],
    ['start code only', bytes([0, 0, 0, 1]), null],
    ['zeros', new Uint8Array(64), null],
    ['text', bytes('hello world, this is not media'), null],
    ['MP3 (ID3)', bytes('ID3', [4, 0, 0, 0, 0, 0, 0]), null],
    ['empty', new Uint8Array(0), null],
  ];
  for (const [name, head, want] of table) t.equal(detectFormat(head), want, name);
});

t.test('openMedia and probeMedia', async (t) => {
  const put = (name: string, content: Uint8Array | string): string => {
    const p = join(base, name);
    writeFileSync(p, content);
    return p;
  };
  // A minimal valid WAV: 8 kHz mono s16, 10 frames.
  const wav = Buffer.alloc(44 + 20);
  wav.write('RIFF', 0, 'latin1');
  wav.writeUInt32LE(36 + 20, 4);
  wav.write('WAVEfmt ', 8, 'latin1');
  wav.writeUInt32LE(16, 16);
  wav.writeUInt16LE(1, 20);
  wav.writeUInt16LE(1, 22);
  wav.writeUInt32LE(8000, 24);
  wav.writeUInt32LE(16000, 28);
  wav.writeUInt16LE(2, 32);
  wav.writeUInt16LE(16, 34);
  wav.write('data', 36, 'latin1');
  wav.writeUInt32LE(20, 40);
  // The name says .opus: content decides.
  const wavPath = put('looks-like.opus', wav);
  const wavProbe = await probeMedia(wavPath);
  t.equal(wavProbe.format, 'wav');
  t.equal(wavProbe.tracks[0]!.codec, 'pcm_s16le');

  const ogg = await openMedia(join(fixtures, 'sine-mono-2s.opus'));
  t.equal(ogg.probe.format, 'ogg');
  let n = 0;
  for await (const _ of ogg.samples()) n++;
  t.equal(n, 101);
  await ogg.close();

  await t.rejects(openMedia(put('empty.bin', '')), CorruptMediaError);
  await t.rejects(openMedia(put('avi.bin', bytes('RIFF', [0, 0, 0, 0], 'AVI LIST'))), {
    name: 'UnsupportedMediaError',
    message: 'unrecognized media format (first bytes: 52 49 46 46 00 00 00 00 41 56 49 20 4c 49 53 54)',
  });
  await t.rejects(openMedia(put('long.bin', 'x'.repeat(100))), {
    message: /^unrecognized media format \(first bytes: (78 ){15}78 \.\.\.\)$/,
  });
  await t.rejects(openMedia(join(base, 'nope.wav')), { code: 'ENOENT' });
  // Detected but corrupt: the reader's own error comes through.
  await t.rejects(openMedia(put('bad.wav', wav.subarray(0, 50))), { name: 'CorruptMediaError', message: /data chunk declares 20 bytes, file holds 6/ });

  // h264/mp4 go through the registry: the registered readers see the content (here a cut SPS).
  const h264Path = put('clip.bin', bytes([0, 0, 0, 1, 0x67, 0x42, 0, 0x1e]));
  await t.rejects(openMedia(h264Path), { name: 'CorruptMediaError', message: /SPS/ });
  const calls: [string, OpenOptions | undefined][] = [];
  const fake: MediaReader = {
    probe: { format: 'h264', bytes: 8, durationMs: 0, tracks: [] },
    async *samples() {},
    async close() {},
  };
  registerReader('h264', async (p, o) => {
    calls.push([p, o]);
    return fake;
  });
  t.equal(await openMedia(h264Path, { frameRate: 25 }), fake);
  t.same(calls, [[h264Path, { frameRate: 25 }]], 'registered reader gets the path and options');
  t.same(await probeMedia(h264Path), fake.probe);
  const refused = await openMedia(put('clip.mp4', bytes([0, 0, 0, 0x18], 'ftypmp42'))).then(
    () => null,
    (e: unknown) => e,
  );
  t.match(refused, { statusCode: 422 }, 'a bad MP4 is refused with 422');
});

t.test('listMedia', async (t) => {
  const lib = join(base, 'lib');
  mkdirSync(lib);
  const files: Record<string, string> = {
    'b.wav': 'bb',
    'a.opus': 'a',
    'C.mp4': 'ccc',
    '.hidden.wav': 'h',
    'upload.wav.tmp': 't',
    'x.part': 'p',
    'rec.tmp-123': 't',
    'bad name.wav': 'n',
    '-dash.wav': 'd',
  };
  for (const [name, content] of Object.entries(files)) writeFileSync(join(lib, name), content);
  mkdirSync(join(lib, 'subdir.wav'));
  writeFileSync(join(outside, 'leak.wav'), 'leak');
  symlinkSync(join(outside, 'leak.wav'), join(lib, 'leak.wav'));
  symlinkSync(join(lib, 'b.wav'), join(lib, 'link.wav'));
  symlinkSync(join(lib, 'missing'), join(lib, 'dangling.wav'));
  const list = await listMedia(lib);
  t.same(
    list.map((e) => e.name),
    ['C.mp4', 'a.opus', 'b.wav', 'link.wav'],
  );
  const b = list.find((e) => e.name === 'b.wav')!;
  t.equal(b.bytes, 2);
  t.equal(b.mtimeMs, statSync(join(lib, 'b.wav')).mtimeMs);
  t.equal(list.find((e) => e.name === 'link.wav')!.bytes, 2, 'a link inside the root lists its target size');
  t.same(await listMedia(join(base, 'no-such-dir')), []);
  t.equal(isTempMediaName('x.TMP'), true);
  t.equal(isTempMediaName('x.partial'), true);
  t.equal(isTempMediaName('tmp.wav'), false);
});

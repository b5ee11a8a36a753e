/**
 * The rtpdump reader crash recovery uses (storage/rtpdump.ts): the streaming
 * reader over a file, and the in-memory parser; both must agree.
 */
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openRtpdump, parseRtpdump, rtpdumpHeader, rtpdumpRecord } from '../../../storage/rtpdump.js';
import { concat, isA, text, u16be, u32be, type Target } from '../lib.js';
import { rtpStream } from './packets.js';
import { scratchDir } from './scratch.js';

let dir = '';

async function seeds(): Promise<Uint8Array[]> {
  const packets = (await rtpStream()).slice(0, 60);
  const records = packets.flatMap((p, i) => rtpdumpRecord(p, i * 40, i % 17 === 5));
  const whole = concat([rtpdumpHeader(1_700_000_000_123, '127.0.0.1', 5004), ...records]);
  const v6 = concat([rtpdumpHeader(1_700_000_000_123, '::1', 6000), ...records.slice(0, 10)]);
  return [whole, whole.subarray(0, whole.length - 5), v6, rtpdumpHeader(0, '10.0.0.1', 1)];
}

const record = fc.record({
  length: fc.integer({ min: 0, max: 0xffff }),
  plen: fc.integer({ min: 0, max: 0xffff }),
  offset: fc.integer({ min: 0, max: 0xffffffff }),
  body: fc.uint8Array({ maxLength: 80 }),
});

export const target: Target = {
  name: 'rtpdump',
  seeds,
  arbitrary: fc
    .tuple(
      fc.constantFrom('127.0.0.1/5004', '::1/1', '1.2.3.4/65536', '/', 'x/1', '127.0.0.1/', '1.1.1.1/00001'),
      fc.uint8Array({ minLength: 0, maxLength: 16 }),
      fc.array(record, { maxLength: 6 }),
      fc.boolean(),
    )
    .map(([line, bin, recs, exact]) =>
      concat([
        text(`#!rtpplay1.0 ${line}\n`),
        bin,
        ...recs.map((r) => concat([u16be(exact ? 8 + r.body.length : r.length), u16be(r.plen), u32be(r.offset), r.body])),
      ]),
    ),
  async setup() {
    dir = mkdtempSync(join(scratchDir(), 'offcast-fuzz-rtpdump-'));
  },
  async teardown() {
    rmSync(dir, { recursive: true, force: true });
  },
  async run(input, slot) {
    const file = join(dir, `track${slot}.rtpdump`);
    let memory: ReturnType<typeof parseRtpdump> | Error;
    try {
      memory = parseRtpdump(input);
    } catch (err) {
      if (!isA(err, 'TypeError', 'RangeError')) throw err;
      memory = err as Error;
    }
    writeFileSync(file, input);
    const f = await openRtpdump(file, { windowBytes: 0x10000 });
    let bytes = 0;
    let count = 0;
    try {
      for await (const r of f.records()) {
        bytes += r.data.length + 16;
        count++;
      }
    } finally {
      await f.close();
    }
    // The file parsed: the in-memory parser must have found the same records.
    if (memory instanceof Error) throw new Error(`parseRtpdump threw (${memory.message}) where openRtpdump read ${count} records`);
    if (memory.records.length !== count || memory.validLength !== f.validLength || memory.truncated !== f.truncated) {
      throw new Error(`parseRtpdump: ${memory.records.length} records to ${memory.validLength}, openRtpdump: ${count} to ${f.validLength}`);
    }
    return bytes;
  },
  // openRtpdump: UnsupportedMediaError, CorruptMediaError (parseRtpdump's TypeError/RangeError are checked above).
  expected: (err) => isA(err, 'MediaError'),
  outputRatio: 3,
  concurrency: 4,
};

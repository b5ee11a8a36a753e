/** MP4 (storage/mp4.ts openMp4): box walk, moov parser (storage/mp4moov.ts), sample tables, edit lists, avcC/esds. */
import fc from 'fast-check';
import { openMp4 } from '../../../storage/mp4.js';
import { concat, seedFile, text, u32be, type Target } from '../lib.js';
import { readerTarget } from './reader.js';

const box = (type: string, body: Uint8Array): Uint8Array => concat([u32be(8 + body.length), text(type), body]);
const full = (type: string, vf: number, body: Uint8Array): Uint8Array => box(type, concat([u32be(vf), body]));

/** A moov with one track whose sample tables (counts, sizes, offsets) may contradict each other. */
const tables = fc
  .record({
    count: fc.constantFrom(0, 1, 3, 1000, 0x7fffffff, 0xffffffff),
    size: fc.constantFrom(0, 1, 10, 0xffffffff),
    chunk: fc.constantFrom(0, 1, 2),
    offset: fc.constantFrom(0, 8, 100, 0xffffffff),
    delta: fc.constantFrom(0, 1, 1024),
    timescale: fc.constantFrom(0, 8000, 90000),
  })
  .map((t) => {
    const stbl = box(
      'stbl',
      concat([
        full('stsz', 0, concat([u32be(t.size), u32be(t.count)])),
        full('stsc', 0, concat([u32be(1), u32be(t.chunk), u32be(t.count), u32be(1)])),
        full('stco', 0, concat([u32be(1), u32be(t.offset)])),
        full('stts', 0, concat([u32be(1), u32be(t.count), u32be(t.delta)])),
      ]),
    );
    const mdhd = full('mdhd', 0, concat([u32be(0), u32be(0), u32be(t.timescale), u32be(t.count * t.delta), u32be(0)]));
    const hdlr = full('hdlr', 0, concat([u32be(0), text('soun'), new Uint8Array(13)]));
    const trak = box('trak', concat([full('tkhd', 3, new Uint8Array(80)), box('mdia', concat([mdhd, hdlr, box('minf', stbl)]))]));
    return concat([box('ftyp', text('isom\0\0\0\0isom')), box('moov', concat([full('mvhd', 0, new Uint8Array(96)), trak])), box('mdat', new Uint8Array(64))]);
  });

export const target: Target = readerTarget('mp4', 'mp4', openMp4, {
  seeds: () => ['av.mp4', 'av-faststart.mp4', 'aac.m4a'].map(seedFile),
  arbitrary: tables,
});

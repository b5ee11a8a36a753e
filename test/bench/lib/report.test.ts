// The Markdown report: one summary row per figure, cells escaped, empty tables left out.
import t from 'tap';
import { markdown, summaryTable } from './report.mjs';

const machine = {
  cpuModel: 'Test CPU',
  cores: 2,
  node: 'v20.0.0',
  kernel: 'Linux 6.0',
  memTotalMiB: 4096,
  rmemMax: 4194304,
  wmemMax: 4194304,
  ffmpeg: null,
  hostname: 'h',
  date: '2026-01-01T00:00:00.000Z',
};

const result = {
  id: '9',
  title: 'Example',
  rows: [
    { measure: 'a | b', value: '1\n2', baseline: 'base', ratio: '2.00×', target: '≥ 1', verdict: 'met' as const },
    { measure: 'skipped one', value: 'n/a', verdict: 'skipped' as const },
  ],
  tables: [
    {
      title: 'Steps',
      columns: ['N', 'p99'],
      rows: [
        [1, null],
        [2, 3.5],
      ],
    },
    { title: 'Empty', columns: ['x'], rows: [] },
  ],
  notes: ['a note'],
  data: {},
  seconds: 12.4,
};

t.test('summaryTable: a row per figure, pipes and newlines escaped', async (t) => {
  const lines = summaryTable([result]).split('\n');
  t.equal(lines.length, 4);
  t.equal(lines[0], '| # | measure | result | baseline (same run) | ratio | target | verdict |');
  t.equal(lines[2], '| 9 | a \\| b | 1 2 | base | 2.00× | ≥ 1 | ✅ met |');
  t.equal(lines[3], '| 9 | skipped one | n/a |  |  |  | ⏭️ skipped |');
});

t.test('markdown: machine, summary, details; empty tables omitted', async (t) => {
  const md = markdown(machine, { quick: true, seconds: 90, loadAvg: [1, 2, 3], build: null, soakMinutes: 10 }, [result]);
  t.match(md, /^# offcast benchmark, 2026-01-01T00:00:00.000Z\n/);
  t.match(md, /Test CPU, 2 cores, 4 GiB RAM, Linux 6\.0, Node v20\.0\.0, no ffmpeg/);
  t.match(md, /## 9\. Example \(12 s\)/);
  t.match(md, /\| 1 \| – \|\n\| 2 \| 3\.5 \|/);
  t.notMatch(md, /\*\*Empty\*\*/);
  t.match(md, /- a note\n$/);
});

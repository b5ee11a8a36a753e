// `npm run bench -- --quick` still works: every scenario runs to the end and
// the report (Markdown + JSON) has its rows. Its figures are not checked:
// performance is measured by `npm run bench`, never by a test.
// A .serial.ts file: test/run.mjs runs it after the parallel suite, alone.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { skipFile } from '../helpers/tools.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const missing = ['ffmpeg', 'cc'].filter((cmd) => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).error !== undefined);

if (missing.length > 0) {
  skipFile(`bench --quick needs ${missing.join(' and ')} (not installed here; .ci/run installs them)`);
} else {
  t.setTimeout(6 * 60_000);
  t.test('bench --quick runs every scenario and writes the report', async (t) => {
    const out = await mkdtemp(path.join(os.tmpdir(), 'offcast-bench-quick-'));
    t.teardown(() => rm(out, { recursive: true, force: true }));
    const child = spawn(process.execPath, ['test/bench/run.mjs', '--quick', '--out', out], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      log = (log + c).slice(-8192);
    });
    // The run caps itself at 5 min; this is the backstop.
    const killer = setTimeout(() => child.kill('SIGKILL'), 5.5 * 60_000);
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    clearTimeout(killer);
    t.equal(code, 0, `bench --quick exits 0 (no scenario failed to run); its log ends: ${log.slice(-1500)}`);

    const files = await readdir(out);
    const json = files.find((f) => f.endsWith('-quick.json'));
    const md = files.find((f) => f.endsWith('-quick.md'));
    t.ok(json !== undefined && md !== undefined, `the .json and .md reports are written (${files.join(', ')})`);
    if (json === undefined || md === undefined) return;
    const report = JSON.parse(await readFile(path.join(out, json), 'utf8')) as {
      machine: { cores: number };
      run: { quick: boolean };
      results: { id: string; rows: { measure: string; value: string; verdict: string }[] }[];
    };
    t.equal(report.run.quick, true);
    t.ok(report.machine.cores > 0, 'the machine description names its cores');
    t.same(report.results.map((r) => r.id).sort(), ['1', '2', '3', '4', '5', '6', 'M'], 'every scenario reported');
    for (const r of report.results) {
      t.ok(r.rows.length > 0, `scenario ${r.id} has summary rows`);
      const errors = r.rows.filter((row) => row.verdict === 'error');
      t.same(errors, [], `scenario ${r.id} ran to the end`);
    }
    const text = await readFile(path.join(out, md), 'utf8');
    t.match(text, /## Summary\n\n\| # \| measure \| result \| baseline \(same run\) \|/, 'the Markdown carries the summary table');
  });
}

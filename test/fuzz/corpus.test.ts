// The fuzz corpus and a short property run per target (test/fuzz, README "Tests").
// Every input the fuzzer ever failed on (test/fuzz/corpus/<target>/*.bin) is run
// through its target again: each must now return a value or one of the target's
// documented errors, within a time bound (5 s here), with output bounded by its
// size. Then fast-check runs a few hundred inputs per target (structured ones
// and mutated seeds) under the same judge. OFFCAST_FUZZ_SEED picks another seed.
import fc from 'fast-check';
import t from 'tap';
import { corpusFiles } from './corpus.js';
import { judge, mutatedSeeds, TIME_BOUND_MS } from './lib.js';
import { loadTarget, TARGETS } from './targets/index.js';

const seed = Number(process.env.OFFCAST_FUZZ_SEED ?? 20261202);
const RUNS = 300;

for (const name of Object.keys(TARGETS)) {
  t.test(name, async (t) => {
    const target = await loadTarget(name);
    // npm test runs files side by side on a loaded machine: 5 times the fuzzer's
    // bound still tells a parser at fault (seconds, or forever) from a busy one.
    target.timeBoundMs = 5 * (target.timeBoundMs ?? TIME_BOUND_MS);
    await target.setup?.();
    t.teardown(async () => target.teardown?.());
    const seeds = await target.seeds();
    t.ok(seeds.length > 0, 'the target has seeds');

    const corpus = corpusFiles(name);
    for (const { file, input } of corpus) {
      const v = await judge(target, input);
      t.ok(v.ok, `corpus ${file.slice(file.lastIndexOf('/') + 1)}: value or typed error in ${v.ms.toFixed(0)} ms${v.ok ? '' : `: ${v.why}`}`);
    }
    for (const [i, input] of seeds.entries()) {
      const v = await judge(target, input);
      if (!v.ok) t.fail(`seed ${i}: ${v.why}`);
    }
    t.pass(`${seeds.length} seeds and ${corpus.length} corpus inputs replayed`);

    let failure = '';
    const property = fc.asyncProperty(fc.oneof(target.arbitrary, mutatedSeeds(seeds)), async (input) => {
      const v = await judge(target, input);
      if (!v.ok) failure = v.why;
      return v.ok;
    });
    const result = await fc.check(property, { numRuns: RUNS, seed });
    t.notOk(
      result.failed,
      `${RUNS} fast-check inputs (seed ${seed})${result.failed ? `: ${failure}\ncounterexample: ${Buffer.from((result.counterexample as [Uint8Array])[0]).toString('hex')}` : ''}`,
    );
  });
}

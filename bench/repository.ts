// Repository builds: 8 independent small recipes (busybox APK roots, real bwrap, a step of CPU work, signed
// packages, the index updated after each) built with `builder build DIR --jobs 2` against one by one
// (`--jobs 1`), side by side, through the real CLI. Roots are made once before timing (both runs install the same cached root); each
// timed run writes a fresh out dir, so nothing is up to date. Goal: ≥ 1.6× on 2 cores.
//
//   node bench/repository.ts        BENCH_RECIPES=4 for a quicker run
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { busyboxRepository, writeRecipes } from '../test/repository/fixture.ts';

const COUNT = Number(process.env.BENCH_RECIPES ?? 8);
const BUILDER = resolve(import.meta.dirname, '../bin/builder');

const dir = await mkdtemp(join(tmpdir(), 'builder-bench-repository-'));
try {
  const repo = await busyboxRepository(dir);
  const recipes = join(dir, 'recipes');
  // Each step does a little CPU work in its sandbox (hashing 50 MB of zeros), the stand-in for compiling a
  // small package: with empty steps a build is mostly builder's own packaging, done in one Node process.
  const work = 'head -c 50000000 /dev/zero | sha256sum';
  await writeRecipes(recipes, Array.from({ length: COUNT }, (_, i) => ({ name: `bench${i}`, work })), repo);
  const key = join(dir, 'out.rsa');
  await execa(BUILDER, ['keygen', '--bits', '2048', key]);
  /** Wall time of the whole command, and of the builds alone (the summary's span: no start-up, loading, compiling). */
  const run = async (jobs: number, out: string): Promise<{ command: number; builds: number }> => {
    const t = performance.now();
    const r = await execa(
      BUILDER,
      ['build', recipes, '--jobs', String(jobs), '--runner', 'bubblewrap', '--out-dir', join(dir, out), '--signing-key', key, '--root-cache-dir', join(dir, 'roots'), '--cache-dir', join(dir, 'cache'), '--json'],
      { env: { CI: 'true' } },
    );
    const command = performance.now() - t;
    const summary = JSON.parse(r.stdout) as { started: string; finished: string };
    return { command, builds: Date.parse(summary.finished) - Date.parse(summary.started) };
  };
  await run(2, 'warm-up');
  // Alternated, best of two each, so a burst of load from elsewhere does not land on one side only.
  const serial: { command: number; builds: number }[] = [];
  const parallel: { command: number; builds: number }[] = [];
  for (let round = 0; round < 2; round++) {
    serial.push(await run(1, `serial-${round}`));
    parallel.push(await run(2, `parallel-${round}`));
  }
  const line = (what: 'command' | 'builds', label: string) => {
    const s = Math.min(...serial.map((x) => x[what]));
    const p = Math.min(...parallel.map((x) => x[what]));
    console.log(`${label}: one by one ${(s / 1000).toFixed(2)} s, --jobs 2 ${(p / 1000).toFixed(2)} s, ratio ${(s / p).toFixed(2)}×`);
  };
  console.log(`${COUNT} independent recipes on ${availableParallelism()} cores (goal ≥ 1.6×):`);
  line('builds', '  the builds (summary start to end)');
  line('command', '  the whole command (with start-up, loading and compiling the recipes)');
} finally {
  await rm(dir, { recursive: true, force: true });
}

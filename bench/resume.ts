// `builder build --resume` against a clean build of the same recipe: a long first step (a stand-in for
// configure + compile, ≥ 20 s), a cheap middle step, and a last step with a typo. After the typo is fixed,
// a clean build pays for the first step again; a resumed build skips it. Both through the real CLI and real
// bwrap, measured side by side in one run. Goal: resumed ≤ 10 % of clean.
// BENCH_RESUME_SECONDS sets the first step's length (default 20).
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

const BUILDER = fileURLToPath(new URL('../bin/builder', import.meta.url));
const SECONDS = Number(process.env.BENCH_RESUME_SECONDS ?? 20);

const recipe = (last: string) => `package: {name: slowstart, version: "1.0"}
pipeline:
  - name: configure and compile
    runs: |
      sleep ${SECONDS}
      echo compiled > objects
  - name: install
    runs: cp objects "\${{targets.destdir}}/objects"
  - name: finish
    runs: ${last}
`;

const dir = await mkdtemp(join(tmpdir(), 'builder-bench-resume-'));
try {
  const src = join(dir, 'src');
  await mkdir(src);
  const file = join(src, 'slowstart.yaml');
  const build = async (out: string, extra: string[] = []) => {
    const t0 = performance.now();
    const r = await execa(process.execPath, [BUILDER, 'build', file, '--runner', 'bubblewrap', '--out-dir', join(dir, out), '--workspace-dir', join(dir, 'ws'), ...extra], {
      env: { CI: 'true', SOURCE_DATE_EPOCH: '1700000000' },
      reject: false,
      all: true,
    });
    return { ms: performance.now() - t0, r };
  };

  await writeFile(file, recipe('ehco done > "${{targets.destdir}}/done"'));
  const failed = await build('resumed');
  if (failed.r.exitCode === 0) throw new Error('the typo build succeeded');
  await writeFile(file, recipe('echo done > "${{targets.destdir}}/done"'));
  const resumed = await build('resumed', ['--resume']);
  const clean = await build('clean');
  for (const [what, b] of [['resumed', resumed], ['clean', clean]] as const) {
    if (b.r.exitCode !== 0) throw new Error(`${what} build failed:\n${b.r.all}`);
  }
  if (!/skipping 2 completed step\(s\)/.test(resumed.r.all ?? '')) throw new Error(`the resumed build skipped nothing:\n${resumed.r.all}`);
  const ratio = resumed.ms / clean.ms;
  console.log(`first step: ${SECONDS} s`);
  console.log(`failed build (typo in the last step): ${(failed.ms / 1000).toFixed(2)} s`);
  console.log(`clean build after the fix:            ${(clean.ms / 1000).toFixed(2)} s`);
  console.log(`resumed build after the fix:          ${(resumed.ms / 1000).toFixed(2)} s`);
  console.log(`resumed / clean: ${(ratio * 100).toFixed(1)} % (goal ≤ 10 %) ${ratio <= 0.1 ? 'OK' : 'MISSED'}`);
} finally {
  await rm(dir, { recursive: true, force: true });
}

// --resume with the QEMU runner: a failed build brings /home/build back from the VM, so the resumed build
// (a new VM, the kept workspace sent in) skips the completed step; its package data equals a clean build's.
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readApkHead } from '../../src/apk/reader.ts';
import { build, BuildFailedError } from '../../src/build/build.ts';
import { PlainRenderer } from '../../src/build/progress.ts';
import { BubblewrapRunner } from '../../src/runners/bubblewrap.ts';
import { QemuRunner } from '../../src/runners/qemu/runner.ts';
import type { Runner } from '../../src/runners/runner.ts';
import { buildOptions } from './helpers.ts';
import { kernelEnv, makeTempDir, SHARED_CACHE, testKernel, tinyRoot } from '../runners/qemu/helpers.ts';

let dir: string;
beforeAll(async () => {
  dir = await makeTempDir('builder-resume-qemu-');
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const recipe = (last: string) => `package: {name: vmresume, version: "1.0", copyright: [{license: MIT}]}
pipeline:
  - name: first
    runs: |
      echo ran >> runs
      echo data > "\${{targets.destdir}}/data"
  - name: last
    runs: ${last}
`;

async function run(runner: Runner, root: string, recipeFile: string, out: string, log: string[], resume?: string) {
  const progressOut = new PassThrough();
  progressOut.on('data', (c: Buffer) => log.push(...c.toString().split('\n').filter((l) => l !== '')));
  const options = { ...buildOptions({ dir, out, root, runner, recipeFile, progress: new PlainRenderer(progressOut) }), ...(resume ? { resume } : {}) };
  return build(options);
}

describe('--resume with the QEMU runner', () => {
  it('brings the workspace back on failure and resumes from it', async () => {
    const root = await tinyRoot(dir);
    await symlink('busybox', path.join(root, 'bin', 'tar'));
    for (const d of ['var/cache/melange', 'dev', 'proc']) await mkdir(path.join(root, d), { recursive: true });
    const src = path.join(dir, 'src');
    await mkdir(src);
    const file = path.join(src, 'vmresume.yaml');
    await writeFile(file, recipe('exit 3'));
    const qemu = new QemuRunner({ artifactDir: SHARED_CACHE, env: kernelEnv(await testKernel()), bootTimeoutMs: 120_000 });
    const log: string[] = [];
    const err = await run(qemu, root, file, 'out', log).catch((e: unknown) => e);
    expect(err, log.join('\n')).toBeInstanceOf(BuildFailedError);
    const kept = (err as BuildFailedError).workspace!;
    expect(await readFile(path.join(kept, 'workspace', 'runs'), 'utf8')).toBe('ran\n');

    await writeFile(file, recipe('echo fixed'));
    const resumedLog: string[] = [];
    const resumed = await run(qemu, root, file, 'out', resumedLog, kept);
    expect(resumedLog.join('\n')).toContain(`resuming in ${kept}: skipping 1 completed step(s): vmresume: 1/2 first`);
    expect(resumedLog.join('\n')).toContain('rerunning from vmresume: 2/2 last: it failed last time');
    const clean = await run(new BubblewrapRunner(), root, file, 'clean', []);
    const a = await readApkHead(resumed.packages[0]!.path);
    const b = await readApkHead(clean.packages[0]!.path);
    expect(a.info.datahash).toBe(b.info.datahash);
  });
});

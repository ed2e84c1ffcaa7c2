// --verify-reproducible with the QEMU runner: the observability report it names lives next to the packages in
// the real out dir, not in the scratch dir the two builds used (which is gone by then).
import { mkdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PlainRenderer } from '../../src/build/progress.ts';
import { buildReproducibly } from '../../src/build/reproducible.ts';
import { QemuRunner } from '../../src/runners/qemu/runner.ts';
import { buildOptions } from './helpers.ts';
import { kernelEnv, makeTempDir, SHARED_CACHE, testKernel, tinyRoot } from '../runners/qemu/helpers.ts';

let dir: string;
beforeAll(async () => {
  dir = await makeTempDir('builder-repro-report-');
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('--verify-reproducible with the QEMU runner', () => {
  it('moves the observability report into the out dir with the packages', async () => {
    const root = await tinyRoot(dir);
    await symlink('busybox', path.join(root, 'bin', 'tar'));
    const src = path.join(dir, 'src');
    await mkdir(src);
    const file = path.join(src, 'twice.yaml');
    await writeFile(file, 'package: {name: twice, version: "1.0", copyright: [{license: MIT}]}\npipeline:\n  - runs: echo data > "${{targets.destdir}}/data"\n');
    const runner = new QemuRunner({ artifactDir: SHARED_CACHE, env: kernelEnv(await testKernel()), bootTimeoutMs: 120_000 });
    const result = await buildReproducibly(buildOptions({ dir, out: 'out', root, runner, recipeFile: file, progress: new PlainRenderer(new PassThrough()) }));
    const out = path.join(dir, 'out');
    const report = result.observability?.reportPath;
    expect(report).toBe(path.join(out, 'x86_64', path.basename(report ?? 'none')));
    expect((await stat(report!)).isFile()).toBe(true);
    expect(result.observability!.summary.join('\n')).toContain(report!);
    expect(result.observability!.summary.join('\n')).not.toContain('.reproducible-');
  });
});

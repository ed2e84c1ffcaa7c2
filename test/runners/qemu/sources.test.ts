// Sources fetched on the host reach a VM build: the guest cannot see the host's cache dir, so the runner
// copies in exactly the cache entries the plan names (a fetched tarball here).
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listApkData } from '../../../src/apk/reader.ts';
import { build } from '../../../src/build/build.ts';
import { PlainRenderer } from '../../../src/build/progress.ts';
import { QemuRunner } from '../../../src/runners/qemu/runner.ts';
import { debianCompilerRoot, kernelEnv, makeTempDir, SHARED_CACHE, testKernel } from './helpers.ts';

let dir: string;

beforeAll(async () => {
  dir = await makeTempDir('builder-qemu-sources-');
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('a VM build with fetched sources', () => {
  it('extracts a file:// tarball fetched on the host into the package', async () => {
    const root = await debianCompilerRoot();
    const src = path.join(dir, 'src', 'greeting-1.0');
    await mkdir(src, { recursive: true });
    await writeFile(path.join(src, 'GREETING'), 'hello from a tarball\n');
    const tarball = path.join(dir, 'greeting-1.0.tar.gz');
    await execa('tar', ['-czf', tarball, '-C', path.join(dir, 'src'), 'greeting-1.0']);
    const sha256 = createHash('sha256').update(await readFile(tarball)).digest('hex');

    const recipeDir = path.join(dir, 'recipe');
    await mkdir(recipeDir);
    const recipe = path.join(recipeDir, 'greeting.yaml');
    await writeFile(
      recipe,
      [
        'package: {name: greeting, version: "1.0", epoch: 0}',
        'pipeline:',
        '  - uses: fetch',
        '    with:',
        `      uri: file://${tarball}`,
        `      expected-sha256: ${sha256}`,
        '  - runs: |',
        '      mkdir -p ${{targets.destdir}}/usr/share/greeting',
        '      cp GREETING ${{targets.destdir}}/usr/share/greeting/',
        '',
      ].join('\n'),
    );
    const log: string[] = [];
    const out = new PassThrough();
    out.on('data', (c: Buffer) => log.push(...c.toString().split('\n')));
    const result = await build({
      recipeFile: recipe,
      arch: 'x86_64',
      runner: 'qemu',
      runners: [new QemuRunner({ artifactDir: SHARED_CACHE, env: kernelEnv(await testKernel()), bootTimeoutMs: 120_000 })],
      environmentProvider: {
        name: 'dir',
        prepare: async () => ({ description: `dir:${root}`, mounts: [{ source: root, target: '/', readonly: true }], directory: root, release: async () => undefined }),
      },
      outDir: path.join(dir, 'out'),
      cacheDir: path.join(dir, 'cache'),
      workspaceDir: path.join(dir, 'ws'),
      sourceDateEpoch: 0,
      debug: false,
      generateIndex: false,
      keepWorkspace: false,
      progress: new PlainRenderer(out),
    });
    const names = (await listApkData(result.packages[0]!.path)).map((e) => e.name);
    expect(names).toContain('usr/share/greeting/GREETING');
    expect(log.some((l) => l.includes('accelerator'))).toBe(true);
  });
});

// Whole builds through the integrator's build() with the QEMU runner: examples/hello gives the same package
// data as with Bubblewrap (same root, same SOURCE_DATE_EPOCH), and a failing step fails the build with its
// output. The build root is handed over as a `dir` root, as an environment provider would.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readApkHead } from '../../../src/apk/reader.ts';
import { build, BuildFailedError, type BuildOptions } from '../../../src/build/build.ts';
import { PlainRenderer } from '../../../src/build/progress.ts';
import type { EnvironmentProvider } from '../../../src/environment/provider.ts';
import { BubblewrapRunner } from '../../../src/runners/bubblewrap.ts';
import { QemuRunner } from '../../../src/runners/qemu/runner.ts';
import type { Runner } from '../../../src/runners/runner.ts';
import { debianCompilerRoot, kernelEnv, makeTempDir, SHARED_CACHE, testKernel, tinyRoot } from './helpers.ts';

const HELLO = fileURLToPath(new URL('../../../examples/hello/hello.yaml', import.meta.url));
const EPOCH = 1_700_000_000;

function dirProvider(root: string): EnvironmentProvider {
  return {
    name: 'dir',
    prepare: async () => ({ description: `dir:${root}`, mounts: [{ source: root, target: '/', readonly: true }], directory: root, release: async () => undefined }),
  };
}

let dir: string;

beforeAll(async () => {
  dir = await makeTempDir('builder-qemu-build-');
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function buildWith(name: string, runner: Runner, root: string, recipeFile: string, log: string[]): Promise<Awaited<ReturnType<typeof build>>> {
  const progressOut = new PassThrough();
  progressOut.on('data', (c: Buffer) => log.push(...c.toString().split('\n').filter((l) => l !== '')));
  const options: BuildOptions = {
    recipeFile,
    arch: 'x86_64',
    runner: runner.name,
    runners: [runner],
    environmentProvider: dirProvider(root),
    outDir: path.join(dir, `out-${name}`),
    cacheDir: path.join(dir, 'cache'),
    workspaceDir: path.join(dir, 'workspaces'),
    sourceDateEpoch: EPOCH,
    debug: false,
    generateIndex: false,
    keepWorkspace: false,
    progress: new PlainRenderer(progressOut),
  };
  return build(options);
}

async function qemuRunner(log: string[]): Promise<QemuRunner> {
  return new QemuRunner({ artifactDir: SHARED_CACHE, env: kernelEnv(await testKernel()), bootTimeoutMs: 120_000, log: (l) => log.push(l) });
}

describe('builds with --runner qemu', () => {
  it('produce the same package data as --runner bubblewrap for examples/hello', async () => {
    const root = await debianCompilerRoot();
    const qemuLog: string[] = [];
    const bwrapLog: string[] = [];
    const viaQemu = await buildWith('qemu', await qemuRunner(qemuLog), root, HELLO, qemuLog);
    const viaBwrap = await buildWith('bwrap', new BubblewrapRunner(), root, HELLO, bwrapLog);
    expect(viaQemu.packages.map((p) => p.name)).toEqual(['hello', 'hello-doc']);
    expect(viaBwrap.packages.map((p) => p.name)).toEqual(['hello', 'hello-doc']);
    for (const [i, pkg] of viaQemu.packages.entries()) {
      const fromQemu = await readApkHead(pkg.path);
      const fromBwrap = await readApkHead(viaBwrap.packages[i]!.path);
      expect(fromQemu.info.datahash, `${pkg.name} datahash`).toMatch(/^[0-9a-f]{64}$/);
      expect(fromQemu.info.datahash, `${pkg.name} datahash`).toBe(fromBwrap.info.datahash);
      expect(fromQemu.info.size).toBe(fromBwrap.info.size);
    }
    // The compiler really ran in the VM.
    expect(qemuLog.some((l) => /cc -O2 -Wall -o hello hello\.c/.test(l))).toBe(true);
    expect(qemuLog.some((l) => /accelerator: (tcg|kvm)/.test(l))).toBe(true);
  });

  it('fail with the failing step\'s exit code and the tail of its output', async () => {
    const root = await tinyRoot(dir);
    const recipeDir = path.join(dir, 'failing');
    await mkdir(recipeDir);
    const recipe = path.join(recipeDir, 'failing.yaml');
    await writeFile(
      recipe,
      [
        'package:',
        '  name: failing',
        '  version: 1.0.0',
        '  epoch: 0',
        '  description: fails on purpose',
        '  copyright:',
        '    - license: MIT',
        'pipeline:',
        '  - name: Works',
        '    runs: echo first step ran',
        '  - name: Breaks',
        '    runs: |',
        '      echo about to fail',
        '      echo "on stderr" >&2',
        '      exit 7',
        '',
      ].join('\n'),
    );
    const log: string[] = [];
    const err = await buildWith('failing', await qemuRunner(log), root, recipe, log).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BuildFailedError);
    const failed = err as BuildFailedError;
    expect(failed.message).toMatch(/step "Breaks" of failing .* failed with exit code 7/);
    expect(failed.details).toEqual(expect.arrayContaining(['about to fail', 'on stderr']));
    expect(log.some((l) => l.includes('first step ran'))).toBe(true);
    if (failed.workspace) await rm(failed.workspace, { recursive: true, force: true });
  });
});

// What the in-process build tests share: a provider handing over a prepared directory as the root, and the
// options of a build into a private temp dir.
import path from 'node:path';
import type { BuildOptions } from '../../src/build/build.ts';
import type { ProgressRenderer } from '../../src/build/progress.ts';
import type { EnvironmentProvider } from '../../src/environment/provider.ts';
import type { Runner } from '../../src/runners/runner.ts';

export function dirProvider(root: string): EnvironmentProvider {
  return {
    name: 'dir',
    prepare: async () => ({ description: `dir:${root}`, mounts: [{ source: root, target: '/', readonly: true }], directory: root, release: async () => undefined }),
  };
}

/** A build of recipeFile in `root` with `runner`, everything under `dir`, packages in `<dir>/<out>`. */
export function buildOptions(o: { dir: string; out: string; root: string; runner: Runner; recipeFile: string; progress: ProgressRenderer }): BuildOptions {
  return {
    recipeFile: o.recipeFile,
    arch: 'x86_64',
    runner: o.runner.name,
    runners: [o.runner],
    environmentProvider: dirProvider(o.root),
    outDir: path.join(o.dir, o.out),
    cacheDir: path.join(o.dir, 'cache'),
    workspaceDir: path.join(o.dir, 'workspaces'),
    sourceDateEpoch: 1_700_000_000,
    debug: false,
    generateIndex: false,
    keepWorkspace: false,
    progress: o.progress,
  };
}

// The libgreet → greeter chain: a shared library built in a Debian base into a local repository, then a
// program whose build root installs that library from the repository and links against it. Uses the
// examples' own recipes, with their relative paths pointed at the test's directories.
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { execa } from 'execa';
import { describe, expect, it, onTestFinished } from 'vitest';
import { readApkHead } from '../../src/apk/reader.ts';
import { readApkIndex } from '../../src/apk/index.ts';
import { extractTar } from '../../src/archive/safe-extract.ts';
import { build, type BuildOptions } from '../../src/build/build.ts';
import { PlainRenderer } from '../../src/build/progress.ts';
import type { EnvironmentProvider } from '../../src/environment/provider.ts';
import { RootProvider } from '../../src/environment/root-provider.ts';
import { BubblewrapRunner } from '../../src/runners/bubblewrap.ts';
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { useTempDirs } from '../helpers/tmp.ts';
import { ARCH, makeKey } from './repo.ts';
import { DEBIAN_BASE, SHARED_ROOT_CACHE } from './shared-cache.ts';

const tempDir = useTempDirs();
const EXAMPLES = resolve(import.meta.dirname, '../../examples');

async function copyExample(name: string, dest: string, replacements: Record<string, string>): Promise<string> {
  await cp(join(EXAMPLES, name), dest, { recursive: true });
  const recipe = join(dest, `${name}.yaml`);
  let text = await readFile(recipe, 'utf8');
  for (const [from, to] of Object.entries(replacements)) text = text.split(from).join(to);
  await writeFile(recipe, text);
  return recipe;
}

/** The shared cache keeps the Debian base; roots layered for this run's throwaway keys are removed. */
async function removeRootsMadeBy(provider: RootProvider): Promise<void> {
  const roots = await provider.cache.list();
  for (const digest of provider.cache.stats.createdDigests) {
    if (roots.find((r) => r.digest === digest)?.kind === 'root') await provider.cache.remove(digest);
  }
}

describe('libgreet → greeter', () => {
  it('builds a library into a local repository, then a program against it in a hermetic root', async () => {
    const dir = await tempDir();
    const key = await makeKey(join(dir, 'keys'), 'builder.rsa');
    const packages = join(dir, 'packages');
    const lines: string[] = [];
    const out = new PassThrough();
    out.on('data', (c: Buffer) => lines.push(...c.toString('utf8').split('\n')));
    const provider = new RootProvider({ cacheDir: SHARED_ROOT_CACHE, apkCacheDir: join(dir, 'apk-cache') });
    onTestFinished(() => removeRootsMadeBy(provider));
    const options = (recipeFile: string): BuildOptions => ({
      recipeFile,
      arch: ARCH,
      runner: 'bubblewrap',
      runners: [new BubblewrapRunner()],
      environmentProvider: provider,
      outDir: packages,
      signingKey: key.key.path,
      cacheDir: join(dir, 'melange-cache'),
      workspaceDir: dir,
      sourceDateEpoch: 1700000000,
      debug: false,
      generateIndex: true,
      keepWorkspace: false,
      progress: new PlainRenderer(out),
    });

    const libRecipe = await copyExample('libgreet', join(dir, 'libgreet'), {});
    const lib = await build(options(libRecipe));
    expect(lib.packages.map((p) => p.name)).toEqual(['libgreet']);
    const libHead = await readApkHead(lib.packages[0]!.path);
    expect(libHead.info.provides.some((p) => p.startsWith('so:libgreet.so.1'))).toBe(true);

    const greeterRecipe = await copyExample('greeter', join(dir, 'greeter'), {
      './packages': packages,
      './builder.rsa.pub': key.publicPath,
    });
    const greeter = await build(options(greeterRecipe));
    const log = lines.join('\n');
    // Each name says where it came from: libgreet from the local repository, gcc from the Debian base.
    expect(log).toContain('environment: libgreet: APK repository');
    expect(log).toContain('environment: gcc: base');
    expect(log).toMatch(/environment: resolved 1 apk package\(s\)/);
    expect(log).toContain('installed 1 package(s)');

    const head = await readApkHead(greeter.packages[0]!.path);
    expect(head.info.depend).toContain('so:libgreet.so.1');
    const index = await readApkIndex(join(packages, ARCH, 'APKINDEX.tar.gz'));
    expect(index.entries.map((e) => e.pkgname).sort()).toEqual(['greeter', 'libgreet']);

    // The binary in the package links against the library by its SONAME.
    const unpacked = await tempDir();
    const source = createReadStream(head.path, { start: head.dataOffset });
    await extractTar(source.pipe(createGunzip()), { dest: unpacked, where: 'greeter package' });
    const dynamic = await execa('readelf', ['-d', join(unpacked, 'usr/bin/greeter')]);
    expect(dynamic.stdout).toMatch(/\(NEEDED\)\s+Shared library: \[libgreet\.so\.1\]/);
  });

  it('builds examples/hello with gcc and make from a Debian base given like --base', async () => {
    const dir = await tempDir();
    const provider = new RootProvider({ cacheDir: SHARED_ROOT_CACHE });
    onTestFinished(() => removeRootsMadeBy(provider));
    const lines: string[] = [];
    const out = new PassThrough();
    out.on('data', (c: Buffer) => lines.push(...c.toString('utf8').split('\n')));
    // What the CLI's --base flag does: the spec carries the base; the recipe is unchanged.
    const withBase: EnvironmentProvider = { name: 'root', prepare: (spec, log) => provider.prepare({ ...spec, base: DEBIAN_BASE }, log) };
    const result = await build({
      recipeFile: join(EXAMPLES, 'hello/hello.yaml'),
      arch: ARCH,
      runner: 'bubblewrap',
      runners: [new BubblewrapRunner()],
      environmentProvider: withBase,
      outDir: join(dir, 'packages'),
      cacheDir: join(dir, 'melange-cache'),
      workspaceDir: dir,
      sourceDateEpoch: 1700000000,
      debug: false,
      generateIndex: true,
      keepWorkspace: false,
      progress: new PlainRenderer(out),
    });
    expect(result.packages.map((p) => p.name)).toEqual(['hello', 'hello-doc']);
    const log = lines.join('\n');
    // The root is the Debian base itself (gcc and make come from it), resolved now or found in the cache.
    expect(log).toMatch(/\n\S+\s+│ root [0-9a-f]{12} \(debian:bookworm:gcc,libc6-dev,make\)\n/);
    expect(log).toContain('cc -O2 -Wall -o hello hello.c');
  });
});

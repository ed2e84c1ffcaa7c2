// A Debian base made by mmdebstrap (network to the Debian archive), with APK packages layered on top.
import { lstat, readFile, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { scanBaseProvides } from '../../src/environment/base-provides.ts';
import { mmdebstrapArgs } from '../../src/environment/debian.ts';
import { RootProvider } from '../../src/environment/root-provider.ts';
import { BubblewrapRunner } from '../../src/runners/bubblewrap.ts';
import { makeSandboxDirs, Output, podConfig, runOptions } from '../runners/helpers.ts';
import { useTempDirs } from '../helpers/tmp.ts';
import { ARCH, buildRepo, makeKey } from './repo.ts';
import { DEBIAN_BASE, SHARED_ROOT_CACHE } from './shared-cache.ts';

const tempDir = useTempDirs();

describe('debian base', () => {
  it('builds the mmdebstrap command line from the reference', () => {
    expect(mmdebstrapArgs({ suite: 'bookworm', packages: ['gcc', 'make'], mirror: 'http://deb.debian.org/debian' }, 'x86_64', '/t')).toEqual([
      '--variant=essential',
      '--architectures=amd64',
      '--include=apt,gcc,make',
      '--aptopt=Acquire::Retries "3"',
      '--skip=essential/unlink',
      '--skip=cleanup/apt/lists',
      '--setup-hook=mkdir -p "$1/var/cache/apt/archives" && mount --bind "$BUILDER_DEB_CACHE" "$1/var/cache/apt/archives"',
      '--customize-hook=umount "$1/var/cache/apt/archives"',
      'bookworm',
      '/t',
      'http://deb.debian.org/debian',
    ]);
  });

  it('makes a Debian root with the requested packages, usable by the bubblewrap runner as the build user', async () => {
    const provider = new RootProvider({ cacheDir: SHARED_ROOT_CACHE });
    const root = await provider.prepare({ repositories: [DEBIAN_BASE], keyring: [], packages: ['gcc', 'make'], arch: ARCH }, () => undefined);
    const dir = root.directory!;
    expect(await readFile(join(dir, 'etc/os-release'), 'utf8')).toContain('bookworm');
    // Debian's own root entry stays; the build user is added.
    const passwd = await readFile(join(dir, 'etc/passwd'), 'utf8');
    expect(passwd).toMatch(/^root:[x*]:0:0:root:\/root:\/bin\/bash$/m);
    expect(passwd).toMatch(/^build:x:1000:1000:builder:\/home\/build:\/bin\/sh$/m);
    const provides = await scanBaseProvides(dir);
    for (const name of ['gcc', 'make', 'libc6', 'so:libc.so.6', 'cmd:gcc', 'cmd:sh']) expect(provides.has(name)).toBe(true);

    const sandbox = await makeSandboxDirs();
    const runner = new BubblewrapRunner();
    try {
      await runner.start(podConfig(sandbox, root));
      const out = new Output();
      const code = await runner.run(
        ['/bin/sh', '-ec', 'id -un; printf "int main(void){return 42;}" > t.c; gcc t.c -o t; ./t || echo "exit $?"'],
        runOptions(out),
      );
      expect(out.text('stderr')).toBe('');
      expect(code).toBe(0);
      expect(out.text('stdout')).toBe('build\nexit 42\n');
    } finally {
      await runner.terminate();
      await sandbox.remove();
    }
  });

  it('layers APK packages on the base: base libraries satisfy so: dependencies, merged-/usr links stay', async () => {
    const dir = await tempDir();
    const key = await makeKey(join(dir, 'keys'));
    const repo = join(dir, 'repo');
    await buildRepo(
      repo,
      [
        {
          name: 'libfoo',
          version: '1.0-r0',
          depends: ['so:libc.so.6', 'cmd:gcc'],
          provides: ['so:libfoo.so.1=1.0'],
          files: { 'lib/': '', 'lib/libfoo.so.1': 'not really ELF\n', 'usr/': '', 'usr/share/': '', 'usr/share/foo/': '', 'usr/share/foo/README': 'foo\n' },
        },
      ],
      key.key,
    );
    const cacheDir = SHARED_ROOT_CACHE;
    const provider = new RootProvider({ cacheDir, apkCacheDir: join(dir, 'apk-cache') });
    const logs: string[] = [];
    const root = await provider.prepare(
      { repositories: [DEBIAN_BASE, repo], keyring: [key.publicPath], packages: ['so:libfoo.so.1'], arch: ARCH },
      (l) => logs.push(l),
    );
    // This run's root is specific to its throwaway key: do not let the shared cache collect them.
    onTestFinished(() => provider.cache.remove(root.digest!));
    const rootfs = root.directory!;
    expect(logs.join('\n')).toContain('from the base: cmd:gcc so:libc.so.6');
    expect(await readlink(join(rootfs, 'lib'))).toBe('usr/lib');
    expect(await readFile(join(rootfs, 'usr/lib/libfoo.so.1'), 'utf8')).toBe('not really ELF\n');
    expect((await readFile(join(rootfs, 'lib/apk/db/installed'), 'utf8'))).toContain('P:libfoo\n');

    // The Debian base the root was made from is untouched (the root shares its inodes by hard links).
    const bases = (await provider.cache.list()).filter((r) => r.kind === 'base');
    const base = bases.find((b) => b.description === DEBIAN_BASE)!;
    expect(base).toBeDefined();
    const baseRoot = join(base.dir, 'rootfs');
    expect(await readFile(join(baseRoot, 'etc/passwd'), 'utf8')).not.toContain('build:');
    await expect(lstat(join(baseRoot, 'usr/lib/libfoo.so.1'))).rejects.toThrow();
    await expect(stat(join(baseRoot, 'lib/apk'))).rejects.toThrow();
    // Files shared with the base are the same inodes: nothing was copied.
    const [a, b] = await Promise.all([stat(join(rootfs, 'usr/bin/gcc-12')), stat(join(baseRoot, 'usr/bin/gcc-12'))]);
    expect(a.ino).toBe(b.ino);
    await provider.cache.remove(root.digest!);
    await expect(stat(rootfs)).rejects.toThrow();
    expect(await readFile(join(baseRoot, 'etc/os-release'), 'utf8')).toContain('bookworm');
  });

  it('runs install scriptlets inside the new root only when asked', async () => {
    const dir = await tempDir();
    const key = await makeKey(join(dir, 'keys'));
    const repo = join(dir, 'repo');
    await buildRepo(
      repo,
      [{ name: 'marker', version: '1-r0', scriptlets: { 'pre-install': 'echo pre > /etc/marker', 'post-install': 'echo "post $(id -u) $(cat /usr/share/marker/version)" >> /etc/marker' } }],
      key.key,
    );
    const provider = new RootProvider({ cacheDir: SHARED_ROOT_CACHE });
    const spec = { repositories: [DEBIAN_BASE, repo], keyring: [key.publicPath], packages: ['marker'], arch: ARCH };
    const quiet = await provider.prepare(spec, () => undefined);
    onTestFinished(() => provider.cache.remove(quiet.digest!));
    await expect(stat(join(quiet.directory!, 'etc/marker'))).rejects.toThrow();
    const withScripts = await provider.prepare({ ...spec, runScriptlets: true }, () => undefined);
    onTestFinished(() => provider.cache.remove(withScripts.digest!));
    expect(withScripts.digest).not.toBe(quiet.digest);
    expect(await readFile(join(withScripts.directory!, 'etc/marker'), 'utf8')).toBe('pre\npost 0 1-r0\n');
  });
});

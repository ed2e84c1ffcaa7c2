// `build-initramfs --from apk` for real: a signed APK repository made in the test from Debian's busybox-static
// and dropbear-bin (+ the libraries dropbear needs) with builder's own APK writer, resolved and installed by the
// native installer, parsed back with our cpio reader, cached on a second run — and booted by the QEMU runner
// (TCG, Debian's cloud kernel), which runs a step through the dropbear that came from the APK repository.
import { createReadStream } from 'node:fs';
import { copyFile, link, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey, loadSigningKey } from '../../src/apk/keys.ts';
import { registerInitramfsCommand } from '../../src/cli/commands/initramfs.ts';
import { ensureSealedBaseInitramfs } from '../../src/runners/qemu/seal.ts';
import { readElf } from '../../src/elf/reader.ts';
import { PackageFormatError, UsageError } from '../../src/errors.ts';
import { type BaseInitramfsOptions, baseInitramfsDigest, ensureBaseInitramfs } from '../../src/initramfs/base.ts';
import { installedPaths } from '../../src/initramfs/apk.ts';
import { QemuRunner } from '../../src/runners/qemu/runner.ts';
import type { OutputStream } from '../../src/runners/runner.ts';
import { kernelEnv, leftovers, podFor, qemuProcessesMentioning, testKernel } from '../runners/qemu/helpers.ts';
import { ARCH, debianMadeApkRepository, packageTree, type TestApkRepository, writeIndex } from './apk-repository.ts';
import { type Listed, resolveInArchive, unpack } from './archive.ts';

describe('build-initramfs --from apk', () => {
  let work: string;
  let cacheDir: string;
  let repo: TestApkRepository;
  let options: BaseInitramfsOptions;
  let first: Awaited<ReturnType<typeof ensureBaseInitramfs>>;
  let entries: Map<string, Listed>;
  const progress: string[] = [];

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'builder-initramfs-apk-'));
    cacheDir = path.join(work, 'cache');
    repo = await debianMadeApkRepository(work);
    // An extra package of our own: a program, and documentation that stays out of the archive.
    const extra = path.join(work, 'trees', 'hello-extra');
    await mkdir(path.join(extra, 'usr/bin'), { recursive: true });
    await mkdir(path.join(extra, 'usr/share/doc/hello-extra'), { recursive: true });
    await writeFile(path.join(extra, 'usr/bin/hello-extra'), '#!/bin/sh\necho hello from an apk\n', { mode: 0o755 });
    await writeFile(path.join(extra, 'usr/share/doc/hello-extra/README'), 'not for the VM\n');
    repo.packages.set('hello-extra', await packageTree(repo.dir, repo.key, extra, { pkgname: 'hello-extra', pkgver: '1.0-r0', depend: ['busybox-static'] }));
    await writeIndex(repo.dir, repo.key, [...repo.packages.values()].map((p) => p.entry));

    options = { cacheDir, from: 'apk', repositories: [repo.dir], keyring: [repo.publicKey], packages: ['hello-extra'] };
    first = await ensureSealedBaseInitramfs({ ...options, log: (l) => progress.push(l) });
    entries = await unpack(first.path, (n) => n === 'init' || n === 'bin/busybox' || n === 'usr/sbin/dropbear' || n === 'usr/bin/hello-extra');
  });

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('resolves busybox, dropbear and its libraries through so: names and installs them with the native installer', () => {
    expect(first.cached).toBe(false);
    expect(first.path).toBe(path.join(cacheDir, 'initramfs', `base-${first.digest}.cpio.gz`));
    const resolved = progress.find((l) => l.startsWith('resolved '));
    expect(resolved).toMatch(/^resolved \d+ APK packages: /);
    for (const name of ['busybox-static', 'dropbear', 'libc6', 'libtomcrypt1', 'libtommath1', 'zlib1g', 'hello-extra']) {
      expect(resolved).toContain(` ${name}-`);
    }
    expect(progress.some((l) => /^installed \d+ APK packages/.test(l))).toBe(true);
  });

  it('holds our init, a static busybox with its applet links, dropbear, and the extra package without its docs', async () => {
    const init = entries.get('init');
    expect(init?.mode).toBe(0o755);
    expect(init?.data?.toString()).toBe(await readFile(new URL('../../src/initramfs/guest/init', import.meta.url), 'utf8'));
    expect(entries.get('bin/busybox')?.data?.equals(await readFile(path.join(work, 'trees/busybox-static/bin/busybox')))).toBe(true);
    expect(entries.get('bin/sh')).toMatchObject({ type: 'symlink', link: '/bin/busybox' });
    expect(entries.get('usr/libexec/builder/build-channel')?.mode).toBe(0o755);
    expect(entries.get('dev/console')?.type).toBe('char');
    expect(entries.get('usr/sbin/dropbear')).toMatchObject({ type: 'file', mode: 0o755 });
    expect(entries.get('usr/sbin/dropbear')?.data?.equals(await readFile(path.join(work, 'trees/dropbear-bin/usr/sbin/dropbear')))).toBe(true);
    expect(entries.get('usr/bin/hello-extra')?.data?.toString()).toBe('#!/bin/sh\necho hello from an apk\n');
    const names = [...entries.keys()];
    expect(names.some((n) => n.startsWith('usr/share/doc/'))).toBe(false);
    // The installer's own database stays in the tree it was written to.
    expect(names.some((n) => n.startsWith('lib/apk/'))).toBe(false);
    for (const [i, n] of names.entries()) {
      const parent = path.posix.dirname(n);
      if (parent !== '.') expect(names.indexOf(parent)).toBeLessThan(i);
    }
  });

  it('carries every shared library dropbear needs, found from its DT_NEEDED entries', async () => {
    const dropbear = path.join(work, 'dropbear');
    await writeFile(dropbear, entries.get('usr/sbin/dropbear')!.data!);
    const elf = await readElf(dropbear);
    expect(elf?.needed.length).toBeGreaterThan(0);
    expect(resolveInArchive(entries, elf!.interpreter!)).toBeDefined();
    for (const soname of elf!.needed) {
      const found = ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu'].map((d) => resolveInArchive(entries, `${d}/${soname}`)).find((x) => x !== undefined);
      expect(found, `${soname} in the archive`).toBeDefined();
      expect(entries.get(found!)?.type).toBe('file');
    }
    // Only what is needed: libc6's gconv modules came with the package but nothing loads them.
    expect([...entries.keys()].some((n) => n.includes('gconv'))).toBe(false);
  });

  it('builder build-initramfs --from apk is a cache hit the second time, and -o writes a copy', async () => {
    const before = await stat(first.path);
    const program = new Command('builder').exitOverride();
    registerInitramfsCommand(program);
    const output = path.join(work, 'out', 'initramfs.cpio.gz');
    await mkdir(path.dirname(output));
    await program.parseAsync(
      ['build-initramfs', '--from', 'apk', '--repository', repo.dir, '--keyring', repo.publicKey, '--package', 'hello-extra', '-o', output, '--vm-artifact-dir', cacheDir],
      { from: 'user' },
    );
    expect((await readFile(output)).equals(await readFile(first.path))).toBe(true);
    expect((await stat(first.path)).mtimeMs).toBe(before.mtimeMs);
    expect(await ensureBaseInitramfs(options)).toEqual({ ...first, cached: true });
  });

  it('takes an http repository too: indexes and packages are downloaded into the cache, same archive', async () => {
    const requests: string[] = [];
    const server = createServer((req, res) => {
      requests.push(req.url ?? '');
      const file = path.join(repo.dir, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
      if (!file.startsWith(`${repo.dir}/`)) {
        res.writeHead(403).end();
        return;
      }
      const stream = createReadStream(file);
      stream.on('error', () => res.writeHead(404).end());
      stream.on('open', () => {
        res.writeHead(200);
        stream.pipe(res);
      });
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const otherCache = path.join(work, 'http-cache');
      const built = await ensureBaseInitramfs({ ...options, cacheDir: otherCache, repositories: [url] });
      expect(built.cached).toBe(false);
      // The same index and the same packages: the same digest, and the archive is reproducible byte for byte.
      expect(built.digest).toBe(first.digest);
      expect((await readFile(built.path)).equals(await readFile(first.path))).toBe(true);
      expect(requests).toContain(`/${ARCH}/APKINDEX.tar.gz`);
      expect(requests).toContain(`/${ARCH}/${path.basename(repo.packages.get('dropbear')!.file)}`);
      expect((await readdir(path.join(otherCache, 'initramfs', 'downloads'))).length).toBeGreaterThan(0);
    } finally {
      await new Promise((done) => server.close(done));
    }
  });

  it('has a digest that follows the resolved packages and the indexes', async () => {
    expect(await baseInitramfsDigest(options)).toBe(first.digest);
    expect(await baseInitramfsDigest({ ...options, packages: [] })).not.toBe(first.digest);
    // A second repository offering a newer hello-extra: another index, another package version.
    const newer = path.join(work, 'newer');
    const tree = path.join(work, 'trees', 'hello-extra-2');
    await mkdir(path.join(tree, 'usr/bin'), { recursive: true });
    await writeFile(path.join(tree, 'usr/bin/hello-extra'), '#!/bin/sh\necho hello again\n', { mode: 0o755 });
    const built = await packageTree(newer, repo.key, tree, { pkgname: 'hello-extra', pkgver: '2.0-r0', depend: [] });
    await writeIndex(newer, repo.key, [built.entry]);
    const withNewer = await baseInitramfsDigest({ ...options, repositories: [repo.dir, newer] });
    expect(withNewer).not.toBe(first.digest);
    // A constraint that keeps the old package: the same packages are resolved, but from other indexes.
    expect(await baseInitramfsDigest({ ...options, repositories: [repo.dir, newer], packages: ['hello-extra<2'] })).not.toBe(
      await baseInitramfsDigest({ ...options, packages: ['hello-extra<2'] }),
    );
    // Not verifying is a different input, even when everything would verify.
    expect(await baseInitramfsDigest({ ...options, ignoreSignatures: true })).not.toBe(first.digest);
  });

  it('refuses an untrusted repository, naming it and the flags that fix it', async () => {
    const other = await generateSigningKey(path.join(work, 'other.rsa'), { bits: 2048 });
    for (const keyring of [[], [other.publicPath]]) {
      const err = await ensureBaseInitramfs({ ...options, keyring }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PackageFormatError);
      expect((err as Error).message).toContain(`repository ${path.join(repo.dir, ARCH)} is not trusted`);
      expect((err as Error).message).toMatch(/signed by initramfs-test\.rsa\.pub.*--keyring KEY\.pub.*--ignore-signatures/);
    }
    // With --ignore-signatures the same untrusted repository is accepted (and only resolved here).
    await expect(baseInitramfsDigest({ ...options, keyring: [], ignoreSignatures: true })).resolves.toMatch(/^[0-9a-f]{32}$/);

    // A trusted index listing a package signed by someone else: the package is refused when installed.
    const mixed = path.join(work, 'mixed');
    const foreign = await packageTree(mixed, await loadSigningKey(path.join(work, 'other.rsa')), path.join(work, 'trees', 'hello-extra'), {
      pkgname: 'hello-extra',
      pkgver: '1.0-r0',
      depend: [],
    });
    const rest = [...repo.packages.values()].filter((p) => p.entry.pkgname !== 'hello-extra');
    for (const p of rest) await link(p.file, path.join(mixed, ARCH, path.basename(p.file)));
    await writeIndex(mixed, repo.key, [foreign.entry, ...rest.map((p) => p.entry)]);
    const err = await ensureBaseInitramfs({ ...options, repositories: [mixed] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PackageFormatError);
    expect((err as Error).message).toBe(
      `--from apk: package hello-extra-1.0-r0 (${foreign.file}) is not trusted (signed by other.rsa.pub, which is not a trusted key); add its public key with --keyring KEY.pub, or pass --ignore-signatures`,
    );
  });

  it('refuses an unknown package, listing the repositories searched', async () => {
    const second = path.join(work, 'second-repo');
    await writeIndex(second, repo.key, [repo.packages.get('hello-extra')!.entry]);
    const err = await ensureBaseInitramfs({ ...options, repositories: [repo.dir, second], packages: ['no-such-package'] }).catch((e: unknown) => e);
    expect((err as Error).message).toBe(
      `--package no-such-package: no such package in the APK repositories for ${ARCH} (searched ${path.join(repo.dir, ARCH)}, ${path.join(second, ARCH)})`,
    );
  });

  it('says when no package provides busybox or dropbear, naming what was looked up', async () => {
    const only = async (name: string, names: string[]): Promise<string> => {
      const dir = path.join(work, `only-${name}`);
      await mkdir(path.join(dir, ARCH), { recursive: true });
      for (const n of names) await link(repo.packages.get(n)!.file, path.join(dir, ARCH, path.basename(repo.packages.get(n)!.file)));
      await writeIndex(dir, repo.key, names.map((n) => repo.packages.get(n)!.entry));
      return dir;
    };
    const noBusybox = await only('extra', ['hello-extra']);
    await expect(ensureBaseInitramfs({ ...options, repositories: [noBusybox], packages: [] })).rejects.toThrow(
      `--from apk: no busybox in the APK repositories: no package is or provides busybox-static, busybox, cmd:busybox for ${ARCH} (searched ${path.join(noBusybox, ARCH)})`,
    );
    const noDropbear = await only('busybox', ['busybox-static']);
    await expect(ensureBaseInitramfs({ ...options, repositories: [noDropbear], packages: [] })).rejects.toThrow(
      /^--from apk: no SSH server \(dropbear\) in the APK repositories: no package is or provides dropbear, cmd:dropbear/,
    );
  });

  it('refuses a dynamically linked busybox, which could not run inside the build root', async () => {
    // A "busybox" whose program is dynamic (dropbear's binary under that name), next to everything else.
    const dir = path.join(work, 'dynamic-busybox');
    const tree = path.join(work, 'trees', 'fake-busybox');
    await mkdir(path.join(tree, 'bin'), { recursive: true });
    await copyFile(path.join(work, 'trees/dropbear-bin/usr/sbin/dropbear'), path.join(tree, 'bin/busybox'));
    const fake = await packageTree(dir, repo.key, tree, { pkgname: 'busybox', pkgver: '9.9-r0' });
    const rest = [...repo.packages.entries()].filter(([n]) => n !== 'busybox-static' && n !== 'hello-extra');
    for (const [, p] of rest) await link(p.file, path.join(dir, ARCH, path.basename(p.file)));
    await writeIndex(dir, repo.key, [fake.entry, ...rest.map(([, p]) => p.entry)]);
    await expect(ensureBaseInitramfs({ ...options, repositories: [dir], packages: [] })).rejects.toThrow(
      /^\/bin\/busybox is dynamically linked \(needs \/lib64\/ld-linux-x86-64\.so\.2, .*\); the guest runs busybox inside the build root, so it must be a static build/,
    );
    // Failed builds leave nothing half-made in the cache.
    // (the sealed first archive keeps its digest record beside it)
    expect((await readdir(path.join(cacheDir, 'initramfs'))).sort()).toEqual([path.basename(first.path), `${path.basename(first.path)}.seal.json`]);
  });

  it('checks its flags', async () => {
    await expect(ensureBaseInitramfs({ cacheDir, from: 'apk' })).rejects.toThrow(new UsageError('--from apk needs at least one --repository DIR|URL (holding <arch>/APKINDEX.tar.gz)'));
    await expect(ensureBaseInitramfs({ cacheDir, repositories: [repo.dir] })).rejects.toBeInstanceOf(UsageError);
    await expect(ensureBaseInitramfs({ ...options, packages: ['!busybox'] })).rejects.toBeInstanceOf(UsageError);
  });

  it('reads which files a package owns from the installed database', () => {
    const db = 'C:Q1x\nP:one\nV:1-r0\nF:usr\nF:usr/bin\nR:a\nR:b\n\nP:two\nV:1-r0\nR:top\nF:etc\nR:conf\n\n';
    expect(installedPaths(db)).toEqual(
      new Map([
        ['one', ['usr', 'usr/bin', 'usr/bin/a', 'usr/bin/b']],
        ['two', ['top', 'etc', 'etc/conf']],
      ]),
    );
  });

  it('boots in the QEMU runner, which runs a step through the dropbear from the APK repository', async () => {
    const vm = path.join(work, 'vm');
    const tempParent = path.join(vm, 'tmp');
    const workspace = path.join(vm, 'workspace');
    const root = path.join(vm, 'root');
    await mkdir(tempParent, { recursive: true });
    await mkdir(path.join(workspace, 'melange-out/test-pkg'), { recursive: true });
    // A minimal build root: the same static busybox, as sh.
    for (const d of ['bin', 'etc', 'home/build', 'tmp']) await mkdir(path.join(root, d), { recursive: true });
    await copyFile(path.join(work, 'trees/busybox-static/bin/busybox'), path.join(root, 'bin/busybox'));
    for (const applet of ['sh', 'echo', 'cat', 'uname']) await symlink('busybox', path.join(root, 'bin', applet));
    await writeFile(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nbuild:x:1000:1000:build:/home/build:/bin/sh\n');
    await writeFile(path.join(root, 'etc/group'), 'root:x:0:\nbuild:x:1000:\n');

    const logs: string[] = [];
    const runner = new QemuRunner({
      artifactDir: path.join(vm, 'cache'),
      env: kernelEnv(await testKernel()),
      accel: 'tcg',
      bootTimeoutMs: 120_000,
      tempDir: tempParent,
      initramfs: first.path,
      log: (l) => logs.push(l),
    });
    const chunks: { stream: OutputStream; data: Buffer }[] = [];
    try {
      await runner.start(podFor(root, workspace));
      const code = await runner.run(['/bin/sh', '-c', 'echo "step in $(uname -s)"; cat /etc/passwd >&2; exit 7'], {
        env: { PATH: '/bin', HOME: '/home/build' },
        workdir: '/home/build',
        onOutput: (stream, data) => chunks.push({ stream, data }),
      });
      expect(code).toBe(7);
    } finally {
      await runner.terminate();
    }
    const text = (stream: OutputStream): string => Buffer.concat(chunks.filter((c) => c.stream === stream).map((c) => c.data)).toString();
    expect(text('stdout')).toBe('step in Linux\n');
    // The step ran in the build root, not in the initramfs (whose passwd has no build user).
    expect(text('stderr')).toContain('build:x:1000:1000');
    expect(await qemuProcessesMentioning(tempParent)).toEqual([]);
    expect(await leftovers(tempParent)).toEqual([]);
  });
});

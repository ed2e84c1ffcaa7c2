// `builder build-initramfs` for real: Debian packages downloaded and unpacked, the archive parsed back with our
// reader, the SSH server's libraries found from its DT_NEEDED entries, and the cache hit on a second run.
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerInitramfsCommand } from '../../src/cli/commands/initramfs.ts';
import { readElf } from '../../src/elf/reader.ts';
import { UsageError } from '../../src/errors.ts';
import { baseInitramfsDigest, ensureBaseInitramfs } from '../../src/initramfs/base.ts';
import { type Listed, resolveInArchive, unpack } from './archive.ts';

describe('the base initramfs', () => {
  let cacheDir: string;
  let work: string;
  let first: Awaited<ReturnType<typeof ensureBaseInitramfs>>;
  let entries: Map<string, Listed>;
  const progress: string[] = [];

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'builder-initramfs-test-'));
    cacheDir = path.join(work, 'cache');
    first = await ensureBaseInitramfs({ cacheDir, log: (l) => progress.push(l) });
    entries = await unpack(first.path, (n) => n === 'init' || n === 'usr/sbin/dropbear');
  });

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('is built from Debian packages, with progress', () => {
    expect(first.cached).toBe(false);
    expect(first.path).toBe(path.join(cacheDir, 'initramfs', `base-${first.digest}.cpio.gz`));
    expect(progress.some((l) => /downloading \d+ Debian packages: .*busybox-static.*dropbear-bin/.test(l))).toBe(true);
  });

  it('holds our init program, busybox with its applets, and the SSH server', async () => {
    const init = entries.get('init');
    expect(init?.mode).toBe(0o755);
    expect(init?.data?.toString()).toBe(await readFile(new URL('../../src/initramfs/guest/init', import.meta.url), 'utf8'));
    expect(entries.get('bin/busybox')?.type).toBe('file');
    expect(entries.get('bin/sh')).toMatchObject({ type: 'symlink', link: '/bin/busybox' });
    expect(entries.get('sbin/insmod')).toMatchObject({ type: 'symlink', link: '/bin/busybox' });
    expect(entries.get('usr/sbin/dropbear')?.mode).toBe(0o755);
    expect(entries.get('usr/libexec/builder/build-channel')?.mode).toBe(0o755);
    expect(entries.get('usr/libexec/builder/enter-root')?.mode).toBe(0o755);
    expect(entries.get('dev/console')?.type).toBe('char');
    expect(entries.get('root')?.mode).toBe(0o700);
    // Parents always come before children, or the kernel could not create them.
    const names = [...entries.keys()];
    for (const [i, n] of names.entries()) {
      const parent = path.posix.dirname(n);
      if (parent !== '.') expect(names.indexOf(parent)).toBeLessThan(i);
    }
  });

  it('carries every shared library the SSH server needs, found from its DT_NEEDED entries', async () => {
    const dropbear = path.join(work, 'dropbear');
    await writeFile(dropbear, entries.get('usr/sbin/dropbear')!.data!);
    const elf = await readElf(dropbear);
    expect(elf?.needed.length).toBeGreaterThan(0);
    expect(resolveInArchive(entries, elf!.interpreter!)).toBeDefined();
    const dirs = ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu'];
    for (const soname of elf!.needed) {
      const found = dirs.map((d) => resolveInArchive(entries, `${d}/${soname}`)).find((x) => x !== undefined);
      expect(found, `${soname} in the archive`).toBeDefined();
      expect(entries.get(found!)?.type).toBe('file');
    }
    // Only what is needed: no libraries of packages that merely came along as dependencies.
    expect([...entries.keys()].some((n) => n.includes('gconv'))).toBe(false);
  });

  it('is a cache hit the second time with the same inputs', async () => {
    const before = await stat(first.path);
    const again = await ensureBaseInitramfs({ cacheDir });
    expect(again).toEqual({ ...first, cached: true });
    expect((await stat(first.path)).mtimeMs).toBe(before.mtimeMs);
  });

  it('has a different digest for different inputs', async () => {
    const other = await baseInitramfsDigest({ cacheDir, packages: ['netcat-openbsd'] });
    expect(other).not.toBe(first.digest);
    expect(await baseInitramfsDigest({ cacheDir })).toBe(first.digest);
  });

  it('refuses malformed package names and --from apk without a repository, with a clear message', async () => {
    await expect(ensureBaseInitramfs({ cacheDir, packages: ['Bad Name'] })).rejects.toBeInstanceOf(UsageError);
    await expect(ensureBaseInitramfs({ cacheDir, from: 'apk' })).rejects.toThrow(/--from apk needs at least one --repository/);
  });

  it('builder build-initramfs --package adds a package and the libraries it needs, and writes -o', async () => {
    const program = new Command('builder').exitOverride();
    registerInitramfsCommand(program);
    const output = path.join(work, 'out', 'initramfs.cpio.gz');
    await mkdir(path.dirname(output));
    await program.parseAsync(['build-initramfs', '--package', 'netcat-openbsd', '-o', output, '--vm-artifact-dir', cacheDir], { from: 'user' });
    const withNc = await unpack(output, () => false);
    expect(withNc.get('bin/nc.openbsd')?.type).toBe('file');
    expect(resolveInArchive(withNc, 'usr/lib/x86_64-linux-gnu/libbsd.so.0') ?? resolveInArchive(withNc, 'lib/x86_64-linux-gnu/libbsd.so.0')).toBeDefined();
    expect([...withNc.keys()].some((n) => n.startsWith('usr/share/doc/'))).toBe(false);
    expect(withNc.has('usr/sbin/dropbear')).toBe(true);
  });
});

// Shared fixtures for the apk tests: temp dirs, test keys, a small but complete package tree, and an
// independent splitter for concatenated gzip members.
import { execa } from 'execa';
import { chmod, link, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateRawSync, type InflateRaw } from 'node:zlib';
import { afterEach } from 'vitest';
import type { PackageInfo } from '../../src/apk/pkginfo.ts';

/** Temp dirs under os.tmpdir(), removed after each test. */
export function useTempDirs(): () => Promise<string> {
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });
  return async () => {
    const d = await mkdtemp(join(tmpdir(), 'builder-apk-test-'));
    dirs.push(d);
    return d;
  };
}

export function baseInfo(overrides: Partial<Omit<PackageInfo, 'size' | 'datahash'>> = {}): Omit<PackageInfo, 'size' | 'datahash'> {
  return {
    pkgname: 'hello',
    pkgver: '1.2.3-r1',
    arch: 'x86_64',
    origin: 'hello',
    pkgdesc: 'hello test package',
    url: 'https://example.invalid/',
    license: ['MIT'],
    depend: ['so:libc.musl-x86_64.so.1', 'busybox>=1.36'],
    provides: ['cmd:hello=1.2.3-r1'],
    replaces: [],
    installIf: [],
    triggers: [],
    ...overrides,
  };
}

/**
 * A tree with every kind of entry the writer must handle: nested dirs, an executable, a setuid file, an
 * empty file, a symlink, a hard link pair, a sticky/setgid directory, a file bigger than one read piece.
 */
export async function makeTree(root: string): Promise<void> {
  await mkdir(join(root, 'usr/bin'), { recursive: true });
  await mkdir(join(root, 'usr/share/doc/hello'), { recursive: true });
  await mkdir(join(root, 'etc'), { recursive: true });
  await mkdir(join(root, 'var/spool'), { recursive: true });
  await writeFile(join(root, 'usr/bin/hello'), '#!/bin/sh\necho hello\n');
  await chmod(join(root, 'usr/bin/hello'), 0o755);
  await writeFile(join(root, 'usr/bin/su-helper'), 'setuid payload\n');
  await chmod(join(root, 'usr/bin/su-helper'), 0o4755);
  await symlink('hello', join(root, 'usr/bin/hi'));
  await writeFile(join(root, 'usr/share/doc/hello/README'), 'Read me.\n'.repeat(100));
  await link(join(root, 'usr/share/doc/hello/README'), join(root, 'usr/share/doc/hello/README.link'));
  await writeFile(join(root, 'etc/empty.conf'), '');
  await chmod(join(root, 'var/spool'), 0o3777);
  // Larger than the writer's in-memory threshold, so the hash-then-stream path runs too.
  const big = Buffer.alloc(1536 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919) % 251;
  await writeFile(join(root, 'usr/share/doc/hello/big.dat'), big);
}

export interface SplitMember {
  offset: number;
  length: number;
  headerBytes: Buffer;
  content: Buffer;
}

/** Splits concatenated gzip members (fixed 10-byte headers only, which is all our writer emits). */
export function splitGzipMembers(file: Buffer): SplitMember[] {
  const members: SplitMember[] = [];
  let offset = 0;
  while (offset < file.length) {
    if (file[offset] !== 0x1f || file[offset + 1] !== 0x8b || file[offset + 3] !== 0) {
      throw new Error(`no plain gzip header at ${offset}`);
    }
    const r = inflateRawSync(file.subarray(offset + 10), { info: true }) as unknown as { buffer: Buffer; engine: InflateRaw };
    const length = 10 + r.engine.bytesWritten + 8;
    members.push({ offset, length, headerBytes: file.subarray(offset, offset + 10), content: r.buffer });
    offset += length;
  }
  return members;
}

/** `tar -tv` of a tar file, through GNU tar: an independent reader. */
export async function gnuTarList(tarFile: string): Promise<string[]> {
  const r = await execa('tar', ['--numeric-owner', '-tvf', tarFile, '--warning=no-unknown-keyword']);
  return r.stdout.split('\n').filter((l) => l !== '');
}

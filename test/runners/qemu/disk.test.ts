// The root disk image: made with mkfs.ext4 -d, named by the tree's digest, reused, pruned.
import { execa } from 'execa';
import { mkdir, readdir, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureRootImage, pruneImages, summarizeTree } from '../../../src/runners/qemu/disk.ts';
import { makeTempDir } from './helpers.ts';

let dir: string;
let root: string;

beforeAll(async () => {
  dir = await makeTempDir('builder-disk-test-');
  root = path.join(dir, 'root');
  await mkdir(path.join(root, 'etc'), { recursive: true });
  await mkdir(path.join(root, 'usr/bin'), { recursive: true });
  await writeFile(path.join(root, 'etc/os-release'), 'ID=disk-test\n');
  await writeFile(path.join(root, 'usr/bin/tool'), '#!/bin/sh\n', { mode: 0o755 });
  await symlink('usr/bin', path.join(root, 'bin'));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('summarizeTree', () => {
  it('changes its digest when any file\'s metadata changes, and only then', async () => {
    const a = await summarizeTree(root);
    expect(await summarizeTree(root)).toEqual(a);
    expect(a.entries).toBe(6);
    await writeFile(path.join(root, 'etc/os-release'), 'ID=disk-test-2\n');
    const b = await summarizeTree(root);
    expect(b.digest).not.toBe(a.digest);
    await utimes(path.join(root, 'etc/os-release'), new Date(1_000_000_000_000), new Date(1_000_000_000_000));
    expect((await summarizeTree(root)).digest).not.toBe(b.digest);
  });
});

describe('ensureRootImage', () => {
  it('makes an ext4 image holding the tree, then reuses it', async () => {
    const cacheDir = path.join(dir, 'cache');
    const logs: string[] = [];
    const first = await ensureRootImage({ root, artifactDir: cacheDir, headroomBytes: 64 * 1024 * 1024, log: (l) => logs.push(l) });
    expect(first.cached).toBe(false);
    expect(logs.join('\n')).toMatch(/mkfs\.ext4/);
    const cat = await execa('debugfs', ['-R', 'cat /etc/os-release', first.path]);
    expect(cat.stdout).toContain('ID=disk-test-2');
    const link = await execa('debugfs', ['-R', 'stat /bin', first.path]);
    expect(link.stdout).toMatch(/Fast link dest: "usr\/bin"/);
    const again = await ensureRootImage({ root, artifactDir: cacheDir, headroomBytes: 64 * 1024 * 1024, log: (l) => logs.push(l) });
    expect(again).toEqual({ ...first, cached: true });
    expect((await readdir(path.join(cacheDir, 'disks'))).sort()).toEqual([path.basename(first.path), `${path.basename(first.path)}.seal.json`]);
  });

  it('keeps only the most recently used images', async () => {
    const disks = path.join(dir, 'prune');
    await mkdir(disks);
    for (let i = 0; i < 4; i++) {
      const file = path.join(disks, `root-${'a'.repeat(31)}${i}-100M.ext4`);
      await writeFile(file, '');
      // The last use is the seal record's mtime (the image's own inode stays as recorded).
      await writeFile(`${file}.seal.json`, '{}');
      await utimes(`${file}.seal.json`, new Date(1_000_000 * (i + 1)), new Date(1_000_000 * (i + 1)));
    }
    await writeFile(path.join(disks, 'unrelated.txt'), '');
    const removed = await pruneImages(disks, 2);
    expect(removed.map((p) => path.basename(p)).sort()).toEqual([`root-${'a'.repeat(31)}0-100M.ext4`, `root-${'a'.repeat(31)}1-100M.ext4`]);
    expect((await readdir(disks)).sort()).toEqual([
      `root-${'a'.repeat(31)}2-100M.ext4`,
      `root-${'a'.repeat(31)}2-100M.ext4.seal.json`,
      `root-${'a'.repeat(31)}3-100M.ext4`,
      `root-${'a'.repeat(31)}3-100M.ext4.seal.json`,
      'unrelated.txt',
    ]);
  });
});

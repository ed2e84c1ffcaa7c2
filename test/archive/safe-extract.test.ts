import { lstat, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { extractTar } from '../../src/archive/safe-extract.ts';
import { PackageFormatError } from '../../src/errors.ts';
import { type TarEntry, tarOf } from '../helpers/tar.ts';
import { useTempDirs } from '../helpers/tmp.ts';

const tempDir = useTempDirs();

type Entry = TarEntry;

async function extract(entries: Entry[]) {
  const dest = await tempDir();
  const result = await extractTar(tarOf(entries), { dest, where: 'test.tar' }).then(
    (r) => ({ ok: true as const, r }),
    (e: unknown) => ({ ok: false as const, e }),
  );
  return { dest, result };
}

describe('safe tar extraction', () => {
  it('extracts files, directories, symlinks and hard links with their modes', async () => {
    const { dest, result } = await extract([
      { name: 'usr/', type: 'directory', mode: 0o755 },
      { name: 'usr/bin/', type: 'directory', mode: 0o755 },
      { name: './usr/bin/tool', type: 'file', mode: 0o4755, body: 'x' },
      { name: 'usr/bin/alias', type: 'symlink', linkname: 'tool' },
      { name: 'usr/bin/hard', type: 'link', linkname: 'usr/bin/tool' },
      { name: 'lib', type: 'symlink', linkname: 'usr/lib' },
      { name: 'usr/lib/', type: 'directory', mode: 0o700 },
      { name: 'lib/libx.so', type: 'file', mode: 0o644, body: 'so' },
    ]);
    expect(result.ok).toBe(true);
    expect((await lstat(join(dest, 'usr/bin/tool'))).mode & 0o7777).toBe(0o4755);
    expect(await readlink(join(dest, 'usr/bin/alias'))).toBe('tool');
    expect((await lstat(join(dest, 'usr/bin/hard'))).nlink).toBe(2);
    // Writing through an in-root symlink lands where the sandbox would see it.
    expect(await readFile(join(dest, 'usr/lib/libx.so'), 'utf8')).toBe('so');
    expect((await lstat(join(dest, 'usr/lib'))).mode & 0o777).toBe(0o700);
  });

  it.each([
    ['a parent reference', [{ name: 'usr/../../x', type: 'file' as const, body: 'x' }], /refusing path with "\.\."/],
    ['an absolute path', [{ name: '/etc/x', type: 'file' as const, body: 'x' }], /refusing absolute path "\/etc\/x"/],
    [
      'a write through a symlink leaving the root',
      [
        { name: 'up', type: 'symlink' as const, linkname: '../../../..' },
        { name: 'up/x', type: 'file' as const, body: 'x' },
      ],
      /entry "up\/x": "up" leads outside the root/,
    ],
    ['a device', [{ name: 'dev', type: 'character-device' as const }], /unsupported entry type character-device/],
  ])('refuses %s and names the entry', async (_what, entries, message) => {
    const { result } = await extract(entries);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.e).toBeInstanceOf(PackageFormatError);
      expect((result.e as Error).message).toMatch(/^test.tar/);
      expect((result.e as Error).message).toMatch(message);
    }
  });

  it('treats absolute symlink targets as relative to the root', async () => {
    const { dest, result } = await extract([
      { name: 'etc/', type: 'directory' },
      { name: 'conf', type: 'symlink', linkname: '/etc' },
      { name: 'conf/app.conf', type: 'file', body: 'k=v' },
    ]);
    expect(result.ok).toBe(true);
    expect(await readFile(join(dest, 'etc/app.conf'), 'utf8')).toBe('k=v');
  });
});

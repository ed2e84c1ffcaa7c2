import { chmod, cp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeApk } from '../../src/apk/writer.ts';
import { compareApks, NotReproducibleError, verifyReproducible } from '../../src/lint/reproducible.ts';
import { useTempDirs } from '../helpers/tmp.ts';
import { put } from '../sca/fixtures.ts';

const tempDir = useTempDirs();

async function pack(dir: string, out: string, extra: { builddate?: number; controlFiles?: { name: string; content: string; mode: number }[] } = {}): Promise<string> {
  await writeApk({
    sourceDir: dir,
    outputPath: out,
    sourceDateEpoch: 1_700_000_000,
    info: {
      pkgname: 'stamp',
      pkgver: '1.0-r0',
      arch: 'x86_64',
      builddate: extra.builddate,
      license: ['MIT'],
      depend: [],
      provides: [],
      replaces: [],
      installIf: [],
      triggers: [],
    },
    controlFiles: extra.controlFiles,
  });
  return out;
}

async function tree(work: string): Promise<string> {
  const d = join(work, 'tree');
  await put(d, 'usr/bin/stamp', '#!/bin/sh\necho hi\n', 0o755);
  await put(d, 'usr/share/stamp/built-at', 'Thu Nov 14 22:13:20 UTC 2023\n');
  await mkdir(join(d, 'usr/lib'), { recursive: true });
  await symlink('../bin/stamp', join(d, 'usr/lib/stamp'));
  return d;
}

describe('compareApks', () => {
  it('finds two packages of the same tree identical', async () => {
    const work = await tempDir();
    const d = await tree(work);
    const a = await pack(d, join(work, 'a.apk'));
    const b = await pack(d, join(work, 'b.apk'));
    expect(await compareApks(a, b)).toEqual({ identical: true, differences: [], total: 0 });
  });

  it('names a file whose content differs (a recipe writing `date` into a file)', async () => {
    const work = await tempDir();
    const d = await tree(work);
    const a = await pack(d, join(work, 'a.apk'));
    await writeFile(join(d, 'usr/share/stamp/built-at'), 'Thu Nov 14 22:13:21 UTC 2023\n');
    const b = await pack(d, join(work, 'b.apk'));
    const c = await compareApks(a, b);
    expect(c.identical).toBe(false);
    expect(c.differences[0]).toEqual({ path: 'usr/share/stamp/built-at', what: expect.stringMatching(/^content \(sha1 [0-9a-f]{12} vs [0-9a-f]{12}, 29 vs 29 bytes\)$/) as string });
    // .PKGINFO's datahash follows from the data, after it.
    expect(c.differences.slice(1).every((x) => x.path === '.PKGINFO')).toBe(true);
    expect(c.differences.some((x) => x.what.startsWith('"datahash = '))).toBe(true);
  });

  it('names mode, link target, missing files and control differences', async () => {
    const work = await tempDir();
    const d = await tree(work);
    const a = await pack(d, join(work, 'a.apk'), { controlFiles: [{ name: '.post-install', content: '#!/bin/sh\n', mode: 0o755 }] });
    const d2 = join(work, 'tree2');
    await cp(d, d2, { recursive: true, verbatimSymlinks: true });
    await chmod(join(d2, 'usr/bin/stamp'), 0o700);
    await rm(join(d2, 'usr/lib/stamp'));
    await symlink('/usr/bin/stamp', join(d2, 'usr/lib/stamp'));
    await put(d2, 'usr/share/stamp/extra', 'x');
    const b = await pack(d2, join(work, 'b.apk'), { builddate: 5 });
    const c = await compareApks(a, b, { limit: 100 });
    expect(c.differences).toEqual(
      expect.arrayContaining([
        { path: 'usr/bin/stamp', what: 'mode 0755 vs 0700' },
        { path: 'usr/lib/stamp', what: 'link target ../bin/stamp vs /usr/bin/stamp' },
        { path: 'usr/share/stamp/extra', what: 'only in the second package' },
        { path: '.PKGINFO', what: '"builddate = 5" only in the second package' },
        { path: '.post-install', what: 'only in the first package' },
      ]),
    );
    expect(c.total).toBe(c.differences.length);
    const limited = await compareApks(a, b, { limit: 2 });
    expect(limited.differences).toHaveLength(2);
    expect(limited.total).toBe(c.total);
  });

  it('verifyReproducible throws naming the package and the first differing file', async () => {
    const work = await tempDir();
    const d = await tree(work);
    const a = await pack(d, join(work, 'a.apk'));
    const same = await pack(d, join(work, 'same.apk'));
    await expect(verifyReproducible([{ packageName: 'stamp', first: a, second: same }])).resolves.toBeUndefined();
    await writeFile(join(d, 'usr/share/stamp/built-at'), 'later\n');
    const b = await pack(d, join(work, 'b.apk'));
    const err = await verifyReproducible([{ packageName: 'stamp', first: a, second: b }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotReproducibleError);
    expect((err as NotReproducibleError).message).toBe('not reproducible: stamp (usr/share/stamp/built-at, .PKGINFO)');
    expect((err as NotReproducibleError).details[1]).toMatch(/^ {2}usr\/share\/stamp\/built-at: content/);
  });
});

// What goes into the workspace: the source dir (Wolfi's `<recipe dir>/<package name>/` when it exists),
// never `.git` nor the out dir.
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createWorkspace, defaultSourceDir } from '../../src/build/workspace.ts';
import { useTempDirs } from '../helpers/tmp.ts';

const tempDir = useTempDirs();

async function listAll(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String).sort();
}

describe('the source dir', () => {
  it("defaults to <recipe dir>/<package name>/ when it exists (Wolfi's layout), else the recipe's folder", async () => {
    const dir = await tempDir();
    const recipe = join(dir, 'lz4.yaml');
    await writeFile(recipe, 'package: {}\n');
    expect(await defaultSourceDir(recipe, 'lz4')).toBe(dir);
    await writeFile(join(dir, 'zstd'), 'a file, not a directory');
    expect(await defaultSourceDir(join(dir, 'zstd.yaml'), 'zstd')).toBe(dir);
    await mkdir(join(dir, 'lz4'));
    expect(await defaultSourceDir(recipe, 'lz4')).toBe(join(dir, 'lz4'));
  });

  it('is copied without .git (at any depth) and without the out dir', async () => {
    const dir = await tempDir();
    const source = join(dir, 'os');
    await mkdir(join(source, '.git', 'objects'), { recursive: true });
    await writeFile(join(source, '.git', 'HEAD'), 'ref: refs/heads/main\n');
    await mkdir(join(source, 'lz4'), { recursive: true });
    await writeFile(join(source, 'lz4', 'fix.patch'), 'patch\n');
    await mkdir(join(source, 'vendor', 'sub', '.git'), { recursive: true });
    await writeFile(join(source, 'vendor', 'sub', '.git', 'config'), '[core]\n');
    await writeFile(join(source, 'vendor', 'sub', 'file'), 'x\n');
    await writeFile(join(source, '.gitignore'), 'packages/\n');
    await mkdir(join(source, 'packages', 'x86_64'), { recursive: true });
    await writeFile(join(source, 'packages', 'x86_64', 'old.apk'), 'apk');
    const ws = await createWorkspace({ parent: dir, packageName: 'lz4', sourceDir: source, exclude: [join(source, 'packages')], packages: ['lz4'] });
    try {
      expect(await listAll(ws.dir)).toEqual([
        '.gitignore',
        'lz4',
        'lz4/fix.patch',
        'melange-out',
        'melange-out/lz4',
        'vendor',
        'vendor/sub',
        'vendor/sub/file',
      ]);
    } finally {
      await ws.remove();
    }
  });
});

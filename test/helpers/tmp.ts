import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';

/** A temp dir removed after the current test. */
export function useTempDirs(): () => Promise<string> {
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });
  return async () => {
    const d = await mkdtemp(join(tmpdir(), 'builder-test-'));
    dirs.push(d);
    return d;
  };
}

export async function writeRecipe(dir: string, text: string, name = 'recipe.yaml'): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, text);
  return file;
}

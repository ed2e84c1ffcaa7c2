// Finding a host program the way a shell would, without running one.
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import path from 'node:path';

/** Absolute path of an executable file: `name` itself when it contains a slash, else looked up on `searchPath`. */
export async function findExecutable(name: string, searchPath: string = process.env.PATH ?? ''): Promise<string | null> {
  const candidates = name.includes('/')
    ? [path.resolve(name)]
    : searchPath.split(':').filter((dir) => dir !== '').map((dir) => path.join(dir, name));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // not here; keep looking
    }
  }
  return null;
}

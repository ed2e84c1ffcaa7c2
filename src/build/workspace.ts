// The host side of a build's workspace: a private temp dir holding the directory bound at /home/build
// and the full build log beside it (outside the sandbox's reach).
import { createWriteStream, type WriteStream } from 'node:fs';
import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { BuilderError } from '../errors.ts';

export interface Workspace {
  /** The temp dir that holds everything; printed when a build fails or is kept. */
  root: string;
  /** Bound at /home/build. */
  dir: string;
  /** Host path of /home/build/melange-out. */
  outDir: string;
  logPath: string;
  log: WriteStream;
  /** Close the log and remove everything. */
  remove(): Promise<void>;
  closeLog(): Promise<void>;
}

export async function createWorkspace(options: {
  parent?: string;
  packageName: string;
  sourceDir?: string;
  /** Paths never copied from the source dir (the out dir, the cache), absolute. */
  exclude: string[];
  packages: string[];
}): Promise<Workspace> {
  const parent = resolve(options.parent ?? tmpdir());
  try {
    await mkdir(parent, { recursive: true });
  } catch (err) {
    throw new BuilderError(`--workspace-dir: cannot create ${parent}: ${(err as Error).message}`);
  }
  const root = await mkdtemp(join(parent, `builder-${options.packageName}-`));
  const dir = join(root, 'workspace');
  const outDir = join(dir, 'melange-out');
  try {
    if (options.sourceDir) await copySource(resolve(options.sourceDir), dir, [...options.exclude, root]);
    else await mkdir(dir);
    for (const p of options.packages) await mkdir(join(outDir, p), { recursive: true });
  } catch (err) {
    await rm(root, { recursive: true, force: true });
    throw err instanceof BuilderError ? err : new BuilderError(`cannot prepare workspace: ${(err as Error).message}`);
  }
  const logPath = join(root, 'build.log');
  const log = createWriteStream(logPath);
  const closeLog = () => new Promise<void>((done) => (log.closed ? done() : log.end(done)));
  return {
    root,
    dir,
    outDir,
    logPath,
    log,
    closeLog,
    remove: async () => {
      await closeLog();
      await rm(root, { recursive: true, force: true });
    },
  };
}

async function copySource(source: string, dest: string, exclude: string[]): Promise<void> {
  try {
    await cp(source, dest, {
      recursive: true,
      verbatimSymlinks: true,
      preserveTimestamps: true,
      filter: (src) => {
        const abs = resolve(src);
        return !exclude.some((e) => {
          const rel = relative(e, abs);
          return rel === '' || (!rel.startsWith('..') && !rel.startsWith('/'));
        });
      },
    });
  } catch (err) {
    throw new BuilderError(`--source-dir: cannot copy ${source}: ${(err as Error).message}`);
  }
}

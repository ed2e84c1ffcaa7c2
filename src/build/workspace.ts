// The host side of a build's workspace: a private temp dir holding the directory bound at /home/build
// and the full build log beside it (outside the sandbox's reach).
import { createWriteStream, type WriteStream } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readlink, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
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

/**
 * The source dir when --source-dir is not given: `<recipe dir>/<package name>/` when it exists (Wolfi's layout,
 * where each package's patches live; Wolfi's Makefile passes it to melange), else the recipe's folder (melange).
 */
export async function defaultSourceDir(recipeFile: string, packageName: string): Promise<string> {
  const recipeDir = dirname(resolve(recipeFile));
  const own = join(recipeDir, packageName);
  return (await stat(own).catch(() => undefined))?.isDirectory() ? own : recipeDir;
}

/** Never copied from a source dir: a repository's history is not a build input (a Wolfi checkout's is 374 MB). */
const NEVER_COPIED = new Set(['.git']);

/**
 * Copies the source tree, skipping excluded paths and `.git`. Hand-written rather than fs.cp because the workspace (or
 * the out dir) may live inside the source dir, which fs.cp refuses outright.
 */
async function copySource(source: string, dest: string, exclude: string[]): Promise<void> {
  const skip = (abs: string) =>
    exclude.some((e) => {
      const rel = relative(e, abs);
      return rel === '' || (!rel.startsWith('..') && !rel.startsWith('/'));
    });
  const copyDir = async (from: string, to: string): Promise<void> => {
    await mkdir(to, { recursive: true });
    for (const entry of await readdir(from, { withFileTypes: true })) {
      const src = join(from, entry.name);
      const dst = join(to, entry.name);
      if (NEVER_COPIED.has(entry.name) || skip(src)) continue;
      if (entry.isDirectory()) await copyDir(src, dst);
      else if (entry.isSymbolicLink()) await symlink(await readlink(src), dst);
      else if (entry.isFile()) await copyFile(src, dst);
      // Sockets, fifos and devices are not source files: skip them.
    }
    await chmod(to, (await stat(from)).mode & 0o7777);
  };
  try {
    if (!(await stat(source)).isDirectory()) throw new Error('not a directory');
    await copyDir(source, dest);
  } catch (err) {
    throw new BuilderError(`--source-dir: cannot copy ${source}: ${(err as Error).message}`);
  }
}

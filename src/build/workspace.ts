// The host side of a build's workspace: a private temp dir holding the directory bound at /home/build
// and the full build log beside it (outside the sandbox's reach).
import { createWriteStream, type WriteStream } from 'node:fs';
import { createHash } from 'node:crypto';
import { chmod, copyFile, lstat, mkdir, mkdtemp, readdir, readlink, rm, stat, symlink } from 'node:fs/promises';
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
  return workspaceAt(root, 'w');
}

/** A kept workspace (`--resume`): its log is appended to. */
export async function openWorkspace(root: string): Promise<Workspace> {
  const dir = join(root, 'workspace');
  if (!(await stat(dir).catch(() => undefined))?.isDirectory()) throw new BuilderError(`--resume: ${root} has no workspace directory; it is not a kept build workspace`);
  return workspaceAt(root, 'a');
}

function workspaceAt(root: string, flags: 'w' | 'a'): Workspace {
  const dir = join(root, 'workspace');
  const outDir = join(dir, 'melange-out');
  const logPath = join(root, 'build.log');
  const log = createWriteStream(logPath, { flags });
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

type SourceEntry = { rel: string; abs: string; kind: 'dir' | 'link' | 'file' };

/** The source tree, parents first, without excluded paths, `.git`, sockets, fifos and devices. */
async function* walkSource(source: string, exclude: string[]): AsyncGenerator<SourceEntry> {
  const skip = (abs: string) =>
    exclude.some((e) => {
      const rel = relative(e, abs);
      return rel === '' || (!rel.startsWith('..') && !rel.startsWith('/'));
    });
  async function* walk(from: string, rel: string): AsyncGenerator<SourceEntry> {
    const entries = (await readdir(from, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const entry of entries) {
      const abs = join(from, entry.name);
      const r = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (NEVER_COPIED.has(entry.name) || skip(abs)) continue;
      if (entry.isDirectory()) {
        yield { rel: r, abs, kind: 'dir' };
        yield* walk(abs, r);
      } else if (entry.isSymbolicLink()) yield { rel: r, abs, kind: 'link' };
      else if (entry.isFile()) yield { rel: r, abs, kind: 'file' };
    }
  }
  if (!(await stat(source)).isDirectory()) throw new Error('not a directory');
  yield* walk(source, '');
}

/**
 * Copies the source tree (walkSource). Hand-written rather than fs.cp because the workspace (or the out dir) may
 * live inside the source dir, which fs.cp refuses outright.
 */
async function copySource(source: string, dest: string, exclude: string[]): Promise<void> {
  try {
    await mkdir(dest, { recursive: true });
    const dirs: [string, string][] = [[source, dest]];
    for await (const e of walkSource(source, exclude)) {
      const dst = join(dest, e.rel);
      if (e.kind === 'dir') {
        await mkdir(dst);
        dirs.push([e.abs, dst]);
      } else if (e.kind === 'link') await symlink(await readlink(e.abs), dst);
      else await copyFile(e.abs, dst);
    }
    // Modes last, so a read-only directory is filled before it is closed.
    for (const [from, to] of dirs.reverse()) await chmod(to, (await stat(from)).mode & 0o7777);
  } catch (err) {
    throw new BuilderError(`--source-dir: cannot copy ${source}: ${(err as Error).message}`);
  }
}

/** A fingerprint of what copySource would copy (names, modes, sizes, mtimes, link targets): cheap, no reads. */
export async function sourceFingerprint(source: string, exclude: string[]): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const e of walkSource(resolve(source), exclude)) {
      const st = await lstat(e.abs);
      hash.update(`${e.rel}\0${e.kind}\0${st.mode}\0${e.kind === 'file' ? st.size : 0}\0${e.kind === 'file' ? st.mtimeMs : 0}\0${e.kind === 'link' ? await readlink(e.abs) : ''}\n`);
    }
  } catch (err) {
    throw new BuilderError(`--source-dir: cannot read ${source}: ${(err as Error).message}`);
  }
  return hash.digest('hex');
}

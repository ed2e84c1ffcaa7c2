// A package's file tree as scanners and linters see it: the entries' metadata (type, mode, owner, link
// target) plus a host directory where the contents worth reading can be opened. Built from a package
// directory (before packaging) or from an .apk (after packaging), so both are checked by the same code.
//
// From an .apk, metadata comes from the archive (modes, owners, devices exactly as packaged) and only the
// contents someone reads are written to disk: ELF files, scripts (`#!`) and pkg-config files.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { link, lstat, mkdir, mkdtemp, readdir, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { safeEntryName } from '../../archive/safe-extract.ts';
import { type RootNode, resolveInRoot } from '../../paths/in-root.ts';
import { BuilderError, errorMessage, PackageFormatError } from '../../errors.ts';
import { readApkData, readApkHead, type ApkHead } from '../reader.ts';
import { mapLimit } from './limit.ts';

export type TreeEntryType = 'file' | 'directory' | 'symlink' | 'char-device' | 'block-device' | 'fifo' | 'socket';

export interface TreeEntry {
  /** Relative path, `/`-separated, no leading `./` or `/`. */
  path: string;
  type: TreeEntryType;
  /** Permission bits including setuid/setgid/sticky (07777). */
  mode: number;
  /** Content bytes (regular files). */
  size: number;
  uid: number;
  gid: number;
  linkTarget?: string;
  /** For the second and later paths of one file (hard links): the first path. */
  hardlinkTo?: string;
  /** The content can be read at `join(tree.root, path)`. */
  readable: boolean;
  /** Lowercase hex SHA-1 of the content, when known without reading the file (packages carry it). */
  sha1?: string;
}

export interface PackageTree {
  /** Host directory holding the readable contents. */
  root: string;
  /** Every entry, sorted by path. */
  entries: TreeEntry[];
  byPath: ReadonlyMap<string, TreeEntry>;
  /** Entries that could not be read (unreadable directories and the like). */
  warnings: string[];
}

export interface ApkTree extends PackageTree {
  head: ApkHead;
  /** Removes the temp directory holding the extracted contents. */
  dispose(): Promise<void>;
}

const STAT_CONCURRENCY = 32;

function typeOf(st: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isFIFO(): boolean }): TreeEntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'directory';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char-device';
  if (st.isBlockDevice()) return 'block-device';
  if (st.isFIFO()) return 'fifo';
  return 'socket';
}

function finish(root: string, entries: TreeEntry[], warnings: string[]): PackageTree {
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { root, entries, byPath: new Map(entries.map((e) => [e.path, e])), warnings };
}

/** The tree of a package directory (the build's `melange-out/<name>`). */
export async function readTreeFromDir(dir: string): Promise<PackageTree> {
  try {
    const st = await lstat(dir);
    if (!st.isDirectory()) throw new BuilderError(`${dir} is not a directory`);
  } catch (err) {
    if (err instanceof BuilderError) throw err;
    throw new BuilderError(`cannot read package directory ${dir}: ${errorMessage(err)}`, { cause: err });
  }
  const entries: TreeEntry[] = [];
  const warnings: string[] = [];
  const inodeOf = new Map<TreeEntry, string>();
  let pending = [''];
  while (pending.length > 0) {
    const next: string[] = [];
    await mapLimit(pending, 4, async (relDir) => {
      let names: string[];
      try {
        names = await readdir(join(dir, relDir));
      } catch (err) {
        warnings.push(`${relDir || '.'}: cannot list directory (${errorMessage(err)})`);
        return;
      }
      await mapLimit(names, STAT_CONCURRENCY, async (name) => {
        const rel = relDir === '' ? name : `${relDir}/${name}`;
        const abs = join(dir, rel);
        let st;
        try {
          st = await lstat(abs, { bigint: true });
        } catch (err) {
          warnings.push(`${rel}: cannot stat (${errorMessage(err)})`);
          return;
        }
        const entry: TreeEntry = {
          path: rel,
          type: typeOf(st),
          mode: Number(st.mode & 0o7777n),
          size: st.isFile() ? Number(st.size) : 0,
          uid: Number(st.uid),
          gid: Number(st.gid),
          readable: st.isFile(),
        };
        if (entry.type === 'symlink') {
          try {
            entry.linkTarget = await readlink(abs);
          } catch (err) {
            warnings.push(`${rel}: cannot read link (${errorMessage(err)})`);
          }
        }
        // Hard links are resolved after the walk, in path order, so "first" does not depend on timing.
        if (entry.type === 'file' && st.nlink > 1n) inodeOf.set(entry, `${st.dev}:${st.ino}`);
        entries.push(entry);
        if (entry.type === 'directory') next.push(rel);
      });
    });
    pending = next.sort();
  }
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const firstPathOfInode = new Map<string, string>();
  for (const e of entries) {
    const inode = inodeOf.get(e);
    if (inode === undefined) continue;
    const first = firstPathOfInode.get(inode);
    if (first === undefined) firstPathOfInode.set(inode, e.path);
    else e.hardlinkTo = first;
  }
  return finish(dir, entries, warnings);
}

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

/** Contents anyone reads later: ELF headers, script shebangs, pkg-config files. */
function worthKeeping(name: string, head: Buffer): boolean {
  if (name.endsWith('.pc')) return true;
  if (head.length >= 4 && head.subarray(0, 4).equals(ELF_MAGIC)) return true;
  return head.length >= 2 && head[0] === 0x23 && head[1] === 0x21;
}

/**
 * The tree of an .apk's data stream. Streams the package once; contents that scanners and linters read are
 * written under a temp directory (in `tempParent`, default the system temp dir) that `dispose` removes.
 */
export async function readTreeFromApk(apkPath: string, options: { tempParent?: string } = {}): Promise<ApkTree> {
  const head = await readApkHead(apkPath);
  const root = await mkdtemp(join(options.tempParent ?? tmpdir(), 'builder-tree-'));
  const dispose = (): Promise<void> => rm(root, { recursive: true, force: true });
  const entries: TreeEntry[] = [];
  const byPath = new Map<string, TreeEntry>();
  const made = new Set<string>(['']);
  const ensureDir = async (rel: string): Promise<void> => {
    if (made.has(rel)) return;
    await mkdir(join(root, rel), { recursive: true });
    for (let p = rel; p !== '.' && p !== '' && !made.has(p); p = posix.dirname(p)) made.add(p);
  };
  try {
    await readApkData(apkPath, head, {
      onEntry: async (item, content) => {
        const where = `${apkPath}: entry "${item.name}"`;
        const path = safeEntryName(item.name, where);
        if (path === '') return;
        const entry: TreeEntry = {
          path,
          type: 'file',
          mode: item.mode & 0o7777,
          size: item.size,
          uid: item.uid,
          gid: item.gid,
          readable: false,
        };
        switch (item.type) {
          case 'directory':
            entry.type = 'directory';
            await ensureDir(path);
            break;
          case 'symlink':
            entry.type = 'symlink';
            entry.linkTarget = item.linkname ?? '';
            break;
          case 'hardlink': {
            const target = safeEntryName(item.linkname ?? '', where);
            const first = byPath.get(target);
            if (!first || first.type !== 'file') throw new PackageFormatError(`${where}: hard link to "${item.linkname ?? ''}", which is not an earlier regular file`);
            entry.size = first.size;
            entry.hardlinkTo = first.hardlinkTo ?? first.path;
            if (first.sha1 !== undefined) entry.sha1 = first.sha1;
            if (first.readable) {
              await ensureDir(posix.dirname(path));
              await link(join(root, first.path), join(root, path));
              entry.readable = true;
            }
            break;
          }
          case 'file': {
            entry.readable = await keepContent(root, path, content, ensureDir);
            break;
          }
          default:
            entry.type = item.type;
        }
        entries.push(entry);
        byPath.set(path, entry);
      },
      onEntryRead: (item) => {
        if (item.type !== 'file' || item.contentSha1 === undefined) return;
        const e = byPath.get(safeEntryName(item.name, apkPath));
        if (e) e.sha1 = item.contentSha1;
      },
    });
  } catch (err) {
    await dispose();
    throw err;
  }
  return { ...finish(root, entries, []), head, dispose };
}

/** Writes the entry's content under root when it is worth keeping; otherwise lets the reader skip it. */
async function keepContent(
  root: string,
  path: string,
  content: AsyncIterable<Buffer>,
  ensureDir: (rel: string) => Promise<void>,
): Promise<boolean> {
  const it = content[Symbol.asyncIterator]();
  const first: Buffer[] = [];
  let have = 0;
  let done = false;
  while (have < 4) {
    const r = await it.next();
    if (r.done) {
      done = true;
      break;
    }
    first.push(r.value);
    have += r.value.length;
  }
  if (!worthKeeping(path, Buffer.concat(first))) return false;
  await ensureDir(posix.dirname(path));
  const rest = async function* (): AsyncGenerator<Buffer> {
    yield* first;
    if (done) return;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  };
  await pipeline(rest(), createWriteStream(join(root, path), { mode: 0o600 }));
  return true;
}

/** SHA-1 of an entry's content: the recorded one, else read from disk (null when not readable). */
export async function contentSha1(tree: PackageTree, entry: TreeEntry): Promise<string | null> {
  if (entry.sha1 !== undefined) return entry.sha1;
  if (!entry.readable) return null;
  const hash = createHash('sha1');
  await pipeline(createReadStream(join(tree.root, entry.path)), hash);
  return hash.digest('hex');
}

/**
 * Where `path` leads inside the tree, following symlinks the way the installed system would (absolute
 * targets start at the package root; `..` stops at the root). Returns the final entry, or null when the
 * path does not exist in this package (a dangling link or one into another package). With followLast
 * false, a final symlink is returned itself.
 */
export function resolveInTree(tree: PackageTree, path: string, followLast = true): TreeEntry | null {
  const lookup = (rel: string): RootNode => {
    const entry = tree.byPath.get(rel);
    if (entry === undefined) return { kind: 'missing' };
    if (entry.type === 'symlink') return entry.linkTarget === undefined ? { kind: 'missing' } : { kind: 'link', target: entry.linkTarget };
    return { kind: entry.type === 'directory' ? 'directory' : 'other' };
  };
  const result = resolveInRoot(path, lookup, { followLast });
  return !result.ok || result.rel === '' ? null : (tree.byPath.get(result.rel) ?? null);
}

/** The path a symlink entry points at, relative to the package root (not followed further). */
export function linkTargetPath(entry: TreeEntry): string | null {
  if (entry.type !== 'symlink' || entry.linkTarget === undefined) return null;
  const t = entry.linkTarget;
  const joined = t.startsWith('/') ? t : posix.join(posix.dirname(entry.path), t);
  const normal = posix.normalize(joined).replace(/^\/+/, '');
  // `..` past the root stays at the root, as it would inside the installed system.
  return normal.split('/').filter((p) => p !== '..' && p !== '.' && p !== '').join('/');
}

export function isUnder(path: string, dir: string): boolean {
  return path === dir || path.startsWith(`${dir}/`);
}

/** True when `path` is directly inside one of `dirs` (not in a subdirectory of it). */
export function isDirectlyIn(path: string, dirs: readonly string[]): boolean {
  return dirs.includes(posix.dirname(path));
}


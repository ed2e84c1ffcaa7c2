// Path-safe tar extraction, shared by everything that unpacks data we did not write ourselves: packages
// into build roots, workspaces coming back from a VM, image layers. No entry may land outside the
// destination: absolute names, `..` components and writes through symlinks that leave the root are refused.
import {
  chmodSync,
  chownSync,
  closeSync,
  constants as fsConstants,
  lchownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readlinkSync,
  rmSync,
  type Stats,
  symlinkSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import { join, posix } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { PackageFormatError } from '../errors.ts';
import { type RootNode, resolveInRoot } from '../paths/in-root.ts';

export interface ExtractOptions {
  /** Existing directory to extract into. */
  dest: string;
  /** Named in errors, e.g. the package file or `workspace from VM`. */
  where: string;
  /** chown entries to their uid/gid (needs root); otherwise files belong to the caller. */
  preserveOwner?: boolean;
  /** Set each file's mtime from the archive. */
  preserveMtime?: boolean;
  /** Called for each entry after it is written, with its normalised relative name. */
  onEntry?: (name: string, header: tar.Header) => void;
  /** Entries for which this returns false are skipped (e.g. OCI whiteout markers). */
  filter?: (name: string, header: tar.Header) => boolean;
  /**
   * A directory entry whose path is already a symlink to a directory inside the root keeps the link (as apk
   * does), instead of replacing it: layering packages on a merged-/usr base must not turn /lib into a directory.
   */
  keepDirectorySymlinks?: boolean;
}

export interface ExtractResult {
  entries: number;
  bytes: number;
}

/** Normalise an entry name to a relative path, or throw naming the entry. */
export function safeEntryName(raw: string, where: string): string {
  let name = raw.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
  if (name === '' || name === '.') return '';
  if (name.startsWith('/')) throw new PackageFormatError(`${where}: refusing absolute path "${raw}"`);
  const parts = name.split('/');
  if (parts.some((p) => p === '..')) throw new PackageFormatError(`${where}: refusing path with "..": "${raw}"`);
  name = parts.filter((p) => p !== '' && p !== '.').join('/');
  return name;
}

/**
 * Host path for `rel` inside `root`, following symlinks already on disk the way the sandbox would see them
 * (absolute targets are relative to `root`). Throws if any step leaves the root.
 */
export async function resolveInside(root: string, rel: string, where: string, followLast = false): Promise<string> {
  return resolveInsideSync(root, rel, where, followLast);
}

function lstatOrUndefined(path: string): Stats | undefined {
  return lstatSync(path, { throwIfNoEntry: false });
}

/** What `rel` names under the host directory `root`, without following a final link. */
export function hostNode(root: string, rel: string): RootNode {
  const path = join(root, rel);
  const st = lstatOrUndefined(path);
  if (st === undefined) return { kind: 'missing' };
  if (st.isSymbolicLink()) return { kind: 'link', target: readlinkSync(path) };
  return { kind: st.isDirectory() ? 'directory' : 'other' };
}

function resolveInsideSync(root: string, rel: string, where: string, followLast: boolean): string {
  const result = resolveInRoot(rel, (r) => hostNode(root, r), { followLast, lenient: true, refuseEscape: true });
  if (result.ok) return join(root, result.rel);
  if (result.reason === 'loop') throw new PackageFormatError(`${where}: too many symlinks resolving "${rel}"`);
  throw new PackageFormatError(`${where}: "${rel}" leads outside the root`);
}

/** Writes a stream's chunks to a new file (never through an existing link: the target was just removed). */
async function writeEntry(content: AsyncIterable<Buffer>, target: string): Promise<void> {
  const fd = openSync(target, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600);
  try {
    for await (const chunk of content) {
      let off = 0;
      while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
    }
  } finally {
    closeSync(fd);
  }
}

// The per-entry filesystem calls are synchronous on purpose: each is a few microseconds, while an async call
// costs a thread-pool round trip, and a package of thousands of small files is bound by that latency.
export async function extractTar(input: Readable, options: ExtractOptions): Promise<ExtractResult> {
  const extract = tar.extract();
  const result: ExtractResult = { entries: 0, bytes: 0 };
  const feeding = pipeline(input, extract);
  const dirModes: { path: string; mode: number; mtime?: Date }[] = [];
  try {
    for await (const entry of extract) {
      const h = entry.header;
      const name = safeEntryName(h.name, options.where);
      const where = `${options.where}: entry "${h.name}"`;
      if (name === '' || (options.filter && !options.filter(name, h))) {
        entry.resume();
        continue;
      }
      // The parent must resolve inside the root; the entry itself is never followed if it is a symlink.
      const parent = posix.dirname(name);
      const parentPath = parent === '.' ? options.dest : resolveInsideSync(options.dest, parent, where, true);
      const target = join(parentPath, posix.basename(name));
      const mode = (h.mode ?? 0o644) & 0o7777;
      switch (h.type) {
        case 'directory': {
          const st = lstatOrUndefined(target);
          if (st?.isSymbolicLink() && options.keepDirectorySymlinks) {
            // resolveInside throws when the link leaves the root; modes of the base's directory are left alone.
            const resolved = resolveInsideSync(options.dest, name, where, true);
            if (lstatOrUndefined(resolved)?.isDirectory()) {
              entry.resume();
              break;
            }
          }
          if (st && !st.isDirectory()) rmSync(target, { recursive: true, force: true });
          if (!st?.isDirectory()) mkdirSync(target, { recursive: true });
          dirModes.push({ path: target, mode, mtime: h.mtime });
          entry.resume();
          break;
        }
        case 'file':
        case 'contiguous-file': {
          mkdirSync(parentPath, { recursive: true });
          rmSync(target, { force: true, recursive: true });
          await writeEntry(entry as AsyncIterable<Buffer>, target);
          chmodSync(target, mode);
          result.bytes += h.size ?? 0;
          break;
        }
        case 'symlink': {
          mkdirSync(parentPath, { recursive: true });
          rmSync(target, { force: true, recursive: true });
          symlinkSync(h.linkname ?? '', target);
          entry.resume();
          break;
        }
        case 'link': {
          const linkName = safeEntryName(h.linkname ?? '', where);
          const source = resolveInsideSync(options.dest, linkName, where, true);
          mkdirSync(parentPath, { recursive: true });
          rmSync(target, { force: true, recursive: true });
          linkSync(source, target);
          entry.resume();
          break;
        }
        default:
          entry.resume();
          throw new PackageFormatError(`${where}: unsupported entry type ${h.type ?? 'unknown'}`);
      }
      if (h.type !== 'directory') {
        if (options.preserveOwner && h.type !== 'link') lchownSafe(target, h.uid ?? 0, h.gid ?? 0, h.type === 'symlink');
        if (options.preserveMtime && h.mtime && h.type !== 'symlink' && h.type !== 'link') utimesSync(target, h.mtime, h.mtime);
      }
      result.entries++;
      options.onEntry?.(name, h);
    }
    await feeding;
  } catch (err) {
    input.destroy();
    extract.destroy();
    await feeding.catch(() => undefined);
    throw err;
  }
  // Directory modes last, deepest first, so a read-only directory does not block its own children.
  for (const d of dirModes.reverse()) {
    chmodSync(d.path, d.mode);
    if (options.preserveMtime && d.mtime) utimesSync(d.path, d.mtime, d.mtime);
  }
  return result;
}

function lchownSafe(path: string, uid: number, gid: number, isLink: boolean): void {
  if (isLink) lchownSync(path, uid, gid);
  else chownSync(path, uid, gid);
}

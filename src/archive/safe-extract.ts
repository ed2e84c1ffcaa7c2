// Path-safe tar extraction, shared by everything that unpacks data we did not write ourselves: packages
// into build roots, workspaces coming back from a VM, image layers. No entry may land outside the
// destination: absolute names, `..` components and writes through symlinks that leave the root are refused.
import { createWriteStream } from 'node:fs';
import { chmod, chown, lchown, link, lstat, mkdir, readlink, rm, symlink, utimes } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { PackageFormatError } from '../errors.ts';

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
  const pending = rel.split('/').filter((p) => p !== '' && p !== '.');
  const resolved: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '..') {
      if (resolved.length === 0) throw new PackageFormatError(`${where}: "${rel}" leads outside the root`);
      resolved.pop();
      continue;
    }
    const candidate = join(root, ...resolved, part);
    if (pending.length === 0 && !followLast) {
      resolved.push(part);
      break;
    }
    const st = await lstat(candidate).catch(() => undefined);
    if (st?.isSymbolicLink()) {
      if (++hops > 40) throw new PackageFormatError(`${where}: too many symlinks resolving "${rel}"`);
      const target = await readlink(candidate);
      if (target.startsWith('/')) resolved.length = 0;
      pending.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
      continue;
    }
    resolved.push(part);
  }
  return join(root, ...resolved);
}

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
      if (name === '') {
        entry.resume();
        continue;
      }
      // The parent must resolve inside the root; the entry itself is never followed if it is a symlink.
      const parent = posix.dirname(name);
      const parentPath = parent === '.' ? options.dest : await resolveInside(options.dest, parent, where, true);
      const target = join(parentPath, posix.basename(name));
      const mode = (h.mode ?? 0o644) & 0o7777;
      switch (h.type) {
        case 'directory': {
          const st = await lstat(target).catch(() => undefined);
          if (st && !st.isDirectory()) await rm(target, { recursive: true, force: true });
          if (!st?.isDirectory()) await mkdir(target, { recursive: true });
          dirModes.push({ path: target, mode, mtime: h.mtime });
          entry.resume();
          break;
        }
        case 'file':
        case 'contiguous-file': {
          await mkdir(parentPath, { recursive: true });
          await rm(target, { force: true, recursive: true });
          await pipeline(entry, createWriteStream(target, { mode: 0o600 }));
          await chmod(target, mode);
          result.bytes += h.size ?? 0;
          break;
        }
        case 'symlink': {
          await mkdir(parentPath, { recursive: true });
          await rm(target, { force: true, recursive: true });
          await symlink(h.linkname ?? '', target);
          entry.resume();
          break;
        }
        case 'link': {
          const linkName = safeEntryName(h.linkname ?? '', where);
          const source = await resolveInside(options.dest, linkName, where, true);
          await mkdir(parentPath, { recursive: true });
          await rm(target, { force: true, recursive: true });
          await link(source, target);
          entry.resume();
          break;
        }
        default:
          entry.resume();
          throw new PackageFormatError(`${where}: unsupported entry type ${h.type ?? 'unknown'}`);
      }
      if (h.type !== 'directory') {
        if (options.preserveOwner && h.type !== 'link') await lchownSafe(target, h.uid ?? 0, h.gid ?? 0, h.type === 'symlink');
        if (options.preserveMtime && h.mtime && h.type !== 'symlink' && h.type !== 'link') await utimes(target, h.mtime, h.mtime);
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
    await chmod(d.path, d.mode);
    if (options.preserveMtime && d.mtime) await utimes(d.path, d.mtime, d.mtime);
  }
  return result;
}

async function lchownSafe(path: string, uid: number, gid: number, isLink: boolean): Promise<void> {
  await (isLink ? lchown(path, uid, gid) : chown(path, uid, gid));
}

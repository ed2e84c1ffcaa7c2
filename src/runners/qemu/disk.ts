// The build root as a disk: an ext4 image made from the root directory with `mkfs.ext4 -d`, cached under the
// digest of the tree and attached with snapshot=on, so the guest's writes go to a throwaway overlay and the
// cached image is never written. Measured against packing the root into the initramfs, 9p and virtiofs, this
// boots as fast as an empty VM and runs builds as fast as a RAM root (docs/qemu-runner.md).
import { createHash } from 'node:crypto';
import { lstat, mkdir, opendir, readdir, readlink, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { BuilderError, MissingToolError } from '../../errors.ts';
import { installArtifact, lastUse, removeArtifact, touchArtifact, usableArtifact } from './seal.ts';

const BLOCK = 4096;
const INODE_SIZE = 256;
/** Images kept in the cache; the least recently used beyond this are removed when a new one is made. */
export const MAX_CACHED_IMAGES = 8;
/** Free space the build gets on top of the root's own size; the file is sparse, so unused space is free. */
export const DEFAULT_HEADROOM_BYTES = 8 * 1024 ** 3;

export interface TreeSummary {
  digest: string;
  /** Bytes the tree needs on ext4 (data blocks plus inodes), before headroom. */
  bytes: number;
  entries: number;
}

/**
 * A digest of the tree's metadata: every path with its type, mode, owner, size, mtime and link target. Roots
 * from the environment cache are immutable, so metadata identifies them without reading every byte (a full
 * content hash of a compiler root would cost seconds per build).
 */
export async function summarizeTree(root: string, signal?: AbortSignal): Promise<TreeSummary> {
  const hash = createHash('sha256');
  let bytes = 0;
  let entries = 0;
  const walk = async (rel: string): Promise<void> => {
    signal?.throwIfAborted();
    const dir = await opendir(join(root, rel));
    const names: string[] = [];
    for await (const d of dir) names.push(d.name);
    names.sort();
    for (const name of names) {
      const path = rel === '' ? name : `${rel}/${name}`;
      const st = await lstat(join(root, path), { bigint: true });
      entries++;
      const size = Number(st.size);
      bytes += INODE_SIZE + (st.isFile() || st.isDirectory() ? Math.ceil(size / BLOCK) * BLOCK : 0);
      const link = st.isSymbolicLink() ? await readlink(join(root, path)) : '';
      hash.update(`${path}\0${st.mode}\0${st.uid}\0${st.gid}\0${st.size}\0${st.mtimeNs}\0${st.rdev}\0${link}\0`);
      if (st.isDirectory()) await walk(path);
    }
  };
  const top = await stat(root).catch(() => undefined);
  if (!top?.isDirectory()) throw new BuilderError(`build root ${root} is not a directory`);
  await walk('');
  return { digest: hash.digest('hex').slice(0, 32), bytes, entries };
}

export interface RootImageOptions {
  root: string;
  /** The sealed VM artifact directory; images go to `<artifactDir>/disks/`. */
  artifactDir: string;
  headroomBytes?: number;
  log: (line: string) => void;
  signal?: AbortSignal;
}

export interface RootImage {
  path: string;
  cached: boolean;
  sizeBytes: number;
}

export function imageSize(treeBytes: number, headroomBytes: number): number {
  // ext4 metadata (group descriptors, bitmaps, reserved blocks) takes a few percent; round to whole MiB.
  const raw = treeBytes * 1.1 + 64 * 1024 ** 2 + headroomBytes;
  return Math.ceil(raw / 1024 ** 2) * 1024 ** 2;
}

/** The cached image for this root, made first when it is missing. */
export async function ensureRootImage(options: RootImageOptions): Promise<RootImage> {
  const headroom = options.headroomBytes ?? DEFAULT_HEADROOM_BYTES;
  const tree = await summarizeTree(options.root, options.signal);
  const size = imageSize(tree.bytes, headroom);
  const dir = join(options.artifactDir, 'disks');
  const path = join(dir, `root-${tree.digest}-${Math.round(size / 1024 ** 2)}M.ext4`);
  if (await usableArtifact(path, 'root disk image', options.log, options.signal)) {
    await touchArtifact(path);
    return { path, cached: true, sizeBytes: (await stat(path)).size };
  }

  await mkdir(dir, { recursive: true });
  const temp = `${path}.${process.pid}.tmp`;
  options.log(`making the root disk image (${tree.entries} entries, ${(tree.bytes / 1e6).toFixed(0)} MB) with mkfs.ext4`);
  try {
    await writeFile(temp, '');
    await truncate(temp, size);
    // No journal: the guest's writes are thrown away with the snapshot, so crash safety buys nothing.
    // Lazy inode tables: only what the tree uses is written, and the guest mounts with noinit_itable.
    const result = await execa(
      'mkfs.ext4',
      ['-q', '-F', '-L', 'builder-root', '-b', String(BLOCK), '-I', String(INODE_SIZE), '-m', '0', '-O', '^has_journal', '-E', 'lazy_itable_init=1,lazy_journal_init=1', '-d', options.root, temp],
      { reject: false, cancelSignal: options.signal, env: { PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` } },
    );
    if (result.failed) {
      if (result.isCanceled) throw new BuilderError('making the root disk image: interrupted', { cause: options.signal?.reason });
      if ((result.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
        throw new MissingToolError('mkfs.ext4 is not installed (apt-get install e2fsprogs)');
      }
      throw new BuilderError(`mkfs.ext4 could not make an image of ${options.root}`, {
        details: String(result.stderr).trim().split('\n').slice(-10),
      });
    }
    await installArtifact(temp, path, options.signal);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await pruneImages(dir, MAX_CACHED_IMAGES);
  return { path, cached: false, sizeBytes: size };
}

/** Removes the least recently used images beyond `keep` (a VM still using one keeps its open file). */
export async function pruneImages(dir: string, keep: number): Promise<string[]> {
  const images: { path: string; mtimeMs: number }[] = [];
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!/^root-[0-9a-f]+-\d+M\.ext4$/.test(name)) continue;
    const used = await lastUse(join(dir, name));
    images.push({ path: join(dir, name), mtimeMs: used ?? 0 });
  }
  images.sort((a, b) => b.mtimeMs - a.mtimeMs);
  const removed = images.slice(keep).map((i) => i.path);
  await Promise.all(removed.map((p) => removeArtifact(p)));
  return removed;
}

// A directory tree as a newc cpio archive (what an initramfs or a netboot root is), through the one cpio
// writer (src/initramfs/cpio.ts). Entries are written parents first in a stable order, with their owners,
// permission bits (setuid/setgid/sticky included) and mtimes; device nodes keep their numbers. Hard links are
// written as separate files and sockets are skipped (the kernel's unpacker makes neither useful).
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { CpioWriter } from '../initramfs/cpio.ts';

export interface TreeCpioStats {
  entries: number;
  skipped: string[];
}

const major = (rdev: number): number => Number((BigInt(rdev) >> 8n) & 0xfffn);
const minor = (rdev: number): number => Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & 0xfff00n));

/** Writes every entry under `root` (not `root` itself) and the trailer to `out`. */
export async function writeTreeCpio(root: string, out: Writable, signal?: AbortSignal): Promise<TreeCpioStats> {
  const writer = new CpioWriter(out);
  const stats: TreeCpioStats = { entries: 0, skipped: [] };
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(rel === '' ? root : join(root, rel))).sort();
    for (const name of names) {
      signal?.throwIfAborted();
      const path = rel === '' ? name : `${rel}/${name}`;
      const full = join(root, path);
      const st = await lstat(full);
      const own = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000) };
      if (st.isDirectory()) {
        await writer.directory(path, own);
        stats.entries++;
        await walk(path);
      } else if (st.isFile()) {
        await writer.fileFrom(path, full, st.size, own);
        stats.entries++;
      } else if (st.isSymbolicLink()) {
        await writer.symlink(path, await readlink(full), own);
        stats.entries++;
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        await writer.device(path, st.isCharacterDevice() ? 'char' : 'block', major(st.rdev), minor(st.rdev), own);
        stats.entries++;
      } else {
        stats.skipped.push(path);
      }
    }
  };
  await walk('');
  await writer.finish();
  return stats;
}

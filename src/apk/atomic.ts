// Outputs appear under their final name complete or not at all: written to a temp name in the same directory,
// then renamed (or hard-linked, when an existing file must not be replaced).
import { randomBytes } from 'node:crypto';
import { link, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** A fresh temp path beside `target` (same directory, so the final rename stays on one filesystem). */
export function tempPathFor(target: string, tag = 'tmp'): string {
  return join(dirname(target), `.${basename(target)}.${tag}-${process.pid}-${randomBytes(6).toString('hex')}`);
}

export async function removeQuietly(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** Writes all of `data` (a single write may be short). */
export async function writeAll(fh: FileHandle, data: Buffer, position?: number): Promise<void> {
  let off = 0;
  while (off < data.length) {
    const { bytesWritten } = await fh.write(data, off, data.length - off, position === undefined ? null : position + off);
    off += bytesWritten;
  }
}

export class TargetExistsError extends Error {
  override name = 'TargetExistsError';
  readonly path: string;
  constructor(path: string) {
    super(`${path} already exists`);
    this.path = path;
  }
}

/**
 * Creates `target` with exactly `mode` (umask does not apply) by filling a temp file through `fill` and then
 * moving it into place. With `overwrite: false` an existing target is left alone and TargetExistsError thrown.
 */
export async function writeFileAtomic(
  target: string,
  fill: (fh: FileHandle) => Promise<void>,
  opts: { mode: number; overwrite: boolean; sync: boolean },
): Promise<void> {
  const temp = tempPathFor(target);
  let placed = false;
  try {
    const fh = await open(temp, 'wx', opts.mode);
    try {
      await fh.chmod(opts.mode);
      await fill(fh);
      if (opts.sync) await fh.sync();
    } finally {
      await fh.close();
    }
    if (opts.overwrite) {
      await rename(temp, target);
      placed = true;
    } else {
      try {
        await link(temp, target);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new TargetExistsError(target);
        throw err;
      }
    }
  } finally {
    if (!placed) await removeQuietly(temp);
  }
}

export function writeBufferAtomic(
  target: string,
  data: Buffer,
  opts: { mode: number; overwrite: boolean; sync: boolean },
): Promise<void> {
  return writeFileAtomic(target, (fh) => writeAll(fh, data), opts);
}

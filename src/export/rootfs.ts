// A root filesystem tree out as an image: ext4 (the same mkfs.ext4 image maker as the VM root disk), EROFS
// (mkfs.erofs) or a newc cpio archive (optionally gzipped). Everything is made in a scratch directory beside
// the output, hashed, and renamed to `rootfs-<sha256:16>.<ext>` only when complete, so an existing file of
// that name is replaced by a whole one or not at all. A `--post-export` hook runs on a private copy of the
// tree first (the source root belongs to the cache and is never changed).
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rename, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { PassThrough } from 'node:stream';
import { createGzip } from 'node:zlib';
import { execa } from 'execa';
import { copyTree } from '../environment/root-provider.ts';
import { removeTree } from '../environment/cache.ts';
import { BuilderError, MissingToolError } from '../errors.ts';
import { ensureRootImage } from '../runners/qemu/disk.ts';
import { writeTreeCpio } from './tree-cpio.ts';

export type RootfsFormat = 'ext4' | 'erofs' | 'cpio';
export const ROOTFS_FORMATS: readonly RootfsFormat[] = ['ext4', 'erofs', 'cpio'];

export interface ExportOptions {
  /** The tree to export (read, never written). */
  tree: string;
  format: RootfsFormat;
  /** cpio only. */
  gzip?: boolean;
  outputDir: string;
  /** Shell command run in a copy of the tree before the image is made; `$ROOTFS` is that copy. */
  postExport?: string;
  log: (line: string) => void;
  signal?: AbortSignal;
}

export interface ExportResult {
  path: string;
  sha256: string;
  bytes: number;
  format: RootfsFormat;
}

const HOOK_TAIL = 20;
const SBIN_PATH = `${process.env.PATH ?? ''}:/usr/sbin:/sbin`;

function extension(format: RootfsFormat, gzip: boolean): string {
  return format === 'cpio' && gzip ? 'cpio.gz' : format;
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function runHook(command: string, tree: string, options: ExportOptions): Promise<void> {
  options.log(`export: running --post-export in ${tree}`);
  const result = await execa('sh', ['-c', command], {
    cwd: tree,
    env: { ROOTFS: tree },
    reject: false,
    all: true,
    ...(options.signal ? { cancelSignal: options.signal } : {}),
  });
  if (result.failed) {
    throw new BuilderError(`--post-export: "${command}" ${result.isCanceled ? 'was interrupted' : `exited with ${String(result.exitCode ?? result.signal)}`}`, {
      details: String(result.all ?? '').trim().split('\n').filter((l) => l !== '').slice(-HOOK_TAIL),
    });
  }
}

async function makeErofs(tree: string, file: string, signal?: AbortSignal): Promise<void> {
  const result = await execa('mkfs.erofs', [file, tree], { reject: false, all: true, env: { PATH: SBIN_PATH }, ...(signal ? { cancelSignal: signal } : {}) });
  if (!result.failed) return;
  if ((result.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') throw new MissingToolError('mkfs.erofs is not installed (apt-get install erofs-utils)');
  throw new BuilderError(`mkfs.erofs could not make an image of ${tree}`, { details: String(result.all ?? '').trim().split('\n').slice(-10) });
}

async function makeCpio(tree: string, file: string, gzip: boolean, options: ExportOptions): Promise<void> {
  const out = createWriteStream(file, { flags: 'wx', mode: 0o644 });
  const through = new PassThrough({ highWaterMark: 1024 * 1024 });
  const done = gzip ? pipeline(through, createGzip({ level: 6 }), out) : pipeline(through, out);
  done.catch(() => undefined);
  try {
    const stats = await writeTreeCpio(tree, through, options.signal);
    if (stats.skipped.length > 0) options.log(`export: skipped ${stats.skipped.length} socket(s)/fifo(s): ${stats.skipped.slice(0, 5).join(' ')}`);
  } catch (err) {
    through.destroy();
    throw err;
  }
  through.end();
  await done;
}

/** Makes the image and gives it its content-addressed name in `outputDir`. */
export async function exportRootfs(options: ExportOptions): Promise<ExportResult> {
  const top = await stat(options.tree).catch(() => undefined);
  if (!top?.isDirectory()) throw new BuilderError(`export: ${options.tree} is not a directory`);
  const gzip = options.format === 'cpio' && (options.gzip ?? false);
  const outputDir = resolve(options.outputDir);
  await mkdir(outputDir, { recursive: true });
  const scratch = await mkdtemp(join(outputDir, '.rootfs-export-'));
  try {
    let tree = options.tree;
    if (options.postExport !== undefined) {
      tree = join(scratch, 'tree');
      await mkdir(tree);
      options.log(`export: copying ${options.tree} for the hook`);
      await copyTree(options.tree, tree, 'copy');
      await runHook(options.postExport, tree, options);
    }
    options.log(`export: making ${extension(options.format, gzip)} from ${tree}`);
    let made = join(scratch, `image.${extension(options.format, gzip)}`);
    switch (options.format) {
      case 'ext4':
        made = (await ensureRootImage({ root: tree, artifactDir: join(scratch, 'ext4'), headroomBytes: 0, log: options.log, ...(options.signal ? { signal: options.signal } : {}) })).path;
        break;
      case 'erofs':
        await makeErofs(tree, made, options.signal);
        break;
      case 'cpio':
        await makeCpio(tree, made, gzip, options);
        break;
    }
    const sha256 = await sha256Of(made);
    const path = join(outputDir, `rootfs-${sha256.slice(0, 16)}.${extension(options.format, gzip)}`);
    const bytes = (await stat(made)).size;
    await rename(made, path);
    return { path, sha256, bytes, format: options.format };
  } finally {
    await removeTree(scratch);
  }
}

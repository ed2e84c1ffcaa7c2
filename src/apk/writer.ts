// Builds a signed APK v2 package from a directory tree: data stream first (to learn its datahash), then the
// control stream carrying .PKGINFO, then the signature over the compressed control stream; the file is the
// three gzip members concatenated: signature + control + data.
import { createHash } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { lstat, open, readdir, readlink, type FileHandle } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { BuilderError, errorMessage } from '../errors.ts';
import { removeQuietly, tempPathFor, writeAll, writeFileAtomic } from './atomic.ts';
import { DEFAULT_COMPRESSION_LEVEL, gzipMember, ParallelGzipWriter } from './gzip.ts';
import type { SigningKey } from './keys.ts';
import { pkginfoProblems, renderPkginfo, type PackageInfo } from './pkginfo.ts';
import { buildSignatureStream, SIGNATURE_PREFIX } from './signature.ts';
import { encodeTarEntry, encodeTarHeader, tarPadding, TAR_END_OF_ARCHIVE, TAR_MAX_SIZE, type TarHeader } from './tar.ts';

export interface ControlFile {
  /** A dot-file name without `/`: `.post-install`, `.trigger`, `.melange.yaml`, ... */
  name: string;
  content: string | Buffer;
  mode: number;
}

export interface WriteApkOptions {
  sourceDir: string;
  info: Omit<PackageInfo, 'size' | 'datahash'>;
  outputPath: string;
  signingKey?: SigningKey;
  /** Every entry's mtime (SOURCE_DATE_EPOCH): with the same tree and epoch the output is byte-identical. */
  sourceDateEpoch: number;
  controlFiles?: ControlFile[];
  /** zlib level, 6 by default (gzip's default). */
  compressionLevel?: number;
  /** Data chunks compressed at once; affects speed only, never the bytes. Defaults to the CPU count. */
  concurrency?: number;
}

export interface WriteApkResult {
  path: string;
  /** The .PKGINFO contents, with size and datahash filled in. */
  info: PackageInfo;
  /** Index `C:` value: `Q1` + base64(SHA-1 of the compressed control stream). */
  checksum: string;
  /** Size of the .apk file in bytes (index `S:`). */
  fileSize: number;
  controlSha1: Buffer;
}

const OWNER = { uid: 0, gid: 0, uname: 'root', gname: 'root' } as const;
/** Files up to this size are read once into memory (hash and content from the same bytes). */
const SMALL_FILE = 1024 * 1024;
const READ_PIECE = 1024 * 1024;
/** Read-ahead for small files, so open/read latency overlaps compression. */
const PREFETCH_FILES = 64;
const PREFETCH_BYTES = 32 * 1024 * 1024;
/**
 * apk treats `size = 0` as "nothing to extract", so a package whose regular files are all empty (or that
 * has none: a meta-package, a symlink farm) reports this instead of 0.
 */
export const MIN_INSTALLED_SIZE = 1;

interface TreeNode {
  rel: string;
  abs: string;
  kind: 'directory' | 'file' | 'symlink';
  mode: number;
  size: number;
  /** For the second and later paths of one inode: the first path (in archive order). */
  hardlinkTo?: string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeName(raw: Buffer, where: string): string {
  let name: string;
  try {
    name = utf8.decode(raw);
  } catch {
    throw new BuilderError(`${where}: file name is not valid UTF-8 (${raw.toString('hex')})`);
  }
  // apk (and our verifier) treat control characters in paths as malicious.
  if (/[\u0000-\u001f\u007f]/.test(name)) throw new BuilderError(`${join(where, name)}: file name contains a control character`);
  return name;
}

/** Every entry under root, depth-first, siblings in byte order of their names: parents before children. */
async function collectTree(root: string): Promise<TreeNode[]> {
  let rootStat;
  try {
    rootStat = await lstat(root);
  } catch (err) {
    throw new BuilderError(`cannot read package directory ${root}: ${errorMessage(err)}`, { cause: err });
  }
  if (!rootStat.isDirectory()) throw new BuilderError(`${root} is not a directory`);
  const nodes: TreeNode[] = [];
  const firstPathOfInode = new Map<string, string>();

  const visit = async (absDir: string, relDir: string): Promise<void> => {
    const rawNames = await readdir(absDir, { encoding: 'buffer' });
    rawNames.sort(Buffer.compare);
    const names = rawNames.map((raw) => decodeName(raw, absDir));
    const stats = await Promise.all(names.map((n) => lstat(join(absDir, n), { bigint: true })));
    for (let i = 0; i < names.length; i++) {
      const name = names[i] as string;
      const st = stats[i];
      if (!st) continue;
      const abs = join(absDir, name);
      const rel = relDir === '' ? name : `${relDir}/${name}`;
      const mode = Number(st.mode & 0o7777n);
      if (st.isDirectory()) {
        nodes.push({ rel, abs, kind: 'directory', mode, size: 0 });
        await visit(abs, rel);
      } else if (st.isFile()) {
        const node: TreeNode = { rel, abs, kind: 'file', mode, size: Number(st.size) };
        if (node.size > TAR_MAX_SIZE) throw new BuilderError(`${abs}: file is too large for a tar entry (${node.size} bytes)`);
        if (st.nlink > 1n) {
          const inode = `${st.dev}:${st.ino}`;
          const first = firstPathOfInode.get(inode);
          if (first === undefined) firstPathOfInode.set(inode, rel);
          else node.hardlinkTo = first;
        }
        nodes.push(node);
      } else if (st.isSymbolicLink()) {
        nodes.push({ rel, abs, kind: 'symlink', mode, size: 0 });
      } else {
        const what = st.isFIFO() ? 'FIFO' : st.isSocket() ? 'socket' : st.isCharacterDevice() ? 'character device' : 'block device';
        throw new BuilderError(`${abs}: cannot package a ${what}; only files, directories and symlinks are allowed`);
      }
    }
  };
  await visit(root, '');
  return nodes;
}

function sha1Hex(data: Buffer): string {
  return createHash('sha1').update(data).digest('hex');
}

async function readSmallFile(node: TreeNode): Promise<Buffer> {
  // O_NOFOLLOW: a file swapped for a symlink after the walk must not pull in content from elsewhere.
  const fh = await open(node.abs, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    // One byte more than expected, to notice a file that grew since it was listed.
    const buf = Buffer.allocUnsafe(node.size + 1);
    let filled = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, filled, buf.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
      if (filled === buf.length) break;
    }
    if (filled !== node.size) throw new BuilderError(`${node.abs}: file changed while it was being packaged`);
    return buf.subarray(0, node.size);
  } finally {
    await fh.close();
  }
}

/** Starts reading small files ahead of the writer, bounded in count and bytes. */
class Prefetcher {
  private readonly nodes: TreeNode[];
  private readonly pending = new Map<number, Promise<Buffer>>();
  private cursor = 0;
  private bytesAhead = 0;

  constructor(nodes: TreeNode[]) {
    this.nodes = nodes;
  }

  private static wanted(node: TreeNode): boolean {
    return node.kind === 'file' && node.hardlinkTo === undefined && node.size <= SMALL_FILE;
  }

  private pump(current: number): void {
    if (this.cursor < current) this.cursor = current;
    while (this.cursor < this.nodes.length && this.cursor - current < PREFETCH_FILES && this.bytesAhead < PREFETCH_BYTES) {
      const node = this.nodes[this.cursor];
      if (node && Prefetcher.wanted(node)) {
        const p = readSmallFile(node);
        p.catch(() => undefined);
        this.pending.set(this.cursor, p);
        this.bytesAhead += node.size;
      }
      this.cursor++;
    }
  }

  take(index: number): Promise<Buffer> {
    this.pump(index);
    const p = this.pending.get(index);
    const node = this.nodes[index];
    if (!p || !node) throw new Error(`prefetch: entry ${index} was not scheduled`);
    this.pending.delete(index);
    this.bytesAhead -= node.size;
    return p;
  }

  /** Called for entries that are not prefetched, to keep the read-ahead moving. */
  advance(index: number): void {
    this.pump(index + 1);
  }
}

async function hashLargeFile(fh: FileHandle, node: TreeNode, buf: Buffer): Promise<string> {
  const h = createHash('sha1');
  let pos = 0;
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
    if (bytesRead === 0) break;
    h.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
  if (pos !== node.size) throw new BuilderError(`${node.abs}: file changed while it was being packaged`);
  return h.digest('hex');
}

function fileHeader(node: TreeNode, epoch: number, sha1: string): TarHeader {
  return {
    name: node.rel,
    type: 'file',
    mode: node.mode,
    size: node.size,
    mtime: epoch,
    ...OWNER,
    pax: [['APK-TOOLS.checksum.SHA1', sha1]],
  };
}

/** Writes the data tar into `gz`; returns the installed size (regular file bytes, each inode once). */
async function writeDataTar(nodes: TreeNode[], gz: ParallelGzipWriter, epoch: number): Promise<number> {
  let installedSize = 0;
  const prefetch = new Prefetcher(nodes);
  const pieceBuf = Buffer.allocUnsafe(READ_PIECE);
  for (let i = 0; i < nodes.length; i++) {
    const node = nodes[i] as TreeNode;
    if (node.kind === 'directory') {
      prefetch.advance(i);
      await gz.write(encodeTarHeader({ name: `${node.rel}/`, type: 'directory', mode: node.mode, size: 0, mtime: epoch, ...OWNER }));
    } else if (node.kind === 'symlink') {
      prefetch.advance(i);
      const raw = await readlink(node.abs, { encoding: 'buffer' });
      const target = decodeName(raw, node.abs);
      await gz.write(
        encodeTarHeader({
          name: node.rel,
          type: 'symlink',
          mode: node.mode,
          size: 0,
          mtime: epoch,
          ...OWNER,
          linkname: target,
          pax: [['APK-TOOLS.checksum.SHA1', sha1Hex(raw)]],
        }),
      );
    } else if (node.hardlinkTo !== undefined) {
      prefetch.advance(i);
      await gz.write(
        encodeTarHeader({ name: node.rel, type: 'hardlink', mode: node.mode, size: 0, mtime: epoch, ...OWNER, linkname: node.hardlinkTo }),
      );
    } else if (node.size <= SMALL_FILE) {
      const content = await prefetch.take(i);
      installedSize += node.size;
      await gz.write(encodeTarHeader(fileHeader(node, epoch, sha1Hex(content))));
      await gz.write(content);
      await gz.write(tarPadding(node.size));
    } else {
      prefetch.advance(i);
      installedSize += node.size;
      // Too big to hold: hash it, then stream it, re-hashing to be sure the bytes written are the bytes hashed.
      const fh = await open(node.abs, fsc.O_RDONLY | fsc.O_NOFOLLOW);
      try {
        const sha1 = await hashLargeFile(fh, node, pieceBuf);
        await gz.write(encodeTarHeader(fileHeader(node, epoch, sha1)));
        const again = createHash('sha1');
        let pos = 0;
        while (pos < node.size) {
          const { bytesRead } = await fh.read(pieceBuf, 0, Math.min(pieceBuf.length, node.size - pos), pos);
          if (bytesRead === 0) break;
          const piece = pieceBuf.subarray(0, bytesRead);
          again.update(piece);
          await gz.write(piece);
          pos += bytesRead;
        }
        if (pos !== node.size || again.digest('hex') !== sha1) {
          throw new BuilderError(`${node.abs}: file changed while it was being packaged`);
        }
        await gz.write(tarPadding(node.size));
      } finally {
        await fh.close();
      }
    }
  }
  await gz.write(TAR_END_OF_ARCHIVE);
  return installedSize;
}

function checkControlFiles(files: ControlFile[]): ControlFile[] {
  const seen = new Set<string>();
  for (const f of files) {
    // apk takes the first non-dot (or nested) name as the start of the data section.
    if (!/^\.[^/]+$/.test(f.name) || f.name === '.' || f.name === '..') {
      throw new BuilderError(`control file name "${f.name}" must be a dot-file name without "/"`);
    }
    if (f.name === '.PKGINFO' || f.name.startsWith(SIGNATURE_PREFIX)) {
      throw new BuilderError(`control file name "${f.name}" is reserved`);
    }
    if (seen.has(f.name)) throw new BuilderError(`control file "${f.name}" is given twice`);
    if (!Number.isInteger(f.mode) || f.mode < 0 || f.mode > 0o7777) throw new BuilderError(`control file "${f.name}": bad mode ${f.mode}`);
    seen.add(f.name);
  }
  return [...files].sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
}

/** The control tar: .PKGINFO first, then the control files; no end-of-archive blocks (apk requires that). */
function buildControlTar(pkginfo: string, files: ControlFile[], epoch: number): Buffer {
  const parts = [pkginfo, ...files].map((f) => {
    const isInfo = typeof f === 'string';
    const name = isInfo ? '.PKGINFO' : f.name;
    const content = isInfo ? Buffer.from(f, 'utf8') : Buffer.isBuffer(f.content) ? f.content : Buffer.from(f.content, 'utf8');
    const mode = isInfo ? 0o644 : f.mode;
    return encodeTarEntry({ name, type: 'file', mode, size: content.length, mtime: epoch, ...OWNER }, content);
  });
  return Buffer.concat(parts);
}

async function copyFileInto(fh: FileHandle, sourcePath: string): Promise<number> {
  const src = await open(sourcePath, 'r');
  try {
    const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
    let total = 0;
    for (;;) {
      const { bytesRead } = await src.read(buf, 0, buf.length, total);
      if (bytesRead === 0) return total;
      await writeAll(fh, buf.subarray(0, bytesRead));
      total += bytesRead;
    }
  } finally {
    await src.close();
  }
}

export async function writeApk(opts: WriteApkOptions): Promise<WriteApkResult> {
  const epoch = opts.sourceDateEpoch;
  if (!Number.isInteger(epoch) || epoch < 0 || epoch > TAR_MAX_SIZE) {
    throw new BuilderError(`SOURCE_DATE_EPOCH ${epoch} is not a valid Unix time for a tar header`);
  }
  const level = opts.compressionLevel ?? DEFAULT_COMPRESSION_LEVEL;
  if (!Number.isInteger(level) || level < 0 || level > 9) throw new BuilderError(`compression level ${level} is not 0-9`);
  const problems = pkginfoProblems({ ...opts.info, size: MIN_INSTALLED_SIZE }, { requireSize: false });
  if (problems.length > 0) {
    throw new BuilderError(`cannot package ${opts.info.pkgname || '(unnamed)'}: ${problems.join('; ')}`);
  }
  const controlFiles = checkControlFiles(opts.controlFiles ?? []);
  const nodes = await collectTree(opts.sourceDir);

  const dataTemp = tempPathFor(opts.outputPath, 'data');
  try {
    const dataHash = createHash('sha256');
    let dataSize = 0;
    const dataFh = await open(dataTemp, 'wx', 0o600);
    let installedSize: number;
    try {
      const gz = new ParallelGzipWriter(
        async (chunk) => {
          dataHash.update(chunk);
          dataSize += chunk.length;
          await writeAll(dataFh, chunk);
        },
        { level, concurrency: opts.concurrency ?? availableParallelism() },
      );
      installedSize = await writeDataTar(nodes, gz, epoch);
      await gz.finish();
    } finally {
      await dataFh.close();
    }

    const info: PackageInfo = {
      ...opts.info,
      size: Math.max(installedSize, MIN_INSTALLED_SIZE),
      datahash: dataHash.digest('hex'),
    };
    const control = gzipMember(buildControlTar(renderPkginfo(info), controlFiles, epoch), level);
    const signature = opts.signingKey ? buildSignatureStream(opts.signingKey, control, epoch) : Buffer.alloc(0);
    const controlSha1 = createHash('sha1').update(control).digest();

    await writeFileAtomic(
      opts.outputPath,
      async (fh) => {
        await writeAll(fh, signature);
        await writeAll(fh, control);
        const copied = await copyFileInto(fh, dataTemp);
        if (copied !== dataSize) throw new BuilderError(`${dataTemp}: temporary data stream changed while packaging`);
      },
      { mode: 0o644, overwrite: true, sync: false },
    );
    return {
      path: opts.outputPath,
      info,
      checksum: `Q1${controlSha1.toString('base64')}`,
      fileSize: signature.length + control.length + dataSize,
      controlSha1,
    };
  } catch (err) {
    if (err instanceof BuilderError) throw err;
    throw new BuilderError(`cannot write package ${opts.outputPath}: ${errorMessage(err)}`, { cause: err });
  } finally {
    await removeQuietly(dataTemp);
  }
}

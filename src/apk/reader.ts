// Reads APK v2 packages: splits the gzip members (signature?, control, data), parses the control stream, and
// streams the data stream (never holding it in memory), hashing the compressed bytes as found.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { BuilderError, errorMessage, PackageFormatError } from '../errors.ts';
import { inflateGzipMember, type GzipMember } from './gzip.ts';
import { parsePkginfo, type PackageInfo } from './pkginfo.ts';
import { SIGNATURE_PREFIX, signaturesFromEntries, type ApkSignature } from './signature.ts';
import { readTarBuffer, readTarStream, type TarBufferEntry, type TarEntryType } from './tar.ts';

export type { ApkSignature } from './signature.ts';

export interface ApkControlFile {
  name: string;
  mode: number;
  content: Buffer;
}

export interface ApkHead {
  path: string;
  signatures: ApkSignature[];
  /** The control stream's gzip member exactly as found: what the signature and `C:` checksum cover. */
  controlCompressed: Buffer;
  /** Index `C:` value: `Q1` + base64(SHA-1 of controlCompressed). */
  checksum: string;
  pkginfo: string;
  info: PackageInfo;
  /** Control entries after .PKGINFO (scriptlets and the like). */
  controlFiles: ApkControlFile[];
  /** Offset of the data stream's first byte. */
  dataOffset: number;
  fileSize: number;
}

export interface ApkReadResult extends ApkHead {
  /** Lowercase hex SHA-256 of the data stream's bytes (everything after the control stream). */
  dataHash: string;
}

export interface ApkDataEntry {
  /** Path as in the archive, minus a directory's trailing `/`. */
  name: string;
  type: TarEntryType;
  mode: number;
  /** Content bytes (regular files only). */
  size: number;
  linkname?: string;
  /** The APK-TOOLS.checksum.SHA1 PAX record, if present. */
  sha1?: string;
  /** SHA-1 of the actual content (regular files) or link target (symlinks), set once the content is read. */
  contentSha1?: string;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  mtime: number;
}

/** Control members larger than this (decompressed) are refused rather than held in memory. */
const MAX_CONTROL_BYTES = 64 * 1024 * 1024;
const HEAD_READ = 256 * 1024;

function wrapFormat(err: unknown, where: string): Error {
  if (err instanceof BuilderError) return err;
  return new PackageFormatError(`${where}: ${errorMessage(err)}`, { cause: err });
}

/** Reads gzip members from the front of a file, growing the buffered prefix as needed. */
class MemberReader {
  private buf: Buffer = Buffer.alloc(0);
  readonly path: string;
  readonly fileSize: number;
  private readonly fh: FileHandle;

  constructor(path: string, fh: FileHandle, fileSize: number) {
    this.path = path;
    this.fh = fh;
    this.fileSize = fileSize;
  }

  private async grow(): Promise<boolean> {
    if (this.buf.length >= this.fileSize) return false;
    const want = Math.min(this.fileSize - this.buf.length, Math.max(HEAD_READ, this.buf.length));
    const next = Buffer.allocUnsafe(want);
    let filled = 0;
    while (filled < want) {
      const { bytesRead } = await this.fh.read(next, filled, want - filled, this.buf.length + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    if (filled === 0) return false;
    this.buf = Buffer.concat([this.buf, next.subarray(0, filled)]);
    return true;
  }

  /** SHA-256 of the bytes from `start` to the end: from what is already read, streaming only the rest. */
  async hashFrom(start: number): Promise<string> {
    const hash = createHash('sha256');
    const buffered = Math.min(this.buf.length, this.fileSize);
    if (start < buffered) hash.update(this.buf.subarray(start, buffered));
    const from = Math.max(start, buffered);
    if (from < this.fileSize) {
      for await (const chunk of this.fh.createReadStream({ start: from, highWaterMark: 1024 * 1024, autoClose: false })) {
        hash.update(chunk as Buffer);
      }
    }
    return hash.digest('hex');
  }

  async member(offset: number, what: string): Promise<GzipMember & { compressed: Buffer }> {
    const where = `${this.path}: ${what}`;
    if (offset >= this.fileSize) throw new PackageFormatError(`${where}: missing (file ends at byte ${offset})`);
    for (;;) {
      const m = inflateGzipMember(this.buf, offset, where, MAX_CONTROL_BYTES);
      if (m) return { ...m, compressed: this.buf.subarray(m.start, m.end) };
      if (this.buf.length - offset > MAX_CONTROL_BYTES) throw new PackageFormatError(`${where}: stream is too large`);
      if (!(await this.grow())) throw new PackageFormatError(`${where}: truncated gzip stream`);
    }
  }
}

function controlFilesOf(entries: TarBufferEntry[], where: string): { pkginfo: string; files: ApkControlFile[] } {
  const first = entries[0];
  if (!first || first.entry.name !== '.PKGINFO') {
    throw new PackageFormatError(`${where}: .PKGINFO missing (it must be the first control entry)`);
  }
  const files: ApkControlFile[] = [];
  for (const { entry, content } of entries.slice(1)) {
    if (!/^\.[^/]+$/.test(entry.name) || entry.type !== 'file') {
      throw new PackageFormatError(`${where}: ${entry.name}: not a control file (control entries are dot-files)`);
    }
    if (entry.name === '.PKGINFO') throw new PackageFormatError(`${where}: .PKGINFO appears twice`);
    files.push({ name: entry.name, mode: entry.mode, content });
  }
  return { pkginfo: first.content.toString('utf8'), files };
}

/** Signature and control streams, parsed; the data stream is located but not read. */
export async function readApkHead(path: string): Promise<ApkHead> {
  return withPackage(path, headOf);
}

/** The package's metadata plus the SHA-256 of its data stream (hashed, not decompressed). */
export async function readApk(path: string): Promise<ApkReadResult> {
  return withPackage(path, async (reader) => {
    const head = await headOf(reader);
    return { ...head, dataHash: await reader.hashFrom(head.dataOffset) };
  });
}

/** One open file for everything read from a package: indexing 1,000 packages is mostly open/read/close. */
async function withPackage<T>(path: string, use: (reader: MemberReader) => Promise<T>): Promise<T> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw new BuilderError(`cannot read package ${path}: ${errorMessage(err)}`, { cause: err });
  }
  try {
    return await use(new MemberReader(path, fh, (await fh.stat()).size));
  } catch (err) {
    throw wrapFormat(err, path);
  } finally {
    await fh.close();
  }
}

async function headOf(reader: MemberReader): Promise<ApkHead> {
  const { path, fileSize } = reader;
  const first = await reader.member(0, 'first gzip stream');
  const firstEntries = await readTarBuffer(first.content, `${path}: first stream`, 'forbidden');
  let signatures: ApkSignature[] = [];
  let control = first;
  let controlEntries = firstEntries;
  if (firstEntries[0]?.entry.name.startsWith(SIGNATURE_PREFIX)) {
    signatures = signaturesFromEntries(firstEntries, `${path}: signature stream`);
    control = await reader.member(first.end, 'control stream');
    controlEntries = await readTarBuffer(control.content, `${path}: control stream`, 'forbidden');
  }
  const { pkginfo, files } = controlFilesOf(controlEntries, `${path}: control stream`);
  const info = parsePkginfo(pkginfo, `${path}: .PKGINFO`);
  if (control.end >= fileSize) throw new PackageFormatError(`${path}: no data stream after the control stream`);
  const controlCompressed = Buffer.from(control.compressed);
  return {
    path,
    signatures,
    controlCompressed,
    checksum: `Q1${createHash('sha1').update(controlCompressed).digest('base64')}`,
    pkginfo,
    info,
    controlFiles: files,
    dataOffset: control.end,
    fileSize,
  };
}

export interface ApkDataHandlers {
  /** Sees each entry before its content and may consume `content` (e.g. to extract it). */
  onEntry?: (entry: ApkDataEntry, content: AsyncIterable<Buffer>) => Promise<void> | void;
  /** Sees each entry after its content was read, with contentSha1 filled in. */
  onEntryRead?: (entry: ApkDataEntry) => Promise<void> | void;
}

/**
 * Streams the data stream of the package at `path` (whose head is `head`, from readApkHead): decompresses
 * and parses the tar entry by entry while hashing the compressed bytes. Returns their SHA-256 (hex).
 */
export async function readApkData(path: string, head: ApkHead, handlers: ApkDataHandlers): Promise<string> {
  const hash = createHash('sha256');
  const where = `${path}: data stream`;
  const hasher = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  try {
    await pipeline(
      createReadStream(path, { start: head.dataOffset, highWaterMark: 1024 * 1024 }),
      hasher,
      createGunzip(),
      async (source: AsyncIterable<Buffer>) => {
        for await (const { entry, body } of readTarStream(source, where, 'optional')) {
          const item: ApkDataEntry = {
            name: entry.type === 'directory' && entry.name.endsWith('/') ? entry.name.slice(0, -1) : entry.name,
            type: entry.type,
            mode: entry.mode,
            size: entry.size,
            uid: entry.uid,
            gid: entry.gid,
            uname: entry.uname,
            gname: entry.gname,
            mtime: entry.mtime,
          };
          if (entry.linkname !== undefined) item.linkname = entry.linkname;
          const paxSha1 = entry.pax.get('APK-TOOLS.checksum.SHA1');
          if (paxSha1 !== undefined) item.sha1 = paxSha1;
          const contentHash = createHash('sha1');
          const hashed = (async function* () {
            for await (const piece of body) {
              contentHash.update(piece);
              yield piece;
            }
          })();
          if (handlers.onEntry) await handlers.onEntry(item, hashed);
          // Whatever the handler left unread still counts toward the content hash.
          for await (const piece of body) contentHash.update(piece);
          if (entry.type === 'file') item.contentSha1 = contentHash.digest('hex');
          else if (entry.type === 'symlink') item.contentSha1 = createHash('sha1').update(entry.linkname ?? '', 'utf8').digest('hex');
          if (handlers.onEntryRead) await handlers.onEntryRead(item);
        }
      },
    );
  } catch (err) {
    throw wrapFormat(err, where);
  }
  return hash.digest('hex');
}

/** Every data entry of the package, in archive order. */
export async function listApkData(path: string): Promise<ApkDataEntry[]> {
  const head = await readApkHead(path);
  const entries: ApkDataEntry[] = [];
  await readApkData(path, head, { onEntryRead: (e) => void entries.push(e) });
  return entries;
}

// Full verification of packages and indexes against trusted keys, refusing everything apk refuses (and the
// things it merely warns about, like missing per-file checksums). Messages name the package and the entry.
import { createHash, type KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { PackageFormatError } from '../errors.ts';
import { readApkIndex, type IndexEntry } from './index.ts';
import type { PackageInfo } from './pkginfo.ts';
import { type ApkDataEntry, type ApkHead, readApkData, readApkHead } from './reader.ts';
import { type SignatureAlgorithm, verifySignatures, verifySignaturesOver } from './signature.ts';

export interface ApkVerifySummary {
  path: string;
  info: PackageInfo;
  keyName: string;
  algorithm: SignatureAlgorithm;
  /** Number of data entries. */
  entries: number;
  checksum: string;
  dataHash: string;
  fileSize: number;
}

/** Why an entry name is unsafe or malformed, or undefined when it is fine. */
export function entryNameProblem(name: string): string | undefined {
  if (name === '') return 'empty path';
  if (name.startsWith('/')) return 'absolute path';
  if (name.startsWith('./')) return 'path starts with "./" (apk skips such entries)';
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'control character in path';
  for (const part of name.split('/')) {
    if (part === '..') return '".." path component';
    if (part === '.') return '"." path component';
    if (part === '') return 'empty path component';
  }
  return undefined;
}

/** Checks each data entry as it streams by; throws on the first problem. */
class DataChecker {
  private readonly where: string;
  private readonly directories = new Set<string>();
  private readonly files = new Set<string>();
  private readonly seen = new Set<string>();
  count = 0;

  constructor(where: string) {
    this.where = where;
  }

  private fail(entry: ApkDataEntry, problem: string): never {
    throw new PackageFormatError(`${this.where}: entry ${JSON.stringify(entry.name)}: ${problem}`);
  }

  check(entry: ApkDataEntry): void {
    this.count++;
    const problem = entryNameProblem(entry.name);
    if (problem) this.fail(entry, problem);
    if (this.seen.has(entry.name)) this.fail(entry, 'appears twice in the archive');
    this.seen.add(entry.name);
    const slash = entry.name.lastIndexOf('/');
    if (slash > 0 && !this.directories.has(entry.name.slice(0, slash))) {
      this.fail(entry, `parent directory ${entry.name.slice(0, slash)} has no entry of its own before it (apk: no dirent in archive)`);
    }
    switch (entry.type) {
      case 'directory':
        this.directories.add(entry.name);
        break;
      case 'file':
      case 'symlink':
        if (entry.sha1 === undefined) this.fail(entry, 'no APK-TOOLS.checksum.SHA1 record');
        if (entry.sha1.toLowerCase() !== entry.contentSha1) {
          this.fail(entry, `APK-TOOLS.checksum.SHA1 ${entry.sha1} does not match the ${entry.type === 'file' ? 'content' : 'link target'} (${entry.contentSha1})`);
        }
        if (entry.type === 'file') this.files.add(entry.name);
        break;
      case 'hardlink':
        if (entry.linkname === undefined || !this.files.has(entry.linkname)) {
          this.fail(entry, `hard link to ${entry.linkname ?? '(nothing)'}, which is not an earlier regular file in the package`);
        }
        break;
      default:
        break;
    }
  }
}

async function* controlThenData(path: string, head: ApkHead): AsyncGenerator<Buffer> {
  yield head.controlCompressed;
  for await (const chunk of createReadStream(path, { start: head.dataOffset, highWaterMark: 1024 * 1024 })) yield chunk as Buffer;
}

async function hashFrom(path: string, start: number): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { start, highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Verifies a package: signature by a trusted key over the control stream, datahash over the data stream,
 * and every data entry (safe relative path, parent directory present, SHA-1 checksum present and right).
 */
export async function verifyApk(path: string, keyring: ReadonlyMap<string, KeyObject>): Promise<ApkVerifySummary> {
  const head = await readApkHead(path);
  const where = `${path} (${head.info.pkgname}-${head.info.pkgver})`;
  const expectedHash = head.info.datahash;
  // Without datahash (v2.0 packages), the signature covers the control and data streams, as apk checks it.
  const signature =
    expectedHash === undefined
      ? await verifySignaturesOver(head.signatures, controlThenData(path, head), keyring, where)
      : verifySignatures(head.signatures, head.controlCompressed, keyring, where);

  const checker = new DataChecker(where);
  let dataHash: string;
  try {
    dataHash = await readApkData(path, head, { onEntryRead: (e) => checker.check(e) });
  } catch (err) {
    // Tampered data usually breaks decompression before the hash could be compared; report it as apk does.
    if (expectedHash !== undefined && (await hashFrom(path, head.dataOffset)) !== expectedHash) {
      throw new PackageFormatError(`${where}: BAD signature: data stream does not match datahash`, { cause: err });
    }
    throw err;
  }
  if (expectedHash !== undefined && dataHash !== expectedHash) throw new PackageFormatError(`${where}: BAD signature: data stream does not match datahash`);
  return {
    path,
    info: head.info,
    keyName: signature.keyName,
    algorithm: signature.algorithm,
    entries: checker.count,
    checksum: head.checksum,
    dataHash,
    fileSize: head.fileSize,
  };
}

export interface ApkIndexVerifySummary {
  path: string;
  keyName: string;
  algorithm: SignatureAlgorithm;
  entries: IndexEntry[];
}

/** Verifies an index's signature against trusted keys and parses it strictly. */
export async function verifyApkIndex(path: string, keyring: ReadonlyMap<string, KeyObject>): Promise<ApkIndexVerifySummary> {
  const index = await readApkIndex(path, keyring);
  if (!index.verified) throw new PackageFormatError(`${path}: UNTRUSTED signature: not verified`);
  return { path, keyName: index.verified.keyName, algorithm: index.verified.algorithm, entries: index.entries };
}

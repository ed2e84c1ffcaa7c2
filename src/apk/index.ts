// APKINDEX.tar.gz: the repository index. One gzip member holding a tar (full trailer) with an optional
// DESCRIPTION and the APKINDEX text; when signed, a signature stream in front covers that whole member.
import type { KeyObject } from 'node:crypto';
import { open } from 'node:fs/promises';
import { BuilderError, errorMessage, PackageFormatError } from '../errors.ts';
import { writeBufferAtomic } from './atomic.ts';
import { gzipMember, inflateGzipMember, type GzipMember } from './gzip.ts';
import type { SigningKey } from './keys.ts';
import { withLock } from '../os/lock.ts';
import { compareApkVersions, pkginfoProblems, type PackageInfo } from './pkginfo.ts';
import type { ApkHead } from './reader.ts';
import {
  buildSignatureStream,
  SIGNATURE_PREFIX,
  signaturesFromEntries,
  verifySignatures,
  type ApkSignature,
  type VerifiedSignature,
} from './signature.ts';
import { encodeTarEntry, readTarBuffer, TAR_END_OF_ARCHIVE } from './tar.ts';

export interface IndexEntry extends PackageInfo {
  /** `C:` — `Q1` + base64(SHA-1 of the package's compressed control stream). */
  checksum: string;
  /** `S:` — size of the .apk file. (`I:` is the inherited `size`, the installed size.) */
  fileSize: number;
}

export interface ApkIndex {
  path: string;
  entries: IndexEntry[];
  description?: string;
  signatures: ApkSignature[];
  /** Set when a keyring was given and the signature verified. */
  verified?: VerifiedSignature;
}

/** Indexes are read whole (the text must be parsed anyway); anything bigger than this is refused. */
const MAX_INDEX_BYTES = 512 * 1024 * 1024;

export function indexEntryFromApk(pkg: Pick<ApkHead, 'info' | 'checksum' | 'fileSize'>): IndexEntry {
  return { ...pkg.info, checksum: pkg.checksum, fileSize: pkg.fileSize };
}

function byNameThenVersion(a: IndexEntry, b: IndexEntry): number {
  const byName = Buffer.compare(Buffer.from(a.pkgname), Buffer.from(b.pkgname));
  return byName !== 0 ? byName : compareApkVersions(a.pkgver, b.pkgver);
}

function entryProblems(e: IndexEntry): string[] {
  const problems = pkginfoProblems(e, { requireSize: true });
  if (!/^Q1[A-Za-z0-9+/]{27}=$/.test(e.checksum)) problems.push(`checksum "${e.checksum}" is not a Q1 SHA-1 checksum`);
  if (!Number.isSafeInteger(e.fileSize) || e.fileSize <= 0) problems.push(`fileSize ${e.fileSize} is not a byte count`);
  return problems;
}

/**
 * The APKINDEX text: one stanza per package, sorted by name then version, each followed by a blank line.
 * Field order is apk's own: C P V A S I T U L o m t c k, then D p i. Several licenses are joined with
 * " AND " (apk itself keeps only one L: value). `replaces` is not indexed.
 */
export function renderApkIndex(entries: IndexEntry[]): string {
  const sorted = [...entries].sort(byNameThenVersion);
  const out: string[] = [];
  for (let i = 0; i < sorted.length; i++) {
    const e = sorted[i] as IndexEntry;
    const problems = entryProblems(e);
    if (problems.length > 0) throw new BuilderError(`index entry ${e.pkgname}-${e.pkgver}: ${problems.join('; ')}`);
    const prev = sorted[i - 1];
    if (prev && prev.pkgname === e.pkgname && prev.pkgver === e.pkgver) {
      throw new BuilderError(`index lists ${e.pkgname}-${e.pkgver} twice`);
    }
    const lines = [`C:${e.checksum}`, `P:${e.pkgname}`, `V:${e.pkgver}`];
    if (e.arch) lines.push(`A:${e.arch}`);
    lines.push(`S:${e.fileSize}`, `I:${e.size}`, `T:${e.pkgdesc ?? ''}`, `U:${e.url ?? ''}`, `L:${e.license.join(' AND ')}`);
    if (e.origin) lines.push(`o:${e.origin}`);
    if (e.maintainer) lines.push(`m:${e.maintainer}`);
    if (e.builddate) lines.push(`t:${e.builddate}`);
    if (e.commit) lines.push(`c:${e.commit}`);
    if (e.providerPriority) lines.push(`k:${e.providerPriority}`);
    if (e.depend.length > 0) lines.push(`D:${e.depend.join(' ')}`);
    if (e.provides.length > 0) lines.push(`p:${e.provides.join(' ')}`);
    if (e.installIf.length > 0) lines.push(`i:${e.installIf.join(' ')}`);
    out.push(`${lines.join('\n')}\n\n`);
  }
  return out.join('');
}

function words(value: string): string[] {
  return value.split(' ').filter((w) => w !== '');
}

function count(value: string, field: string, where: { toString(): string }): number {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new PackageFormatError(`${where}: ${field}:${value} is not a non-negative integer`);
  }
  return Number(value);
}

/** Parses APKINDEX text. Unknown lower-case fields are ignored (as apk does); unknown upper-case ones are errors. */
export function parseApkIndex(text: string, where: string): IndexEntry[] {
  const entries: IndexEntry[] = [];
  const lines = text.split('\n');
  let current: Partial<IndexEntry> & { license: string[]; depend: string[]; provides: string[]; replaces: string[]; installIf: string[] };
  let startLine = 0;
  const fresh = (): typeof current => ({ license: [], depend: [], provides: [], replaces: [], installIf: [], triggers: [] });
  current = fresh();
  let seen = new Set<string>();

  const finish = (): void => {
    if (seen.size === 0) return;
    const at = `${where}:${startLine}`;
    for (const f of ['C', 'P', 'V', 'S', 'I']) {
      if (!seen.has(f)) throw new PackageFormatError(`${at}: index stanza lacks ${f}:`);
    }
    const e: IndexEntry = {
      checksum: current.checksum ?? '',
      fileSize: current.fileSize ?? 0,
      pkgname: current.pkgname ?? '',
      pkgver: current.pkgver ?? '',
      arch: current.arch ?? '',
      size: current.size ?? 0,
      license: current.license,
      depend: current.depend,
      provides: current.provides,
      replaces: current.replaces,
      installIf: current.installIf,
      triggers: [],
    };
    for (const k of ['origin', 'pkgdesc', 'url', 'commit', 'maintainer', 'builddate', 'providerPriority', 'replacesPriority'] as const) {
      if (current[k] !== undefined) Object.assign(e, { [k]: current[k] });
    }
    const problems = entryProblems(e);
    if (problems.length > 0) throw new PackageFormatError(`${at}: ${e.pkgname || 'index stanza'}: ${problems.join('; ')}`);
    entries.push(e);
    current = fresh();
    seen = new Set();
  };

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (line === '') {
      finish();
      continue;
    }
    if (seen.size === 0) startLine = i + 1;
    // A location string per line would dominate the parse of a large index: it is made only for errors.
    const lineNo = i + 1;
    const at = { toString: () => `${where}:${lineNo}` };
    if (line.length < 2 || line.charCodeAt(1) !== 58) throw new PackageFormatError(`${at}: malformed index line "${line}"`);
    const field = line[0] as string;
    const value = line.slice(2);
    if (seen.has(field)) throw new PackageFormatError(`${at}: field ${field}: appears twice in one stanza`);
    seen.add(field);
    switch (field) {
      case 'C':
        current.checksum = value;
        break;
      case 'P':
        current.pkgname = value;
        break;
      case 'V':
        current.pkgver = value;
        break;
      case 'A':
        current.arch = value;
        break;
      case 'S':
        current.fileSize = count(value, field, at);
        break;
      case 'I':
        current.size = count(value, field, at);
        break;
      case 'T':
        if (value !== '') current.pkgdesc = value;
        break;
      case 'U':
        if (value !== '') current.url = value;
        break;
      case 'L':
        if (value !== '') current.license = [value];
        break;
      case 'o':
        current.origin = value;
        break;
      case 'm':
        current.maintainer = value;
        break;
      case 't':
        current.builddate = count(value, field, at);
        break;
      case 'c':
        current.commit = value;
        break;
      case 'k':
        current.providerPriority = count(value, field, at);
        break;
      case 'D':
        current.depend = words(value);
        break;
      case 'p':
        current.provides = words(value);
        break;
      case 'i':
        current.installIf = words(value);
        break;
      case 'r':
        current.replaces = words(value);
        break;
      case 'q':
        current.replacesPriority = count(value, field, at);
        break;
      default:
        if (field >= 'A' && field <= 'Z') {
          throw new PackageFormatError(`${at}: unknown index field ${field}: (apk would refuse to install the package)`);
        }
    }
  }
  finish();
  return entries;
}

async function readWhole(path: string): Promise<Buffer> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw new BuilderError(`cannot read index ${path}: ${errorMessage(err)}`, { cause: err });
  }
  try {
    const size = (await fh.stat()).size;
    if (size > MAX_INDEX_BYTES) throw new PackageFormatError(`${path}: index is larger than ${MAX_INDEX_BYTES} bytes`);
    const buf = Buffer.alloc(size);
    let filled = 0;
    while (filled < size) {
      const { bytesRead } = await fh.read(buf, filled, size - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return buf.subarray(0, filled);
  } finally {
    await fh.close();
  }
}

function member(buf: Buffer, offset: number, where: string): GzipMember {
  const m = inflateGzipMember(buf, offset, where, MAX_INDEX_BYTES);
  if (!m) throw new PackageFormatError(`${where}: truncated gzip stream`);
  return m;
}

/**
 * Reads an APKINDEX.tar.gz. With a keyring, the signature must verify (UNTRUSTED / BAD signature otherwise);
 * without one, signatures are returned unchecked.
 */
export async function readApkIndex(path: string, keyring?: ReadonlyMap<string, KeyObject>): Promise<ApkIndex> {
  const buf = await readWhole(path);
  if (buf.length === 0) throw new PackageFormatError(`${path}: empty index file`);
  const first = member(buf, 0, `${path}: first gzip stream`);
  const firstEntries = await readTarBuffer(first.content, `${path}: first stream`, 'optional');
  let signatures: ApkSignature[] = [];
  let bodyStart = 0;
  let body = first;
  let bodyEntries = firstEntries;
  if (firstEntries[0]?.entry.name.startsWith(SIGNATURE_PREFIX)) {
    // Re-read strictly: a signature stream with end blocks would end apk's archive early.
    await readTarBuffer(first.content, `${path}: signature stream`, 'forbidden');
    signatures = signaturesFromEntries(firstEntries, `${path}: signature stream`);
    bodyStart = first.end;
    body = member(buf, bodyStart, `${path}: index stream`);
    bodyEntries = await readTarBuffer(body.content, `${path}: index stream`, 'optional');
  }
  if (body.end !== buf.length) throw new PackageFormatError(`${path}: unexpected data after the index stream`);
  let verified: VerifiedSignature | undefined;
  if (keyring) verified = verifySignatures(signatures, buf.subarray(bodyStart), keyring, path);

  let text: string | undefined;
  let description: string | undefined;
  for (const { entry, content } of bodyEntries) {
    if (entry.name === 'APKINDEX') text = content.toString('utf8');
    else if (entry.name === 'DESCRIPTION') description = content.toString('utf8');
  }
  if (text === undefined) throw new PackageFormatError(`${path}: no APKINDEX entry in the index`);
  const result: ApkIndex = { path, entries: parseApkIndex(text, `${path}: APKINDEX`), signatures };
  if (description !== undefined) result.description = description;
  if (verified) result.verified = verified;
  return result;
}

export interface WriteApkIndexOptions {
  path: string;
  entries: IndexEntry[];
  signingKey?: SigningKey;
  description?: string;
  /** mtime of the tar entries; defaults to the newest builddate among the entries (0 if none), for reproducibility. */
  mtime?: number;
}

/** Writes the index (signed when a key is given) atomically; the bytes depend only on the inputs. */
export async function writeApkIndex(opts: WriteApkIndexOptions): Promise<{ path: string; fileSize: number }> {
  const text = renderApkIndex(opts.entries);
  const mtime = opts.mtime ?? opts.entries.reduce((m, e) => Math.max(m, e.builddate ?? 0), 0);
  const owner = { uid: 0, gid: 0, uname: 'root', gname: 'root' };
  const parts: Buffer[] = [];
  if (opts.description !== undefined) {
    const d = Buffer.from(opts.description, 'utf8');
    parts.push(encodeTarEntry({ name: 'DESCRIPTION', type: 'file', mode: 0o644, size: d.length, mtime, ...owner }, d));
  }
  const t = Buffer.from(text, 'utf8');
  parts.push(encodeTarEntry({ name: 'APKINDEX', type: 'file', mode: 0o644, size: t.length, mtime, ...owner }, t));
  parts.push(TAR_END_OF_ARCHIVE);
  const unsigned = gzipMember(Buffer.concat(parts));
  const file = opts.signingKey ? Buffer.concat([buildSignatureStream(opts.signingKey, unsigned, mtime), unsigned]) : unsigned;
  try {
    await writeBufferAtomic(opts.path, file, { mode: 0o644, overwrite: true, sync: true });
  } catch (err) {
    throw new BuilderError(`cannot write index ${opts.path}: ${errorMessage(err)}`, { cause: err });
  }
  return { path: opts.path, fileSize: file.length };
}

export interface UpdateApkIndexOptions {
  path: string;
  add: IndexEntry[];
  signingKey?: SigningKey;
  /**
   * Keys the existing index must verify against. Without it, an existing index signed with the signing
   * key's name must verify against that key, and one signed only by other keys is refused.
   */
  keyring?: ReadonlyMap<string, KeyObject>;
  /** Replaces the existing DESCRIPTION (kept otherwise). */
  description?: string;
  lockTimeoutMs?: number;
}

async function exists(path: string): Promise<boolean> {
  try {
    await open(path, 'r').then((fh) => fh.close());
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new BuilderError(`cannot read index ${path}: ${errorMessage(err)}`, { cause: err });
  }
}

async function readExistingForUpdate(opts: UpdateApkIndexOptions): Promise<ApkIndex | undefined> {
  if (!(await exists(opts.path))) return undefined;
  if (opts.keyring) return readApkIndex(opts.path, opts.keyring);
  const index = await readApkIndex(opts.path);
  const key = opts.signingKey;
  if (key && index.signatures.length > 0) {
    if (!index.signatures.some((s) => s.keyName === key.keyName)) {
      const names = index.signatures.map((s) => s.keyName).join(', ');
      throw new PackageFormatError(`${opts.path}: existing index is signed by ${names}, not by ${key.keyName}; refusing to re-sign it`);
    }
    return readApkIndex(opts.path, new Map([[key.keyName, key.publicKey]]));
  }
  return index;
}

/**
 * Adds packages to the index at `path` under an exclusive lock: entries with the same name and version are
 * replaced, others kept. A damaged or untrusted existing index is an error, never silently replaced.
 */
export async function updateApkIndex(opts: UpdateApkIndexOptions): Promise<{ path: string; entries: IndexEntry[]; fileSize: number }> {
  return withLock(
    `${opts.path}.lock`,
    { timeoutMs: opts.lockTimeoutMs ?? 60_000 },
    async () => {
      const existing = await readExistingForUpdate(opts);
      const merged = new Map<string, IndexEntry>();
      const keyOf = (e: IndexEntry): string => `${e.pkgname}\0${e.pkgver}`;
      for (const e of existing?.entries ?? []) merged.set(keyOf(e), e);
      for (const e of opts.add) merged.set(keyOf(e), e);
      const entries = [...merged.values()].sort(byNameThenVersion);
      const description = opts.description ?? existing?.description;
      const written = await writeApkIndex({
        path: opts.path,
        entries,
        ...(opts.signingKey ? { signingKey: opts.signingKey } : {}),
        ...(description !== undefined ? { description } : {}),
      });
      return { path: opts.path, entries, fileSize: written.fileSize };
    },
  );
}

// APK repositories as the installer sees them: a local directory or an http(s) URL holding
// `<arch>/APKINDEX.tar.gz` and `<arch>/<name>-<version>.apk`. Remote files are downloaded into a cache dir
// (temp name, then rename); local ones are read in place.
import { createHash, type KeyObject, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { loadKeyring } from '../../apk/keys.ts';
import { type ApkIndex, type IndexEntry, readApkIndex } from '../../apk/index.ts';
import { readApkHead } from '../../apk/reader.ts';
import { BuilderError, errorMessage, PackageFormatError } from '../../errors.ts';
import { fileSha256 } from '../cache.ts';

export interface RepositoryLocation {
  /** As written in the recipe or flag. */
  spec: string;
  kind: 'dir' | 'http';
  /** Directory or URL of the architecture's folder (`<repo>/<arch>`). */
  base: string;
  /** For messages: the architecture folder. */
  label: string;
}

export interface LoadedRepository {
  location: RepositoryLocation;
  index: ApkIndex;
  /** SHA-256 of the index file as fetched: part of a root's identity. */
  indexSha256: string;
}

const DOWNLOAD_TIMEOUT_MS = 10 * 60_000;

/** Where a repository entry points. apk's `@tag` prefix is accepted and ignored. */
export function locateRepository(spec: string, arch: string, baseDir: string): RepositoryLocation {
  let text = spec.trim();
  if (text.startsWith('@')) text = text.replace(/^@\S+\s+/, '');
  text = text.replace(/\/+$/, '');
  if (/^https?:\/\//.test(text)) {
    const base = `${text}/${arch}`;
    return { spec, kind: 'http', base, label: base };
  }
  const path = text.startsWith('file://') ? text.slice('file://'.length) : text;
  const dir = join(isAbsolute(path) ? path : resolve(baseDir, path), arch);
  return { spec, kind: 'dir', base: dir, label: dir };
}

async function download(url: string, dest: string, headers: Record<string, string> = {}): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url, { headers, signal: AbortSignal.timeout(DOWNLOAD_TIMEOUT_MS), redirect: 'follow' });
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause;
    throw new BuilderError(`${url} is unreachable: ${errorMessage(cause ?? err)}`, { cause: err });
  }
  if (response.status === 304) return response;
  if (!response.ok || response.body === null) {
    throw new BuilderError(`${url}: HTTP ${response.status} ${response.statusText}`);
  }
  await mkdir(join(dest, '..'), { recursive: true });
  const temp = `${dest}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await pipeline(Readable.fromWeb(response.body as import('node:stream/web').ReadableStream), createWriteStream(temp));
    await rename(temp, dest);
  } catch (err) {
    await rm(temp, { force: true });
    throw new BuilderError(`${url}: download failed: ${errorMessage(err)}`, { cause: err });
  }
  return response;
}

/**
 * The index file of a repository on local disk (downloaded into `cacheDir` for a URL, revalidated with the
 * server's ETag/Last-Modified so an unchanged index is not transferred again).
 */
/**
 * Local repositories that exist but have no index yet (the first build in a fresh checkout, whose out dir is
 * also a repository) count as empty, as in melange: left out, with a note. A missing directory stays an error.
 */
export async function withoutEmptyLocalRepositories(locations: RepositoryLocation[], log: (line: string) => void): Promise<RepositoryLocation[]> {
  const kept: RepositoryLocation[] = [];
  for (const location of locations) {
    if (location.kind === 'dir') {
      const hasIndex = await stat(join(location.base, 'APKINDEX.tar.gz')).then(() => true, () => false);
      const dirExists = await stat(location.base).then((st) => st.isDirectory(), () => false);
      if (!hasIndex && dirExists) {
        log(`environment: repository ${location.spec}: no APKINDEX.tar.gz in ${location.base} yet; counted as empty`);
        continue;
      }
    }
    kept.push(location);
  }
  return kept;
}

export async function fetchIndexFile(location: RepositoryLocation, cacheDir: string): Promise<string> {
  if (location.kind === 'dir') {
    const file = join(location.base, 'APKINDEX.tar.gz');
    try {
      const st = await stat(file);
      if (!st.isFile()) throw new Error('not a file');
    } catch {
      const dirExists = await stat(location.base).then((s) => s.isDirectory(), () => false);
      throw new BuilderError(
        `repository ${location.spec}: ${dirExists ? `no APKINDEX.tar.gz in ${location.base}` : `${location.base} does not exist`}`,
      );
    }
    return file;
  }
  const key = createHash('sha256').update(location.base).digest('hex').slice(0, 32);
  const file = join(cacheDir, 'indexes', `${key}.tar.gz`);
  const metaFile = `${file}.json`;
  const headers: Record<string, string> = {};
  const cached = await stat(file).then(() => true, () => false);
  if (cached) {
    const meta = JSON.parse(await readFile(metaFile, 'utf8').catch(() => '{}')) as { etag?: string; lastModified?: string };
    if (meta.etag) headers['if-none-match'] = meta.etag;
    if (meta.lastModified) headers['if-modified-since'] = meta.lastModified;
  }
  const url = `${location.base}/APKINDEX.tar.gz`;
  let response: Response;
  try {
    response = await download(url, file, headers);
  } catch (err) {
    throw new BuilderError(`repository ${location.spec}: ${errorMessage(err)}`, { cause: err });
  }
  if (response.status !== 304) {
    const meta = { etag: response.headers.get('etag') ?? undefined, lastModified: response.headers.get('last-modified') ?? undefined };
    await writeFile(metaFile, JSON.stringify(meta));
  }
  return file;
}

/** Reads and (unless ignoring signatures) verifies a repository's index. */
export async function loadRepository(
  location: RepositoryLocation,
  options: { keyring: ReadonlyMap<string, KeyObject>; ignoreSignatures: boolean; cacheDir: string },
): Promise<LoadedRepository> {
  const file = await fetchIndexFile(location, options.cacheDir);
  let index: ApkIndex;
  try {
    index = await readApkIndex(file, options.ignoreSignatures ? undefined : options.keyring);
  } catch (err) {
    throw untrustedHint(err, `repository ${location.label}`);
  }
  return { location, index, indexSha256: await fileSha256(file) };
}

/** Adds where to look when a signature is not trusted. */
export function untrustedHint(err: unknown, what: string): Error {
  if (err instanceof PackageFormatError && /UNTRUSTED/.test(err.message)) {
    return new PackageFormatError(
      `${what}: ${err.message} (trust its key with environment.contents.keyring or --keyring-append, or pass --ignore-signatures)`,
      { cause: err },
    );
  }
  if (err instanceof BuilderError) return err;
  return new PackageFormatError(`${what}: ${errorMessage(err)}`, { cause: err });
}

/** Hex of an index `C:` checksum (`Q1` + base64 SHA-1). */
export function checksumHex(checksum: string): string {
  return Buffer.from(checksum.slice(2), 'base64').toString('hex');
}

export function packageFileName(entry: Pick<IndexEntry, 'pkgname' | 'pkgver'>): string {
  return `${entry.pkgname}-${entry.pkgver}.apk`;
}

/** A package file on local disk: in place for a directory repository, downloaded into the cache otherwise. */
export async function packageFile(location: RepositoryLocation, entry: IndexEntry, apkCacheDir: string): Promise<string> {
  const name = packageFileName(entry);
  if (location.kind === 'dir') return join(location.base, name);
  const cached = join(apkCacheDir, `${entry.pkgname}-${entry.pkgver}.${checksumHex(entry.checksum).slice(0, 16)}.apk`);
  if (await stat(cached).then((s) => s.isFile() && s.size === entry.fileSize, () => false)) {
    // A damaged or replaced download would fail every build from now on: check it still is what the index says.
    const head = await readApkHead(cached).catch(() => undefined);
    if (head?.checksum === entry.checksum) return cached;
    await rm(cached, { force: true });
  }
  await download(`${location.base}/${encodeURIComponent(name)}`, cached);
  return cached;
}

export interface LoadedKeyring {
  keyring: Map<string, KeyObject>;
  /** name + SHA-256 of each key (DER), sorted: part of a root's identity. */
  fingerprints: string[];
}

/** Loads keyring entries (files, directories of *.pub, or http(s) URLs downloaded into `cacheDir`). */
export async function loadKeys(entries: readonly string[], baseDir: string, cacheDir: string): Promise<LoadedKeyring> {
  const paths: string[] = [];
  for (const entry of entries) {
    if (/^https?:\/\//.test(entry)) {
      const dest = join(cacheDir, 'keys', createHash('sha256').update(entry).digest('hex').slice(0, 16), basename(new URL(entry).pathname));
      if (!(await stat(dest).then(() => true, () => false))) {
        try {
          await download(entry, dest);
        } catch (err) {
          throw new BuilderError(`keyring ${entry}: ${errorMessage(err)}`, { cause: err });
        }
      }
      paths.push(dest);
    } else {
      paths.push(isAbsolute(entry) ? entry : resolve(baseDir, entry));
    }
  }
  const keyring = await loadKeyring(paths);
  const fingerprints = [...keyring.entries()]
    .map(([name, key]) => `${name}:${createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest('hex')}`)
    .sort();
  return { keyring, fingerprints };
}

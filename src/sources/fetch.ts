// Host-side `fetch`: download a source archive into the cache dir under its checksum, verified while it
// streams. The sandbox only ever reads the cached file, so builds never need the network.
import { createHash, type Hash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { fileURLToPath } from 'node:url';
import { BuilderError, errorMessage } from '../errors.ts';
import type { FetchSourcePlan } from '../pipeline/plan.ts';

export interface FetchOptions {
  /** The host cache dir (mounted at /var/cache/melange in the sandbox). */
  cacheDir: string;
  /** What relative local paths are resolved against (the recipe's folder). */
  baseDir: string;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export interface FetchResult {
  /** The cache file. */
  path: string;
  /** True when the file was already cached and nothing was downloaded. */
  cached: boolean;
  bytes: number;
}

/** Raised when a download does not match its expected checksum (the download is deleted). */
export class ChecksumMismatchError extends BuilderError {
  override name = 'ChecksumMismatchError';
}

const URL_SCHEME = /^([a-zA-Z][a-zA-Z0-9+.-]*):/;

/** Fetch `source` into `<cacheDir>/<cacheName>` unless it is there already. */
export async function fetchToCache(source: FetchSourcePlan, options: FetchOptions): Promise<FetchResult> {
  const target = join(options.cacheDir, source.cacheName);
  const existing = await stat(target).catch(() => undefined);
  if (existing?.isFile()) {
    options.log?.(`fetch: ${source.uri}: using ${source.cacheName} from the cache`);
    return { path: target, cached: true, bytes: existing.size };
  }
  await mkdir(dirname(target), { recursive: true });
  const temp = join(dirname(target), `.${source.cacheName}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const where = `${source.source}: fetch ${source.uri}`;
  try {
    const input = await open(source.uri, options, where);
    const hashes: { algorithm: 'sha256' | 'sha512'; expected: string; hash: Hash }[] = [];
    if (source.sha256) hashes.push({ algorithm: 'sha256', expected: source.sha256, hash: createHash('sha256') });
    if (source.sha512) hashes.push({ algorithm: 'sha512', expected: source.sha512, hash: createHash('sha512') });
    let bytes = 0;
    const hashing = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        bytes += chunk.length;
        for (const h of hashes) h.hash.update(chunk);
        done(null, chunk);
      },
    });
    await pipeline(input, hashing, createWriteStream(temp, { flags: 'wx' }), { signal: options.signal });
    for (const h of hashes) {
      const actual = h.hash.digest('hex');
      if (actual !== h.expected.toLowerCase()) {
        throw new ChecksumMismatchError(
          `${where}: ${h.algorithm} mismatch: expected ${h.expected.toLowerCase()}, got ${actual} (the download was deleted)`,
        );
      }
    }
    await rename(temp, target);
    options.log?.(`fetch: ${source.uri}: ${bytes} bytes, ${hashes.map((h) => h.algorithm).join(' and ')} verified`);
    return { path: target, cached: false, bytes };
  } catch (err) {
    await rm(temp, { force: true });
    if (err instanceof BuilderError) throw err;
    if (options.signal?.aborted) throw new BuilderError(`${where}: interrupted`, { cause: err });
    throw new BuilderError(`${where}: ${errorMessage(err)}`, { cause: err });
  }
}

async function open(uri: string, options: FetchOptions, where: string): Promise<Readable> {
  const scheme = URL_SCHEME.exec(uri)?.[1]?.toLowerCase();
  if (scheme === 'http' || scheme === 'https') {
    let response: Response;
    try {
      response = await fetch(uri, { redirect: 'follow', signal: options.signal });
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      throw new BuilderError(`${where}: ${cause ? errorMessage(cause) : errorMessage(err)}`, { cause: err });
    }
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      throw new BuilderError(`${where}: HTTP ${response.status} ${response.statusText}`.trimEnd());
    }
    return Readable.fromWeb(response.body as WebReadableStream<Uint8Array>);
  }
  let file: string;
  if (scheme === 'file') {
    try {
      file = fileURLToPath(uri);
    } catch (err) {
      throw new BuilderError(`${where}: ${errorMessage(err)}`);
    }
  } else if (scheme === undefined) {
    file = resolve(options.baseDir, uri);
  } else {
    throw new BuilderError(`${where}: unsupported URI scheme "${scheme}:" (http, https and file URIs and local paths work)`);
  }
  const info = await stat(file).catch((err: NodeJS.ErrnoException) => {
    throw new BuilderError(`${where}: ${file}: ${err.code === 'ENOENT' ? 'no such file' : (err.code ?? err.message)}`);
  });
  if (!info.isFile()) throw new BuilderError(`${where}: ${file} is not a file`);
  return createReadStream(file);
}
